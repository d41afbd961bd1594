//! Launch backoff: after an instance fails, the next launch of that app
//! waits `backoffSeconds × backoffFactor^(failures − 1)`, capped at
//! `maxLaunchDelaySeconds`. Failures and exits (`FAILED`, `FINISHED`,
//! `ERROR`, `LOST`) grow the delay, a kill ordered by the scheduler does
//! not, and a new app version starts from nothing — as in Marathon.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::app::AppDefinition;

/// One app's launch delay.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LaunchDelay {
    /// Failures counted since the last reset.
    pub failures: u32,
    /// The delay now in force.
    pub delay: Duration,
    /// No launch before this.
    pub until: Option<Instant>,
}

impl Default for LaunchDelay {
    fn default() -> Self {
        LaunchDelay {
            failures: 0,
            delay: Duration::ZERO,
            until: None,
        }
    }
}

/// What `/v2/queue` shows of a delay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DelayView {
    /// Seconds left before the next launch.
    pub time_left_seconds: u64,
    /// Whether the delay is still in force.
    pub overdue: bool,
}

impl LaunchDelay {
    /// The delay after `failures` failures of `app`.
    pub fn delay_after(app: &AppDefinition, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let exp = i32::try_from(failures - 1).unwrap_or(i32::MAX);
        let secs = app.backoff_seconds * app.backoff_factor.powi(exp);
        let capped = secs.min(app.max_launch_delay_seconds).max(0.0);
        Duration::try_from_secs_f64(capped).unwrap_or(Duration::ZERO)
    }

    /// Records a failure at `now` and returns the new delay.
    pub fn failed(&mut self, app: &AppDefinition, now: Instant) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.delay = Self::delay_after(app, self.failures);
        self.until = Some(now + self.delay);
        self.delay
    }

    /// Forgets every failure (a new version, or `DELETE /v2/queue/{id}/delay`).
    pub fn reset(&mut self) {
        *self = LaunchDelay::default();
    }

    /// Whether a launch may happen at `now`.
    pub fn ready(&self, now: Instant) -> bool {
        self.until.is_none_or(|u| now >= u)
    }

    /// The queue's view at `now`.
    pub fn view(&self, now: Instant) -> DelayView {
        let left = self.until.map_or(Duration::ZERO, |u| u.saturating_duration_since(now));
        DelayView {
            time_left_seconds: left.as_secs_f64().ceil() as u64,
            overdue: left.is_zero(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_by_the_factor_and_stops_at_the_cap() {
        let mut app = AppDefinition::from_json(
            br#"{"id": "w", "cmd": "x", "backoffSeconds": 2, "backoffFactor": 2, "maxLaunchDelaySeconds": 10}"#,
        )
        .unwrap();
        let secs: Vec<u64> = (0..6).map(|n| LaunchDelay::delay_after(&app, n).as_secs()).collect();
        assert_eq!(secs, vec![0, 2, 4, 8, 10, 10]);
        app = AppDefinition::from_json(br#"{"id": "w", "cmd": "x"}"#).unwrap();
        let d = LaunchDelay::delay_after(&app, 3).as_secs_f64();
        assert!((d - 1.15 * 1.15).abs() < 1e-6, "{d}");
    }

    #[test]
    fn holds_launches_until_it_passes_and_resets() {
        let app = AppDefinition::from_json(br#"{"id": "w", "cmd": "x", "backoffSeconds": 5}"#).unwrap();
        let now = Instant::now();
        let mut d = LaunchDelay::default();
        assert!(d.ready(now));
        d.failed(&app, now);
        assert!(!d.ready(now + Duration::from_secs(4)));
        assert_eq!(d.view(now + Duration::from_millis(1500)).time_left_seconds, 4);
        assert!(d.ready(now + Duration::from_secs(5)));
        d.reset();
        assert_eq!(d, LaunchDelay::default());
    }
}
