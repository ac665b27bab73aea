pub mod bench;
pub mod demo;
pub mod migrate;
pub mod simulator;
pub mod sync;
