//! Bins and recycling centers on the command side: recording changes (with their position in
//! `app.places`, in the same transaction as the event) and finding the nearest one, which is how
//! a recycle is judged ("honest recycling": it pays only near a known bin or center).

use events::{EventData, PlaceKind, PlaceRemoved, PlaceSaved};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{ContentKind, Saved, save as save_content};

/// Records a new or changed place (an event only when its content changed).
pub async fn save(
    conn: &mut PgConnection,
    place: PlaceSaved,
    source: &str,
    correlation_id: Option<Uuid>,
) -> sqlx::Result<Saved> {
    let kind = match place.kind {
        PlaceKind::Bin => "bin",
        PlaceKind::Center => "center",
    };
    sqlx::query(
        "insert into app.places (place_id, kind, latitude, longitude, removed) values ($1, $2, $3, $4, false)
         on conflict (place_id) do update set kind = excluded.kind, latitude = excluded.latitude,
           longitude = excluded.longitude, removed = false",
    )
    .bind(place.place_id)
    .bind(kind)
    .bind(events::GeoPoint::round(place.location.latitude))
    .bind(events::GeoPoint::round(place.location.longitude))
    .execute(&mut *conn)
    .await?;
    let id = place.place_id;
    save_content(conn, ContentKind::Place, id, EventData::PlaceSaved(place), source, correlation_id).await
}

/// Records a removal.
pub async fn remove(
    conn: &mut PgConnection,
    place_id: Uuid,
    source: &str,
    correlation_id: Option<Uuid>,
) -> sqlx::Result<Saved> {
    sqlx::query("update app.places set removed = true where place_id = $1").bind(place_id).execute(&mut *conn).await?;
    save_content(conn, ContentKind::Place, place_id, PlaceRemoved { place_id }.into(), source, correlation_id).await
}

/// The known place nearest to a point, within `within_m` metres.
#[derive(Debug, Clone, Copy, PartialEq, sqlx::FromRow)]
pub struct Nearest {
    /// The place.
    pub place_id: Uuid,
    /// Great-circle distance in metres.
    pub distance_m: f64,
}

/// The nearest bin or center within `within_m` metres of `(latitude, longitude)`, by the
/// earthdistance GiST index.
pub async fn nearest(
    db: impl sqlx::PgExecutor<'_>,
    latitude: f64,
    longitude: f64,
    within_m: f64,
) -> sqlx::Result<Option<Nearest>> {
    let row: Option<Nearest> = sqlx::query_as(
        "select place_id, earth_distance(ll_to_earth($1, $2), ll_to_earth(latitude, longitude)) as distance_m
         from app.places
         where not removed and earth_box(ll_to_earth($1, $2), $3) @> ll_to_earth(latitude, longitude)
         order by distance_m limit 1",
    )
    .bind(events::GeoPoint::round(latitude))
    .bind(events::GeoPoint::round(longitude))
    .bind(within_m)
    .fetch_optional(db)
    .await?;
    Ok(row.filter(|n| n.distance_m <= within_m))
}

/// Whether a recycle earns its points, and why: the one rule ("honest recycling"), applied by
/// `POST /recycles` to answer at once and by the points policy to pay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RecycleVerdict {
    /// No position was given.
    NoLocation,
    /// No bin or center within the distance.
    NoKnownPlaceNearby,
    /// Near this place: it pays.
    NearKnownPlace(Nearest),
}

impl RecycleVerdict {
    /// Whether it pays.
    pub fn eligible(self) -> bool {
        matches!(self, Self::NearKnownPlace(_))
    }

    /// `no_location`, `no_known_place_nearby` or `near_known_place`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::NoLocation => "no_location",
            Self::NoKnownPlaceNearby => "no_known_place_nearby",
            Self::NearKnownPlace(_) => "near_known_place",
        }
    }
}

/// Judges a recycle at `at`: it pays when a known bin or center is within `max_distance_m`.
pub async fn judge_recycle(
    db: impl sqlx::PgExecutor<'_>,
    at: Option<events::GeoPoint>,
    max_distance_m: f64,
) -> sqlx::Result<RecycleVerdict> {
    let Some(at) = at else { return Ok(RecycleVerdict::NoLocation) };
    Ok(match nearest(db, at.latitude, at.longitude, max_distance_m).await? {
        Some(place) => RecycleVerdict::NearKnownPlace(place),
        None => RecycleVerdict::NoKnownPlaceNearby,
    })
}
