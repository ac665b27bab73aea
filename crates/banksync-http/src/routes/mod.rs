pub mod admin;
pub mod connections;
pub mod institutions;
pub mod journals;
pub mod ops;
