//! `swarmctl service logs`: the output of a service's tasks (or of one task) as
//! `docker service logs` prints it. The daemon sends docker's stdcopy frames (raw bytes for a
//! TTY service), each line led by the IDs it came from; those become the
//! `service.slot.task@node    | ` prefix.

use std::collections::HashMap;

use clap::Args;
use hyper::Method;
use hyper::StatusCode;
use swarm_model::Node;
use swarm_model::Service;
use swarm_model::Task;

use super::CtlError;
use super::emit;
use super::time_arg;
use crate::client::ApiClient;
use crate::client::ClientError;
use crate::client::encode_query;

#[derive(Args)]
pub struct LogsArgs {
    /// Keep printing output as it is written.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Print the output as written, without the task prefix.
    #[arg(long)]
    pub raw: bool,
    /// Print when each line was written.
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Lines to show from the end of each task's output (default: all).
    #[arg(short = 'n', long)]
    pub tail: Option<String>,
    /// Only output since this time: Unix seconds, an RFC3339 time, or a duration before now
    /// (`42m`).
    #[arg(long)]
    pub since: Option<String>,
    /// A service (name or ID) or a task (ID).
    pub target: String,
}

/// What the logs are asked of, found as docker finds it: a service first, then a task.
struct Source {
    /// `/services/<id>` or `/tasks/<id>`.
    path: String,
    tty: bool,
    /// Digits of the widest slot, so prefixes of shorter slots are padded to line up.
    width: usize,
}

fn digits(n: u64) -> usize {
    n.to_string().len()
}

fn is_not_found(e: &ClientError) -> bool {
    e.status() == Some(StatusCode::NOT_FOUND)
}

async fn find_source(client: &ApiClient, target: &str) -> Result<Source, CtlError> {
    let name = encode_query(target);
    match client.get::<Service>(&format!("/services/{name}")).await {
        Ok(svc) => {
            let width = svc
                .spec
                .mode
                .replicated
                .as_ref()
                .and_then(|r| r.replicas)
                .map(digits)
                .unwrap_or(1);
            Ok(Source {
                path: format!("/services/{}", encode_query(&svc.id)),
                tty: svc.spec.task_template.container_spec.is_some_and(|c| c.tty),
                width,
            })
        }
        Err(e) if is_not_found(&e) => match client.get::<Task>(&format!("/tasks/{name}")).await {
            Ok(task) => Ok(Source {
                path: format!("/tasks/{}", encode_query(&task.id)),
                tty: task.spec.container_spec.is_some_and(|c| c.tty),
                width: digits(task.slot),
            }),
            Err(e) if is_not_found(&e) => Err(CtlError::Usage(format!("no such task or service: {target}"))),
            Err(e) => Err(e.into()),
        },
        Err(e) => Err(e.into()),
    }
}

pub async fn run(client: &ApiClient, args: LogsArgs) -> Result<(), CtlError> {
    let source = find_source(client, &args.target).await?;
    // Output with a TTY is not framed per line, so it cannot carry prefixes (docker's rule).
    if source.tty && !args.raw {
        return Err(CtlError::Usage(
            "tty service logs only supported with --raw".to_string(),
        ));
    }
    let mut query = vec!["stdout=1".to_string(), "stderr=1".to_string()];
    if !args.raw {
        query.push("details=1".to_string());
    }
    if args.follow {
        query.push("follow=1".to_string());
    }
    if args.timestamps {
        query.push("timestamps=1".to_string());
    }
    if let Some(tail) = &args.tail {
        query.push(format!("tail={}", encode_query(tail)));
    }
    if let Some(since) = &args.since {
        query.push(format!("since={}", encode_query(&time_arg(since))));
    }
    let path = format!("{}/logs?{}", source.path, query.join("&"));
    let mut resp = client.open(Method::GET, &path).await?;
    if source.tty {
        while let Some(chunk) = client.next_chunk(resp.body_mut()).await? {
            if !emit(false, &chunk)? {
                return Ok(());
            }
        }
        return Ok(());
    }
    let mut frames = Demux::default();
    let mut namer = Namer {
        client,
        width: source.width,
        cache: HashMap::new(),
    };
    while let Some(chunk) = client.next_chunk(resp.body_mut()).await? {
        frames.push(&chunk);
        while let Some(frame) = frames.next_frame()? {
            let out = if args.raw {
                frame.payload
            } else {
                let line = parse_line(&frame.payload, args.timestamps)?;
                let prefix = namer.prefix(&line.context).await?;
                line.render(&prefix)
            };
            if !emit(frame.stderr, &out)? {
                return Ok(());
            }
        }
    }
    // A frame cut short by the end of the stream is dropped, as docker's stdcopy does.
    Ok(())
}

/// One stdcopy frame's payload and where it goes.
#[derive(Debug, PartialEq, Eq)]
struct Frame {
    stderr: bool,
    payload: Vec<u8>,
}

/// Splits a stdcopy stream into frames (8-byte header: stream, three zero bytes, big-endian
/// u32 length; then the payload), whatever the chunk boundaries.
#[derive(Debug, Default)]
struct Demux {
    buf: Vec<u8>,
    /// Where the next frame starts in `buf`; the bytes before are used.
    start: usize,
}

const HEADER: usize = 8;

impl Demux {
    fn push(&mut self, chunk: &[u8]) {
        self.buf.drain(..self.start);
        self.start = 0;
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete frame, if the bytes so far hold one.
    fn next_frame(&mut self) -> Result<Option<Frame>, CtlError> {
        let rest = &self.buf[self.start..];
        let Some(header) = rest.get(..HEADER) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let Some(payload) = rest.get(HEADER..HEADER + len) else {
            return Ok(None);
        };
        let stderr = match header[0] {
            0 | 1 => false,
            2 => true,
            3 => {
                return Err(CtlError::Stream(format!(
                    "error from daemon in stream: {}",
                    String::from_utf8_lossy(payload).trim_end()
                )));
            }
            other => {
                return Err(CtlError::Stream(format!(
                    "cannot read the log stream: unknown stream {other} in a frame header"
                )));
            }
        };
        let frame = Frame {
            stderr,
            payload: payload.to_vec(),
        };
        self.start += HEADER + len;
        Ok(Some(frame))
    }
}

/// The IDs dockerd puts in a line's details, which name its prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct LogContext {
    node_id: String,
    service_id: String,
    task_id: String,
}

/// A payload sent with `details=1`: `[<timestamp> ]<details> <message>`.
#[derive(Debug, PartialEq, Eq)]
struct Line<'a> {
    timestamp: Option<&'a [u8]>,
    context: LogContext,
    message: &'a [u8],
}

impl Line<'_> {
    /// `[<timestamp> ]<prefix>    | <message>`, as docker prints a line.
    fn render(&self, prefix: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(prefix.len() + self.message.len() + 40);
        if let Some(ts) = self.timestamp {
            out.extend_from_slice(ts);
            out.push(b' ');
        }
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(b"    | ");
        out.extend_from_slice(self.message);
        out
    }
}

fn parse_line(payload: &[u8], timestamps: bool) -> Result<Line<'_>, CtlError> {
    let invalid = || {
        CtlError::Stream(format!(
            "invalid context in log message: {}",
            String::from_utf8_lossy(payload).trim_end()
        ))
    };
    let parts = if timestamps { 3 } else { 2 };
    let mut split = payload.splitn(parts, |&b| b == b' ');
    let timestamp = if timestamps {
        Some(split.next().ok_or_else(invalid)?)
    } else {
        None
    };
    let details = split.next().ok_or_else(invalid)?;
    let message = split.next().ok_or_else(invalid)?;
    let details = std::str::from_utf8(details).map_err(|_| invalid())?;
    let mut map = parse_details(details)?;
    let mut take = |key: &str, what: &str| {
        map.remove(key)
            .ok_or_else(|| CtlError::Stream(format!("missing {what} in log details: {details}")))
    };
    let context = LogContext {
        node_id: take("com.docker.swarm.node.id", "node id")?,
        service_id: take("com.docker.swarm.service.id", "service id")?,
        task_id: take("com.docker.swarm.task.id", "task id")?,
    };
    Ok(Line {
        timestamp,
        context,
        message,
    })
}

/// dockerd's details: comma-separated `k=v` pairs, each side query-escaped.
fn parse_details(details: &str) -> Result<HashMap<String, String>, CtlError> {
    let mut map = HashMap::new();
    for pair in details.split(',') {
        let bad = || {
            CtlError::Stream(format!(
                "invalid log details {details:?}: expected k=v pairs, got {pair:?}"
            ))
        };
        let (k, v) = pair.split_once('=').ok_or_else(bad)?;
        map.insert(unescape(k).ok_or_else(bad)?, unescape(v).ok_or_else(bad)?);
    }
    Ok(map)
}

/// Undoes query escaping (`%2C`, `+`); `None` for a broken escape or non-UTF-8 result.
fn unescape(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// `service.slot.task@node`, padded so slots of fewer digits than `width` line up. As docker
/// does, a global task shows slot 0.
fn format_prefix(service: &str, slot: u64, task_id: &str, node: &str, width: usize) -> String {
    let short: String = task_id.chars().take(12).collect();
    let pad = " ".repeat(width.saturating_sub(digits(slot)));
    format!("{service}.{slot}.{short}@{node}{pad}")
}

/// Names the prefixes of lines, asking the daemon once per task.
struct Namer<'a> {
    client: &'a ApiClient,
    width: usize,
    cache: HashMap<LogContext, String>,
}

impl Namer<'_> {
    async fn prefix(&mut self, ctx: &LogContext) -> Result<String, CtlError> {
        if let Some(p) = self.cache.get(ctx) {
            return Ok(p.clone());
        }
        // Names are best effort (an ID stands in), as docker's; the slot is not.
        let node = match self
            .client
            .get::<Node>(&format!("/nodes/{}", encode_query(&ctx.node_id)))
            .await
        {
            Ok(n) if !n.spec.name.is_empty() => n.spec.name,
            Ok(n) if !n.description.hostname.is_empty() => n.description.hostname,
            _ => ctx.node_id.clone(),
        };
        let service = match self
            .client
            .get::<Service>(&format!("/services/{}", encode_query(&ctx.service_id)))
            .await
        {
            Ok(s) => s.spec.name,
            Err(_) => ctx.service_id.clone(),
        };
        let task: Task = self
            .client
            .get(&format!("/tasks/{}", encode_query(&ctx.task_id)))
            .await
            .map_err(|e| CtlError::Stream(format!("cannot look up task {} of a log line: {e}", ctx.task_id)))?;
        let p = format_prefix(&service, task.slot, &task.id, &node, self.width);
        self.cache.insert(ctx.clone(), p.clone());
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![stream, 0, 0, 0];
        f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn frames_survive_any_chunking() {
        let mut stream = frame(1, b"out one\n");
        stream.extend(frame(2, b"err\n"));
        stream.extend(frame(1, b""));
        stream.extend(frame(1, b"out two\n"));
        let want = vec![
            Frame {
                stderr: false,
                payload: b"out one\n".to_vec(),
            },
            Frame {
                stderr: true,
                payload: b"err\n".to_vec(),
            },
            Frame {
                stderr: false,
                payload: Vec::new(),
            },
            Frame {
                stderr: false,
                payload: b"out two\n".to_vec(),
            },
        ];
        for size in 1..=stream.len() {
            let mut d = Demux::default();
            let mut got = Vec::new();
            for chunk in stream.chunks(size) {
                d.push(chunk);
                while let Some(f) = d.next_frame().expect("valid frames") {
                    got.push(f);
                }
            }
            assert_eq!(got, want, "chunks of {size} bytes");
        }
        // Two splits: inside the header and inside the payload.
        let mut d = Demux::default();
        d.push(&stream[..3]);
        assert_eq!(d.next_frame().expect("valid"), None);
        d.push(&stream[3..10]);
        assert_eq!(d.next_frame().expect("valid"), None);
        d.push(&stream[10..]);
        assert_eq!(
            d.next_frame().expect("valid"),
            Some(want.into_iter().next().expect("a frame"))
        );
    }

    #[test]
    fn bad_frames_name_the_problem() {
        let mut d = Demux::default();
        d.push(&frame(3, b"boom\n"));
        let err = d.next_frame().expect_err("a system error frame");
        assert_eq!(err.to_string(), "error from daemon in stream: boom");
        let mut d = Demux::default();
        d.push(&frame(7, b"x"));
        assert!(
            d.next_frame()
                .expect_err("unknown stream")
                .to_string()
                .contains("unknown stream 7")
        );
    }

    const DETAILS: &str = "com.docker.swarm.node.id=n1,com.docker.swarm.service.id=s1,com.docker.swarm.task.id=t1";

    #[test]
    fn details_give_the_context() {
        let payload = format!("{DETAILS} line 1 of it\n");
        let line = parse_line(payload.as_bytes(), false).expect("a line");
        assert_eq!(
            line.context,
            LogContext {
                node_id: "n1".into(),
                service_id: "s1".into(),
                task_id: "t1".into(),
            }
        );
        assert_eq!(line.message, b"line 1 of it\n");
        assert_eq!(line.timestamp, None);
        assert_eq!(line.render("web.1.t1@m1"), b"web.1.t1@m1    | line 1 of it\n");

        let payload = format!("2026-12-01T12:00:00.000000001Z {DETAILS} hi\n");
        let line = parse_line(payload.as_bytes(), true).expect("a line with a timestamp");
        assert_eq!(line.timestamp, Some(&b"2026-12-01T12:00:00.000000001Z"[..]));
        assert_eq!(
            line.render("web.1.t1@m1"),
            b"2026-12-01T12:00:00.000000001Z web.1.t1@m1    | hi\n"
        );

        let escaped = parse_details("a%2Cb=x+y%3D1,c=").expect("escaped details");
        assert_eq!(escaped.get("a,b").map(String::as_str), Some("x y=1"));
        assert_eq!(escaped.get("c").map(String::as_str), Some(""));
    }

    #[test]
    fn broken_details_are_errors() {
        assert!(parse_line(b"no-details-here\n", false).is_err());
        assert!(parse_details("k=v,novalue").is_err());
        assert!(parse_details("k=%zz").is_err());
        let err = parse_line(b"com.docker.swarm.node.id=n1 msg\n", false).expect_err("no task id");
        assert!(err.to_string().contains("missing service id"), "{err}");
    }

    #[test]
    fn prefixes_are_dockers() {
        assert_eq!(
            format_prefix("web", 2, "4a31wc1zfzz8afliy2ztuqbg1", "m1", 1),
            "web.2.4a31wc1zfzz8@m1"
        );
        assert_eq!(format_prefix("web", 3, "abc", "m1", 2), "web.3.abc@m1 ");
        assert_eq!(format_prefix("agent", 0, "abc", "w1", 1), "agent.0.abc@w1");
    }
}
