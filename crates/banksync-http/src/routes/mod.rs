//! The REST API, one file per resource, and the operations endpoints.

pub mod account_matches;
pub mod admin;
pub mod bank_accounts;
pub mod changes;
pub mod connections;
pub mod exports;
pub mod institutions;
pub mod journals;
pub mod ops;
pub mod pending_transactions;
pub mod statement_lines;
pub mod statements;
pub mod webhooks;
