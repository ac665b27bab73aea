//! The HTTP surface over real HTTP: the simulator, this server, its job worker and Postgres.

mod accounting;
mod callbacks;
mod console;
mod contract;
mod exports;
mod fairness;
mod flows;
mod ops;
mod security;
mod serving;
mod support;
mod webhooks;
