//! The scheduler's only link to the wall clock: an anchor fixed once.

use std::time::Instant;

/// Where the wall clock stood at one [`Instant`]: turns the `Instant`s the
/// scheduler is given into milliseconds since the epoch.
#[derive(Clone, Copy, Debug)]
pub struct WallClock {
    /// The instant of the anchor.
    pub at: Instant,
    /// Milliseconds since the Unix epoch at `at`.
    pub epoch_ms: u64,
}

impl WallClock {
    /// The system clock, read once now.
    pub fn system() -> Self {
        let epoch_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Self {
            at: Instant::now(),
            epoch_ms,
        }
    }

    /// Milliseconds since the epoch at `now`.
    pub fn ms_at(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.at).as_millis();
        let before = self.at.saturating_duration_since(now).as_millis();
        let since = u64::try_from(since).unwrap_or(u64::MAX);
        let before = u64::try_from(before).unwrap_or(u64::MAX);
        self.epoch_ms.saturating_add(since).saturating_sub(before)
    }
}

impl Default for WallClock {
    fn default() -> Self {
        Self::system()
    }
}
