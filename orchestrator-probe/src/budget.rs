//! What the probe may spend: its own CPU time, and a token bucket that
//! turns a share of one core into the CPU a cycle may still use (see the
//! probe's docs on why sources refresh at their own pace).

use std::time::Instant;

/// CPU time (user and system, every thread) of this process, µs.
pub(crate) fn cpu_us() -> u64 {
    cpu_us_of(nix::sys::resource::UsageWho::RUSAGE_SELF)
}

pub(crate) const THREAD: nix::sys::resource::UsageWho = nix::sys::resource::UsageWho::RUSAGE_THREAD;

/// CPU time of this process or thread, µs.
pub(crate) fn cpu_us_of(who: nix::sys::resource::UsageWho) -> u64 {
    use nix::sys::resource::getrusage;
    getrusage(who).map_or(0, |u| {
        let us = |t: nix::sys::time::TimeVal| {
            u64::try_from(t.tv_sec()).unwrap_or(0) * 1_000_000 + u64::try_from(t.tv_usec()).unwrap_or(0)
        };
        us(u.user_time()) + us(u.system_time())
    })
}

/// The CPU the probe may still spend: a token bucket filled at the
/// budget's rate and drained by the probe's measured CPU time (all of
/// it: collecting, joining, encoding, sending).
#[derive(Debug, Default)]
pub(crate) struct Budget {
    tokens_us: f64,
    last: Option<(Instant, u64)>,
}

impl Budget {
    /// At most this many seconds of budget are saved up.
    const BURST_SECS: f64 = 5.0;

    /// The most CPU saved up, µs.
    pub(crate) fn cap_us(share: f64) -> f64 {
        share * Self::BURST_SECS * 1e6
    }

    /// Accounts for the time and CPU since the last call; the balance.
    pub(crate) fn update(&mut self, share: f64, now: Instant, cpu_us: u64) -> f64 {
        let cap = Self::cap_us(share);
        self.tokens_us = match self.last {
            None => cap,
            Some((at, cpu)) => {
                let earned = now.duration_since(at).as_secs_f64() * 1e6 * share;
                (self.tokens_us + earned - cpu_us.saturating_sub(cpu) as f64).min(cap)
            }
        };
        self.last = Some((now, cpu_us));
        self.tokens_us
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_bucket_fills_at_the_share_and_drains_by_the_cpu_used() {
        let mut b = Budget::default();
        let t0 = Instant::now();
        // Full at the start: 1 % of a core saves up 50 ms.
        assert_eq!(b.update(0.01, t0, 1_000_000), 50_000.0);
        // 30 ms of CPU in 1 s: 50 + 10 - 30.
        let left = b.update(0.01, t0 + Duration::from_secs(1), 1_030_000);
        assert!((left - 30_000.0).abs() < 1.0, "{left}");
        // Debt is kept; savings are capped.
        assert!(b.update(0.01, t0 + Duration::from_secs(1), 1_100_000) < 0.0);
        assert_eq!(b.update(0.01, t0 + Duration::from_secs(100), 1_100_000), 50_000.0);
        assert!(cpu_us() > 0);
    }
}
