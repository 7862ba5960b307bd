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

/// Applies pending migrations, then rebuilds what an interrupted concurrent index build left
/// behind ([`repair_invalid_indexes`]). Safe to run from several processes at once (sqlx takes an
/// advisory lock for the migrations, and one process at a time repairs).
pub async fn migrate(pool: &PgPool) -> anyhow::Result<usize> {
    let before = applied_count(pool).await;
    MIGRATOR.run(pool).await.context("applying migrations")?;
    let applied = applied_count(pool).await.saturating_sub(before);
    repair_invalid_indexes(pool).await?;
    Ok(applied)
}

/// Rebuilds every index of this database that a `create index concurrently` (or a
/// `reindex … concurrently`) left invalid, and returns the names of those rebuilt.
///
/// Some migrations build an index concurrently, outside a transaction, so that a large table
/// keeps taking writes meanwhile. If that build is interrupted (the process killed, the
/// statement cancelled, the connection lost), PostgreSQL keeps the index, marked invalid: never
/// used by a query, yet updated by every write. The migration is not recorded, so it runs again,
/// but its `if not exists` then finds the invalid index and skips it, and the slowness it was
/// written to fix stays, unseen.
///
/// So after the migrations, one process at a time (an advisory lock; the others skip) rebuilds
/// every invalid index that no session is building right now (`pg_stat_progress_create_index`)
/// with `reindex index concurrently`, and drops the leftovers of an interrupted rebuild
/// (`…_ccnew`, `…_ccold`), as PostgreSQL's documentation advises. A rebuild that fails is logged
/// as an error and left for an operator: a slow index is no reason not to start.
pub async fn repair_invalid_indexes(pool: &PgPool) -> anyhow::Result<Vec<String>> {
    let mut conn = pool.acquire().await.context("connecting to repair indexes")?;
    let ours: bool = sqlx::query_scalar("select pg_try_advisory_lock(hashtext('ecoeco.index-repair'))")
        .fetch_one(&mut *conn)
        .await
        .context("taking the index-repair lock")?;
    if !ours {
        return Ok(Vec::new());
    }
    let repaired = repair_invalid_indexes_locked(&mut conn).await;
    let unlocked = sqlx::query("select pg_advisory_unlock(hashtext('ecoeco.index-repair'))").execute(&mut *conn).await;
    if unlocked.is_err() {
        // Unknown state: the lock must not outlive this call on a pooled connection.
        let _ = conn.detach();
    }
    repaired
}

async fn repair_invalid_indexes_locked(conn: &mut sqlx::PgConnection) -> anyhow::Result<Vec<String>> {
    // Leftovers first (`order by 3 desc`): a rebuild's `_ccnew` is dropped before its index is
    // rebuilt again.
    let invalid: Vec<(sqlx::postgres::types::Oid, String, bool)> = sqlx::query_as(
        "select i.indexrelid, format('%I.%I', n.nspname, c.relname), c.relname ~ '_cc(new|old)[0-9]*$'
         from pg_index i
         join pg_class c on c.oid = i.indexrelid and c.relkind = 'i'
         join pg_namespace n on n.oid = c.relnamespace
         where not i.indisvalid
           and n.nspname !~ '^pg_' and n.nspname <> 'information_schema'
         order by 3 desc, 2",
    )
    .fetch_all(&mut *conn)
    .await
    .context("looking for invalid indexes")?;
    let mut rebuilt = Vec::new();
    for (oid, name, leftover) in invalid {
        // Checked again just before: being built by someone (of its table: a concurrent
        // reindex reports the old index, then its copy), or valid by now.
        let still: bool = sqlx::query_scalar(
            "select exists (select 1 from pg_index i where i.indexrelid = $1 and not i.indisvalid)
                and not exists (select 1 from pg_stat_progress_create_index p, pg_index i
                                where i.indexrelid = $1 and p.relid = i.indrelid
                                  and p.datid = (select oid from pg_database where datname = current_database()))",
        )
        .bind(oid)
        .fetch_one(&mut *conn)
        .await
        .context("looking at an invalid index")?;
        if !still {
            continue;
        }
        let statement = if leftover {
            tracing::warn!(index = %name, "dropping the leftover of an interrupted concurrent reindex");
            format!("drop index concurrently if exists {name}")
        } else {
            tracing::warn!(index = %name, "an interrupted concurrent build left this index invalid: rebuilding it");
            format!("reindex index concurrently {name}")
        };
        match sqlx::query(&statement).execute(&mut *conn).await {
            Ok(_) if leftover => {}
            Ok(_) => {
                tracing::info!(index = %name, "index rebuilt");
                rebuilt.push(name);
            }
            Err(e) => tracing::error!(index = %name, error = %e, statement, "invalid index not repaired"),
        }
    }
    Ok(rebuilt)
}

async fn applied_count(pool: &PgPool) -> usize {
    sqlx::query_scalar::<_, i64>("select count(*) from _sqlx_migrations where success")
        .fetch_one(pool)
        .await
        .map(|n| usize::try_from(n).unwrap_or(0))
        .unwrap_or(0)
}
