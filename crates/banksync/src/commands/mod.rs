pub mod admin;
pub mod bench;
pub mod config;
pub mod demo;
pub mod migrate;
pub mod serve;
pub mod simulator;
pub mod sync;
