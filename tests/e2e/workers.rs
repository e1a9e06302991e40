//! Workers running real containers on the local Docker engine. Every node shares the engine;
//! the `com.docker.swarm.node.id` label tells their containers apart.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use serde_json::json;
use swarm_model::NodeState;
use swarm_model::TaskState;

use crate::support::Cluster;
use crate::support::containers_of_service;
use crate::support::eventually;
use crate::support::tasks_of;
use crate::support::view::NodeView;
use crate::support::view::TaskView;

const IMAGE: &str = "swarm-test/busybox:latest";

/// A spec for `POST /services/create` that stops quickly (busybox `sleep` ignores SIGTERM).
fn spec(name: &str, replicas: u64, args: &[&str]) -> Value {
    json!({
        "Name": name,
        "TaskTemplate": {
            "ContainerSpec": { "Image": IMAGE, "Args": args, "StopGracePeriod": 1_000_000_000i64 },
            "RestartPolicy": { "Condition": "any", "Delay": 1_000_000_000i64 }
        },
        "Mode": { "Replicated": { "Replicas": replicas } }
    })
}

fn running_on(c: &Cluster, service: &str) -> HashMap<String, usize> {
    let names: HashMap<String, String> = c
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| {
            std::fs::read_to_string(n.data_dir.join("node.json")).ok()?;
            Some((c.node_id(i), n.name.clone()))
        })
        .collect();
    let mut per = HashMap::new();
    for (_, node, running) in containers_of_service(service) {
        if running {
            *per.entry(names.get(&node).cloned().unwrap_or(node)).or_insert(0) += 1;
        }
    }
    per
}

/// One manager (drained) and two workers: four replicas run as four containers, two per
/// worker, `service ps` shows them Running with node names; killing a worker moves its two
/// tasks to the other worker in the same slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_spread_over_workers_and_move_when_a_worker_dies() {
    let mut c = Cluster::docker();
    let m = c.init("m1", &["--availability", "drain"]);
    let wt = c.token(m, "worker");
    let w1 = c.join("w1", &wt, m);
    let w2 = c.join("w2", &wt, m);
    eventually("both workers ready", Duration::from_secs(30), || {
        let out = c.ctl_ok(m, &["node", "ls"]);
        async move { (out.lines().filter(|l| l.contains("Ready")).count() == 3).then_some(()) }
    })
    .await;

    let id = c.ctl_ok(
        m,
        &[
            "service",
            "create",
            "--name",
            "web",
            "--replicas",
            "4",
            IMAGE,
            "sleep",
            "3600",
        ],
    );
    assert_eq!(id.trim().len(), 25, "service create prints the ID: {id}");
    let per = eventually(
        "four running containers, two per worker",
        Duration::from_secs(60),
        || {
            let per = running_on(&c, "web");
            async move { (per.get("w1") == Some(&2) && per.get("w2") == Some(&2)).then_some(per) }
        },
    )
    .await;
    assert!(!per.contains_key("m1"), "the drained manager runs nothing: {per:?}");
    let ps = eventually("service ps shows four running tasks", Duration::from_secs(30), || {
        let out = c.ctl_ok(m, &["service", "ps", "web"]);
        async move {
            (out.lines()
                .filter(|l| l.contains("Running") && l.contains("Running "))
                .count()
                == 4)
                .then_some(out)
        }
    })
    .await;
    for slot in 1..=4 {
        assert!(ps.contains(&format!("web.{slot} ")), "{ps}");
    }
    assert!(
        ps.contains(" w1 ") && ps.contains(" w2 "),
        "node names are shown:\n{ps}"
    );

    // Phase: kill -9 a worker. Its node goes Down and its two tasks come back on the other.
    let before = tasks_of(&c, m, "web").await.unwrap();
    let w1_id = c.node_id(w1);
    let w1_slots: Vec<u64> = before
        .iter()
        .filter(|t| t.node_id() == w1_id)
        .map(|t| t.slot())
        .collect();
    assert_eq!(w1_slots.len(), 2);
    c.kill(w1);
    eventually("w1 is Down in node ls", Duration::from_secs(30), || {
        let out = c.ctl_ok(m, &["node", "ls"]);
        async move {
            out.lines()
                .any(|l| l.contains(" w1 ") && l.contains("Down"))
                .then_some(())
        }
    })
    .await;
    let w2_id = c.node_id(w2);
    let tasks = eventually("w1's slots run on w2", Duration::from_secs(30), || {
        let (c, w2_id, slots) = (&c, w2_id.clone(), w1_slots.clone());
        async move {
            let tasks = tasks_of(c, m, "web").await?;
            let moved = slots.iter().all(|slot| {
                tasks.iter().any(|t| {
                    t.slot() == *slot
                        && t.node_id() == w2_id
                        && t.state() == TaskState::Running
                        && t.desired() == TaskState::Running
                })
            });
            moved.then_some(tasks)
        }
    })
    .await;
    // The old tasks stay in their slots' history, told to shut down.
    for slot in &w1_slots {
        let old: Vec<&Value> = tasks
            .iter()
            .filter(|t| t.slot() == *slot && t.node_id() == w1_id)
            .collect();
        assert_eq!(old.len(), 1);
        assert_eq!(old[0]["DesiredState"], "shutdown");
    }
    let per = running_on(&c, "web");
    assert_eq!(per.get("w2"), Some(&4), "{per:?}");
}

/// Managers take tasks too unless drained, as in Swarm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managers_run_tasks_unless_drained() {
    let mut c = Cluster::docker();
    let m = c.init("m1", &[]);
    let wt = c.token(m, "worker");
    c.join("w1", &wt, m);
    c.join("w2", &wt, m);
    let _: Value = c.nodes[m]
        .client()
        .post("/services/create", &spec("spread", 3, &["sleep", "3600"]))
        .await
        .unwrap();
    let per = eventually("one task per node", Duration::from_secs(60), || {
        let per = running_on(&c, "spread");
        async move { (per.len() == 3 && per.values().all(|n| *n == 1)).then_some(per) }
    })
    .await;
    assert!(per.contains_key("m1"), "{per:?}");
}

/// `docker kill` makes the task FAILED with the exit code, and a replacement runs; a task that
/// exits 0 under on-failure stays COMPLETE; a missing image gives REJECTED tasks with the
/// engine's message, retried only after the restart delay; `service rm` removes the containers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_lifecycle_follows_swarm() {
    let mut c = Cluster::docker();
    let m = c.init("m1", &[]);
    let client = c.nodes[m].client();

    // Phase: container death.
    let _: Value = client
        .post("/services/create", &spec("victim", 1, &["sleep", "3600"]))
        .await
        .unwrap();
    let first = eventually("victim running", Duration::from_secs(60), || {
        let c = &c;
        async move {
            let t = tasks_of(c, m, "victim").await?;
            t.iter().find(|t| t.state() == TaskState::Running).cloned()
        }
    })
    .await;
    let container = first["Status"]["ContainerStatus"]["ContainerID"]
        .as_str()
        .unwrap()
        .to_string();
    let out = std::process::Command::new("docker")
        .args(["kill", &container])
        .output()
        .unwrap();
    assert!(out.status.success());
    let first_id = first["ID"].as_str().unwrap().to_string();
    let tasks = eventually("a replacement runs after the kill", Duration::from_secs(30), || {
        let (c, first_id) = (&c, first_id.clone());
        async move {
            let t = tasks_of(c, m, "victim").await?;
            let old_failed = t.iter().any(|x| x.id() == first_id && x.state() == TaskState::Failed);
            let new_running = t.iter().any(|x| x.id() != first_id && x.state() == TaskState::Running);
            (old_failed && new_running).then_some(t)
        }
    })
    .await;
    let old = tasks.iter().find(|x| x.id() == first_id).unwrap();
    assert_eq!(old["Status"]["Err"], "task: non-zero exit (137)");
    assert_eq!(old["DesiredState"], "shutdown");
    let new = tasks.iter().find(|x| x.id() != first_id).unwrap();
    assert_eq!(new["Slot"], old["Slot"], "the replacement takes the same slot");

    // Phase: a clean exit under on-failure is not restarted.
    let mut once = spec("once", 1, &["true"]);
    once["TaskTemplate"]["RestartPolicy"]["Condition"] = "on-failure".into();
    let _: Value = client.post("/services/create", &once).await.unwrap();
    eventually("the task completes", Duration::from_secs(60), || {
        let c = &c;
        async move {
            let t = tasks_of(c, m, "once").await?;
            (t.len() == 1 && t[0].state() == TaskState::Complete).then_some(())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await; // well past the 1 s restart delay
    let t = tasks_of(&c, m, "once").await.unwrap();
    assert_eq!(t.len(), 1, "not restarted: {t:?}");
    assert_eq!(t[0].state(), TaskState::Complete);
    let svc: Vec<Value> = client.get("/services?status=true").await.unwrap();
    let once_status = svc.iter().find(|s| s["Spec"]["Name"] == "once").unwrap();
    assert_eq!(once_status["ServiceStatus"]["CompletedTasks"], 1);

    // Phase: a missing image is REJECTED with the engine's message, and retried slowly.
    let mut missing = spec("missing", 1, &["true"]);
    missing["TaskTemplate"]["ContainerSpec"]["Image"] = "swarm-test/does-not-exist:latest".into();
    missing["TaskTemplate"]["RestartPolicy"]["Delay"] = 2_000_000_000i64.into();
    let _: Value = client.post("/services/create", &missing).await.unwrap();
    let rejected = eventually("a rejected task", Duration::from_secs(60), || {
        let c = &c;
        async move {
            let t = tasks_of(c, m, "missing").await?;
            t.iter().find(|t| t.state() == TaskState::Rejected).cloned()
        }
    })
    .await;
    let err = rejected["Status"]["Err"].as_str().unwrap();
    let engine = std::process::Command::new("docker")
        .args(["pull", "swarm-test/does-not-exist:latest"])
        .output()
        .unwrap();
    let engine_err = String::from_utf8_lossy(&engine.stderr).to_string();
    assert!(!err.is_empty());
    assert!(
        engine_err.contains(err) || err.contains("does-not-exist") || err.contains("registry"),
        "task error {err:?} should be the engine's message ({engine_err:?})"
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    let t = tasks_of(&c, m, "missing").await.unwrap();
    assert!(
        t.len() <= 6,
        "retries wait for the restart delay, got {} tasks in ~8 s",
        t.len()
    );

    // Phase: removing a service removes all its containers.
    assert!(!containers_of_service("victim").is_empty());
    c.ctl_ok(m, &["service", "rm", "victim", "once", "missing"]);
    for svc in ["victim", "once", "missing"] {
        eventually("the service's containers are gone", Duration::from_secs(30), || {
            let left = containers_of_service(svc);
            async move { left.is_empty().then_some(()) }
        })
        .await;
    }
    eventually(
        "the removed services' tasks are deleted",
        Duration::from_secs(30),
        || {
            let client = client.clone();
            async move {
                let t: Vec<Value> = client.get("/tasks").await.ok()?;
                t.is_empty().then_some(())
            }
        },
    )
    .await;
}

/// A worker restarted while its containers run adopts them: no duplicates, same containers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_worker_adopts_its_containers() {
    let mut c = Cluster::docker();
    let m = c.init("m1", &["--availability", "drain"]);
    // A long heartbeat period, so the worker is not declared down while it restarts.
    let swarm: Value = c.nodes[m].client().get("/swarm").await.unwrap();
    let mut spec_c = swarm["Spec"].clone();
    spec_c["Dispatcher"]["HeartbeatPeriod"] = 5_000_000_000i64.into();
    let v = swarm["Version"]["Index"].as_u64().unwrap();
    let _: Value = c.nodes[m]
        .client()
        .post(&format!("/swarm/update?version={v}"), &spec_c)
        .await
        .unwrap();
    let wt = c.token(m, "worker");
    let w = c.join("w1", &wt, m);
    let _: Value = c.nodes[m]
        .client()
        .post("/services/create", &spec("steady", 2, &["sleep", "3600"]))
        .await
        .unwrap();
    eventually("two running containers", Duration::from_secs(60), || {
        let n = running_on(&c, "steady").get("w1").copied();
        async move { (n == Some(2)).then_some(()) }
    })
    .await;
    let before = container_ids("steady");
    assert_eq!(before.len(), 2);

    c.kill(w);
    let log_before = c.nodes[w].log_text().len();
    c.restart(w);
    // Wait until the restarted worker has a session again, then give it time to act.
    eventually("the restarted worker opens a session", Duration::from_secs(30), || {
        let log = c.nodes[w].log_text();
        async move {
            log[log_before.min(log.len())..]
                .contains("session opened")
                .then_some(())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        container_ids("steady"),
        before,
        "the same containers, started once: none added or replaced"
    );
    let tasks = tasks_of(&c, m, "steady").await.unwrap();
    assert_eq!(tasks.len(), 2, "no new tasks: {tasks:?}");
    assert!(tasks.iter().all(|t| t.state() == TaskState::Running));
}

/// `(container ID, start time)` of a service's running containers, sorted.
fn container_ids(service: &str) -> Vec<(String, String)> {
    let out = std::process::Command::new("docker")
        .args([
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            &format!("label=com.docker.swarm.service.name={service}"),
        ])
        .output()
        .unwrap();
    let mut v: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|id| {
            let started = std::process::Command::new("docker")
                .args(["inspect", "-f", "{{.State.StartedAt}}", id])
                .output()
                .unwrap();
            (
                id.to_string(),
                String::from_utf8_lossy(&started.stdout).trim().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

/// A healthcheck gates RUNNING: the task counts as running once healthy; an unhealthy one fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthchecks_gate_running() {
    let mut c = Cluster::docker();
    let m = c.init("m1", &[]);
    let client = c.nodes[m].client();
    // Failures during the start period do not count; after it, two failures make it unhealthy.
    let health = |test: &str| {
        json!({ "Test": ["CMD-SHELL", test], "Interval": 500_000_000i64, "Timeout": 1_000_000_000i64,
                "Retries": 2, "StartPeriod": 5_000_000_000i64 })
    };
    let mut good = spec("healthy", 1, &["sh", "-c", "sleep 3; touch /healthy; sleep 3600"]);
    good["TaskTemplate"]["ContainerSpec"]["Healthcheck"] = health("test -f /healthy");
    let mut bad = spec("sick", 1, &["sleep", "3600"]);
    bad["TaskTemplate"]["ContainerSpec"]["Healthcheck"] = health("false");
    bad["TaskTemplate"]["RestartPolicy"]["Condition"] = "none".into();
    let _: Value = client.post("/services/create", &good).await.unwrap();
    let _: Value = client.post("/services/create", &bad).await.unwrap();

    eventually("the healthy task is first starting", Duration::from_secs(30), || {
        let c = &c;
        async move {
            let t = tasks_of(c, m, "healthy").await?;
            t.iter().any(|t| t.state() == TaskState::Starting).then_some(())
        }
    })
    .await;
    eventually("then running once healthy", Duration::from_secs(60), || {
        let c = &c;
        async move {
            let t = tasks_of(c, m, "healthy").await?;
            t.iter().any(|t| t.state() == TaskState::Running).then_some(())
        }
    })
    .await;
    let sick = eventually("the unhealthy task fails", Duration::from_secs(60), || {
        let c = &c;
        async move {
            let t = tasks_of(c, m, "sick").await?;
            t.iter().find(|t| t.state() == TaskState::Failed).cloned()
        }
    })
    .await;
    assert!(sick["Status"]["Err"].as_str().unwrap().contains("unhealthy"), "{sick}");
}

/// The container gets what the spec asks for: env, command and args, user, working dir,
/// hostname, labels, mounts, limits, stop signal and grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_spec_fields_are_honoured() {
    let mut c = Cluster::docker();
    let m = c.init("m1", &[]);
    let dir = c.root.path().join("bind-src");
    std::fs::create_dir_all(&dir).unwrap();
    let spec = json!({
        "Name": "full",
        "Labels": { "tier": "front" },
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": IMAGE,
                "Command": ["sh", "-c"],
                "Args": ["sleep 3600"],
                "Env": ["A=1", "B=two"],
                "User": "1000",
                "Dir": "/srv",
                "Hostname": "h1",
                "Labels": { "extra": "yes" },
                "StopSignal": "SIGUSR1",
                "StopGracePeriod": 2_000_000_000i64,
                "Init": true,
                "ReadOnly": true,
                "CapabilityAdd": ["CAP_NET_ADMIN"],
                "Privileges": {
                    "NoNewPrivileges": true,
                    "Seccomp": { "Mode": "unconfined" },
                    "AppArmor": { "Mode": "disabled" }
                },
                "Mounts": [
                    { "Type": "bind", "Source": dir.to_string_lossy(), "Target": "/data", "ReadOnly": true },
                    { "Type": "volume", "Source": "swarm-e2e-vol", "Target": "/vol" },
                    { "Type": "tmpfs", "Target": "/scratch" }
                ]
            },
            "Resources": { "Limits": { "MemoryBytes": 67_108_864i64, "NanoCPUs": 500_000_000i64, "Pids": 100 } },
            "LogDriver": { "Name": "json-file", "Options": { "max-size": "1m" } }
        },
        "Mode": { "Replicated": { "Replicas": 1 } }
    });
    let _: Value = c.nodes[m].client().post("/services/create", &spec).await.unwrap();
    let task = eventually("the task runs", Duration::from_secs(60), || {
        let c = &c;
        async move {
            let t = tasks_of(c, m, "full").await?;
            t.into_iter().find(|t| t.state() == TaskState::Running)
        }
    })
    .await;
    let container = task.container_id();
    let out = std::process::Command::new("docker")
        .args(["inspect", container])
        .output()
        .unwrap();
    let inspect: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let ci = &inspect[0];
    let task_id = task["ID"].as_str().unwrap();
    assert_eq!(ci["Name"], format!("/full.1.{task_id}"));
    let cfg = &ci["Config"];
    assert_eq!(cfg["Entrypoint"], json!(["sh", "-c"]));
    assert_eq!(cfg["Cmd"], json!(["sleep 3600"]));
    let env: Vec<&str> = cfg["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e.as_str())
        .collect();
    assert!(env.contains(&"A=1") && env.contains(&"B=two"), "{env:?}");
    assert_eq!(cfg["User"], "1000");
    assert_eq!(cfg["WorkingDir"], "/srv");
    assert_eq!(cfg["Hostname"], "h1");
    assert_eq!(cfg["StopSignal"], "SIGUSR1");
    assert_eq!(cfg["StopTimeout"], 2);
    let labels = &cfg["Labels"];
    assert_eq!(labels["extra"], "yes");
    assert_eq!(labels["com.docker.swarm.task.id"], task_id);
    assert_eq!(labels["com.docker.swarm.service.name"], "full");
    assert_eq!(labels["com.docker.swarm.node.id"], c.node_id(m).as_str());
    assert_eq!(labels["com.docker.swarm.task.name"], format!("full.1.{task_id}"));
    let hc = &ci["HostConfig"];
    assert_eq!(hc["Memory"], 67_108_864i64);
    assert_eq!(hc["NanoCpus"], 500_000_000i64);
    assert_eq!(hc["PidsLimit"], 100);
    assert_eq!(hc["Init"], true);
    assert_eq!(hc["ReadonlyRootfs"], true);
    assert_eq!(hc["CapAdd"], json!(["CAP_NET_ADMIN"]));
    // The engine adds its own default options (daemon.json `log-opts`) to the service's.
    assert_eq!(hc["LogConfig"]["Type"], "json-file");
    assert_eq!(hc["LogConfig"]["Config"]["max-size"], "1m");
    let security: Vec<&str> = hc["SecurityOpt"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o.as_str())
        .collect();
    for opt in ["no-new-privileges=true", "seccomp=unconfined", "apparmor=unconfined"] {
        assert!(security.contains(&opt), "{opt} in {security:?}");
    }
    let mounts = ci["Mounts"].as_array().unwrap();
    let find = |target: &str| mounts.iter().find(|m| m["Destination"] == target).cloned();
    assert_eq!(find("/data").unwrap()["RW"], false);
    assert_eq!(find("/vol").unwrap()["Type"], "volume");
    assert!(
        hc["Mounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["Type"] == "tmpfs" && m["Target"] == "/scratch")
    );
    c.ctl_ok(m, &["service", "rm", "full"]);

    // Without a log driver of its own, a task gets the cluster's default.
    let client = c.nodes[m].client();
    let swarm: Value = client.get("/swarm").await.unwrap();
    let version = swarm["Version"]["Index"].as_u64().unwrap();
    let mut cluster_spec = swarm["Spec"].clone();
    cluster_spec["TaskDefaults"] = json!({"LogDriver": {"Name": "json-file", "Options": {"max-file": "2"}}});
    let _: Value = client
        .post(&format!("/swarm/update?version={version}"), &cluster_spec)
        .await
        .unwrap();
    let plain = json!({
        "Name": "plain",
        "TaskTemplate": { "ContainerSpec": { "Image": IMAGE, "Args": ["sleep", "3600"], "StopGracePeriod": 1_000_000_000i64 } },
        "Mode": { "Replicated": { "Replicas": 1 } }
    });
    let _: Value = client.post("/services/create", &plain).await.unwrap();
    let task = eventually("the plain task runs", Duration::from_secs(60), || {
        let c = &c;
        async move {
            let t = tasks_of(c, m, "plain").await?;
            t.into_iter().find(|t| t.state() == TaskState::Running)
        }
    })
    .await;
    let out = std::process::Command::new("docker")
        .args([
            "inspect",
            "--format",
            "{{json .HostConfig.LogConfig}}",
            task.container_id(),
        ])
        .output()
        .unwrap();
    let log_config: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(log_config["Type"], "json-file");
    assert_eq!(log_config["Config"]["max-file"], "2", "{log_config}");
    c.ctl_ok(m, &["service", "rm", "plain"]);

    eventually("containers removed", Duration::from_secs(30), || {
        let left = containers_of_service("full");
        async move { left.is_empty().then_some(()) }
    })
    .await;
    let _ = std::process::Command::new("docker")
        .args(["volume", "rm", "-f", "swarm-e2e-vol"])
        .output();
}

/// When the leader dies, a worker's agent reconnects to the new leader and its tasks keep
/// running: nothing is restarted and the worker stays Ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_keep_their_tasks_across_a_leader_failover() {
    let mut c = Cluster::new();
    let m1 = c.init("m1", &["--availability", "drain"]);
    let mt = c.token(m1, "manager");
    c.join_with("m2", &mt, m1, &["--availability", "drain"]);
    c.join_with("m3", &mt, m1, &["--availability", "drain"]);
    let wt = c.token(m1, "worker");
    let w = c.join("w1", &wt, m1);
    let _: Value = c.nodes[m1]
        .client()
        .post("/services/create", &spec("steady", 3, &["sleep", "3600"]))
        .await
        .unwrap();
    let before = eventually("three running tasks", Duration::from_secs(60), || {
        let c = &c;
        async move {
            let t = tasks_of(c, m1, "steady").await?;
            let mut ids: Vec<String> = t
                .iter()
                .filter(|t| t.state() == TaskState::Running)
                .map(|t| t["ID"].as_str().unwrap().to_string())
                .collect();
            ids.sort();
            (ids.len() == 3).then_some(ids)
        }
    })
    .await;
    let leader = c.wait_leader(Duration::from_secs(30)).await;
    c.kill(leader);
    let survivor = (0..3).find(|i| *i != leader).unwrap();
    c.wait_leader(Duration::from_secs(30)).await;
    // Past the new leader's grace period: the worker must have reconnected by now.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let w_id = c.node_id(w);
    let nodes: Vec<Value> = c.nodes[survivor].client().get("/nodes").await.unwrap();
    let worker = nodes.iter().find(|n| n.id() == w_id).unwrap();
    assert_eq!(worker.node_state(), NodeState::Ready, "{worker}");
    let t = tasks_of(&c, survivor, "steady").await.unwrap();
    let mut ids: Vec<String> = t
        .iter()
        .filter(|t| t.state() == TaskState::Running)
        .map(|t| t["ID"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, before, "the same tasks keep running");
    assert_eq!(t.len(), 3, "nothing was restarted: {t:?}");
}
