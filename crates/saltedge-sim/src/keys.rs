//! Test-only key pairs, public in git (see `keys/README.md`). Never use them with Salt Edge.

pub const SIMULATOR_PRIVATE_PEM: &str = include_str!("../keys/simulator_private.pem");
pub const SIMULATOR_PUBLIC_PEM: &str = include_str!("../keys/simulator_public.pem");
pub const CLIENT_PRIVATE_PEM: &str = include_str!("../keys/client_private.pem");
pub const CLIENT_PUBLIC_PEM: &str = include_str!("../keys/client_public.pem");
/// The simulator's v6 callback-signing pair (Salt Edge signs v6 callbacks with a key of
/// its own, per the v6 notes §5.2).
pub const SIMULATOR_V6_PRIVATE_PEM: &str = include_str!("../keys/simulator_v6_private.pem");
pub const SIMULATOR_V6_PUBLIC_PEM: &str = include_str!("../keys/simulator_v6_public.pem");
