//! Garbage collection of the sandboxes of ended tasks, as Mesos's agent
//! does it. A sandbox stays for `gc_delay` after its task ended (so its
//! `stdout` and `stderr` can be read), less the fuller the disk is: what
//! may stay is at most `gc_delay × max(0, 1 − headroom − usage)` old, with
//! `usage` the share of the work directory's file system in use (Mesos:
//! `--gc_delay` one week, `--gc_disk_headroom` 0.1, checked every
//! `--disk_watch_interval`). So a disk 90 % full loses every ended sandbox
//! at the next check, and an agent never fills its disk with old ones.
//!
//! Pure: the agent says when a sandbox's task ended and how full the disk
//! is; this says which sandboxes to remove.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// Sandboxes of ended tasks, oldest end first.
#[derive(Debug)]
pub(super) struct SandboxGc {
    delay: Duration,
    headroom: f64,
    queue: VecDeque<(SystemTime, PathBuf)>,
    succeeded: u64,
    failed: u64,
}

impl SandboxGc {
    /// A collector keeping sandboxes `delay` at most, `headroom` (0–1) of
    /// the disk kept free.
    pub(super) fn new(delay: Duration, headroom: f64) -> Self {
        Self {
            delay,
            headroom: if headroom.is_finite() {
                headroom.clamp(0.0, 1.0)
            } else {
                0.1
            },
            queue: VecDeque::new(),
            succeeded: 0,
            failed: 0,
        }
    }

    /// `sandbox`'s task ended at `ended`.
    pub(super) fn schedule(&mut self, sandbox: PathBuf, ended: SystemTime) {
        // Ends arrive in order but for the sandboxes found at a restart.
        let at = self.queue.partition_point(|(t, _)| *t <= ended);
        self.queue.insert(at, (ended, sandbox));
    }

    /// How old an ended sandbox may grow with the disk `usage` (0–1) full.
    pub(super) fn max_age(&self, usage: f64) -> Duration {
        let share = 1.0 - self.headroom - usage;
        let share = if share.is_finite() { share.clamp(0.0, 1.0) } else { 1.0 };
        self.delay.mul_f64(share)
    }

    /// The sandboxes to remove `now` with the disk `usage` full; they are
    /// forgotten here.
    pub(super) fn due(&mut self, now: SystemTime, usage: f64) -> Vec<PathBuf> {
        let max = self.max_age(usage);
        let mut due = Vec::new();
        while let Some((ended, _)) = self.queue.front() {
            if now.duration_since(*ended).unwrap_or(Duration::ZERO) < max {
                break;
            }
            if let Some((_, path)) = self.queue.pop_front() {
                due.push(path);
            }
        }
        due
    }

    /// Counts removals done (`succeeded`) and refused by the file system.
    pub(super) fn removed(&mut self, succeeded: u64, failed: u64) {
        self.succeeded += succeeded;
        self.failed += failed;
    }

    /// Mesos's agent metrics of its collector: removals pending, succeeded
    /// and failed.
    pub(super) fn metrics(&self) -> [(&'static str, f64); 3] {
        [
            ("gc/path_removals_pending", self.queue.len() as f64),
            ("gc/path_removals_succeeded", self.succeeded as f64),
            ("gc/path_removals_failed", self.failed as f64),
        ]
    }
}

/// The share (0–1) of the file system holding `path` that is in use, as
/// Mesos counts it (blocks not free over all blocks); `None` when it
/// cannot be read.
pub(super) fn disk_usage(path: &std::path::Path) -> Option<f64> {
    let v = nix::sys::statvfs::statvfs(path).ok()?;
    // Block counts are `fsblkcnt_t`: u64 here, narrower on some targets.
    #[allow(clippy::useless_conversion)]
    let (blocks, free) = (u64::from(v.blocks()), u64::from(v.blocks_free()));
    (blocks > 0).then(|| blocks.saturating_sub(free) as f64 / blocks as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn at(base: SystemTime, hours: u64) -> SystemTime {
        base + HOUR * u32::try_from(hours).unwrap()
    }

    /// Equal to the millisecond (the shares are floating point).
    fn close(a: Duration, b: Duration) -> bool {
        a.abs_diff(b) < Duration::from_millis(1)
    }

    #[test]
    fn the_fuller_the_disk_the_sooner_as_mesos_computes_it() {
        let gc = SandboxGc::new(HOUR * 100, 0.1);
        assert!(close(gc.max_age(0.0), HOUR * 90), "{:?}", gc.max_age(0.0));
        assert!(close(gc.max_age(0.5), HOUR * 40), "{:?}", gc.max_age(0.5));
        assert_eq!(gc.max_age(0.9), Duration::ZERO);
        assert_eq!(gc.max_age(0.97), Duration::ZERO);
        assert_eq!(
            gc.max_age(f64::NAN),
            HOUR * 100,
            "an unreadable usage keeps the full delay"
        );
        // A headroom out of range is clamped or defaulted, not a panic.
        assert_eq!(SandboxGc::new(HOUR, -3.0).max_age(0.0), HOUR);
        assert!(close(SandboxGc::new(HOUR, f64::INFINITY).max_age(0.0), HOUR * 9 / 10));
    }

    #[test]
    fn sandboxes_go_oldest_first_once_old_enough() {
        let t0 = SystemTime::UNIX_EPOCH + HOUR * 1000;
        let mut gc = SandboxGc::new(HOUR * 10, 0.0);
        gc.schedule("b".into(), at(t0, 2));
        gc.schedule("c".into(), at(t0, 3));
        // Found at a restart: ended before the others.
        gc.schedule("a".into(), at(t0, 1));
        assert!(gc.due(at(t0, 10), 0.0).is_empty(), "nothing is 10 hours old yet");
        assert_eq!(gc.due(at(t0, 12), 0.0), vec![PathBuf::from("a"), PathBuf::from("b")]);
        assert_eq!(gc.metrics()[0], ("gc/path_removals_pending", 1.0));
        // Half the disk in use: 5 hours are enough.
        gc.schedule("d".into(), at(t0, 8));
        assert_eq!(gc.due(at(t0, 12), 0.5), vec![PathBuf::from("c")]);
        // A full disk: everything ended goes, even just now.
        gc.schedule("e".into(), at(t0, 12));
        assert_eq!(gc.due(at(t0, 12), 1.0), vec![PathBuf::from("d"), PathBuf::from("e")]);
        assert_eq!(gc.metrics()[0], ("gc/path_removals_pending", 0.0));
        gc.removed(4, 1);
        assert_eq!(
            gc.metrics()[1..],
            [("gc/path_removals_succeeded", 4.0), ("gc/path_removals_failed", 1.0)]
        );
        // A clock that went back does not remove early.
        gc.schedule("f".into(), at(t0, 20));
        assert!(gc.due(at(t0, 12), 0.0).is_empty());
    }

    #[test]
    fn the_usage_of_a_real_file_system_is_a_share() {
        let usage = disk_usage(&std::env::temp_dir()).expect("statvfs of the temporary directory");
        assert!((0.0..=1.0).contains(&usage), "{usage}");
        assert_eq!(disk_usage(std::path::Path::new("/no/such/dir")), None);
    }
}
