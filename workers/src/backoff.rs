//! Exponential reconnect delays.

use std::time::Duration;

/// Doubles from 100 ms to 5 s; [`Backoff::reset`] after a success.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: Duration::from_millis(100) }
    }
}

impl Backoff {
    /// The delay to wait now; the following one will be longer.
    pub fn next_delay(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(Duration::from_secs(5));
        now
    }

    /// Back to the shortest delay.
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}
