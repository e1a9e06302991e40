//! The fault suite (issue 16): real `swarmd` processes, each in a network namespace of its
//! own, under seeded schedules of kills, pauses, partitions, role changes, a full disk and wall
//! clock jumps while clients create, update, scale, remove and read services. After healing,
//! the history, the raft states seen and the cluster's tasks are checked (`checks.rs`).
//!
//! `make test` runs a few schedules with random seeds; `make chaos SCHEDULES=N` runs more.
//! Every schedule prints its seed; `SEED=N` replays one.

mod checks;
mod cuts;
mod schedule;
mod workload;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use serde_json::Value;
use serde_json::json;
use swarm_ctl::client::ApiClient;

use crate::support::Cluster;
use crate::support::hosts::Hosts;

use checks::Observation;
use cuts::Cuts;
use schedule::Cut;
use schedule::MANAGERS;
use schedule::NODES;
use schedule::Nemesis;
use schedule::Schedule;
use schedule::WORKERS;
use workload::Client;
use workload::History;

/// After healing, the cluster must have converged within this long.
const CONVERGE_WITHIN: Duration = Duration::from_secs(10);
const NAMES: [&str; NODES] = ["m1", "m2", "m3", "w1", "w2"];

/// What one schedule found.
struct Report {
    seed: u64,
    anomalies: Vec<String>,
    summary: String,
}

/// A handful of schedules with random seeds, for `make test`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn short_schedules_lose_nothing_and_heal() {
    run_schedules(env_number("CHAOS_SCHEDULES").unwrap_or(10), Duration::from_secs(10)).await;
}

/// `make chaos SCHEDULES=N`: longer runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore]
async fn chaos_schedules() {
    let window = env_number("CHAOS_WINDOW_SECS").unwrap_or(15);
    run_schedules(env_number("SCHEDULES").unwrap_or(100), Duration::from_secs(window)).await;
}

/// Writes a line to stderr past the test harness's capture: every schedule's seed is shown,
/// also when the test passes, so any run can be replayed.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

async fn run_schedules(count: u64, window: Duration) {
    let seeds: Vec<u64> = match env_number("SEED") {
        Some(seed) => vec![seed],
        None => {
            let base = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            let mut rng = schedule::Rng::new(base);
            (0..count).map(|_| rng.next_u64() % 1_000_000_000).collect()
        }
    };
    let mut failed = Vec::new();
    let started = Instant::now();
    for seed in &seeds {
        let Some(report) = run_schedule(Schedule::from_seed(*seed, window)).await else {
            return;
        };
        say(&format!("chaos: seed {} {}", report.seed, report.summary));
        if !report.anomalies.is_empty() {
            eprintln!(
                "chaos: seed {} found {} anomalies:",
                report.seed,
                report.anomalies.len()
            );
            for a in &report.anomalies {
                eprintln!("  - {a}");
            }
            failed.push(report.seed);
        }
    }
    say(&format!(
        "chaos: {} schedules in {:.0} s, {} with anomalies {failed:?}",
        seeds.len(),
        started.elapsed().as_secs_f64(),
        failed.len()
    ));
    assert!(
        failed.is_empty(),
        "schedules with anomalies (replay one with SEED=N): {failed:?}"
    );
}

/// One schedule, start to finish. None when this machine cannot make namespaces.
async fn run_schedule(schedule: Schedule) -> Option<Report> {
    eprintln!("chaos: seed {} starts: {:?}", schedule.seed, schedule);
    let mut run = Run::start(schedule)?;
    let report = run.go().await;
    if !report.anomalies.is_empty() {
        run.c.dump_logs();
        keep_logs(&run.c, report.seed);
    }
    Some(report)
}

struct Run {
    // Dropped in this order: the nodes stop before their namespaces go.
    c: Cluster,
    hosts: Hosts,
    schedule: Schedule,
    cuts: Cuts,
    killed: [bool; NODES],
    paused: [usize; NODES],
    /// The drops each partition fault made, by fault index.
    drops: BTreeMap<usize, Vec<(usize, usize)>>,
    /// Node index -> role it should have once healed, when a role change is under way.
    roles: BTreeMap<usize, &'static str>,
    observations: Arc<Mutex<Vec<Observation>>>,
}

impl Run {
    fn start(schedule: Schedule) -> Option<Self> {
        let hosts = Hosts::new("c", NODES)?;
        let mut c = if schedule.real_workers {
            Cluster::docker()
        } else {
            Cluster::new()
        };
        if let Some(m) = schedule.small_disk() {
            let dir = c.root.path().join(NAMES[m]);
            std::fs::create_dir_all(&dir).expect("make the small data dir");
            let out = Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=64m,mode=0700", "tmpfs"])
                .arg(&dir)
                .output()
                .expect("mount");
            assert!(
                out.status.success(),
                "mount a tmpfs: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            c.mounts.push(dir);
        }
        let worker_executor = c.executor;
        let addr = |i: usize| format!("{}:2377", Hosts::addr(i + 1));
        c.executor = "sim";
        set_clock_env(&mut c, 0);
        c.init_in(NAMES[0], &hosts.ns(1), &addr(0), &[]);
        let manager_token = c.token(0, "manager");
        let worker_token = c.token(0, "worker");
        for i in [1, 2] {
            set_clock_env(&mut c, i);
            c.join_in(NAMES[i], &hosts.ns(i + 1), &addr(i), &manager_token, 0, &[]);
        }
        c.executor = worker_executor;
        for i in WORKERS {
            set_clock_env(&mut c, i);
            c.join_in(NAMES[i], &hosts.ns(i + 1), &addr(i), &worker_token, 0, &[]);
        }
        Some(Self {
            c,
            hosts,
            schedule,
            cuts: Cuts::default(),
            killed: [false; NODES],
            paused: [0; NODES],
            drops: BTreeMap::new(),
            roles: BTreeMap::new(),
            observations: Arc::default(),
        })
    }

    async fn go(&mut self) -> Report {
        let history = History::new();
        let stop = Arc::new(AtomicBool::new(false));
        let observer = self.observe(history.clone());
        let managers: Vec<(usize, ApiClient)> = MANAGERS.iter().map(|&i| (i, self.c.nodes[i].client())).collect();
        let (max_replicas, pace) = if self.schedule.real_workers {
            (2, Duration::from_millis(400))
        } else {
            (3, Duration::ZERO)
        };
        let clients: Vec<_> = (0..3)
            .map(|id| {
                let client = Client::new(
                    id,
                    managers.clone(),
                    history.clone(),
                    self.schedule.seed,
                    max_replicas,
                    pace,
                );
                tokio::spawn(client.run(stop.clone()))
            })
            .collect();

        // The faults, in time order; an end comes before a start at the same instant.
        let mut events: Vec<(Duration, bool, usize)> = Vec::new();
        for (i, f) in self.schedule.faults.iter().enumerate() {
            events.push((f.start, true, i));
            events.push((f.start + f.length, false, i));
        }
        events.sort_by_key(|(at, start, _)| (*at, *start));
        let t0 = Instant::now();
        for (at, start, i) in events {
            tokio::time::sleep_until((t0 + at).into()).await;
            if start {
                self.begin(i).await;
            } else {
                self.end(i).await;
            }
        }
        tokio::time::sleep_until((t0 + self.schedule.window).into()).await;
        self.heal().await;
        let healed = Instant::now();
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            let _ = c.await;
        }

        let mut anomalies = Vec::new();
        let converged = self.converge(healed).await;
        let converged_in = healed.elapsed();
        if let Err(problems) = &converged {
            anomalies.push(format!(
                "not converged {:.1} s after healing: {problems:?}",
                CONVERGE_WITHIN.as_secs_f64()
            ));
        }
        match self.reachable_leader().await {
            Some(l) => workload::final_reads(&history, l, &self.c.nodes[l].client()).await,
            None => anomalies.push("no leader after healing".to_string()),
        }
        observer.abort();
        let ops = history.ops.lock().unwrap().clone();
        anomalies.extend(checks::history_anomalies(&ops));
        anomalies.extend(checks::raft_anomalies(&self.observations.lock().unwrap()));
        let count = |f: &dyn Fn(&workload::Op) -> bool| ops.iter().filter(|o| f(o)).count();
        let summary = format!(
            "{} ops ({} ok, {} failed, {} unknown), {} services, converged in {:.1} s, {} observations",
            ops.len(),
            count(&|o| matches!(
                o.returned,
                Some((_, crate::support::linearizable::ServiceResult::Ok(_)))
            )),
            count(&|o| matches!(o.returned, Some((_, crate::support::linearizable::ServiceResult::Fail)))),
            count(&|o| o.returned.is_none()),
            history.names().len(),
            converged_in.as_secs_f64(),
            self.observations.lock().unwrap().len()
        );
        Report {
            seed: self.schedule.seed,
            anomalies,
            summary,
        }
    }

    /// Polls every node's raft status every 100 ms until aborted.
    fn observe(&self, history: Arc<History>) -> tokio::task::JoinHandle<()> {
        let clients: Vec<ApiClient> = self
            .c
            .nodes
            .iter()
            .map(|n| n.client().with_timeout(Duration::from_millis(500)))
            .collect();
        let observations = self.observations.clone();
        tokio::spawn(async move {
            loop {
                let polls: Vec<_> = clients
                    .iter()
                    .enumerate()
                    .map(|(i, client)| {
                        let (history, client) = (history.clone(), client.clone());
                        tokio::spawn(async move {
                            let status: Value = client.get("/swarm-rs/raft").await.ok()?;
                            Observation::from_status(i, history.micros(), &status)
                        })
                    })
                    .collect();
                let mut seen = Vec::new();
                for p in polls {
                    seen.push(p.await.ok().flatten());
                }
                observations.lock().unwrap().extend(seen.into_iter().flatten());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    }

    /// The manager the latest polls saw leading.
    fn seen_leader(&self) -> Option<usize> {
        let obs = self.observations.lock().unwrap();
        obs.iter().rev().find(|o| o.leader).map(|o| o.node)
    }

    async fn begin(&mut self, fault: usize) {
        let nemesis = self.schedule.faults[fault].nemesis.clone();
        eprintln!("chaos:   begin {nemesis:?}");
        match nemesis {
            Nemesis::Kill { node } => {
                self.c.kill(node);
                self.killed[node] = true;
            }
            Nemesis::Pause { node } => {
                self.paused[node] += 1;
                self.signal(node, "-STOP");
            }
            Nemesis::Partition(cut) => {
                let leader = match cut {
                    Cut::IsolateLeader => self.seen_leader(),
                    _ => None,
                };
                let drops = cut.drops(leader);
                self.cuts.add(&self.hosts, &drops);
                self.drops.insert(fault, drops);
            }
            Nemesis::Promote { worker } => {
                self.roles.insert(worker, "worker");
                self.set_role(worker, "manager").await;
            }
            Nemesis::Demote { manager } => {
                self.roles.insert(manager, "manager");
                self.set_role(manager, "worker").await;
            }
            Nemesis::DiskFull { manager } => {
                // dd stops at ENOSPC: the tmpfs is then full.
                let _ = Command::new("dd")
                    .arg("if=/dev/zero")
                    .arg(format!("of={}", self.fill_file(manager).display()))
                    .args(["bs=1M", "status=none"])
                    .output();
            }
            Nemesis::ClockJump { manager, millis } => self.set_clock(manager, millis),
        }
    }

    async fn end(&mut self, fault: usize) {
        let nemesis = self.schedule.faults[fault].nemesis.clone();
        eprintln!("chaos:   end {nemesis:?}");
        match nemesis {
            Nemesis::Kill { node } => self.revive(node),
            Nemesis::Pause { node } => {
                self.paused[node] = self.paused[node].saturating_sub(1);
                if self.paused[node] == 0 {
                    self.signal(node, "-CONT");
                }
            }
            Nemesis::Partition(_) => {
                if let Some(drops) = self.drops.remove(&fault) {
                    self.cuts.remove(&self.hosts, &drops);
                }
            }
            Nemesis::Promote { worker: node } | Nemesis::Demote { manager: node } => {
                if let Some(role) = self.roles.get(&node).copied()
                    && self.set_role(node, role).await
                {
                    self.roles.remove(&node);
                }
            }
            Nemesis::DiskFull { manager } => {
                let _ = std::fs::remove_file(self.fill_file(manager));
            }
            Nemesis::ClockJump { manager, .. } => self.set_clock(manager, 0),
        }
    }

    /// Ends every fault still in force: cuts, pauses, kills, the full disk, skewed clocks and
    /// role changes (retried until the cluster takes them).
    async fn heal(&mut self) {
        eprintln!("chaos:   heal");
        self.cuts.heal(&self.hosts);
        for node in 0..NODES {
            if self.paused[node] > 0 {
                self.paused[node] = 0;
                self.signal(node, "-CONT");
            }
            if self.killed[node] {
                self.revive(node);
            }
            self.set_clock(node, 0);
        }
        if let Some(m) = self.schedule.small_disk() {
            let _ = std::fs::remove_file(self.fill_file(m));
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.roles.is_empty() {
            let pending: Vec<(usize, &str)> = self.roles.iter().map(|(n, r)| (*n, *r)).collect();
            for (node, role) in pending {
                if self.set_role(node, role).await {
                    self.roles.remove(&node);
                }
            }
            assert!(
                Instant::now() < deadline,
                "roles not restored after healing: {:?}",
                self.roles
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn revive(&mut self, node: usize) {
        if self.killed[node] {
            self.killed[node] = false;
            self.paused[node] = 0;
            set_clock_env(&mut self.c, node);
            self.c.start_run(node);
        }
    }

    fn signal(&self, node: usize, signal: &str) {
        if let Some(pid) = self.c.nodes[node].pid() {
            let _ = Command::new("kill").arg(signal).arg(pid.to_string()).output();
        }
    }

    fn fill_file(&self, manager: usize) -> PathBuf {
        self.c.nodes[manager].data_dir.join("chaos-fill")
    }

    fn set_clock(&self, node: usize, millis: i64) {
        let _ = std::fs::write(clock_file(&self.c, node), millis.to_string());
    }

    /// Asks each manager in turn to give `node` the role; true once one did (or it has it).
    async fn set_role(&self, node: usize, role: &str) -> bool {
        let id = self.c.node_id(node);
        for m in MANAGERS.into_iter().chain(WORKERS) {
            let client = self.c.nodes[m].client().with_timeout(Duration::from_secs(4));
            let Ok(current) = client.get::<Value>(&format!("/nodes/{id}")).await else {
                continue;
            };
            if current["Spec"]["Role"] == role {
                return true;
            }
            let (Some(version), mut spec) = (current["Version"]["Index"].as_u64(), current["Spec"].clone()) else {
                continue;
            };
            spec["Role"] = json!(role);
            let path = format!("/nodes/{id}/update?version={version}");
            if client
                .call(hyper::Method::POST, &path, Some(spec.to_string().into_bytes()))
                .await
                .is_ok()
            {
                eprintln!("chaos:   {} is now a {role}", NAMES[node]);
                return true;
            }
        }
        false
    }

    /// A manager that answers as leader, asked in turn.
    async fn reachable_leader(&self) -> Option<usize> {
        for _ in 0..50 {
            for i in 0..NODES {
                let client = self.c.nodes[i].client().with_timeout(Duration::from_secs(2));
                if let Ok(status) = client.get::<Value>("/swarm-rs/raft").await
                    && status["state"] == "leader"
                {
                    return Some(i);
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        None
    }

    /// Waits until the healed cluster has converged, for at most [`CONVERGE_WITHIN`] after
    /// `healed`; the problems left otherwise.
    async fn converge(&self, healed: Instant) -> Result<(), Vec<String>> {
        let deadline = healed + CONVERGE_WITHIN;
        let mut problems = vec!["no manager answered".to_string()];
        while Instant::now() < deadline {
            problems = match self.convergence_problems().await {
                Some(p) => p,
                None => vec!["no leader answered".to_string()],
            };
            if problems.is_empty() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(problems)
    }

    async fn convergence_problems(&self) -> Option<Vec<String>> {
        let leader = self.reachable_leader().await?;
        let client = self.c.nodes[leader].client().with_timeout(Duration::from_secs(4));
        let services: Vec<Value> = client.get("/services?status=true").await.ok()?;
        let tasks: Vec<Value> = client.get("/tasks").await.ok()?;
        let nodes: Vec<Value> = client.get("/nodes").await.ok()?;
        let mut problems = checks::convergence_problems(&services, &tasks, &nodes);
        if self.schedule.real_workers {
            // Managers simulate their tasks; the workers' tasks are real containers.
            let real_nodes: Vec<String> = WORKERS.iter().map(|&w| self.c.node_id(w)).collect();
            let names: BTreeMap<&str, &str> = services
                .iter()
                .filter_map(|s| Some((s["ID"].as_str()?, s["Spec"]["Name"].as_str()?)))
                .collect();
            let mut wanted: BTreeMap<String, u64> = names.values().map(|n| (n.to_string(), 0)).collect();
            for t in &tasks {
                if t["Status"]["State"] == "running"
                    && real_nodes.iter().any(|n| t["NodeID"] == n.as_str())
                    && let Some(name) = t["ServiceID"].as_str().and_then(|id| names.get(id))
                {
                    *wanted.entry(name.to_string()).or_default() += 1;
                }
            }
            let mut containers = Vec::new();
            for id in self.c.node_ids() {
                containers.extend(containers_of_node(&id));
            }
            problems.extend(checks::container_problems(&wanted, &containers));
        }
        Some(problems)
    }
}

/// Copies every node's log of a schedule with anomalies to `$TMPDIR/swarm-chaos-SEED/`, as the
/// cluster's own directory goes with it.
fn keep_logs(c: &Cluster, seed: u64) {
    let kept = std::env::temp_dir().join(format!("swarm-chaos-{seed}"));
    if std::fs::create_dir_all(&kept).is_err() {
        return;
    }
    for n in &c.nodes {
        let _ = std::fs::copy(&n.log, kept.join(format!("{}.log", n.name)));
    }
    say(&format!(
        "chaos: seed {seed}: the nodes' logs are kept in {}",
        kept.display()
    ));
}

/// Each node reads its wall-clock skew from a file of its own beside its data dir.
fn clock_file(c: &Cluster, node: usize) -> PathBuf {
    c.root.path().join(format!("{}.clock", NAMES[node]))
}

fn set_clock_env(c: &mut Cluster, node: usize) {
    let path = clock_file(c, node);
    c.env.retain(|(k, _)| k != "SWARMD_WALL_CLOCK_SKEW_FILE");
    c.env
        .push(("SWARMD_WALL_CLOCK_SKEW_FILE".to_string(), path.display().to_string()));
}

/// The containers a node created, as (service name, slot, running).
fn containers_of_node(node_id: &str) -> Vec<(String, u64, bool)> {
    let out = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            &format!("label=com.docker.swarm.node.id={node_id}"),
            "--format",
            "{{.Label \"com.docker.swarm.service.name\"}}|{{.Label \"com.docker.swarm.task.name\"}}|{{.State}}",
        ])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut p = l.split('|');
            let service = p.next()?.to_string();
            // Task names are SERVICE.SLOT.TASKID.
            let slot = p
                .next()?
                .strip_prefix(&format!("{service}."))?
                .split('.')
                .next()?
                .parse()
                .ok()?;
            Some((service, slot, p.next()? == "running"))
        })
        .collect()
}
