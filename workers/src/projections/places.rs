//! The places projection: bins and centers in `read.places` and users' saved places in
//! `read.saved_places` (SQL in `readmodels::places::write`).
//!
//! Places carry their whole state and the per-place `sequence`: a row only moves to a higher
//! one, and a removal leaves a `removed` row. A user's saved places arrive as the whole list
//! (`user.places_changed`): the list with the highest sequence replaces the user's rows, so one
//! default place holds in any order. `user.deleted` forgets the person's places for good.

use events::{Event, EventData};
use platform::topology::{ConsumerSpec, PLACES};
use readmodels::places::write;
use sqlx::PgConnection;

use crate::consumer::{ApplyError, Projector};

/// Builds `read.places` and `read.saved_places`.
pub struct PlacesProjector;

impl Projector for PlacesProjector {
    const TABLES: &'static [&'static str] = &["places", "saved_places", "saved_place_lists", "places_tombstones"];

    fn spec(&self) -> &'static ConsumerSpec {
        &PLACES
    }

    async fn apply(&self, tx: &mut PgConnection, event: &Event) -> Result<(), ApplyError> {
        let sequence = event.sequence.unwrap_or(0);
        match &event.data {
            EventData::PlaceSaved(p) => write::save(tx, p, sequence, event.occurred_at).await?,
            EventData::PlaceRemoved(p) => write::remove(tx, p.place_id, sequence, event.occurred_at).await?,
            EventData::UserPlacesChanged(list) => write::replace_saved(tx, list, sequence).await?,
            EventData::UserDeleted(d) => write::forget(tx, d.user_id).await?,
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
