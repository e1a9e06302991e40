//! Timestamps as the Engine API writes them: RFC3339 with nanoseconds, in UTC.

use std::fmt;

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

impl Timestamp {
    pub fn now() -> Self {
        Self {
            unix_nanos: Some(OffsetDateTime::now_utc().unix_timestamp_nanos()),
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
