//! Values as the docker CLI writes them: Go durations (`1m30s`), byte sizes (`512m`, `1GiB`)
//! and CPU counts (`0.5`).

/// A Go-style duration (`300ms`, `1.5h`, `1m30s`, or a plain `0`) in nanoseconds.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let bad = |why: &str| format!("invalid duration {text:?}: {why} (e.g. 10s, 1m30s, 500ms)");
    let s = text.trim();
    if s == "0" {
        return Ok(0);
    }
    let (negative, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest.is_empty() {
        return Err(bad("empty"));
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| bad("missing unit"))?;
        if num_len == 0 {
            return Err(bad("expected a number"));
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| bad("bad number"))?;
        rest = &rest[num_len..];
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
            other => return Err(bad(&format!("unknown unit {other:?}"))),
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    if total > i64::MAX as f64 {
        return Err(bad("too long"));
    }
    let ns = total.round() as i64;
    Ok(if negative { -ns } else { ns })
}

/// A memory size as docker takes it (`512m`, `1g`, `100MB`, `2GiB`, or bytes), in bytes.
/// Units are binary, as in docker's `RAMInBytes`.
pub fn parse_bytes(text: &str) -> Result<i64, String> {
    let bad = || format!("invalid size {text:?}: expected a number with an optional unit b, k, m, g, t (e.g. 512m)");
    let s = text.trim().to_ascii_lowercase();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num.parse().map_err(|_| bad())?;
    let unit = unit.trim();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(unit);
    let scale: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024.0f64.powi(4),
        "p" => 1024.0f64.powi(5),
        _ => return Err(bad()),
    };
    let bytes = value * scale;
    if !(0.0..=i64::MAX as f64).contains(&bytes) {
        return Err(bad());
    }
    Ok(bytes as i64)
}

/// A number of CPUs (`0.5`, `2`) in billionths of a CPU.
pub fn parse_cpus(text: &str) -> Result<i64, String> {
    let v: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("invalid CPU count {text:?}: expected a number such as 0.5 or 2"))?;
    if !(0.0..=1e9).contains(&v) {
        return Err(format!("invalid CPU count {text:?}: must be between 0 and 1000000000"));
    }
    Ok((v * 1e9).round() as i64)
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
        assert!(parse_duration("10").unwrap_err().contains("missing unit"));
        assert!(parse_duration("5d").unwrap_err().contains("unknown unit"));
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
