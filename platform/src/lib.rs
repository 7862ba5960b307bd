//! What every EcoEco process shares: configuration, telemetry, graceful shutdown, connection
//! pools, the AMQP topology, token signing and verification, the problem+json error type, the
//! read-your-writes token, and the `/health`, `/ready`, `/metrics` and docs routes.

pub mod allocator;
pub mod amqp;
pub mod auth;
pub mod avatars;
pub mod changes;
pub mod consistency;
pub mod cursor;
pub mod db;
pub mod denylist;
mod devkeys;
pub mod error;
pub mod eventstore;
mod field;
pub mod http;
pub mod openapi;
pub mod personal;
pub mod ratelimit;
pub mod redis;
mod request_id;
pub mod settings;
pub mod shutdown;
pub mod storage;
pub mod telemetry;
pub mod text;
pub mod topology;
pub mod wake;

pub use settings::Settings;
