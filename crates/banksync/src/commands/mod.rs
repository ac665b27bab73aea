pub mod demo;
pub mod migrate;
pub mod simulator;
