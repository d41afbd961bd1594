//! Per-metric time series with fixed memory: fine buckets (15 s by default)
//! for the recent past and coarse buckets (1 min) for longer. Each level
//! keeps at most span / step buckets and drops its oldest first, so a
//! series never grows past its bound however long a node lives, and a
//! young node's series holds only what it has seen.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Serialize;

/// How much of what a series keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Width of a fine bucket.
    pub fine_step: Duration,
    /// How long fine buckets are kept.
    pub fine_span: Duration,
    /// Width of a coarse bucket.
    pub coarse_step: Duration,
    /// How long coarse buckets are kept.
    pub coarse_span: Duration,
}

impl Default for Retention {
    /// 15 s for the last hour, 1 min for the last 24 h.
    fn default() -> Self {
        Self {
            fine_step: Duration::from_secs(15),
            fine_span: Duration::from_secs(3600),
            coarse_step: Duration::from_secs(60),
            coarse_span: Duration::from_secs(24 * 3600),
        }
    }
}

/// One bucket of a series as returned by a query.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Point {
    /// Start of the bucket, milliseconds since the epoch.
    pub t: i64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// Mean of the samples.
    pub avg: f64,
    /// Latest sample.
    pub last: f64,
    /// How many samples fell in the bucket.
    pub count: u32,
}

impl Point {
    fn first(t: i64, v: f64) -> Self {
        Self {
            t,
            min: v,
            max: v,
            avg: v,
            last: v,
            count: 1,
        }
    }

    fn add(&mut self, v: f64) {
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.avg += (v - self.avg) / f64::from(self.count + 1);
        self.last = v;
        self.count += 1;
    }
}

/// Buckets of one width, oldest first, at most `len` of them: memory grows
/// with the data a series has seen, up to its bound, and never past it.
#[derive(Clone, Debug)]
struct Ring {
    step_ms: i64,
    len: usize,
    points: VecDeque<Point>,
}

impl Ring {
    fn new(step: Duration, span: Duration) -> Self {
        let step_ms = i64::try_from(step.as_millis()).unwrap_or(i64::MAX).max(1);
        let span_ms = i64::try_from(span.as_millis()).unwrap_or(i64::MAX);
        let len = usize::try_from((span_ms / step_ms).max(1)).unwrap_or(1);
        Self {
            step_ms,
            len,
            points: VecDeque::new(),
        }
    }

    fn insert(&mut self, t_ms: i64, v: f64) {
        let t = t_ms.div_euclid(self.step_ms) * self.step_ms;
        let window = self.step_ms.saturating_mul(self.len as i64);
        match self.points.back_mut() {
            Some(last) if last.t == t => return last.add(v),
            Some(last) if last.t > t => {
                // A late sample: into its bucket if that is still kept.
                if t <= last.t - window {
                    return;
                }
                match self.points.binary_search_by_key(&t, |p| p.t) {
                    Ok(i) => self.points[i].add(v),
                    Err(i) => self.points.insert(i, Point::first(t, v)),
                }
            }
            _ => self.points.push_back(Point::first(t, v)),
        }
        let newest = self.points.back().map_or(t, |p| p.t);
        while self
            .points
            .front()
            .is_some_and(|p| p.t <= newest - window || self.points.len() > self.len)
        {
            self.points.pop_front();
        }
    }

    fn query(&self, from_ms: i64, to_ms: i64) -> Vec<Point> {
        self.points
            .iter()
            .filter(|p| p.t + self.step_ms > from_ms && p.t <= to_ms)
            .copied()
            .collect()
    }

    fn oldest(&self) -> Option<i64> {
        self.points.front().map(|p| p.t)
    }
}

/// One metric of one node over time.
#[derive(Clone, Debug)]
pub struct TimeSeries {
    fine: Ring,
    coarse: Ring,
}

impl TimeSeries {
    /// An empty series keeping what `retention` says.
    pub fn new(retention: Retention) -> Self {
        Self {
            fine: Ring::new(retention.fine_step, retention.fine_span),
            coarse: Ring::new(retention.coarse_step, retention.coarse_span),
        }
    }

    /// Records `value` at `t_ms` (milliseconds since the epoch). Samples
    /// older than what is kept are dropped; NaN and infinities are ignored.
    pub fn record(&mut self, t_ms: i64, value: f64) {
        if !value.is_finite() {
            return;
        }
        self.fine.insert(t_ms, value);
        self.coarse.insert(t_ms, value);
    }

    /// The buckets overlapping `from_ms..=to_ms`, oldest first: fine ones
    /// where they still exist, coarse ones before that.
    pub fn query(&self, from_ms: i64, to_ms: i64) -> Vec<Point> {
        let fine = self.fine.query(from_ms, to_ms);
        let fine_start = self.fine.oldest().unwrap_or(i64::MAX);
        let mut out: Vec<Point> = self
            .coarse
            .query(from_ms, to_ms.min(fine_start - 1))
            .into_iter()
            .filter(|p| p.t + self.coarse.step_ms <= fine_start)
            .collect();
        out.extend(fine);
        out
    }

    /// The latest sample, for node summaries.
    pub fn latest(&self) -> Option<f64> {
        self.fine.points.back().map(|p| p.last)
    }

    /// The newest bucket's start, if any.
    pub fn last_ms(&self) -> Option<i64> {
        self.fine.points.back().map(|p| p.t)
    }

    /// How many buckets the series can hold in all (its memory bound).
    pub fn capacity(&self) -> usize {
        self.fine.len + self.coarse.len
    }

    /// How many buckets it holds now.
    pub fn len(&self) -> usize {
        self.fine.points.len() + self.coarse.points.len()
    }

    /// Nothing recorded (or everything aged out).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: i64 = 1000;

    #[test]
    fn samples_fall_into_fifteen_second_buckets() {
        let mut ts = TimeSeries::new(Retention::default());
        ts.record(0, 1.0);
        ts.record(5 * S, 3.0);
        ts.record(15 * S, 10.0);
        let pts = ts.query(0, 60 * S);
        assert_eq!(pts.len(), 2);
        assert_eq!(
            (pts[0].t, pts[0].min, pts[0].max, pts[0].avg, pts[0].count),
            (0, 1.0, 3.0, 2.0, 2)
        );
        assert_eq!(pts[1].t, 15 * S);
        assert_eq!(ts.latest(), Some(10.0));
        assert_eq!(ts.capacity(), 240 + 1440);
    }

    #[test]
    fn old_data_moves_to_minute_buckets_then_goes() {
        let mut ts = TimeSeries::new(Retention::default());
        for sec in (0..3 * 3600).step_by(15) {
            ts.record(sec * S, sec as f64);
        }
        let all = ts.query(0, 4 * 3600 * S);
        let fine = all.iter().filter(|p| p.t >= 2 * 3600 * S).count();
        let coarse: Vec<_> = all.iter().filter(|p| p.t < 2 * 3600 * S).collect();
        assert_eq!(fine, 240, "the last hour at 15 s");
        assert_eq!(coarse.len(), 120, "the two hours before at 1 min");
        assert_eq!(coarse[0].count, 4, "four 15 s samples per minute");
        assert!(all.windows(2).all(|w| w[0].t < w[1].t), "sorted, no overlap");
        // A late sample inside the day is still counted; one from before
        // the day is dropped, not wrapped around onto a newer slot.
        ts.record(30 * S, -1.0);
        assert_eq!(ts.query(0, 59 * S)[0].min, -1.0);
        ts.record(-25 * 3600 * S, -2.0);
        assert!(ts.query(i64::MIN / 2, i64::MAX / 2).iter().all(|p| p.min > -2.0));
    }

    #[test]
    fn non_finite_values_are_ignored() {
        let mut ts = TimeSeries::new(Retention::default());
        ts.record(0, f64::NAN);
        ts.record(0, f64::INFINITY);
        assert!(ts.query(0, S).is_empty());
    }

    proptest! {
        #[test]
        fn memory_stays_bounded_and_queries_stay_sorted(
            samples in prop::collection::vec((0i64..200_000_000, -1e6f64..1e6), 0..500)
        ) {
            let mut ts = TimeSeries::new(Retention::default());
            for (t, v) in &samples {
                ts.record(*t, *v);
            }
            let pts = ts.query(i64::MIN / 2, i64::MAX / 2);
            prop_assert!(pts.len() <= ts.capacity());
            prop_assert!(pts.windows(2).all(|w| w[0].t < w[1].t));
            prop_assert!(pts.iter().all(|p| p.min <= p.avg + 1e-6 && p.avg <= p.max + 1e-6));
        }
    }
}
