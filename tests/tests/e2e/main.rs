#![allow(clippy::unwrap_used, clippy::expect_used)]

//! End-to-end tests: all processes against real PostgreSQL, Redis and RabbitMQ.

mod account;
mod api;
mod auth;
mod avatars;
mod broker;
mod contract;
mod delivery;
mod forgetting;
mod game;
mod geocoding;
mod guide;
mod http_errors;
mod integrity;
mod mail;
mod notifications;
mod ops;
mod places;
mod readiness;
mod rebuild;
mod retention;
mod rewards;
mod rolling;
mod scale;
mod social;
mod specs;
mod support;
mod upgrade;
