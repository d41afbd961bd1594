use std::collections::BTreeSet;
use std::fmt;
use std::ops::Add;

use serde::{Deserialize, Serialize};

/// A non-negative quantity with three decimal digits, stored as an integer
/// count of thousandths, so arithmetic is exact (Mesos rounds the same way).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scalar(i64);

impl Scalar {
    /// Zero.
    pub const ZERO: Scalar = Scalar(0);
    /// The largest value: about 9.2e15.
    pub const MAX: Scalar = Scalar(i64::MAX);

    /// The value `v`, rounded to three decimal digits.
    ///
    /// # Errors
    /// A reason when `v` is negative, infinite, NaN or too large.
    pub fn try_from_f64(v: f64) -> Result<Scalar, String> {
        if !v.is_finite() {
            return Err(format!("{v} is not a finite number"));
        }
        if v < 0.0 {
            return Err(format!("{v} is negative"));
        }
        let millis = (v * 1000.0).round();
        if millis >= i64::MAX as f64 {
            return Err(format!("{v} is too large"));
        }
        Ok(Scalar(millis as i64))
    }

    /// A value from a count of thousandths (negative counts clamp to zero).
    pub const fn from_millis(millis: i64) -> Scalar {
        Scalar(if millis < 0 { 0 } else { millis })
    }

    /// The count of thousandths.
    pub const fn millis(self) -> i64 {
        self.0
    }

    /// The value as a float.
    pub fn value(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// `self - other`, or zero when `other` is larger.
    pub const fn saturating_sub(self, other: Scalar) -> Scalar {
        Scalar(if self.0 > other.0 { self.0 - other.0 } else { 0 })
    }

    /// `self * factor`, rounded to three decimal digits.
    pub fn scaled(self, factor: f64) -> Scalar {
        let v = (self.0 as f64 * factor).round();
        if v >= i64::MAX as f64 {
            Scalar::MAX
        } else {
            Scalar::from_millis(v as i64)
        }
    }
}

impl Add for Scalar {
    type Output = Scalar;
    fn add(self, rhs: Scalar) -> Scalar {
        Scalar(self.0.saturating_add(rhs.0))
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, frac) = (self.0 / 1000, self.0 % 1000);
        if frac == 0 {
            write!(f, "{whole}")
        } else {
            let digits = format!("{frac:03}");
            write!(f, "{whole}.{}", digits.trim_end_matches('0'))
        }
    }
}

/// An inclusive range `begin..=end`, as Mesos ranges are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Range {
    /// First item.
    pub begin: u64,
    /// Last item (inclusive).
    pub end: u64,
}

/// A set of integers as sorted, disjoint, non-adjacent inclusive ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ranges(Vec<Range>);

impl Ranges {
    /// The union of the given `(begin, end)` pairs; a pair with `begin > end`
    /// is an error.
    ///
    /// # Errors
    /// A reason naming the bad pair.
    pub fn new(pairs: impl IntoIterator<Item = (u64, u64)>) -> Result<Ranges, String> {
        let mut v = Vec::new();
        for (begin, end) in pairs {
            if begin > end {
                return Err(format!("range {begin}-{end} ends before it begins"));
            }
            v.push(Range { begin, end });
        }
        Ok(Self::normalised(v))
    }

    /// The single range `begin..=end` (empty when `begin > end`).
    pub fn single(begin: u64, end: u64) -> Ranges {
        if begin > end {
            Ranges::default()
        } else {
            Ranges(vec![Range { begin, end }])
        }
    }

    fn normalised(mut v: Vec<Range>) -> Ranges {
        v.sort_unstable();
        let mut out: Vec<Range> = Vec::with_capacity(v.len());
        for r in v {
            match out.last_mut() {
                Some(last) if r.begin <= last.end.saturating_add(1) => last.end = last.end.max(r.end),
                _ => out.push(r),
            }
        }
        Ranges(out)
    }

    /// The ranges, sorted and disjoint.
    pub fn as_slice(&self) -> &[Range] {
        &self.0
    }

    /// Whether no integer is in the set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many integers are in the set.
    pub fn count(&self) -> u64 {
        self.0.iter().map(|r| r.end - r.begin + 1).sum()
    }

    /// Whether `item` is in the set.
    pub fn contains_item(&self, item: u64) -> bool {
        let idx = self.0.partition_point(|r| r.end < item);
        self.0.get(idx).is_some_and(|r| r.begin <= item)
    }

    /// Whether every integer of `other` is in this set.
    pub fn contains(&self, other: &Ranges) -> bool {
        other.0.iter().all(|o| {
            let idx = self.0.partition_point(|r| r.end < o.begin);
            self.0.get(idx).is_some_and(|r| r.begin <= o.begin && o.end <= r.end)
        })
    }

    /// The union of both sets, by one merge of the two sorted lists.
    pub fn union(&self, other: &Ranges) -> Ranges {
        if other.0.is_empty() {
            return self.clone();
        }
        if self.0.is_empty() {
            return other.clone();
        }
        let mut out: Vec<Range> = Vec::with_capacity(self.0.len() + other.0.len());
        let (mut i, mut j) = (0, 0);
        while i < self.0.len() || j < other.0.len() {
            let next = match (self.0.get(i), other.0.get(j)) {
                (Some(a), Some(b)) if a.begin <= b.begin => {
                    i += 1;
                    *a
                }
                (Some(_), Some(b)) | (None, Some(b)) => {
                    j += 1;
                    *b
                }
                (Some(a), None) => {
                    i += 1;
                    *a
                }
                (None, None) => break,
            };
            match out.last_mut() {
                Some(last) if next.begin <= last.end.saturating_add(1) => last.end = last.end.max(next.end),
                _ => out.push(next),
            }
        }
        Ranges(out)
    }

    /// The integers of `self` that are not in `other`.
    pub fn difference(&self, other: &Ranges) -> Ranges {
        let mut out = Vec::with_capacity(self.0.len());
        for r in &self.0 {
            let mut begin = r.begin;
            let mut done = false;
            let start = other.0.partition_point(|o| o.end < r.begin);
            for o in &other.0[start..] {
                if o.begin > r.end {
                    break;
                }
                if o.begin > begin {
                    out.push(Range {
                        begin,
                        end: o.begin - 1,
                    });
                }
                if o.end >= r.end {
                    done = true;
                    break;
                }
                begin = begin.max(o.end + 1);
            }
            if !done && begin <= r.end {
                out.push(Range { begin, end: r.end });
            }
        }
        Ranges(out)
    }

    /// The first `n` integers of the set, as ranges (fewer if it is smaller).
    pub fn take(&self, mut n: u64) -> Ranges {
        let mut out = Vec::new();
        for r in &self.0 {
            if n == 0 {
                break;
            }
            let len = r.end - r.begin + 1;
            if len <= n {
                out.push(*r);
                n -= len;
            } else {
                out.push(Range {
                    begin: r.begin,
                    end: r.begin + n - 1,
                });
                n = 0;
            }
        }
        Ranges(out)
    }
}

impl fmt::Display for Ranges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}-{}", r.begin, r.end)?;
        }
        f.write_str("]")
    }
}

/// The value of one resource.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A quantity (`cpus`, `mem`, …).
    Scalar(Scalar),
    /// Integer ranges (`ports`).
    Ranges(Ranges),
    /// Named items.
    Set(BTreeSet<String>),
}

impl Value {
    /// Whether there is nothing.
    pub fn is_empty(&self) -> bool {
        match self {
            Value::Scalar(s) => *s == Scalar::ZERO,
            Value::Ranges(r) => r.is_empty(),
            Value::Set(s) => s.is_empty(),
        }
    }

    pub(crate) fn same_type(&self, other: &Value) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }

    /// Adds `other` of the same type; other types are ignored.
    pub(crate) fn add(&mut self, other: &Value) {
        match (self, other) {
            (Value::Scalar(a), Value::Scalar(b)) => *a = *a + *b,
            (Value::Ranges(a), Value::Ranges(b)) => *a = a.union(b),
            (Value::Set(a), Value::Set(b)) => a.extend(b.iter().cloned()),
            _ => {}
        }
    }

    /// Removes `other` of the same type, never going below empty.
    pub(crate) fn subtract(&mut self, other: &Value) {
        match (self, other) {
            (Value::Scalar(a), Value::Scalar(b)) => *a = a.saturating_sub(*b),
            (Value::Ranges(a), Value::Ranges(b)) => *a = a.difference(b),
            (Value::Set(a), Value::Set(b)) => a.retain(|x| !b.contains(x)),
            _ => {}
        }
    }

    pub(crate) fn contains(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Scalar(a), Value::Scalar(b)) => a >= b,
            (Value::Ranges(a), Value::Ranges(b)) => a.contains(b),
            (Value::Set(a), Value::Set(b)) => b.is_subset(a),
            _ => false,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Scalar(s) => write!(f, "{s}"),
            Value::Ranges(r) => write!(f, "{r}"),
            Value::Set(items) => {
                f.write_str("{")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(item)?;
                }
                f.write_str("}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_keep_three_decimals_exactly() {
        let a = Scalar::try_from_f64(0.1).unwrap();
        let b = Scalar::try_from_f64(0.2).unwrap();
        assert_eq!((a + b).value(), 0.3);
        assert_eq!(Scalar::try_from_f64(1.2345).unwrap().to_string(), "1.235");
        assert!(Scalar::try_from_f64(-1.0).is_err());
        assert!(Scalar::try_from_f64(f64::NAN).is_err());
        assert!(Scalar::try_from_f64(f64::INFINITY).is_err());
    }

    #[test]
    fn ranges_coalesce_and_subtract() {
        let r = Ranges::new([(5, 9), (1, 3), (4, 4), (20, 30)]).unwrap();
        assert_eq!(r.as_slice().len(), 2);
        assert_eq!(r.to_string(), "[1-9, 20-30]");
        let d = r.difference(&Ranges::new([(3, 5), (25, 40)]).unwrap());
        assert_eq!(d.to_string(), "[1-2, 6-9, 20-24]");
        assert!(r.contains(&Ranges::single(21, 29)));
        assert!(!r.contains(&Ranges::single(9, 20)));
        assert_eq!(r.take(10).to_string(), "[1-9, 20-20]");
        assert_eq!(r.count(), 20);
        assert!(Ranges::new([(3, 1)]).is_err());
    }
}
