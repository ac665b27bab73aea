//! Turning a connection's Salt Edge data into statement lines: one sync run ([`run`]), the
//! lines it writes under the deduplication rules ([`lines`]), the balance check after it
//! ([`balance`]), one sync per connection at a time ([`lock`]) and the records that cannot
//! be stored ([`quarantine`]).

pub mod balance;
pub mod lines;
pub mod lock;
pub mod quarantine;
pub mod run;
