//! The sync engine against real Postgres (a fresh database per test) and the simulator over
//! real HTTP. Every test ends by comparing the statement lines with the simulator's ground
//! truth where that applies.

mod accounts;
mod clock;
mod contract;
mod dedup;
mod faults;
mod identity;
mod jobs;
mod review;
mod schedule;
mod statements;
mod support;
mod tenancy;
mod versions;
