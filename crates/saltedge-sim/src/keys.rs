//! Test-only key pairs, public in git (see `keys/README.md`). Never use them with Salt Edge.

pub const SIMULATOR_PRIVATE_PEM: &str = include_str!("../keys/simulator_private.pem");
pub const SIMULATOR_PUBLIC_PEM: &str = include_str!("../keys/simulator_public.pem");
pub const CLIENT_PRIVATE_PEM: &str = include_str!("../keys/client_private.pem");
pub const CLIENT_PUBLIC_PEM: &str = include_str!("../keys/client_public.pem");
