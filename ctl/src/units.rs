//! Values as the docker CLI writes them: Go durations (`1m30s`), byte sizes (`512m`, `1GiB`)
//! and CPU counts (`0.5`). One implementation, the compose crate's, serves flags and compose
//! files alike; this module words the errors for flags.

use swarm_compose::UnitError;

/// A flag value that is not a duration, size or CPU count, with what would be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagValueError {
    #[error(transparent)]
    Duration(UnitError),
    #[error("invalid size {text:?}: {source}; expected a number with an optional unit b, k, m, g, t (e.g. 512m)")]
    Size { text: String, source: UnitError },
    #[error("invalid CPU count {text:?}: {source} (expected a number such as 0.5 or 2)")]
    Cpus { text: String, source: UnitError },
}

/// A Go-style duration (`300ms`, `1.5h`, `1m30s`, or a plain `0`) in nanoseconds.
pub fn parse_duration(text: &str) -> Result<i64, FlagValueError> {
    swarm_compose::parse_duration(text.trim()).map_err(FlagValueError::Duration)
}

/// A byte size with an optional binary unit (`512m`, `1GiB`, `100MB`, `4096`).
pub fn parse_bytes(text: &str) -> Result<i64, FlagValueError> {
    // The parser takes digits and dots only, so a size is never negative.
    swarm_compose::parse_ram_bytes(text).map_err(|source| FlagValueError::Size {
        text: text.to_string(),
        source,
    })
}

/// A CPU count (`0.5`, `2`) in nano-CPUs.
pub fn parse_cpus(text: &str) -> Result<i64, FlagValueError> {
    swarm_compose::parse_nano_cpus(text).map_err(|source| FlagValueError::Cpus {
        text: text.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_like_go() {
        assert_eq!(parse_duration("10s"), Ok(10_000_000_000));
        assert_eq!(parse_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_duration("500ms"), Ok(500_000_000));
        assert_eq!(parse_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_duration("0"), Ok(0));
        assert!(parse_duration("10").unwrap_err().to_string().contains("missing unit"));
        assert!(parse_duration("5d").unwrap_err().to_string().contains("unknown unit"));
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn sizes_like_docker() {
        assert_eq!(parse_bytes("512m"), Ok(512 << 20));
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("100MB"), Ok(100 << 20));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert!(parse_bytes("12x").is_err());
        assert!(parse_bytes("-1m").is_err());
    }

    #[test]
    fn cpus_in_nanos() {
        assert_eq!(parse_cpus("0.5"), Ok(500_000_000));
        assert_eq!(parse_cpus("2"), Ok(2_000_000_000));
        assert!(parse_cpus("lots").is_err());
    }
}
