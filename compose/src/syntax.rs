//! Docker's short syntaxes: shell words, env files, `[ip:]published:target/proto` ports and
//! `src:dst:opts` volumes, and path cleaning.

use std::collections::BTreeMap;
use std::path::Path;

use crate::value::Map;
use crate::value::Value;

/// Why a short syntax (shell words, a port, a volume) was refused, in docker's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyntaxError {
    #[error("EOF found when expecting closing quote")]
    UnclosedQuote,
    #[error("EOF found after escape character")]
    TrailingEscape,
    #[error("invalid protocol {0}")]
    Protocol(String),
    #[error("invalid port {0:?}")]
    Port(String),
    #[error("invalid range {0}")]
    Range(String),
    #[error("invalid ranges in {0}")]
    Ranges(String),
    #[error("invalid IP address {ip:?} in {spec}")]
    Ip { ip: String, spec: String },
    #[error("invalid empty volume spec")]
    EmptyVolume,
    #[error("invalid spec: {0}: empty section between colons")]
    EmptySection(String),
    #[error("invalid spec: {0}: too many colons")]
    TooManyColons(String),
}

/// Docker's shlex split for `command`/`entrypoint` strings.
pub fn shell_split(text: &str) -> Result<Vec<String>, SyntaxError> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => current.push(ch),
                        None => return Err(SyntaxError::UnclosedQuote),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(ch @ ('"' | '\\' | '$' | '`')) => current.push(ch),
                            Some('\n') => {}
                            Some(ch) => {
                                current.push('\\');
                                current.push(ch);
                            }
                            None => return Err(SyntaxError::UnclosedQuote),
                        },
                        Some(ch) => current.push(ch),
                        None => return Err(SyntaxError::UnclosedQuote),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(ch) => {
                    in_word = true;
                    current.push(ch);
                }
                None => return Err(SyntaxError::TrailingEscape),
            },
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            '#' if !in_word => break,
            c => {
                in_word = true;
                current.push(c);
            }
        }
    }
    if in_word {
        words.push(current);
    }
    Ok(words)
}

/// Reads an env file: `KEY=VALUE` lines, `#` comments, no quotes or interpolation, leading
/// whitespace trimmed and trailing kept; a bare `KEY` takes the process value or is dropped.
pub fn parse_env_file(text: &str, env: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some((k, v)) => out.push((k.to_string(), v.to_string())),
            None => {
                let key = line.trim_end();
                if let Some(v) = env.get(key) {
                    out.push((key.to_string(), v.clone()));
                }
            }
        }
    }
    out
}

pub(crate) fn is_windows_path(p: &str) -> bool {
    let b = p.as_bytes();
    p.starts_with("\\\\") || (b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':')
}

/// Lexically cleans a path (`a/./b/../c` → `a/c`), as Go's `filepath.Clean`.
pub(crate) fn clean_path(p: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    let absolute = p.is_absolute();
    for component in p.components() {
        match component {
            std::path::Component::ParentDir => {
                if parts.last().is_some_and(|l| l != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..".to_string());
                }
            }
            std::path::Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    let joined = parts.join("/");
    match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// One published port from the short syntax.
#[derive(Debug, Clone, PartialEq)]
pub struct ShortPort {
    pub host_ip: Option<String>,
    pub published: Option<u32>,
    pub target: u32,
    pub protocol: String,
}

pub(crate) fn port_range(text: &str) -> Result<(u32, u32), SyntaxError> {
    let parse = |s: &str| {
        s.parse::<u32>()
            .ok()
            .filter(|p| *p <= 65535)
            .ok_or_else(|| SyntaxError::Port(s.to_string()))
    };
    match text.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (parse(a)?, parse(b)?);
            if b < a {
                Err(SyntaxError::Range(text.to_string()))
            } else {
                Ok((a, b))
            }
        }
        None => parse(text).map(|p| (p, p)),
    }
}

/// Docker's `nat.ParsePortSpecs` for one entry: `[ip:][published[-end]:]target[-end][/proto]`.
pub fn parse_port_spec(spec: &str) -> Result<Vec<ShortPort>, SyntaxError> {
    let (rest, protocol) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, p.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(protocol.as_str(), "tcp" | "udp" | "sctp") {
        return Err(SyntaxError::Protocol(protocol));
    }
    let (ip, published, target) = match rest.rsplit_once(':') {
        None => (None, None, rest),
        Some((front, target)) => match front.rsplit_once(':') {
            Some((ip, published)) => (
                Some(ip.trim_start_matches('[').trim_end_matches(']')),
                Some(published),
                target,
            ),
            None => (None, Some(front), target),
        },
    };
    let (t0, t1) = port_range(target)?;
    let published = match published {
        None | Some("") => None,
        Some(p) => Some(port_range(p)?),
    };
    // Docker refuses ranges of different lengths either way round: a single target with a
    // published range fails as "invalid hostport binding", a target range with a single
    // published port as "invalid ranges".
    if let Some((p0, p1)) = published
        && p1 - p0 != t1 - t0
    {
        return Err(SyntaxError::Ranges(spec.to_string()));
    }
    let host_ip = ip.filter(|i| !i.is_empty()).map(str::to_string);
    if let Some(ip) = &host_ip
        && ip.parse::<std::net::IpAddr>().is_err()
    {
        return Err(SyntaxError::Ip {
            ip: ip.clone(),
            spec: spec.to_string(),
        });
    }
    Ok((t0..=t1)
        .enumerate()
        .map(|(i, target)| ShortPort {
            host_ip: host_ip.clone(),
            published: published.map(|(p0, _)| p0 + i as u32),
            target,
            protocol: protocol.clone(),
        })
        .collect())
}

/// The short volume syntax `src:dst[:opts]`, `dst`, or a Windows path.
pub(crate) fn parse_volume_spec(spec: &str) -> Result<Map, SyntaxError> {
    if spec.is_empty() {
        return Err(SyntaxError::EmptyVolume);
    }
    let parts = split_volume_spec(spec);
    if parts.iter().any(String::is_empty) {
        return Err(SyntaxError::EmptySection(spec.to_string()));
    }
    let mut m = Map::new();
    let (source, target, options) = match parts.as_slice() {
        [target] => (None, target.clone(), None),
        [source, target] => (Some(source.clone()), target.clone(), None),
        [source, target, options] => (Some(source.clone()), target.clone(), Some(options.clone())),
        _ => return Err(SyntaxError::TooManyColons(spec.to_string())),
    };
    let kind = match &source {
        None => "volume",
        Some(s) if s.starts_with(['.', '/', '~', '\\']) || is_windows_path(s) => "bind",
        Some(_) => "volume",
    };
    m.insert("type".to_string(), Value::String(kind.to_string()));
    if let Some(source) = source {
        m.insert("source".to_string(), Value::String(source));
    }
    m.insert("target".to_string(), Value::String(target));
    for option in options.iter().flat_map(|o| o.split(',')) {
        match option {
            "ro" => {
                m.insert("read_only".to_string(), Value::Bool(true));
            }
            "rw" => {}
            "nocopy" => {
                m.insert(
                    "volume".to_string(),
                    Value::Map([("nocopy".to_string(), Value::Bool(true))].into()),
                );
            }
            "rprivate" | "private" | "rshared" | "shared" | "rslave" | "slave" => {
                m.insert(
                    "bind".to_string(),
                    Value::Map([("propagation".to_string(), Value::String(option.to_string()))].into()),
                );
            }
            _ => {}
        }
    }
    Ok(m)
}

/// Splits on `:` except after a Windows drive letter.
pub(crate) fn split_volume_spec(spec: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let chars: Vec<char> = spec.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let drive_colon = c == ':'
            && current.len() == 1
            && current.chars().all(|d| d.is_ascii_alphabetic())
            && matches!(chars.get(i + 1), Some('\\') | Some('/'));
        if c == ':' && !drive_colon {
            parts.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    parts.push(current);
    parts
}
