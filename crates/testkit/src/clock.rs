//! The tests' one clock. Tests ask here for "now" and "today" instead of reading the wall
//! clock each in its own way, so that every date they reason about comes from one place.
//!
//! The clock is the process's, and it is injected from outside: the date matrix
//! (`scripts/date-matrix`, run by CI) starts the test processes *and* their PostgreSQL
//! server under libfaketime at a pinned instant (a Monday, a Sunday, month ends, the new
//! year, 29 February, both Europe/Berlin DST changes), so that the engine, the simulator and
//! the database's `now()` agree on the day, as they do in production. It names the day it
//! pinned in `BANKSYNC_TEST_DAY`; [`today`] refuses to run a test at another day, so a
//! matrix run whose clock did not take effect fails instead of passing at the real date.

use chrono::{DateTime, NaiveDate, Utc};

/// Now, as the engine, the simulator and the database see it.
pub fn now() -> DateTime<Utc> {
    Utc::now()
}

/// Today (UTC), as the engine sees it: checked against the day the date matrix pinned.
pub fn today() -> NaiveDate {
    let today = now().date_naive();
    if let Some(day) = pinned_day() {
        assert_eq!(
            today, day,
            "BANKSYNC_TEST_DAY is {day} but the clock says {today}: libfaketime is not in force"
        );
    }
    today
}

/// The day the date matrix pinned, if it runs this test.
pub fn pinned_day() -> Option<NaiveDate> {
    std::env::var("BANKSYNC_TEST_DAY")
        .ok()
        .filter(|d| !d.is_empty())
        .map(|d| {
            d.parse()
                .unwrap_or_else(|e| panic!("BANKSYNC_TEST_DAY {d:?} is not a date: {e}"))
        })
}
