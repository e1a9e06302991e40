//! Timestamps as the Engine API writes them: RFC3339 with nanoseconds, in UTC.

use std::fmt;
use std::sync::atomic::AtomicI64;
use std::sync::atomic::Ordering;

use serde::Deserialize;
use serde::Deserializer;
use serde::Serialize;
use serde::Serializer;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A point in time with nanosecond precision. The zero value prints as Go's zero time,
/// `0001-01-01T00:00:00Z`, which Go clients decode without complaint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Nanoseconds since the Unix epoch; `None` is the zero time.
    unix_nanos: Option<i128>,
}

/// How far this process's wall clock is set off the system's, in nanoseconds. Zero unless a
/// fault test skews one daemon's clock (see [`set_wall_clock_skew`]).
static WALL_CLOCK_SKEW_NANOS: AtomicI64 = AtomicI64::new(0);

/// Sets this process's wall clock `nanos` off the system clock, forwards or back. Fault tests
/// use it to jump one manager's clock; timers and timeouts run on the monotonic clock and are
/// not affected.
pub fn set_wall_clock_skew(nanos: i64) {
    WALL_CLOCK_SKEW_NANOS.store(nanos, Ordering::Relaxed);
}

/// The wall clock every timestamp the daemon writes and every date it compares is read from:
/// the system clock plus this process's skew.
pub fn wall_clock_now() -> OffsetDateTime {
    let skew = WALL_CLOCK_SKEW_NANOS.load(Ordering::Relaxed);
    OffsetDateTime::now_utc().saturating_add(time::Duration::nanoseconds(skew))
}

impl Timestamp {
    pub fn now() -> Self {
        Self {
            unix_nanos: Some(wall_clock_now().unix_timestamp_nanos()),
        }
    }

    pub fn from_unix_nanos(n: i128) -> Self {
        Self { unix_nanos: Some(n) }
    }

    pub fn unix_nanos(&self) -> Option<i128> {
        self.unix_nanos
    }

    pub fn is_zero(&self) -> bool {
        self.unix_nanos.is_none()
    }

    /// Parses RFC3339 (with or without fractional seconds).
    pub fn parse(text: &str) -> Result<Self, TimeError> {
        if text == "0001-01-01T00:00:00Z" {
            return Ok(Self::default());
        }
        OffsetDateTime::parse(text, &Rfc3339)
            .map(|t| Self::from_unix_nanos(t.unix_timestamp_nanos()))
            .map_err(|source| TimeError {
                text: text.to_string(),
                source,
            })
    }
}

/// A time that is not RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid RFC3339 time {text:?}: {source}")]
pub struct TimeError {
    text: String,
    source: time::error::Parse,
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(n) = self.unix_nanos else {
            return f.write_str("0001-01-01T00:00:00Z");
        };
        match OffsetDateTime::from_unix_timestamp_nanos(n)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
        {
            Some(s) => f.write_str(&s),
            None => f.write_str("0001-01-01T00:00:00Z"),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_nanoseconds() {
        let t = Timestamp::from_unix_nanos(1_795_000_000_123_456_789);
        let s = t.to_string();
        assert!(s.ends_with(".123456789Z"), "{s}");
        assert_eq!(Timestamp::parse(&s).unwrap(), t);
    }

    #[test]
    fn zero_time_is_go_zero_time() {
        assert_eq!(Timestamp::default().to_string(), "0001-01-01T00:00:00Z");
        assert!(Timestamp::parse("0001-01-01T00:00:00Z").unwrap().is_zero());
    }

    #[test]
    fn bad_time_names_the_value() {
        let err = Timestamp::parse("yesterday").unwrap_err();
        assert!(err.to_string().contains("yesterday"), "{err}");
    }
}
