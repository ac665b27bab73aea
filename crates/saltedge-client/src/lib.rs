//! Client for the Salt Edge Account Information API, v5 and v6 ([`version`] is where they
//! differ).
//!
//! * [`client`]: signed requests, retries for idempotent calls, the 2-fetches-per-second
//!   limit, `next_id` pagination as a stream of pages;
//! * [`models`]: typed resources; money as exact decimals;
//! * [`signature`]: request signing and callback verification;
//! * [`error`]: the one error type, carrying Salt Edge's error class.

pub mod client;
pub mod error;
pub mod models;
pub mod ratelimit;
pub mod signature;
pub mod text;
pub mod version;

pub use client::{
    parse_items, Client, ClientConfig, FetchGate, FetchPriority, FetchSlot, Kind, ProviderQuery,
    RawPage, TransactionQuery,
};
pub use error::{Error, ErrorClass};
pub use signature::{SignatureError, Signer, Verifier};
pub use version::ApiVersion;
