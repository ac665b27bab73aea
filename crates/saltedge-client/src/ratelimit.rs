//! Holds "fetches of new data" to Salt Edge's access terms (2 per second) inside one
//! process by spacing them evenly. Cross-process limits are the scheduler's job (Postgres).
//! Hand-written because it is a dozen lines; a general limiter crate would add more surface
//! than it saves.

use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

#[derive(Debug)]
pub struct FetchLimiter {
    spacing: Duration,
    next_slot: Mutex<Option<Instant>>,
}

impl FetchLimiter {
    /// `per_second` fetches at most, evenly spaced; 0 disables the limit.
    pub fn new(per_second: u32) -> Self {
        let spacing = if per_second == 0 {
            Duration::ZERO
        } else {
            Duration::from_secs(1) / per_second
        };
        FetchLimiter {
            spacing,
            next_slot: Mutex::new(None),
        }
    }

    /// Waits for this caller's slot. Slots are handed out in arrival order.
    pub async fn acquire(&self) {
        if self.spacing.is_zero() {
            return;
        }
        let slot = {
            let mut next = self.next_slot.lock().await;
            let now = Instant::now();
            let slot = match *next {
                Some(t) if t > now => t,
                _ => now,
            };
            *next = Some(slot + self.spacing);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}
