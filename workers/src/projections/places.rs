//! The places projection: bins and centers in `read.places` (searched by distance with the
//! earthdistance GiST index), and users' saved places in `read.saved_places`.
//!
//! Places carry their whole state and the per-place `sequence`: a row only moves to a higher
//! one, and a removal leaves a `removed` row. A user's saved places arrive as the whole list
//! (`user.places_changed`): the list with the highest sequence replaces the user's rows, so one
//! default place holds in any order. `user.deleted` forgets the person's places for good.

use events::{Event, EventData, PlaceKind};
use platform::topology::{ConsumerSpec, PLACES};
use sqlx::PgConnection;

use crate::consumer::{ApplyError, Projector};

/// Builds `read.places` and `read.saved_places`.
pub struct PlacesProjector;

fn category_codes(categories: &[events::Category]) -> Vec<String> {
    categories.iter().filter_map(|c| serde_json::to_value(c).ok().and_then(|v| v.as_str().map(str::to_owned))).collect()
}

impl Projector for PlacesProjector {
    const TABLES: &'static [&'static str] = &["places", "saved_places", "saved_place_lists", "places_tombstones"];

    fn spec(&self) -> &'static ConsumerSpec {
        &PLACES
    }

    async fn apply(&self, tx: &mut PgConnection, event: &Event) -> Result<(), ApplyError> {
        let sequence = event.sequence.unwrap_or(0);
        match &event.data {
            EventData::PlaceSaved(p) => {
                let kind = match p.kind {
                    PlaceKind::Bin => "bin",
                    PlaceKind::Center => "center",
                };
                sqlx::query(
                    "insert into places (place_id, kind, name, address, latitude, longitude, categories, opening_hours, phone, removed, sequence, updated_at)
                     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, false, $10, $11)
                     on conflict (place_id) do update set
                       kind = excluded.kind, name = excluded.name, address = excluded.address,
                       latitude = excluded.latitude, longitude = excluded.longitude, categories = excluded.categories,
                       opening_hours = excluded.opening_hours, phone = excluded.phone, removed = false,
                       sequence = excluded.sequence, updated_at = excluded.updated_at
                     where places.sequence < excluded.sequence",
                )
                .bind(p.place_id)
                .bind(kind)
                .bind(&p.name)
                .bind(&p.address)
                .bind(events::GeoPoint::round(p.location.latitude))
                .bind(events::GeoPoint::round(p.location.longitude))
                .bind(category_codes(&p.categories))
                .bind(&p.opening_hours)
                .bind(&p.phone)
                .bind(sequence)
                .bind(event.occurred_at)
                .execute(&mut *tx)
                .await?;
            }
            EventData::PlaceRemoved(p) => {
                sqlx::query(
                    "insert into places (place_id, removed, sequence, updated_at) values ($1, true, $2, $3)
                     on conflict (place_id) do update set removed = true, sequence = excluded.sequence, updated_at = excluded.updated_at
                     where places.sequence < excluded.sequence",
                )
                .bind(p.place_id)
                .bind(sequence)
                .bind(event.occurred_at)
                .execute(&mut *tx)
                .await?;
            }
            EventData::UserPlacesChanged(list) => {
                let newer = sqlx::query(
                    "insert into saved_place_lists (user_id, sequence)
                     select $1, $2 where not exists (select 1 from places_tombstones where user_id = $1)
                     on conflict (user_id) do update set sequence = excluded.sequence
                     where saved_place_lists.sequence < excluded.sequence",
                )
                .bind(list.user_id)
                .bind(sequence)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if newer {
                    sqlx::query("delete from saved_places where user_id = $1")
                        .bind(list.user_id)
                        .execute(&mut *tx)
                        .await?;
                    for (position, p) in list.places.iter().enumerate() {
                        sqlx::query(
                            "insert into saved_places (saved_place_id, user_id, label, latitude, longitude, address, is_default, position)
                             values ($1, $2, $3, $4, $5, $6, $7, $8)",
                        )
                        .bind(p.saved_place_id)
                        .bind(list.user_id)
                        .bind(&p.label)
                        .bind(p.location.latitude)
                        .bind(p.location.longitude)
                        .bind(&p.address)
                        .bind(p.is_default)
                        .bind(position as i32)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
            }
            EventData::UserDeleted(d) => {
                sqlx::query("delete from saved_places where user_id = $1").bind(d.user_id).execute(&mut *tx).await?;
                sqlx::query("delete from saved_place_lists where user_id = $1")
                    .bind(d.user_id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("insert into places_tombstones (user_id) values ($1) on conflict do nothing")
                    .bind(d.user_id)
                    .execute(&mut *tx)
                    .await?;
            }
            _ => {}
        }
        Ok(())
    }
}

impl crate::registry::Build for PlacesProjector {
    fn build(_: &crate::registry::Deps) -> anyhow::Result<Self> {
        Ok(Self)
    }
}
