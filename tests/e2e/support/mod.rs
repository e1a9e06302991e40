//! A cluster of real `swarmd` processes on 127.0.0.1 for end-to-end tests. Every process is
//! killed when the harness is dropped, also when a test panics; on a panic the tail of each
//! node's log is printed.

#![allow(dead_code)]

pub mod hosts;
pub mod linearizable;
pub mod resolver;
pub mod shared;
pub mod view;

use std::fs;
use std::fs::File;
use std::path::Path;
use std::path::PathBuf;
use std::process::Child;
use std::process::Command;
use std::process::Output;
use std::process::Stdio;
use std::time::Duration;
use std::time::Instant;

use serde_json::Value;
use swarm_ctl::client::ApiClient;

pub const SWARMD: &str = env!("CARGO_BIN_EXE_swarmd");
pub const SWARMCTL: &str = env!("CARGO_BIN_EXE_swarmctl");

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

pub struct NodeProc {
    pub name: String,
    pub data_dir: PathBuf,
    pub addr: String,
    pub child: Option<Child>,
    pub log: PathBuf,
    pub out: PathBuf,
    /// The network namespace the node runs in (a separate host), if not the test's own.
    pub netns: Option<String>,
}

impl NodeProc {
    pub fn socket(&self) -> PathBuf {
        self.data_dir.join("swarmd.sock")
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    pub fn client(&self) -> ApiClient {
        ApiClient::from_host(&self.host())
            .expect("valid host")
            .with_timeout(Duration::from_secs(20))
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn stdout(&self) -> String {
        fs::read_to_string(&self.out).unwrap_or_default()
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

pub struct Cluster {
    pub root: tempfile::TempDir,
    pub nodes: Vec<NodeProc>,
    /// `sim` or `docker`: how the nodes run tasks.
    pub executor: &'static str,
    /// Extra environment of every swarmd started from now on.
    pub env: Vec<(String, String)>,
    /// Filesystems the test mounted under `root` (e.g. a small data dir), unmounted on drop
    /// once the nodes are stopped.
    pub mounts: Vec<PathBuf>,
}

impl Default for Cluster {
    fn default() -> Self {
        Self::new()
    }
}

impl Cluster {
    /// A cluster whose nodes run tasks with the simulated executor (no containers).
    pub fn new() -> Self {
        Self {
            root: tempfile::Builder::new()
                .prefix("swarm-e2e-")
                .tempdir()
                .expect("tempdir"),
            nodes: Vec::new(),
            executor: "sim",
            env: Vec::new(),
            mounts: Vec::new(),
        }
    }

    /// A cluster whose nodes run real containers on the local Docker engine, with the test
    /// image built if missing. Every container of its nodes is removed on drop.
    pub fn docker() -> Self {
        ensure_test_image();
        let mut c = Self::new();
        c.executor = "docker";
        c
    }

    /// Node IDs of every node started so far (from their node.json).
    pub fn node_ids(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter_map(|n| fs::read_to_string(n.data_dir.join("node.json")).ok())
            .filter_map(|t| serde_json::from_str::<Value>(&t).ok())
            .filter_map(|v| v["node_id"].as_str().map(str::to_string))
            .collect()
    }

    pub fn node_id(&self, i: usize) -> String {
        let t = fs::read_to_string(self.nodes[i].data_dir.join("node.json")).expect("node.json");
        let v: Value = serde_json::from_str(&t).expect("node.json is JSON");
        v["node_id"].as_str().expect("node_id").to_string()
    }

    fn spawn(&mut self, name: &str, args: &[String]) -> usize {
        let data_dir = self.root.path().join(name);
        let log = self.root.path().join(format!("{name}.log"));
        let out = self.root.path().join(format!("{name}.out"));
        let idx = match self.nodes.iter().position(|n| n.name == name) {
            Some(i) => i,
            None => {
                self.nodes.push(NodeProc {
                    name: name.to_string(),
                    data_dir: data_dir.clone(),
                    addr: String::new(),
                    child: None,
                    log: log.clone(),
                    out: out.clone(),
                    netns: None,
                });
                self.nodes.len() - 1
            }
        };
        let logf = File::options().create(true).append(true).open(&log).expect("log file");
        let outf = File::options().create(true).append(true).open(&out).expect("out file");
        let mut command = match &self.nodes[idx].netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                // `ip netns exec` execs swarmd: the child's PID is swarmd's.
                c.args(["netns", "exec", ns, SWARMD]);
                c
            }
            None => Command::new(SWARMD),
        };
        let child = command
            .arg("--data-dir")
            .arg(&data_dir)
            .args(args)
            .env("RUST_LOG", "info,openraft=warn,hickory_server=warn")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(outf)
            .stderr(logf)
            .spawn()
            .expect("spawn swarmd");
        self.nodes[idx].child = Some(child);
        idx
    }

    /// `swarmd init` on a fresh port; waits until its API answers. Retries with another port if
    /// the chosen one was taken between picking it and binding it.
    pub fn init(&mut self, name: &str, extra: &[&str]) -> usize {
        for attempt in 0.. {
            let port = free_port();
            let addr = format!("127.0.0.1:{port}");
            let mut args = vec![
                "init".to_string(),
                "--listen-addr".to_string(),
                addr.clone(),
                "--executor".to_string(),
                self.executor.to_string(),
            ];
            args.extend(extra.iter().map(|s| s.to_string()));
            let i = self.spawn(name, &args);
            self.nodes[i].addr = addr;
            match self.try_wait_api(i) {
                Ok(()) => return i,
                Err(log) if log.contains("cannot listen on") && attempt < 5 => continue,
                Err(log) => panic!("swarmd {name} did not come up:\n{log}"),
            }
        }
        unreachable!()
    }

    /// `swarmd init` as a separate host: in network namespace `ns`, listening on `addr`.
    pub fn init_in(&mut self, name: &str, ns: &str, addr: &str, extra: &[&str]) -> usize {
        self.add_host(name, ns);
        let mut args = vec![
            "init".to_string(),
            "--listen-addr".to_string(),
            addr.to_string(),
            "--hostname".to_string(),
            name.to_string(),
            "--executor".to_string(),
            self.executor.to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let i = self.spawn(name, &args);
        self.nodes[i].addr = addr.to_string();
        if let Err(log) = self.try_wait_api(i) {
            panic!("swarmd {name} did not come up in {ns}:\n{log}");
        }
        i
    }

    /// `swarmd join` through node `via` as a separate host: in network namespace `ns`,
    /// listening on `addr`.
    pub fn join_in(&mut self, name: &str, ns: &str, addr: &str, token: &str, via: usize, extra: &[&str]) -> usize {
        self.add_host(name, ns);
        let remote = self.nodes[via].addr.clone();
        let mut args: Vec<String> = [
            "join",
            "--token",
            token,
            "--listen-addr",
            addr,
            "--hostname",
            name,
            "--executor",
            self.executor,
            &remote,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let i = self.spawn(name, &args);
        self.nodes[i].addr = addr.to_string();
        if let Err(log) = self.try_wait_api(i) {
            panic!("swarmd {name} did not come up in {ns}:\n{log}");
        }
        i
    }

    /// Registers node `name` to run in namespace `ns` from its first start on.
    fn add_host(&mut self, name: &str, ns: &str) {
        let data_dir = self.root.path().join(name);
        self.nodes.push(NodeProc {
            name: name.to_string(),
            data_dir,
            addr: String::new(),
            child: None,
            log: self.root.path().join(format!("{name}.log")),
            out: self.root.path().join(format!("{name}.out")),
            netns: Some(ns.to_string()),
        });
    }

    /// `swarmd join` through node `via`; waits until its API answers (retrying a taken port).
    pub fn join(&mut self, name: &str, token: &str, via: usize) -> usize {
        self.join_with(name, token, via, &[])
    }

    /// Like [`Cluster::join`], with extra `swarmd join` flags.
    pub fn join_with(&mut self, name: &str, token: &str, via: usize, extra: &[&str]) -> usize {
        for attempt in 0.. {
            let i = self.start_join_with(name, token, via, extra);
            match self.try_wait_api(i) {
                Ok(()) => return i,
                Err(log) if log.contains("cannot listen on") && attempt < 5 => continue,
                Err(log) => panic!("swarmd {name} did not come up:\n{log}"),
            }
        }
        unreachable!()
    }

    /// Starts `swarmd join` without waiting.
    pub fn start_join(&mut self, name: &str, token: &str, via: usize) -> usize {
        self.start_join_with(name, token, via, &[])
    }

    fn start_join_with(&mut self, name: &str, token: &str, via: usize, extra: &[&str]) -> usize {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let remote = self.nodes[via].addr.clone();
        let mut args = vec![
            "join".to_string(),
            "--token".to_string(),
            token.to_string(),
            "--listen-addr".to_string(),
            addr.clone(),
            "--hostname".to_string(),
            name.to_string(),
            "--executor".to_string(),
            self.executor.to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push(remote);
        let i = self.spawn(name, &args);
        self.nodes[i].addr = addr;
        i
    }

    /// Starts `swarmd simulate --nodes n` joining through node `via`; waits until all joined.
    /// The simulated nodes are named `<name>-0`, `<name>-1`, ...
    pub fn simulate(&mut self, name: &str, nodes: usize, token: &str, via: usize) -> usize {
        let remote = self.nodes[via].addr.clone();
        let args = vec![
            "simulate".to_string(),
            "--nodes".to_string(),
            nodes.to_string(),
            "--token".to_string(),
            token.to_string(),
            "--hostname-prefix".to_string(),
            name.to_string(),
            remote,
        ];
        let i = self.spawn(name, &args);
        let deadline = Instant::now() + Duration::from_secs(120);
        while !self.nodes[i].stdout().contains("simulating") {
            assert!(
                self.nodes[i].is_running(),
                "simulate exited:\n{}",
                self.nodes[i].log_text()
            );
            assert!(
                Instant::now() < deadline,
                "simulate did not join in time:\n{}",
                self.nodes[i].log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        i
    }

    /// Restarts a stopped node with `swarmd run`.
    pub fn restart(&mut self, i: usize) {
        let name = self.nodes[i].name.clone();
        self.spawn(&name, &["run".to_string()]);
        self.wait_api(i);
    }

    /// Starts `swarmd run` without waiting for the API.
    pub fn start_run(&mut self, i: usize) {
        let name = self.nodes[i].name.clone();
        self.spawn(&name, &["run".to_string()]);
    }

    /// Starts `swarmd run EXTRA...` on the data dir called `name` (a node's, or a new one made
    /// by the test) without waiting for the API.
    pub fn start_run_as(&mut self, name: &str, extra: &[&str]) -> usize {
        let args: Vec<String> = std::iter::once("run")
            .chain(extra.iter().copied())
            .map(str::to_string)
            .collect();
        self.spawn(name, &args)
    }

    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits for a clean exit (SIGKILL after 20 s).
    pub fn stop(&mut self, i: usize) -> Option<std::process::ExitStatus> {
        let mut c = self.nodes[i].child.take()?;
        let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                return c.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for a started process to exit and returns its status.
    pub fn wait_exit(&mut self, i: usize, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        let c = self.nodes[i].child.as_mut()?;
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                self.nodes[i].child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn wait_api(&mut self, i: usize) {
        if let Err(log) = self.try_wait_api(i) {
            panic!("swarmd {} did not come up:\n{log}", self.nodes[i].name);
        }
    }

    /// Waits until node `i` answers; `Err(log)` if it exits or does not answer within 60 s.
    fn try_wait_api(&mut self, i: usize) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if !self.nodes[i].is_running() {
                self.nodes[i].child = None;
                return Err(self.nodes[i].log_text());
            }
            if self.nodes[i].socket().exists() {
                let out = Command::new(SWARMCTL)
                    .args(["-H", &self.nodes[i].host(), "swarm", "join-token", "-q", "worker"])
                    .output();
                let worker_ok = Command::new(SWARMCTL)
                    .args(["-H", &self.nodes[i].host(), "node", "ls", "-q"])
                    .output();
                let ok = out.map(|o| o.status.success()).unwrap_or(false)
                    || worker_ok
                        .map(|o| String::from_utf8_lossy(&o.stderr).contains("not a swarm manager"))
                        .unwrap_or(false);
                if ok {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(self.nodes[i].log_text());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs swarmctl against node `i`.
    pub fn ctl(&self, i: usize, args: &[&str]) -> Output {
        Command::new(SWARMCTL)
            .args(["-H", &self.nodes[i].host()])
            .args(args)
            .output()
            .expect("run swarmctl")
    }

    /// Runs swarmctl and returns stdout, panicking with stderr on failure.
    pub fn ctl_ok(&self, i: usize, args: &[&str]) -> String {
        let out = self.ctl(i, args);
        assert!(
            out.status.success(),
            "swarmctl {args:?} on {} failed: {}",
            self.nodes[i].name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn token(&self, i: usize, role: &str) -> String {
        self.ctl_ok(i, &["swarm", "join-token", "-q", role]).trim().to_string()
    }

    /// swarm-rs' raft status of node `i`.
    pub async fn raft(&self, i: usize) -> Option<Value> {
        self.nodes[i].client().get::<Value>("/swarm-rs/raft").await.ok()
    }

    /// The index of the node that is raft leader, among running managers.
    pub async fn leader(&mut self) -> Option<usize> {
        for i in 0..self.nodes.len() {
            if !self.nodes[i].is_running() {
                continue;
            }
            if let Some(r) = self.raft(i).await
                && r["state"] == "leader"
            {
                return Some(i);
            }
        }
        None
    }

    pub async fn wait_leader(&mut self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.leader().await {
                return l;
            }
            assert!(Instant::now() < deadline, "no leader within {timeout:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn dump_logs(&self) {
        for n in &self.nodes {
            let text = n.log_text();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            eprintln!("----- {} ({}) log tail -----", n.name, n.data_dir.display());
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if self.executor == "docker" {
            for id in self.node_ids() {
                remove_containers_of(&id);
            }
            // A docker node keeps its task files on a tmpfs that outlives it; a mount left
            // in the temp dir would keep the dir from being removed.
            for n in &self.nodes {
                let _ = Command::new("umount")
                    .arg("-l")
                    .arg(n.data_dir.join("task-files"))
                    .output();
            }
        }
        for m in &self.mounts {
            let _ = Command::new("umount").arg("-l").arg(m).output();
        }
    }
}

/// Removes every container a node of ours created, whatever state it is in.
pub fn remove_containers_of(node_id: &str) {
    let out = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=com.docker.swarm.node.id={node_id}"),
        ])
        .output();
    if let Ok(out) = out {
        let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if !ids.is_empty() {
            let _ = Command::new("docker").args(["rm", "-f"]).args(&ids).output();
        }
    }
}

/// Builds swarm-test/busybox:latest if missing (scripts/test-image.sh), once per test run.
pub fn ensure_test_image() {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/test-image.sh");
        let out = Command::new("bash")
            .arg(script)
            .output()
            .expect("run scripts/test-image.sh");
        assert!(
            out.status.success(),
            "cannot build the test image: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// One field of a container as `docker inspect -f FORMAT` prints it, trimmed.
pub fn container_field(container: &str, format: &str) -> String {
    let out = Command::new("docker")
        .args(["inspect", "-f", format, container])
        .output()
        .expect("docker inspect");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Containers of a service (running or not), as `(name, node id, running)`.
pub fn containers_of_service(service: &str) -> Vec<(String, String, bool)> {
    let out = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            &format!("label=com.docker.swarm.service.name={service}"),
            "--format",
            "{{.Names}}|{{.Label \"com.docker.swarm.node.id\"}}|{{.State}}",
        ])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut p = l.split('|');
            Some((p.next()?.to_string(), p.next()?.to_string(), p.next()? == "running"))
        })
        .collect()
}

/// Polls `f` until it returns Some, or panics after `timeout` naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A minimal service spec for `POST /services/create`, with no replicas: tests of the
/// replicated store create many services and need no tasks.
pub fn service_spec(name: &str) -> Value {
    serde_json::json!({
        "Name": name,
        "TaskTemplate": { "ContainerSpec": { "Image": "swarm-test/busybox:latest", "Args": ["sleep", "3600"] } },
        "Mode": { "Replicated": { "Replicas": 0 } }
    })
}

/// Tasks of service `name` as node `i` reports them.
pub async fn tasks_of(c: &Cluster, i: usize, name: &str) -> Option<Vec<Value>> {
    let filters = format!(r#"{{"service":{{"{name}":true}}}}"#);
    let path = format!("/tasks?filters={}", swarm_ctl::client::encode_query(&filters));
    c.nodes[i].client().get(&path).await.ok()
}

/// Names of all services seen by node `i`.
pub async fn service_names(c: &Cluster, i: usize) -> Option<std::collections::BTreeSet<String>> {
    let list: Vec<Value> = c.nodes[i].client().get("/services").await.ok()?;
    Some(
        list.iter()
            .filter_map(|s| s["Spec"]["Name"].as_str().map(str::to_string))
            .collect(),
    )
}

pub fn file_len(p: &Path) -> u64 {
    fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// The rows of a table printed by docker or swarmctl, header excluded, split on runs of 2+
/// spaces.
pub fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(cells)
        .collect()
}

/// The column names of such a table.
pub fn header(table: &str) -> Vec<String> {
    cells(table.lines().next().unwrap_or_default())
}

fn cells(line: &str) -> Vec<String> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

/// Swarm's IDs: 25 characters of lowercase base36.
pub fn is_swarm_id(id: &str) -> bool {
    id.len() == 25 && id.chars().all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
}

/// Seconds since the epoch, as `--since`/`--until` take them.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A streaming command (events, followed logs) whose stdout lines arrive on a channel; the
/// process is killed on drop.
pub struct LineStream {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl LineStream {
    pub fn spawn(mut cmd: Command) -> Self {
        use std::io::BufRead;
        let mut child = cmd.stdout(Stdio::piped()).spawn().expect("spawn a streaming command");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self { child, lines }
    }

    /// Collects lines until `done` holds, or panics after `timeout` naming `what`.
    pub fn until(&self, timeout: Duration, what: &str, mut done: impl FnMut(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        while !done(&seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => seen.push(l),
                Err(_) => panic!("timed out waiting for {what}; saw {seen:#?}"),
            }
        }
        seen
    }
}

impl Drop for LineStream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
