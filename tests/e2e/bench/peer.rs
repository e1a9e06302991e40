//! `make bench-peer`: swarm-rs beside Docker Swarm on the same engine, in one run.
//!
//! Both systems get the same docker CLI commands with the same flags; the only difference is
//! `DOCKER_HOST`. The peer is the engine's own swarm mode, started here on a free loopback port
//! and left at the end. The rounds alternate swarm-rs, Swarm and the floor (the same container
//! work done directly with `docker run`/`docker stop`/`docker rm`, plus the configured delays),
//! so that a slow minute of the machine hits all three alike.
//!
//! Every time is taken from the engine's side: a scenario ends with the engine's event for the
//! last container it waits for (read from one `docker events` stream, so waiting does not load
//! the engine); the floor's `docker run` returns once its container has started.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::process::Output;
use std::process::Stdio;
use std::thread;
use std::time::Duration;
use std::time::Instant;

use super::report::Figure;
use super::report::Goal;
use super::report::fmt;
use super::report::median;
use super::report::record;
use crate::support::Cluster;
use crate::support::ensure_test_image;
use crate::support::free_port;

const IMAGE: &str = "swarm-test/busybox:latest";
const ENGINE: &str = "unix:///var/run/docker.sock";
const ROUNDS: usize = 3;
const GROUP: &str = "Against Docker Swarm";
/// Where the harness notes the ID of the swarm it created, so that after a crash it knows the
/// engine's swarm is its own and may leave it.
const MARK: &str = "target/bench/peer-swarm-id";
/// The settings both systems get.
const SERVICE_FLAGS: &[&str] = &[
    "--init",
    "--restart-delay",
    "1s",
    "--update-monitor",
    "1s",
    "--update-delay",
    "0s",
    "--update-parallelism",
    "5",
];
const RESTART_DELAY: Duration = Duration::from_secs(1);
const UPDATE_MONITOR: Duration = Duration::from_secs(1);
const LIMIT: Duration = Duration::from_secs(120);

fn docker(host: &str, args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .env("DOCKER_HOST", host)
        .env("DOCKER_CLI_HINTS", "false")
        .env_remove("DOCKER_CONTEXT")
        .stdin(Stdio::null())
        .output()
        .expect("run docker")
}

fn docker_ok(host: &str, args: &[&str]) -> String {
    let out = docker(host, args);
    assert!(
        out.status.success(),
        "docker {} (DOCKER_HOST={host}) failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// IDs of the engine's containers with `label`, running only or all.
fn containers(label: &str, all: bool) -> Vec<String> {
    let filter = format!("label={label}");
    let mut args = vec!["ps", "-q", "--no-trunc", "--filter", &filter];
    if all {
        args.push("-a");
    }
    docker_ok(ENGINE, &args).lines().map(str::to_string).collect()
}

fn until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < LIMIT, "timed out after {LIMIT:?} waiting for {what}");
        thread::sleep(Duration::from_millis(25));
    }
}

/// Runs `f` on every item at once, each on its own thread.
fn in_parallel<T: Send>(items: Vec<T>, f: impl Fn(T) + Sync) {
    thread::scope(|s| {
        for item in items {
            let f = &f;
            s.spawn(move || f(item));
        }
    });
}

/// The engine's swarm mode, left when dropped.
struct PeerSwarm;

impl PeerSwarm {
    fn start() -> Self {
        let mark = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(MARK);
        let state = docker_ok(ENGINE, &["info", "--format", "{{.Swarm.LocalNodeState}}"]);
        if state != "inactive" {
            let id = docker_ok(ENGINE, &["info", "--format", "{{.Swarm.Cluster.ID}}"]);
            let ours = fs::read_to_string(&mark).map(|m| m.trim() == id).unwrap_or(false);
            assert!(
                ours,
                "the Docker engine is already in a swarm (state {state:?}, cluster {id:?}) that this harness did not \
                 create; refusing to touch it (leave it with `docker swarm leave --force` if it is yours to end)"
            );
            docker_ok(ENGINE, &["swarm", "leave", "--force"]);
        }
        let listen = format!("127.0.0.1:{}", free_port());
        docker_ok(
            ENGINE,
            &[
                "swarm",
                "init",
                "--advertise-addr",
                "127.0.0.1",
                "--listen-addr",
                &listen,
            ],
        );
        let id = docker_ok(ENGINE, &["info", "--format", "{{.Swarm.Cluster.ID}}"]);
        if let Some(dir) = mark.parent() {
            let _ = fs::create_dir_all(dir);
        }
        let _ = fs::write(&mark, id);
        Self
    }
}

impl Drop for PeerSwarm {
    fn drop(&mut self) {
        let _ = docker(ENGINE, &["swarm", "leave", "--force"]);
        let _ = fs::remove_file(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(MARK));
    }
}

/// Removes the floor's containers however the run ends.
struct FloorContainers;

impl Drop for FloorContainers {
    fn drop(&mut self) {
        let ids = containers("swarm-bench.floor", true);
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids.iter().map(String::as_str));
            let _ = docker(ENGINE, &args);
        }
    }
}

/// The scenarios' times in seconds, in [`SCENARIOS`] order.
type Times = [f64; 5];

const SCENARIOS: [&str; 5] = [
    "create 20 replicas, until all run",
    "scale 20→40",
    "rolling update of 40 (parallelism 5)",
    "replace a killed container (restart delay 1 s)",
    "remove the service, until its containers are gone",
];

/// The engine's container events, read by one `docker events` process for the whole run, so
/// that waiting costs the engine nothing (polling `docker ps` would load the engine that the
/// systems under test are using, and the floor would not pay it).
struct Events {
    child: std::process::Child,
    seen: Seen,
}

/// (when read, action, container ID, service name) of every container event so far.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(Instant, String, String, String)>>>;

impl Events {
    fn start() -> Self {
        use std::io::BufRead;
        let mut child = Command::new("docker")
            .args([
                "events",
                "--filter",
                "type=container",
                "--format",
                "{{.Action}} {{.Actor.ID}} {{index .Actor.Attributes \"com.docker.swarm.service.name\"}}",
            ])
            .env("DOCKER_HOST", ENGINE)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker events");
        let out = child.stdout.take().expect("docker events' output");
        let seen: Seen = Default::default();
        let sink = seen.clone();
        thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let mut f = line.split_whitespace();
                let (Some(action), Some(id)) = (f.next(), f.next()) else {
                    continue;
                };
                let service = f.next().unwrap_or("").to_string();
                sink.lock()
                    .unwrap()
                    .push((Instant::now(), action.to_string(), id.to_string(), service));
            }
        });
        // The stream is live once the engine has sent an event of a container made for it.
        let probe = docker_ok(ENGINE, &["create", "--label", "swarm-bench.probe=1", IMAGE, "true"]);
        let events = Self { child, seen };
        events.wait("the event stream", || {
            events.count("create", |id, _| id == probe, Instant::now() - LIMIT) > 0
        });
        docker_ok(ENGINE, &["rm", "-f", &probe]);
        events
    }

    /// Events `action` since `since` whose (container ID, service name) satisfy `which`.
    fn count(&self, action: &str, which: impl Fn(&str, &str) -> bool, since: Instant) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, a, id, svc)| *at >= since && a == action && which(id, svc))
            .count()
    }

    fn wait(&self, what: &str, mut done: impl FnMut() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(start.elapsed() < LIMIT, "timed out after {LIMIT:?} waiting for {what}");
            thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The five scenarios through the docker CLI against `host`, on service `name`. Each ends when
/// the engine reports the last container event it waits for (a start, or a destroy).
fn run_system(events: &Events, host: &str, name: &str) -> Times {
    let label = format!("com.docker.swarm.service.name={name}");
    let ours = |_: &str, svc: &str| svc == name;
    let starts_since = |since: Instant| events.count("start", ours, since);

    let start = Instant::now();
    let mut args = vec!["service", "create", "-d", "-q", "--name", name, "--replicas", "20"];
    args.extend_from_slice(SERVICE_FLAGS);
    args.extend_from_slice(&[IMAGE, "sleep", "1000000"]);
    docker_ok(host, &args);
    events.wait("20 started containers", || starts_since(start) >= 20);
    let create = start.elapsed().as_secs_f64();

    let start = Instant::now();
    docker_ok(host, &["service", "scale", "-d", &format!("{name}=40")]);
    events.wait("20 more started containers", || starts_since(start) >= 20);
    let scale = start.elapsed().as_secs_f64();

    let start = Instant::now();
    docker_ok(
        host,
        &["service", "update", "-d", "-q", "--env-add", "BENCH_ROUND=2", name],
    );
    events.wait("40 started containers of the update", || starts_since(start) >= 40);
    // Then the monitor period: the update is done when the service says so.
    until("the update completed", || {
        docker_ok(host, &["service", "inspect", "-f", "{{.UpdateStatus.State}}", name]) == "completed"
    });
    let update = start.elapsed().as_secs_f64();
    assert_eq!(
        containers(&label, false).len(),
        40,
        "40 running containers after the update"
    );

    let victim = containers(&label, false)
        .into_iter()
        .next()
        .expect("a running container");
    let start = Instant::now();
    docker_ok(ENGINE, &["kill", &victim]);
    events.wait("a replacement of the killed container", || starts_since(start) >= 1);
    let replace = start.elapsed().as_secs_f64();

    let all = containers(&label, true).len();
    let start = Instant::now();
    docker_ok(host, &["service", "rm", name]);
    events.wait("every container of the removed service destroyed", || {
        events.count("destroy", ours, start) >= all
    });
    let remove = start.elapsed().as_secs_f64();
    until("no container of the removed service", || {
        containers(&label, true).is_empty()
    });

    [create, scale, update, replace, remove]
}

/// The same container work done directly on the engine.
fn run_floor(round: usize) -> Times {
    let label = format!("swarm-bench.floor={round}");
    let run_one = |_: usize| {
        docker_ok(
            ENGINE,
            &["run", "-d", "--init", "--label", &label, IMAGE, "sleep", "1000000"],
        );
    };

    let start = Instant::now();
    in_parallel((0..20).collect(), run_one);
    let create = start.elapsed().as_secs_f64();

    let start = Instant::now();
    in_parallel((0..20).collect(), run_one);
    let scale = start.elapsed().as_secs_f64();

    let old = containers(&label, false);
    let start = Instant::now();
    for batch in old.chunks(5) {
        in_parallel(batch.to_vec(), |id| {
            docker_ok(ENGINE, &["stop", &id]);
            run_one(0);
        });
    }
    thread::sleep(UPDATE_MONITOR);
    let update = start.elapsed().as_secs_f64();

    let victim = containers(&label, false).into_iter().next().expect("a floor container");
    let start = Instant::now();
    docker_ok(ENGINE, &["kill", &victim]);
    thread::sleep(RESTART_DELAY);
    run_one(0);
    let replace = start.elapsed().as_secs_f64();

    let all = containers(&label, true);
    let start = Instant::now();
    in_parallel(all, |id| {
        docker_ok(ENGINE, &["rm", "-f", &id]);
    });
    let remove = start.elapsed().as_secs_f64();

    [create, scale, update, replace, remove]
}

fn column(runs: &[Times], i: usize) -> Vec<f64> {
    runs.iter().map(|t| t[i]).collect()
}

#[test]
#[ignore = "benchmark: run with make bench-peer"]
fn bench_peer_against_docker_swarm() {
    ensure_test_image();
    let _floor_cleanup = FloorContainers;
    let _peer = PeerSwarm::start();
    let mut cluster = Cluster::docker();
    let m1 = cluster.init("m1", &["--hostname", "bench"]);
    let ours = cluster.nodes[m1].host();
    let events = Events::start();

    // One unmeasured round of each first: the first service of a fresh cluster, and the
    // engine's first containers of a run, are slower for reasons neither system controls.
    run_system(&events, &ours, "bench-rs-warmup");
    run_system(&events, ENGINE, "bench-swarm-warmup");
    run_floor(ROUNDS);

    let (mut rs, mut sw, mut floor) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        rs.push(run_system(&events, &ours, &format!("bench-rs-{round}")));
        println!("round {round}: swarm-rs {:?}", rs[round].map(fmt));
        sw.push(run_system(&events, ENGINE, &format!("bench-swarm-{round}")));
        println!("round {round}: Docker Swarm {:?}", sw[round].map(fmt));
        floor.push(run_floor(round));
        println!("round {round}: floor {:?}", floor[round].map(fmt));
    }

    let floors_built = [
        "20 parallel `docker run -d --init`",
        "20 parallel `docker run -d --init`",
        "8 batches of 5 parallel (`docker stop`, then `docker run -d --init`), then the 1 s monitor period",
        "`docker kill`, the 1 s restart delay, one `docker run -d --init`",
        "40 parallel `docker rm -f`",
    ];
    println!();
    println!("| Scenario | swarm-rs | Docker Swarm | floor | swarm-rs / Swarm | swarm-rs / floor |");
    println!("|---|---|---|---|---|---|");
    for (i, scenario) in SCENARIOS.iter().enumerate() {
        let (r, s, f) = (
            median(&column(&rs, i)),
            median(&column(&sw, i)),
            median(&column(&floor, i)),
        );
        println!(
            "| {scenario} | {} s | {} s | {} s | {:.2} | {:.2} |",
            fmt(r),
            fmt(s),
            fmt(f),
            r / s,
            r / f
        );
        record(
            Figure::new(
                GROUP,
                &format!("{scenario}: swarm-rs"),
                "s",
                column(&rs, i),
                Goal::AtMost(s.min(f * 1.15)),
            )
            .note(format!(
                "{:.2}× Swarm, {:.2}× the floor; goal: faster than Swarm and ≤ 1.15× the floor",
                r / s,
                r / f
            )),
        );
        record(Figure::new(
            GROUP,
            &format!("{scenario}: Docker Swarm"),
            "s",
            column(&sw, i),
            Goal::None,
        ));
        record(
            Figure::new(GROUP, &format!("{scenario}: floor"), "s", column(&floor, i), Goal::None).note(floors_built[i]),
        );
    }
}
