//! Check-in days, kept by each consumer that derives streaks from them (the profiles
//! projection's `attendance_days`, the points policy's `points.check_in_days`, the rewards
//! policy's `rewards.check_in_days`): each owns its table, so none depends on how far another
//! has got, and each rebuilds or forgets its own.

use chrono::NaiveDate;
use sqlx::PgConnection;
use uuid::Uuid;

/// Records `day` for `user` in `table` (a `(user_id, day)` table) and returns every day the
/// user checked in, `day` included. The caller holds the user's lock, so two check-ins of one
/// user never both miss each other's day.
pub async fn record(tx: &mut PgConnection, table: &str, user: Uuid, day: NaiveDate) -> sqlx::Result<Vec<NaiveDate>> {
    // The insert is not visible to the select of the same statement: `union` adds the day.
    sqlx::query_scalar(&format!(
        "with added as (insert into {table} (user_id, day) values ($1, $2) on conflict do nothing)
         select day from {table} where user_id = $1 union select $2"
    ))
    .bind(user)
    .bind(day)
    .fetch_all(&mut *tx)
    .await
}
