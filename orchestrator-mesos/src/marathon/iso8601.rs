//! Times as Marathon writes them: ISO 8601, UTC, with milliseconds
//! (`2026-12-02T19:41:39.301Z`), the form its clients parse.

use std::fmt;

use serde::{Serialize, Serializer};

/// Milliseconds since the Unix epoch, shown and serialised as Marathon's
/// ISO 8601 form, without an intermediate string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Iso8601(pub u64);

impl Iso8601 {
    /// Now, by the system clock.
    pub fn now() -> Self {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Iso8601(ms)
    }
}

impl fmt::Display for Iso8601 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (secs, millis) = (self.0 / 1000, self.0 % 1000);
        let (days, rem) = (secs / 86_400, secs % 86_400);
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = i64::try_from(days).unwrap_or(0) + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    }
}

impl Serialize for Iso8601 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::Iso8601;

    #[test]
    fn known_instants_print_as_marathon_writes_them() {
        assert_eq!(Iso8601(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(Iso8601(1_796_240_499_301).to_string(), "2026-12-02T19:41:39.301Z");
        // A leap day, and the last millisecond of a year.
        assert_eq!(Iso8601(951_782_400_000).to_string(), "2000-02-29T00:00:00.000Z");
        assert_eq!(Iso8601(1_704_067_199_999).to_string(), "2023-12-31T23:59:59.999Z");
        assert_eq!(
            serde_json::to_string(&Iso8601(5)).unwrap(),
            r#""1970-01-01T00:00:00.005Z""#
        );
    }
}
