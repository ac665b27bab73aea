//! Salt Edge callbacks after their signature was checked (by the HTTP crate): stored once
//! with their job ([`inbox`]), then applied to connections, never backwards ([`events`]).

pub mod events;
pub mod inbox;
