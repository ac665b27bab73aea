//! The records, each module the queries of one area. Every tenant table carries
//! `company_id`, and every query of a company's data filters by it.

pub mod audit;
pub mod catalogue;
pub mod changes;
pub mod companies;
pub mod connections;
pub mod console;
pub mod history;
pub mod mapping;
pub mod pending;
pub mod pool;
pub mod retention;
pub mod runs;
pub mod statement_lines;
pub mod statements;
pub mod stats;
pub mod status;
pub mod tokens;
