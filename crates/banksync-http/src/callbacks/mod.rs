//! Salt Edge callback receivers: `verify` checks the signature, `receive` stores the event
//! (the sync engine's inbox) and answers at once; processing happens on the job worker.

pub mod receive;
pub mod urls;
pub mod verify;
