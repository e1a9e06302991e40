//! Go-style durations, docker byte sizes and CPU counts, as compose files spell them.

/// Why a duration, byte size or CPU count was refused; worded as docker words it where docker
/// has words for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("invalid duration {text:?}: {problem} (e.g. 10s, 1m30s, 500ms)")]
    Duration { text: String, problem: DurationProblem },
    #[error("invalid size: '{0}'")]
    SizeNumber(String),
    #[error("invalid suffix: '{0}'")]
    SizeSuffix(String),
    #[error("failed to parse {0} as a rational number")]
    NotRational(String),
    #[error("value is too precise")]
    TooPrecise,
    #[error("{0} is too large")]
    TooLarge(String),
}

/// What is wrong with a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationProblem {
    #[error("empty")]
    Empty,
    #[error("missing unit")]
    MissingUnit,
    #[error("expected a number")]
    ExpectedNumber,
    #[error("bad number")]
    BadNumber,
    #[error("unknown unit {0:?}")]
    UnknownUnit(String),
    #[error("too long")]
    TooLong,
}

/// Parses a Go `time.ParseDuration` string into nanoseconds (`1m30s`, `500ms`, `1.5h`, `-2s`);
/// the error says what is wrong with it.
pub fn parse_duration(text: &str) -> Result<i64, UnitError> {
    let bad = |problem: DurationProblem| UnitError::Duration {
        text: text.to_string(),
        problem,
    };
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad(DurationProblem::Empty));
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| bad(DurationProblem::MissingUnit))?;
        let number = &rest[..number_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(bad(DurationProblem::ExpectedNumber));
        }
        let value: f64 = number.parse().map_err(|_| bad(DurationProblem::BadNumber))?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            other => return Err(bad(DurationProblem::UnknownUnit(other.to_string()))),
        };
        rest = &rest[unit_len..];
        total += value * scale;
    }
    if total > i64::MAX as f64 {
        return Err(bad(DurationProblem::TooLong));
    }
    let nanos = total.round() as i64;
    Ok(if negative { -nanos } else { nanos })
}

/// Formats nanoseconds the way Go's `Duration.String` does: `1m0s`, `1.5s`, `500ms`, `0s`.
pub fn format_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_string();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    if n < 1_000_000_000 {
        let (unit, div) = if n < 1_000 {
            ("ns", 1u64)
        } else if n < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{sign}{}{unit}", fraction(n, div));
    }
    let hours = n / 3_600_000_000_000;
    let minutes = (n / 60_000_000_000) % 60;
    let seconds_nanos = n % 60_000_000_000;
    let seconds = fraction(seconds_nanos, 1_000_000_000);
    if hours > 0 {
        format!("{sign}{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{sign}{minutes}m{seconds}s")
    } else {
        format!("{sign}{seconds}s")
    }
}

/// `n / div` with the remainder as trailing-zero-free decimals.
fn fraction(n: u64, div: u64) -> String {
    let whole = n / div;
    let rem = n % div;
    if rem == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let decimals = format!("{rem:0width$}");
    format!("{whole}.{}", decimals.trim_end_matches('0'))
}

/// Parses a byte size as docker's `RAMInBytes` does: binary multipliers, case-insensitive,
/// optional `b`/`ib`, fractions allowed, one space before the unit (`50M`, `1.5g`, `512 mb`).
pub fn parse_ram_bytes(text: &str) -> Result<i64, UnitError> {
    let t = text.trim();
    let number_len = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, suffix) = t.split_at(number_len);
    let suffix = suffix.strip_prefix(' ').unwrap_or(suffix);
    let value: f64 = number.parse().map_err(|_| UnitError::SizeNumber(text.to_string()))?;
    let multiplier: f64 = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024f64.powi(4),
        "p" | "pb" | "pib" => 1024f64.powi(5),
        _ => return Err(UnitError::SizeSuffix(suffix.to_ascii_lowercase())),
    };
    Ok((value * multiplier) as i64)
}

/// Parses a CPU count (`"0.5"`) into nano-CPUs, refusing more than nine decimals.
pub fn parse_nano_cpus(text: &str) -> Result<i64, UnitError> {
    let t = text.trim();
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    let digits_ok = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits_ok(whole) || !digits_ok(frac) {
        return Err(UnitError::NotRational(t.to_string()));
    }
    if frac.trim_end_matches('0').len() > 9 {
        return Err(UnitError::TooPrecise);
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| UnitError::TooLarge(t.to_string()))?
    };
    let frac = frac.trim_end_matches('0');
    let frac_nanos: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().unwrap_or(0)
    };
    whole
        .checked_mul(1_000_000_000)
        .and_then(|w| w.checked_add(frac_nanos))
        .ok_or_else(|| UnitError::TooLarge(t.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_and_print_like_go() {
        assert_eq!(parse_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_duration("500ms"), Ok(500_000_000));
        assert_eq!(parse_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_duration("0"), Ok(0));
        assert!(parse_duration("10").unwrap_err().to_string().contains("missing unit"));
        assert!(
            parse_duration("10 seconds")
                .unwrap_err()
                .to_string()
                .contains("unknown unit")
        );
        assert!(parse_duration("1d").unwrap_err().to_string().contains("unknown unit"));
        assert!(parse_duration("").is_err());
        assert_eq!(format_duration(60_000_000_000), "1m0s");
        assert_eq!(format_duration(120_000_000_000), "2m0s");
        assert_eq!(format_duration(10_000_000_000), "10s");
        assert_eq!(format_duration(1_500_000_000), "1.5s");
        assert_eq!(format_duration(5_400_000_000_000), "1h30m0s");
        assert_eq!(format_duration(500_000_000), "500ms");
        assert_eq!(format_duration(0), "0s");
    }

    #[test]
    fn byte_sizes_use_binary_multipliers() {
        assert_eq!(parse_ram_bytes("50M"), Ok(52_428_800));
        assert_eq!(parse_ram_bytes("512M"), Ok(536_870_912));
        assert_eq!(parse_ram_bytes("1.5g"), Ok(1_610_612_736));
        assert_eq!(parse_ram_bytes("20mb"), Ok(20_971_520));
        assert_eq!(parse_ram_bytes("1024"), Ok(1024));
        assert_eq!(parse_ram_bytes("512 m"), Ok(536_870_912), "docker allows one space");
        assert_eq!(
            parse_ram_bytes("512  m").map_err(|e| e.to_string()),
            Err("invalid suffix: ' m'".to_string())
        );
        assert_eq!(parse_ram_bytes("5q"), Err(UnitError::SizeSuffix("q".to_string())));
    }

    #[test]
    fn cpus_become_nano_cpus() {
        assert_eq!(parse_nano_cpus("0.5"), Ok(500_000_000));
        assert_eq!(parse_nano_cpus("2"), Ok(2_000_000_000));
        assert_eq!(parse_nano_cpus("0.001"), Ok(1_000_000));
        assert_eq!(parse_nano_cpus("0.0000000001"), Err(UnitError::TooPrecise));
        assert!(parse_nano_cpus("lots").is_err());
    }

    proptest::proptest! {
        #[test]
        fn formatted_durations_parse_back(n in 0i64..10_000_000_000_000) {
            proptest::prop_assert_eq!(parse_duration(&format_duration(n)), Ok(n));
        }
    }
}
