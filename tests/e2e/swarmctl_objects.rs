//! `swarmctl secret`, `config`, `network`, `events` and `service logs` against a real cluster:
//! the columns, messages and JSON that docker's commands print.

use std::io::Write;
use std::process::Command;
use std::process::Output;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use swarm_model::TaskState;

use crate::support::Cluster;
use crate::support::LineStream;
use crate::support::SWARMCTL;
use crate::support::eventually;
use crate::support::header;
use crate::support::is_swarm_id;
use crate::support::now_secs;
use crate::support::rows;
use crate::support::tasks_of;
use crate::support::view::TaskView;

const IMAGE: &str = "swarm-test/busybox:latest";

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Asserts that swarmctl failed with exit code 1 and `needle` on stderr.
fn fails(out: Output, what: &str, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what} should fail; stdout: {} stderr: {err}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(err.contains(needle), "{what}: expected {needle:?} in {err:?}");
}

/// docker's fixed-width event time: `2026-12-01T12:00:00.123456789Z`.
fn is_event_time(t: &str) -> bool {
    t.len() == 30 && t.ends_with('Z') && t.as_bytes()[19] == b'.' && t[20..29].chars().all(|c| c.is_ascii_digit())
}

#[tokio::test(flavor = "multi_thread")]
async fn swarmctl_secrets_configs_networks_and_events() {
    let mut c = Cluster::new();
    let m1 = c.init("m1", &["--hostname", "m1"]);
    let files = tempfile::tempdir().expect("tempdir");
    let secret_file = files.path().join("secret.txt");
    let conf_file = files.path().join("app.conf");
    std::fs::write(&secret_file, "s3cret").expect("write the secret file");
    std::fs::write(&conf_file, "listen 80\n").expect("write the config file");
    let secret_path = secret_file.to_string_lossy().into_owned();
    let conf_path = conf_file.to_string_lossy().into_owned();
    let start = now_secs();

    eprintln!("--- secrets");
    let id = c
        .ctl_ok(
            m1,
            &["secret", "create", "--label", "team=db", "ctl-db-pass", &secret_path],
        )
        .trim()
        .to_string();
    assert!(is_swarm_id(&id), "secret create prints the ID: {id:?}");
    fails(
        c.ctl(m1, &["secret", "create", "ctl-db-pass", &secret_path]),
        "a second secret of the same name",
        "ctl-db-pass",
    );
    fails(
        c.ctl(m1, &["secret", "create", "ctl-x", "/nonexistent/file"]),
        "a secret from a missing file",
        "error reading from /nonexistent/file",
    );
    let mut child = Command::new(SWARMCTL)
        .args(["-H", &c.nodes[m1].host(), "secret", "create", "ctl-stdin", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn swarmctl");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(b"from stdin")
        .expect("write stdin");
    let out = child.wait_with_output().expect("swarmctl secret create -");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdin_id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(is_swarm_id(&stdin_id), "{stdin_id:?}");

    let ls = c.ctl_ok(m1, &["secret", "ls"]);
    assert_eq!(header(&ls), ["ID", "NAME", "DRIVER", "CREATED", "UPDATED"], "{ls}");
    let r = rows(&ls);
    assert_eq!(r.len(), 2, "{ls}");
    assert_eq!(
        r[0][..2],
        [id.clone(), "ctl-db-pass".to_string()],
        "sorted by name: {ls}"
    );
    assert_eq!(r[1][..2], [stdin_id.clone(), "ctl-stdin".to_string()], "{ls}");
    assert!(r[0][2].ends_with(" ago") && r[0][3].ends_with(" ago"), "{ls}");
    assert_eq!(
        c.ctl_ok(m1, &["secret", "ls", "-q", "--filter", "label=team=db"])
            .trim(),
        id
    );
    assert_eq!(c.ctl_ok(m1, &["secret", "ls", "-q", "--filter", "label=team=web"]), "");
    let listed = json(&c.ctl_ok(m1, &["secret", "ls", "--format", "json", "--filter", "name=ctl-db"]));
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["ID"], id.as_str());
    fails(
        c.ctl(m1, &["secret", "ls", "--filter", "nonsense"]),
        "a filter without =",
        "expected key=value",
    );
    let inspected = json(&c.ctl_ok(m1, &["secret", "inspect", "ctl-db-pass", &stdin_id]));
    assert_eq!(inspected.as_array().map(Vec::len), Some(2), "{inspected}");
    assert_eq!(inspected[0]["ID"], id.as_str());
    assert_eq!(inspected[0]["Spec"]["Name"], "ctl-db-pass");
    assert_eq!(inspected[0]["Spec"]["Labels"]["team"], "db");
    assert!(inspected[0]["Spec"].get("Data").is_none(), "secret data is never shown");
    assert_eq!(inspected[1]["Spec"]["Name"], "ctl-stdin");
    fails(
        c.ctl(m1, &["secret", "inspect", "ctl-nosuch"]),
        "inspect of a missing secret",
        "ctl-nosuch",
    );
    assert_eq!(
        c.ctl_ok(m1, &["secret", "rm", "ctl-db-pass", "ctl-stdin"]),
        "ctl-db-pass\nctl-stdin\n"
    );
    fails(
        c.ctl(m1, &["secret", "rm", "ctl-db-pass"]),
        "rm of a removed secret",
        "could not remove: ctl-db-pass",
    );
    assert_eq!(c.ctl_ok(m1, &["secret", "ls", "-q"]), "");

    eprintln!("--- configs");
    let conf_id = c
        .ctl_ok(m1, &["config", "create", "-l", "app=web", "ctl-app-conf", &conf_path])
        .trim()
        .to_string();
    assert!(is_swarm_id(&conf_id), "{conf_id:?}");
    let ls = c.ctl_ok(m1, &["config", "ls"]);
    assert_eq!(header(&ls), ["ID", "NAME", "CREATED", "UPDATED"], "{ls}");
    let r = rows(&ls);
    assert_eq!(r.len(), 1, "{ls}");
    assert_eq!(r[0][..2], [conf_id.clone(), "ctl-app-conf".to_string()], "{ls}");
    let listed = json(&c.ctl_ok(m1, &["config", "ls", "--format", "json"]));
    assert_eq!(listed[0]["ID"], conf_id.as_str(), "{listed}");
    assert_eq!(listed[0]["Spec"]["Labels"]["app"], "web", "{listed}");
    let inspected = json(&c.ctl_ok(m1, &["config", "inspect", "ctl-app-conf"]));
    assert_eq!(inspected[0]["ID"], conf_id.as_str(), "{inspected}");
    // Config data is shown, base64 as in the Engine API.
    assert_eq!(inspected[0]["Spec"]["Data"], "bGlzdGVuIDgwCg==", "{inspected}");
    fails(
        c.ctl(m1, &["config", "ls", "--format", "yaml"]),
        "an unknown format",
        "unknown --format",
    );
    assert_eq!(c.ctl_ok(m1, &["config", "rm", &conf_id]), format!("{conf_id}\n"));
    assert_eq!(c.ctl_ok(m1, &["config", "ls", "-q"]), "");

    eprintln!("--- networks");
    let net_id = c
        .ctl_ok(
            m1,
            &[
                "network",
                "create",
                "-d",
                "overlay",
                "--attachable",
                "--label",
                "team=front",
                "ctl-front",
            ],
        )
        .trim()
        .to_string();
    assert!(is_swarm_id(&net_id), "network create prints the ID: {net_id:?}");
    fails(
        c.ctl(m1, &["network", "create", "-d", "bridge", "ctl-bridge"]),
        "a bridge network",
        "network driver \"bridge\" is not supported",
    );
    fails(
        c.ctl(m1, &["network", "create", "ctl-front"]),
        "a second network of the same name",
        "ctl-front",
    );
    let ls = c.ctl_ok(m1, &["network", "ls"]);
    assert_eq!(header(&ls), ["NETWORK ID", "NAME", "DRIVER", "SCOPE"], "{ls}");
    let row = rows(&ls)
        .into_iter()
        .find(|r| r.get(1).map(String::as_str) == Some("ctl-front"))
        .unwrap_or_else(|| panic!("ctl-front is listed: {ls}"));
    assert_eq!(row, [&net_id[..12], "ctl-front", "overlay", "swarm"], "{ls}");
    assert_eq!(
        c.ctl_ok(m1, &["network", "ls", "-q", "--filter", "name=ctl-front"])
            .trim(),
        &net_id[..12]
    );
    let listed = json(&c.ctl_ok(
        m1,
        &["network", "ls", "--format", "json", "--filter", "label=team=front"],
    ));
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["Id"], net_id.as_str());
    let inspected = json(&c.ctl_ok(m1, &["network", "inspect", "ctl-front"]));
    assert_eq!(inspected[0]["Id"], net_id.as_str(), "{inspected}");
    assert_eq!(inspected[0]["Attachable"], true, "{inspected}");
    assert_eq!(inspected[0]["Internal"], false, "{inspected}");
    assert_eq!(inspected[0]["Labels"]["team"], "front", "{inspected}");
    assert_eq!(c.ctl_ok(m1, &["network", "rm", "ctl-front"]), "ctl-front\n");
    assert_eq!(c.ctl_ok(m1, &["network", "ls", "-q", "--filter", "name=ctl-front"]), "");

    eprintln!("--- events of the past window");
    let until = now_secs() + 1;
    let window = [
        "--since".to_string(),
        start.to_string(),
        "--until".to_string(),
        until.to_string(),
    ];
    let mut args: Vec<&str> = vec!["events"];
    args.extend(window.iter().map(String::as_str));
    args.extend(["--filter", "type=secret"]);
    let history = c.ctl_ok(m1, &args);
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(lines.len(), 4, "two creates and two removes: {history}");
    let expected = [
        ("create", &id, "ctl-db-pass"),
        ("create", &stdin_id, "ctl-stdin"),
        ("remove", &id, "ctl-db-pass"),
        ("remove", &stdin_id, "ctl-stdin"),
    ];
    for (line, (action, id, name)) in lines.iter().zip(expected) {
        let (time, rest) = line.split_once(' ').unwrap_or_default();
        assert!(is_event_time(time), "{line}");
        assert_eq!(rest, format!("secret {action} {id} (name={name})"), "{history}");
    }
    let mut args: Vec<&str> = vec!["events"];
    args.extend(window.iter().map(String::as_str));
    args.extend([
        "--filter",
        "type=network",
        "--filter",
        "network=ctl-front",
        "--format",
        "json",
    ]);
    let history = c.ctl_ok(m1, &args);
    let events: Vec<Value> = history.lines().map(json).collect();
    let actions: Vec<&str> = events.iter().filter_map(|e| e["Action"].as_str()).collect();
    assert_eq!(actions, ["create", "remove"], "{history}");
    assert!(
        events
            .iter()
            .all(|e| e["Type"] == "network" && e["Actor"]["ID"] == net_id.as_str()),
        "{history}"
    );
    fails(
        c.ctl(m1, &["events", "--format", "table"]),
        "events in a table",
        "unknown --format",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn swarmctl_service_logs() {
    let mut c = Cluster::docker();
    let m1 = c.init("m1", &["--hostname", "m1"]);
    c.ctl_ok(
        m1,
        &[
            "service",
            "create",
            "--name",
            "ctl-talk",
            "--replicas",
            "2",
            IMAGE,
            "sh",
            "-c",
            "i=0; while true; do echo line $i; i=$((i+1)); sleep 1; done",
        ],
    );

    eprintln!("--- service logs");
    let logs = eventually("3 lines from each replica", Duration::from_secs(90), || async {
        let out = c.ctl(m1, &["service", "logs", "ctl-talk"]);
        let out = String::from_utf8_lossy(&out.stdout).into_owned();
        let ok = ["ctl-talk.1.", "ctl-talk.2."]
            .iter()
            .all(|p| out.lines().filter(|l| l.starts_with(p)).count() >= 3);
        ok.then_some(out)
    })
    .await;
    for l in logs.lines() {
        let (prefix, msg) = l
            .split_once("    | ")
            .unwrap_or_else(|| panic!("{l:?} has a task prefix"));
        let (name, node) = prefix.split_once('@').unwrap_or_else(|| panic!("{l:?}: name@node"));
        assert_eq!(node, "m1", "the node's hostname: {l}");
        let parts: Vec<&str> = name.split('.').collect();
        assert_eq!(parts.len(), 3, "service.slot.task: {l}");
        assert_eq!(parts[0], "ctl-talk", "{l}");
        assert!(parts[1] == "1" || parts[1] == "2", "{l}");
        assert_eq!(parts[2].len(), 12, "a short task ID: {l}");
        assert!(msg.starts_with("line "), "{l}");
    }

    let raw = c.ctl_ok(m1, &["service", "logs", "--raw", "ctl-talk"]);
    assert!(!raw.is_empty());
    assert!(
        raw.lines().all(|l| l.starts_with("line ")),
        "--raw has no prefixes: {raw}"
    );

    let ts = c.ctl_ok(m1, &["service", "logs", "--timestamps", "--tail", "1", "ctl-talk"]);
    let ts_lines: Vec<&str> = ts.lines().collect();
    assert_eq!(ts_lines.len(), 2, "--tail 1 gives one line per task: {ts}");
    for l in &ts_lines {
        let (stamp, rest) = l.split_once(' ').unwrap_or_default();
        assert!(stamp.contains('T') && stamp.ends_with('Z'), "{l}");
        assert!(rest.starts_with("ctl-talk.") && rest.contains(" | line "), "{l}");
    }
    let none = c.ctl_ok(m1, &["service", "logs", "--since", "2099-01-01T00:00:00Z", "ctl-talk"]);
    assert_eq!(none, "", "--since in the future gives nothing");

    let tasks = tasks_of(&c, m1, "ctl-talk").await.expect("tasks of ctl-talk");
    let task = tasks
        .iter()
        .find(|t| t.slot() == 1 && t.state() == TaskState::Running)
        .and_then(|t| t["ID"].as_str())
        .unwrap_or_else(|| panic!("a running task in slot 1: {tasks:?}"))
        .to_string();
    let one = c.ctl_ok(m1, &["service", "logs", "--tail", "2", &task]);
    assert_eq!(one.lines().count(), 2, "{one}");
    let short = &task[..12];
    assert!(
        one.lines()
            .all(|l| l.starts_with(&format!("ctl-talk.1.{short}@m1    | line "))),
        "a task's logs: {one}"
    );
    fails(
        c.ctl(m1, &["service", "logs", "ctl-nosuch"]),
        "logs of nothing",
        "no such task or service: ctl-nosuch",
    );

    eprintln!("--- service logs -f streams new lines");
    let follow = {
        let mut cmd = Command::new(SWARMCTL);
        cmd.args([
            "-H",
            &c.nodes[m1].host(),
            "service",
            "logs",
            "-f",
            "--tail",
            "0",
            "ctl-talk",
        ])
        .stdin(Stdio::null());
        LineStream::spawn(cmd)
    };
    let streamed = follow.until(Duration::from_secs(30), "followed lines from both replicas", |l| {
        ["ctl-talk.1.", "ctl-talk.2."]
            .iter()
            .all(|p| l.iter().filter(|x| x.starts_with(p)).count() >= 2)
    });
    assert!(streamed.iter().all(|l| l.contains("@m1    | line ")), "{streamed:?}");
    drop(follow);

    assert_eq!(c.ctl_ok(m1, &["service", "rm", "ctl-talk"]), "ctl-talk\n");
}

/// The subnet of each network of a `network inspect`.
fn subnets_of(nets: &Value) -> Vec<&str> {
    nets.as_array()
        .into_iter()
        .flatten()
        .map(|n| n["IPAM"]["Config"][0]["Subnet"].as_str().unwrap_or_default())
        .collect()
}

/// The address pool is chosen when the cluster is made: ingress and later networks take their
/// subnets from it, and a pool that cannot work stops `swarmd init` with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_pool_is_set_when_the_cluster_is_made() {
    let refused = |args: &[&str]| {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = Command::new(crate::support::SWARMD)
            .arg("--data-dir")
            .arg(dir.path())
            .args(["init", "--listen-addr", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run swarmd");
        assert!(!out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let err = refused(&["--default-addr-pool", "172.30.0.1/16"]);
    assert!(
        err.contains("--default-addr-pool: invalid subnet \"172.30.0.1/16\": host bits are set"),
        "{err}"
    );
    let err = refused(&[
        "--default-addr-pool",
        "172.30.0.0/16",
        "--default-addr-pool-mask-length",
        "12",
    ]);
    assert!(
        err.contains("subnet size /12 does not fit in address pool 172.30.0.0/16"),
        "{err}"
    );

    let mut c = Cluster::new();
    let m1 = c.init(
        "m1",
        &[
            "--default-addr-pool",
            "172.30.0.0/16",
            "--default-addr-pool-mask-length",
            "26",
        ],
    );
    c.ctl_ok(
        m1,
        &[
            "network",
            "create",
            "--subnet",
            "192.168.77.0/24",
            "--opt",
            "x=1",
            "asked",
        ],
    );
    c.ctl_ok(m1, &["network", "create", "pooled"]);
    let nets: Value = serde_json::from_str(&c.ctl_ok(m1, &["network", "inspect", "ingress", "asked", "pooled"]))
        .expect("inspect JSON");
    let subnets = subnets_of(&nets);
    assert_eq!(
        subnets,
        ["172.30.0.0/26", "192.168.77.0/24", "172.30.0.64/26"],
        "{nets}"
    );
    assert_eq!(nets[1]["Options"]["x"], "1", "{nets}");
    let out = c.ctl(m1, &["network", "create", "--subnet", "172.30.0.0/24", "clash"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("network clash: subnet 172.30.0.0/24 overlaps 172.30.0.0/26"),
        "{err}"
    );
    let out = c.ctl(m1, &["network", "connect", "pooled", "some-container"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("network pooled not manually attachable"), "{err}");
}

/// Subnets picked from the pool stay clear of the networks the nodes use themselves: here a
/// manager on a host of its own whose interface is also on 172.17.0.0/16, inside the pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_subnets_avoid_the_hosts_own_networks() {
    let Some(hosts) = crate::support::hosts::Hosts::new("p", 1) else {
        return;
    };
    hosts.add_address(1, "172.17.0.7/16");
    let mut c = Cluster::new();
    let m1 = c.init_in(
        "m1",
        &hosts.ns(1),
        "198.18.0.1:2377",
        &[
            "--default-addr-pool",
            "172.16.0.0/12",
            "--default-addr-pool-mask-length",
            "16",
        ],
    );
    for name in ["a", "b", "c"] {
        c.ctl_ok(m1, &["network", "create", name]);
    }
    let nets: Value =
        serde_json::from_str(&c.ctl_ok(m1, &["network", "inspect", "ingress", "a", "b", "c"])).expect("inspect JSON");
    assert_eq!(
        subnets_of(&nets),
        ["172.16.0.0/16", "172.18.0.0/16", "172.19.0.0/16", "172.20.0.0/16"],
        "172.17.0.0/16 is the host's own: {nets}"
    );
}
