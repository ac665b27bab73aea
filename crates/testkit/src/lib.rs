//! The one harness piece every test binary, the demo and the benches share: a Salt Edge
//! client for a running simulator, signed with the simulator's bundled test key and its app
//! credentials. Test-friendly defaults: short backoff, no fetch limit (tests that measure
//! the limit set it). The simulator itself never uses the client: this crate only joins
//! the two for callers.

pub mod clock;

use std::time::Duration;

use saltedge_client::{Client, ClientConfig};
use saltedge_sim::Simulator;

/// The client configuration for `sim` with the client's own defaults (the demo's).
pub fn config(sim: &Simulator) -> ClientConfig {
    let (app_id, secret) = sim.app_credentials();
    ClientConfig::signed(
        sim.api_base(),
        app_id,
        secret,
        saltedge_sim::keys::CLIENT_PRIVATE_PEM,
    )
    .expect("the simulator's bundled test key parses")
}

/// The client configuration for `sim` that tests use: short backoff, no fetch limit.
pub fn signed_config(sim: &Simulator) -> ClientConfig {
    let mut c = config(sim);
    c.backoff_base = Duration::from_millis(5);
    c.fetches_per_second = 0;
    c
}

/// [`signed_config`] for the simulator's v6 API (`/api/v6/`: the client speaks v6).
pub fn signed_config_v6(sim: &Simulator) -> ClientConfig {
    let mut c = signed_config(sim);
    c.base_url = sim.api_base_v6();
    c.api_version = saltedge_client::ApiVersion::of_base_url(&c.base_url);
    c
}

/// A client for `sim` with [`signed_config`].
pub fn signed_client(sim: &Simulator) -> Client {
    client_with(sim, |_| {})
}

/// A client for `sim` with [`signed_config`] changed by `f`.
pub fn client_with(sim: &Simulator, f: impl FnOnce(&mut ClientConfig)) -> Client {
    let mut c = signed_config(sim);
    f(&mut c);
    Client::new(c).expect("a client from a valid configuration")
}
