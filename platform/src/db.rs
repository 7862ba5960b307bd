//! PostgreSQL pool and migrations.

use std::time::Duration;

use anyhow::Context;
use sqlx::{
    PgPool, Postgres,
    migrate::{MigrateDatabase, Migrator},
    postgres::PgPoolOptions,
};

use crate::settings::Settings;

/// Every schema of the system; `migrations/` is the single source of truth.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// Opens the pool. Creates the database when it does not exist yet (a fresh machine) and applies
/// pending migrations unless `MIGRATE_ON_START=false`.
pub async fn connect(settings: &Settings) -> anyhow::Result<PgPool> {
    if settings.migrate_on_start {
        create_if_missing(&settings.database_url).await?;
    }
    let pool = PgPoolOptions::new()
        .max_connections(settings.database_max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&settings.database_url)
        .await
        .context("connecting to PostgreSQL (DATABASE_URL)")?;
    if settings.migrate_on_start {
        migrate(&pool).await?;
    }
    Ok(pool)
}

/// Creates the database of `url` when it does not exist yet (a fresh machine), as
/// [`CREATE_DATABASE`] says: UTF-8 with the C locale, whatever the cluster's default. Nothing in
/// the system depends on the locale (guide search runs on ASCII keys, `platform::search`), and
/// every environment, the tests included, then sorts and compares alike.
pub async fn create_if_missing(url: &str) -> anyhow::Result<()> {
    if Postgres::database_exists(url).await.unwrap_or(true) {
        return Ok(());
    }
    let options: sqlx::postgres::PgConnectOptions = url.parse().context("parsing DATABASE_URL")?;
    let name = options.get_database().unwrap_or("postgres").to_owned();
    let created = async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect_with(&options.database("postgres")).await?;
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        sqlx::query(&CREATE_DATABASE.replace("{name}", &quoted)).execute(&mut conn).await?;
        anyhow::Ok(())
    };
    // Another process may create it at the same moment; only a still-missing database is an error.
    if let Err(e) = created.await
        && !Postgres::database_exists(url).await.unwrap_or(false)
    {
        return Err(e).context("creating the database");
    }
    Ok(())
}

/// How a missing database is created (`{name}` quoted). Operators creating it themselves may use
/// any UTF-8 locale.
pub const CREATE_DATABASE: &str =
    "create database {name} template template0 encoding 'UTF8' lc_collate 'C' lc_ctype 'C'";

/// Applies pending migrations. Safe to run from several processes at once (sqlx takes an
/// advisory lock).
pub async fn migrate(pool: &PgPool) -> anyhow::Result<usize> {
    let before = applied_count(pool).await;
    MIGRATOR.run(pool).await.context("applying migrations")?;
    Ok(applied_count(pool).await.saturating_sub(before))
}

async fn applied_count(pool: &PgPool) -> usize {
    sqlx::query_scalar::<_, i64>("select count(*) from _sqlx_migrations where success")
        .fetch_one(pool)
        .await
        .map(|n| usize::try_from(n).unwrap_or(0))
        .unwrap_or(0)
}
