//! `swarmctl events`: the cluster's events as `docker events` prints them, read from the
//! daemon's stream of JSON lines as they arrive.

use std::collections::BTreeMap;

use clap::Args;
use hyper::Method;
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;

use super::CtlError;
use super::emit;
use super::filters_arg;
use super::time_arg;
use crate::client::ApiClient;
use crate::client::encode_query;

#[derive(Args)]
pub struct EventsArgs {
    /// Show events from this time on: Unix seconds, an RFC3339 time, or a duration before
    /// now (`10m`).
    #[arg(long)]
    pub since: Option<String>,
    /// Stop at this time (same forms as --since); without it, stream until interrupted.
    #[arg(long)]
    pub until: Option<String>,
    /// Show only events that match `key=value` (repeatable): type, event, service, node,
    /// secret, config, network, scope or label.
    #[arg(short = 'f', long = "filter")]
    pub filters: Vec<String>,
    /// `json` for one JSON object a line; docker's text lines by default.
    #[arg(long)]
    pub format: Option<String>,
}

/// An event as dockerd sends it; only what the text line shows.
#[derive(Debug, Default, Deserialize)]
struct Message {
    #[serde(rename = "Type", default)]
    kind: String,
    #[serde(rename = "Action", default)]
    action: String,
    #[serde(rename = "Actor", default)]
    actor: Actor,
    #[serde(default)]
    time: i64,
    #[serde(rename = "timeNano", default)]
    time_nano: i64,
}

#[derive(Debug, Default, Deserialize)]
struct Actor {
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(rename = "Attributes", default)]
    attributes: Option<BTreeMap<String, String>>,
}

pub async fn run(client: &ApiClient, args: EventsArgs) -> Result<(), CtlError> {
    let json = match args.format.as_deref() {
        None | Some("") => false,
        Some("json") => true,
        Some(other) => {
            return Err(CtlError::Usage(format!(
                "unknown --format {other:?}: expected json (or no --format for text lines)"
            )));
        }
    };
    let mut query = Vec::new();
    if let Some(since) = &args.since {
        query.push(format!("since={}", encode_query(&time_arg(since))));
    }
    if let Some(until) = &args.until {
        query.push(format!("until={}", encode_query(&time_arg(until))));
    }
    if let Some(filters) = filters_arg(&args.filters)? {
        query.push(format!("filters={filters}"));
    }
    let path = if query.is_empty() {
        "/events".to_string()
    } else {
        format!("/events?{}", query.join("&"))
    };
    let mut resp = client.open(Method::GET, &path).await?;
    let mut lines = LineBuffer::default();
    while let Some(chunk) = client.next_chunk(resp.body_mut()).await? {
        for line in lines.push(&chunk) {
            if !print_event(&line, json)? {
                return Ok(());
            }
        }
    }
    // The daemon ended the stream (its --until passed); a last line may lack its newline.
    if let Some(line) = lines.finish() {
        print_event(&line, json)?;
    }
    Ok(())
}

/// Prints one JSON line of the stream; `Ok(false)` once nobody reads the output.
fn print_event(line: &[u8], json: bool) -> Result<bool, CtlError> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(true);
    }
    let bad = |e: serde_json::Error| {
        CtlError::Stream(format!(
            "cannot decode an event from the daemon: {e}: {}",
            String::from_utf8_lossy(line)
        ))
    };
    let value: Value = serde_json::from_slice(line).map_err(bad)?;
    if json {
        // As sent (one line already), so the daemon's field order stays.
        let mut out = line.trim_ascii().to_vec();
        out.push(b'\n');
        return emit(false, &out);
    }
    let text = format_event(&serde_json::from_value(value).map_err(bad)?);
    emit(false, format!("{text}\n").as_bytes())
}

/// docker's text line: `<time> <type> <action> <actor id> (k=v, ...)`, the time in UTC with
/// all nine fraction digits (docker's RFC3339NanoFixed), attributes sorted by key.
fn format_event(m: &Message) -> String {
    let mut out = String::new();
    let nanos = if m.time_nano != 0 {
        Some(m.time_nano as i128)
    } else if m.time != 0 {
        Some(m.time as i128 * 1_000_000_000)
    } else {
        None
    };
    if let Some(stamp) = nanos.and_then(rfc3339_nano_fixed) {
        out.push_str(&stamp);
        out.push(' ');
    }
    out.push_str(&format!("{} {} {}", m.kind, m.action, m.actor.id));
    if let Some(attrs) = m.actor.attributes.as_ref().filter(|a| !a.is_empty()) {
        let pairs: Vec<String> = attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push_str(&format!(" ({})", pairs.join(", ")));
    }
    out
}

/// `2026-12-01T12:00:00.123456789Z`; `None` for a time out of range.
fn rfc3339_nano_fixed(unix_nanos: i128) -> Option<String> {
    let t = OffsetDateTime::from_unix_timestamp_nanos(unix_nanos).ok()?;
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond()
    ))
}

/// Splits a byte stream into lines, whatever the chunk boundaries.
#[derive(Debug, Default)]
struct LineBuffer {
    pending: Vec<u8>,
}

impl LineBuffer {
    /// The lines this chunk completes, without their newlines.
    fn push(&mut self, chunk: &[u8]) -> Vec<Vec<u8>> {
        self.pending.extend_from_slice(chunk);
        let mut lines = Vec::new();
        let mut start = 0;
        while let Some(end) = self.pending[start..].iter().position(|&b| b == b'\n') {
            lines.push(self.pending[start..start + end].to_vec());
            start += end + 1;
        }
        self.pending.drain(..start);
        lines
    }

    /// What is left after the last newline, if anything.
    fn finish(&mut self) -> Option<Vec<u8>> {
        (!self.pending.is_empty()).then(|| std::mem::take(&mut self.pending))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lines_look_like_dockers() {
        let m: Message = serde_json::from_str(
            r#"{"Type":"service","Action":"create","Actor":{"ID":"4a31wc1zfzz8afliy2ztuqbg1",
            "Attributes":{"name":"web","b":"2"}},"scope":"swarm","time":1796126400,
            "timeNano":1796126400123456789}"#,
        )
        .expect("an event");
        assert_eq!(
            format_event(&m),
            "2026-12-01T12:00:00.123456789Z service create 4a31wc1zfzz8afliy2ztuqbg1 (b=2, name=web)"
        );
        let whole_second: Message = serde_json::from_str(
            r#"{"Type":"node","Action":"update","Actor":{"ID":"n1","Attributes":null},"time":1796126400}"#,
        )
        .expect("an event");
        assert_eq!(
            format_event(&whole_second),
            "2026-12-01T12:00:00.000000000Z node update n1"
        );
    }

    #[test]
    fn lines_survive_any_chunking() {
        let text = b"{\"a\":1}\n{\"b\":2}\n{\"c\":3}";
        for split in 0..text.len() {
            let mut buf = LineBuffer::default();
            let mut lines = buf.push(&text[..split]);
            lines.extend(buf.push(&text[split..]));
            lines.extend(buf.finish());
            assert_eq!(
                lines,
                [b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec(), b"{\"c\":3}".to_vec()],
                "split at {split}"
            );
        }
    }
}
