//! The places read model: bins and centers in `read.places` (searched by distance with the
//! earthdistance GiST index), and users' saved places in `read.saved_places`. Written by the
//! places projector ([`write`]), read by query-api ([`nearby`], [`saved`]) and scan guidance.
//!
//! Places carry their whole state and the per-place `sequence`: a row only moves to a higher
//! one, and a removal leaves a `removed` row. A user's saved places arrive as the whole list:
//! the list with the highest sequence replaces the user's rows, so one default place holds in
//! any order.

use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

/// A bin or center, with how far it is.
#[derive(Debug, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct Place {
    /// Id.
    #[sqlx(rename = "place_id")]
    pub id: Uuid,
    /// `bin` or `center`.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Address.
    pub address: String,
    /// Latitude.
    pub latitude: f64,
    /// Longitude.
    pub longitude: f64,
    /// Categories it takes.
    pub categories: Vec<String>,
    /// Opening hours (centers).
    pub opening_hours: Option<String>,
    /// Phone (centers).
    pub phone: Option<String>,
    /// Metres from the point asked about.
    pub distance_m: f64,
}

/// What to look for around a point (coordinates already checked and rounded).
#[derive(Debug, Clone)]
pub struct Near<'a> {
    /// `bin` or `center`.
    pub kind: &'a str,
    /// Latitude.
    pub latitude: f64,
    /// Longitude.
    pub longitude: f64,
    /// Metres.
    pub radius: f64,
    /// Only places taking this category code.
    pub category: Option<&'a str>,
    /// At most this many.
    pub limit: i64,
}

/// Places of a kind within the radius, nearest first (distance rounded to the metre).
pub async fn nearby(db: &PgPool, near: &Near<'_>) -> sqlx::Result<Vec<Place>> {
    let places: Vec<Place> = sqlx::query_as(
        "select * from (
           select place_id, kind, name, address, latitude, longitude, categories, opening_hours, phone,
                  earth_distance(ll_to_earth($1, $2), ll_to_earth(latitude, longitude)) as distance_m
           from read.places
           where not removed and kind = $3
             and earth_box(ll_to_earth($1, $2), $4) @> ll_to_earth(latitude, longitude)
             and ($5::text is null or $5 = any(categories))
         ) p where distance_m <= $4 order by distance_m, place_id limit $6",
    )
    .bind(near.latitude)
    .bind(near.longitude)
    .bind(near.kind)
    .bind(near.radius)
    .bind(near.category)
    .bind(near.limit)
    .fetch_all(db)
    .await?;
    Ok(places.into_iter().map(|p| Place { distance_m: p.distance_m.round(), ..p }).collect())
}

/// One of my saved places.
#[derive(Debug, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct SavedPlace {
    /// Id.
    #[sqlx(rename = "saved_place_id")]
    pub id: Uuid,
    /// My name for it.
    pub label: String,
    /// Latitude.
    pub latitude: f64,
    /// Longitude.
    pub longitude: f64,
    /// Address, if known.
    pub address: Option<String>,
    /// My default place.
    pub is_default: bool,
}

/// A user's saved places, in the order they were added.
pub async fn saved(db: &PgPool, user_id: Uuid) -> sqlx::Result<Vec<SavedPlace>> {
    sqlx::query_as(
        "select saved_place_id, label, latitude, longitude, address, is_default from read.saved_places
         where user_id = $1 order by position",
    )
    .bind(user_id)
    .fetch_all(db)
    .await
}

/// A user's default saved place, if they have one.
pub async fn default_place(db: &PgPool, user_id: Uuid) -> sqlx::Result<Option<SavedPlace>> {
    sqlx::query_as(
        "select saved_place_id, label, latitude, longitude, address, is_default from read.saved_places
         where user_id = $1 and is_default",
    )
    .bind(user_id)
    .fetch_optional(db)
    .await
}

/// Writing, for the places projector, inside its batch transaction.
pub mod write {
    use chrono::{DateTime, Utc};
    use events::{GeoPoint, PlaceKind, PlaceSaved, UserPlacesChanged};
    use sqlx::PgConnection;
    use uuid::Uuid;

    /// Stores a place's whole state, if newer than the row's.
    pub async fn save(tx: &mut PgConnection, p: &PlaceSaved, sequence: i64, at: DateTime<Utc>) -> sqlx::Result<()> {
        let kind = match p.kind {
            PlaceKind::Bin => "bin",
            PlaceKind::Center => "center",
        };
        let categories: Vec<&str> = p.categories.iter().map(|c| c.code()).collect();
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
        .bind(GeoPoint::round(p.location.latitude))
        .bind(GeoPoint::round(p.location.longitude))
        .bind(categories)
        .bind(&p.opening_hours)
        .bind(&p.phone)
        .bind(sequence)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// Marks a place removed, if the removal is newer than the row.
    pub async fn remove(tx: &mut PgConnection, place_id: Uuid, sequence: i64, at: DateTime<Utc>) -> sqlx::Result<()> {
        sqlx::query(
            "insert into places (place_id, removed, sequence, updated_at) values ($1, true, $2, $3)
             on conflict (place_id) do update set removed = true, sequence = excluded.sequence, updated_at = excluded.updated_at
             where places.sequence < excluded.sequence",
        )
        .bind(place_id)
        .bind(sequence)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// Replaces a user's saved places with `list`, if it is newer than the one stored (and the
    /// person is not forgotten).
    pub async fn replace_saved(tx: &mut PgConnection, list: &UserPlacesChanged, sequence: i64) -> sqlx::Result<()> {
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
        if !newer {
            return Ok(());
        }
        sqlx::query("delete from saved_places where user_id = $1").bind(list.user_id).execute(&mut *tx).await?;
        let fields: Vec<&events::Personal> =
            list.places.iter().flat_map(|p| std::iter::once(&p.label).chain(&p.address)).collect();
        let opener = platform::personal::Opener::of(&mut *tx, list.user_id, &fields).await?;
        for (position, p) in list.places.iter().enumerate() {
            // A forgotten person's places are not stored (their deletion follows in the log).
            let Some(label) = opener.open("label", &p.label) else {
                return Ok(());
            };
            let address = match &p.address {
                Some(a) => match opener.open("address", a) {
                    Some(a) => Some(a),
                    None => return Ok(()),
                },
                None => None,
            };
            sqlx::query(
                "insert into saved_places (saved_place_id, user_id, label, latitude, longitude, address, is_default, position)
                 values ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(p.saved_place_id)
            .bind(list.user_id)
            .bind(label)
            .bind(p.location.latitude)
            .bind(p.location.longitude)
            .bind(address)
            .bind(p.is_default)
            .bind(position as i32)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }

    /// Forgets a person's saved places for good.
    pub async fn forget(tx: &mut PgConnection, user_id: Uuid) -> sqlx::Result<()> {
        crate::forget_person(tx, user_id, &["saved_places", "saved_place_lists"], "places_tombstones").await
    }
}
