//! Stacks from compose files: `swarmctl stack` against swarmd, compared with the real
//! `docker stack deploy`, and a stack of real containers on three nodes.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use swarm_model::TaskState;

use crate::docker_cli::Docker;
use crate::docker_cli::docker_available;
use crate::support::Cluster;
use crate::support::eventually;
use crate::support::rows;
use crate::support::tasks_of;
use crate::support::view::TaskView;

const IMAGE: &str = "swarm-test/busybox:latest";

/// A file touching most keys docker converts; no published ports, so two copies can coexist.
const RICH_STACK: &str = r#"
version: "3.9"
x-labels: &labels
  labels:
    team: web
services:
  web:
    image: swarm-test/busybox:latest
    command: httpd -f -p "8080"
    entrypoint: ["/bin/busybox"]
    <<: *labels
    environment:
      - A=1
      - EMPTY=
      - DEFAULTED=${STACK_TEST_UNSET:-fallback}
    env_file: ./web.env
    ports:
      - "8080"
      - target: 9000
        mode: host
        protocol: udp
    networks:
      front:
        aliases: [www]
    volumes:
      - data:/data:ro
      - ./site:/site
      - type: tmpfs
        target: /scratch
        tmpfs:
          size: 1048576
    secrets:
      - source: token
        target: tok
        mode: 0400
    configs: [conf]
    healthcheck:
      test: "true"
      interval: 10s
      retries: 3
    stop_grace_period: 1m30s
    stop_signal: SIGTERM
    extra_hosts: ["db:10.0.0.1"]
    dns: 10.0.0.2
    cap_add: [net_admin]
    cap_drop: [ALL]
    ulimits:
      nofile: {soft: 1024, hard: 2048}
      nproc: 512
    sysctls: {net.core.somaxconn: 1024}
    hostname: "{{.Service.Name}}-{{.Task.Slot}}"
    user: "1000"
    working_dir: /site
    init: true
    read_only: true
    tty: true
    logging:
      driver: json-file
      options: {max-size: 10m}
    deploy:
      replicas: 2
      endpoint_mode: vip
      labels: [tier=front]
      update_config: {parallelism: 2, delay: 1s, order: start-first, failure_action: rollback, monitor: 5s}
      rollback_config: {parallelism: 0}
      restart_policy: {condition: on-failure, delay: 2s, max_attempts: 3, window: 1m}
      resources:
        limits: {cpus: "0.5", memory: 64M, pids: 100}
        reservations: {cpus: "0.25", memory: 32M, generic_resources: [{discrete_resource_spec: {kind: gpu, value: 1}}]}
      placement:
        constraints: [node.role == manager]
        preferences: [{spread: node.labels.zone}]
        max_replicas_per_node: 2
  agent:
    image: swarm-test/busybox:latest
    command: ["sleep", "1000000"]
    restart: on-failure:2
    deploy:
      mode: global
  once:
    image: swarm-test/busybox:latest
    command: ["true"]
    deploy:
      mode: replicated-job
      replicas: 2
networks:
  front:
    driver: overlay
    attachable: true
    labels: {purpose: test}
volumes:
  data:
    driver_opts: {type: tmpfs, device: tmpfs}
secrets:
  token:
    file: ./token.txt
configs:
  conf:
    file: ./conf.txt
"#;

fn write_stack_dir(dir: &Path, compose: &str) {
    std::fs::write(dir.join("stack.yml"), compose).expect("write stack.yml");
    std::fs::write(dir.join("web.env"), "FROM_FILE=yes\nA=overridden\n# comment\n").expect("env file");
    std::fs::write(dir.join("token.txt"), "s3cret\n").expect("secret file");
    std::fs::write(dir.join("conf.txt"), "setting=1\n").expect("config file");
}

/// The stack's services as the API stores them, keyed by their name without the stack prefix.
async fn stored_specs(c: &Cluster, stack: &str) -> BTreeMap<String, Value> {
    let services: Vec<Value> = c.nodes[0].client().get("/services").await.expect("list services");
    let networks: Vec<Value> = c.nodes[0].client().get("/networks").await.expect("list networks");
    let network_names: BTreeMap<String, String> = networks
        .iter()
        .map(|n| {
            (
                n["Id"].as_str().unwrap_or_default().to_string(),
                n["Name"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let mut out = BTreeMap::new();
    for s in services {
        let name = s["Spec"]["Name"].as_str().unwrap_or_default().to_string();
        let Some(short) = name.strip_prefix(&format!("{stack}_")) else {
            continue;
        };
        let mut spec = s["Spec"].clone();
        for n in spec["TaskTemplate"]["Networks"].as_array_mut().into_iter().flatten() {
            let id = n["Target"].as_str().unwrap_or_default().to_string();
            n["Target"] = Value::String(network_names.get(&id).cloned().unwrap_or(id));
        }
        for (list, id) in [("Secrets", "SecretID"), ("Configs", "ConfigID")] {
            for r in spec["TaskTemplate"]["ContainerSpec"][list]
                .as_array_mut()
                .into_iter()
                .flatten()
            {
                r[id] = Value::String("<id>".to_string());
            }
        }
        let text = serde_json::to_string(&spec)
            .expect("json")
            .replace(&format!("{stack}_"), "STACK_");
        let text = text.replace(&format!("\"{stack}\""), "\"STACK\"");
        out.insert(short.to_string(), serde_json::from_str(&text).expect("json"));
    }
    out
}

async fn labelled(c: &Cluster, kind: &str, stack: &str) -> Vec<String> {
    let filters = format!(r#"{{"label":{{"com.docker.stack.namespace={stack}":true}}}}"#);
    let path = format!("/{kind}s?filters={}", swarm_ctl::client::encode_query(&filters));
    let list: Vec<Value> = c.nodes[0].client().get(&path).await.expect("list by label");
    list.iter()
        .map(|o| o["ID"].as_str().or(o["Id"].as_str()).unwrap_or_default().to_string())
        .collect()
}

fn version_of(c: &Cluster, service: &str) -> u64 {
    let out = c.ctl_ok(0, &["service", "inspect", service]);
    let v: Value = serde_json::from_str(&out).expect("inspect json");
    v[0]["Version"]["Index"].as_u64().expect("version")
}

#[tokio::test(flavor = "multi_thread")]
async fn swarmctl_and_docker_deploy_identical_specs() {
    let Some(()) = docker_available() else { return };
    let mut c = Cluster::new();
    c.init("m1", &["--hostname", "m1"]);
    let dir = tempfile::tempdir().expect("tempdir");
    write_stack_dir(dir.path(), RICH_STACK);
    let file = dir.path().join("stack.yml");
    let file = file.to_str().expect("utf-8 path");
    std::fs::create_dir(dir.path().join("site")).expect("site dir");

    let docker = Docker::new(&c, 0);
    let out = docker.run_in(dir.path(), &["stack", "deploy", "-c", "stack.yml", "dk"]);
    assert!(
        out.status.success(),
        "docker stack deploy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = c.ctl(0, &["stack", "deploy", "-c", file, "sw"]);
    assert!(
        out.status.success(),
        "swarmctl stack deploy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let warnings = String::from_utf8_lossy(&out.stderr);
    assert!(warnings.contains("Ignoring unsupported options: restart"), "{warnings}");

    let from_docker = stored_specs(&c, "dk").await;
    let from_swarmctl = stored_specs(&c, "sw").await;
    assert_eq!(from_docker.keys().collect::<Vec<_>>(), ["agent", "once", "web"]);
    assert_eq!(from_swarmctl.keys().collect::<Vec<_>>(), ["agent", "once", "web"]);
    for (name, spec) in &from_docker {
        assert_eq!(
            Some(spec),
            from_swarmctl.get(name),
            "service {name}: docker's spec vs swarmctl's"
        );
    }
    // A sample of what the conversion must have produced, so "identical" is not "both empty".
    let web = &from_swarmctl["web"];
    assert_eq!(web["Labels"]["com.docker.stack.image"], IMAGE);
    assert_eq!(web["Labels"]["tier"], "front");
    assert_eq!(
        web["TaskTemplate"]["ContainerSpec"]["Args"],
        serde_json::json!(["httpd", "-f", "-p", "8080"])
    );
    assert_eq!(
        web["TaskTemplate"]["ContainerSpec"]["Env"],
        serde_json::json!(["A=1", "DEFAULTED=fallback", "EMPTY=", "FROM_FILE=yes"])
    );
    assert_eq!(
        web["TaskTemplate"]["ContainerSpec"]["StopGracePeriod"],
        90_000_000_000u64
    );
    assert_eq!(web["TaskTemplate"]["Resources"]["Limits"]["MemoryBytes"], 67_108_864);
    assert_eq!(
        web["TaskTemplate"]["ContainerSpec"]["Secrets"][0]["File"]["Mode"],
        0o400
    );
    assert_eq!(web["TaskTemplate"]["Networks"][0]["Target"], "STACK_front");
    assert_eq!(
        web["TaskTemplate"]["Networks"][0]["Aliases"],
        serde_json::json!(["www", "web"])
    );
    assert_eq!(
        from_swarmctl["agent"]["TaskTemplate"]["RestartPolicy"]["Condition"],
        "on-failure"
    );

    // A redeploy of the same file changes nothing: no update is sent at all.
    let before = version_of(&c, "sw_web");
    let out = c.ctl_ok(0, &["stack", "deploy", "-c", file, "sw"]);
    assert!(out.contains("Service sw_web is unchanged"), "{out}");
    assert_eq!(version_of(&c, "sw_web"), before);

    // A dry run of a changed file shows the diff and changes nothing.
    let changed = RICH_STACK
        .replace("delay: 1s", "delay: 3s")
        .replace("  once:", "  extra:");
    std::fs::write(dir.path().join("changed.yml"), &changed).expect("write");
    let changed_file = dir.path().join("changed.yml");
    let changed_file = changed_file.to_str().expect("utf-8");
    let out = c.ctl_ok(
        0,
        &["stack", "deploy", "--dry-run", "--prune", "-c", changed_file, "sw"],
    );
    assert!(out.contains("Would update service sw_web:"), "{out}");
    assert!(out.contains("UpdateConfig.Delay: 1000000000 -> 3000000000"), "{out}");
    assert!(out.contains("Would leave service sw_agent unchanged"), "{out}");
    assert!(out.contains("Would create service sw_extra"), "{out}");
    assert!(out.contains("Would remove service sw_once"), "{out}");
    assert_eq!(version_of(&c, "sw_web"), before);
    let names = crate::support::service_names(&c, 0).await.expect("service names");
    assert!(
        !names.contains("sw_extra") && names.contains("sw_once"),
        "a dry run changes nothing: {names:?}"
    );

    // --prune removes what left the file; without it, it stays.
    c.ctl_ok(0, &["stack", "deploy", "-c", changed_file, "sw"]);
    let listed = |c: &Cluster| {
        rows(&c.ctl_ok(0, &["stack", "services", "sw"]))
            .iter()
            .map(|r| r[1].clone())
            .collect::<BTreeSet<_>>()
    };
    assert!(listed(&c).contains("sw_once"));
    let out = c.ctl_ok(0, &["stack", "deploy", "--prune", "-c", changed_file, "sw"]);
    assert!(out.contains("Removing service sw_once"), "{out}");
    assert_eq!(
        listed(&c),
        ["sw_agent", "sw_extra", "sw_web"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    assert!(version_of(&c, "sw_web") > before, "the changed delay was applied");

    let ls = rows(&c.ctl_ok(0, &["stack", "ls"]));
    assert_eq!(
        ls,
        vec![
            vec!["dk".to_string(), "3".to_string()],
            vec!["sw".to_string(), "3".to_string()]
        ]
    );

    // stack rm removes every service, secret, config and network of the stack, and only those.
    let out = c.ctl_ok(0, &["stack", "rm", "sw"]);
    assert!(out.contains("Removing network sw_front"), "{out}");
    for kind in ["service", "secret", "config", "network"] {
        assert!(
            labelled(&c, kind, "sw").await.is_empty(),
            "{kind}s of sw left after stack rm"
        );
        assert!(
            !labelled(&c, kind, "dk").await.is_empty(),
            "{kind}s of dk removed by stack rm sw"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_stack_files_deploy_nothing() {
    let mut c = Cluster::new();
    c.init("m1", &["--hostname", "m1"]);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("token.txt"), "x").expect("secret file");
    let cases = [
        (
            "services:\n  web:\n    image: busybox\n    deploy:\n      replica: 2\n",
            "services.web.deploy Additional property replica is not allowed",
        ),
        (
            "services:\n  web:\n    image: \"busybox:${STACK_TEST_TAG:?set a tag}\"\n",
            "invalid interpolation format for services.web.image: \"required variable STACK_TEST_TAG is missing a value: set a tag\"",
        ),
        (
            "services:\n  web:\n    image: busybox\n    deploy:\n      resources:\n        limits:\n          cpus: 0.5\n",
            "services.web.deploy.resources.limits.cpus must be a string",
        ),
        (
            "services:\n  web:\n    image: busybox\n    deploy:\n      replicas: two\n",
            "error while interpolating services.web.deploy.replicas: failed to cast to expected type",
        ),
        (
            "services:\n  web:\n    image: busybox\n    stop_grace_period: 10 seconds\n",
            "services.web.stop_grace_period Does not match format 'duration'",
        ),
        (
            "services:\n  web:\n    image: busybox\n    mem_limit: 1g\n",
            "mem_limit: Set resource limits using deploy.resources",
        ),
        // Conversion errors come after docker has created networks and secrets; here nothing is.
        (
            "services:\n  web:\n    image: busybox\n    networks: [nowhere]\n    secrets: [token]\nsecrets:\n  token:\n    file: ./token.txt\n",
            "service web: undefined network \"nowhere\"",
        ),
        (
            "services:\n  web:\n    image: busybox\n    secrets: [token]\nsecrets:\n  token:\n    file: ./missing.txt\n",
            "missing.txt: No such file or directory",
        ),
        (
            "services:\n  web:\n    image: busybox\n  web: {}\n",
            "duplicate mapping key: web at line 4, column 3",
        ),
    ];
    for (i, (text, message)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("bad{i}.yml"));
        std::fs::write(&file, text).expect("write");
        let out = c.ctl(0, &["stack", "deploy", "-c", file.to_str().expect("utf-8"), "bad"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "case {i} must fail:\n{text}");
        assert!(err.contains(message), "case {i}: expected {message:?} in {err:?}");
        for kind in ["service", "secret", "config", "network"] {
            assert!(labelled(&c, kind, "bad").await.is_empty(), "case {i} created a {kind}");
        }
    }
    assert!(rows(&c.ctl_ok(0, &["stack", "ls"])).is_empty());
    // The same checks see what a good file creates, so the empty answers above mean something.
    let good = dir.path().join("good.yml");
    std::fs::write(&good, "services:\n  web:\n    image: busybox\n").expect("write");
    c.ctl_ok(0, &["stack", "deploy", "-c", good.to_str().expect("utf-8"), "bad"]);
    for kind in ["service", "network"] {
        assert!(
            !labelled(&c, kind, "bad").await.is_empty(),
            "a good file created no {kind}"
        );
    }
    c.ctl_ok(0, &["stack", "rm", "bad"]);
    let out = c.ctl(0, &["stack", "deploy", "-c", "/nonexistent/stack.yml", "bad"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/stack.yml"));
    let out = c.ctl(0, &["stack", "deploy", "-c", "/nonexistent/stack.yml", "  "]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid stack name"));
}

/// Removes the extra image tag even when the test fails.
struct ImageTag(&'static str);

impl Drop for ImageTag {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", self.0]).output();
    }
}

async fn running_tasks(c: &Cluster, service: &str) -> BTreeMap<String, (String, String)> {
    tasks_of(c, 0, service)
        .await
        .unwrap_or_default()
        .iter()
        .filter(|t| t.desired() == TaskState::Running && t.state() == TaskState::Running)
        .map(|t| {
            let id = t["ID"].as_str().unwrap_or_default().to_string();
            let node = t["NodeID"].as_str().unwrap_or_default().to_string();
            let image = t["Spec"]["ContainerSpec"]["Image"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            (id, (node, image))
        })
        .collect()
}

const THREE_SERVICES: &str = r#"
version: "3.8"
services:
  web:
    image: IMAGE_OF_WEB
    command: ["sleep", "1000000"]
    deploy:
      replicas: 2
      update_config: {parallelism: 1, delay: 1s, order: stop-first}
  agent:
    image: swarm-test/busybox:latest
    command: ["sleep", "1000000"]
    deploy:
      mode: global
  vault:
    image: swarm-test/busybox:latest
    command: ["sleep", "1000000"]
    secrets: [{source: token, mode: 0400}]
    configs: [{source: conf, target: app.conf}]
    deploy:
      placement:
        constraints: [node.labels.vault == yes]
secrets:
  token:
    file: ./token.txt
configs:
  conf:
    file: ./conf.txt
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_stack_of_containers_on_three_nodes() {
    let mut c = Cluster::docker();
    let m1 = c.init("m1", &["--hostname", "m1"]);
    let token = c.token(m1, "worker");
    c.join("w1", &token, m1);
    c.join("w2", &token, m1);
    let w2_id = c.node_id(2);
    eventually("three ready nodes", Duration::from_secs(60), || async {
        let r = rows(&c.ctl_ok(0, &["node", "ls"]));
        (r.len() == 3 && r.iter().all(|row| row.iter().any(|x| x == "Ready"))).then_some(())
    })
    .await;
    c.ctl_ok(0, &["node", "update", "--label-add", "vault=yes", &w2_id]);
    let out = Command::new("docker")
        .args(["tag", IMAGE, "swarm-test/busybox:stack-v2"])
        .output()
        .expect("docker tag");
    assert!(
        out.status.success(),
        "docker tag: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _tag = ImageTag("swarm-test/busybox:stack-v2");

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("token.txt"), "s3cret").expect("secret");
    std::fs::write(dir.path().join("conf.txt"), "setting=1\n").expect("config");
    let v1 = dir.path().join("v1.yml");
    let v2 = dir.path().join("v2.yml");
    std::fs::write(&v1, THREE_SERVICES.replace("IMAGE_OF_WEB", IMAGE)).expect("v1");
    std::fs::write(
        &v2,
        THREE_SERVICES.replace("IMAGE_OF_WEB", "swarm-test/busybox:stack-v2"),
    )
    .expect("v2");
    let (v1, v2) = (v1.to_str().expect("utf-8"), v2.to_str().expect("utf-8"));

    let out = c.ctl_ok(0, &["stack", "deploy", "--detach=false", "-c", v1, "app"]);
    assert!(out.contains("Creating secret app_token"), "{out}");
    let web = running_tasks(&c, "app_web").await;
    // `--detach=false` counts a global service's nodes by the tasks it sees (as docker does),
    // so it can return before the orchestrator has given every node its task.
    let agent = eventually(
        "a running global task on each node",
        Duration::from_secs(60),
        || async {
            let agent = running_tasks(&c, "app_agent").await;
            (agent.len() == 3).then_some(agent)
        },
    )
    .await;
    let vault = running_tasks(&c, "app_vault").await;
    assert_eq!(web.len(), 2, "{web:?}");
    assert_eq!(agent.len(), 3, "a global task on each node: {agent:?}");
    assert_eq!(agent.values().map(|(n, _)| n).collect::<BTreeSet<_>>().len(), 3);
    assert_eq!(vault.len(), 1);
    assert!(
        vault.values().all(|(node, _)| node == &w2_id),
        "vault runs only where vault=yes: {vault:?}"
    );
    let spec = c.ctl_ok(0, &["service", "inspect", "app_vault"]);
    assert!(spec.contains("\"SecretName\": \"app_token\""), "{spec}");
    // The secret is a read-only file in the container, with the mode the file asked for.
    let vault_container = crate::support::containers_of_service("app_vault");
    assert_eq!(vault_container.len(), 1, "{vault_container:?}");
    let exec = |args: &[&str]| {
        let out = Command::new("docker")
            .arg("exec")
            .arg(&vault_container[0].0)
            .args(args)
            .output()
            .expect("docker exec");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(exec(&["cat", "/run/secrets/token"]), "s3cret");
    assert_eq!(exec(&["stat", "-c", "%a %u", "/run/secrets/token"]).trim(), "400 0");
    assert_eq!(exec(&["cat", "/app.conf"]), "setting=1\n");
    // As with dockerd, the secret's plaintext is kept in memory on the node, never on its disk.
    let source = Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{range .Mounts}}{{if eq .Destination \"/run/secrets/token\"}}{{.Source}}{{end}}{{end}}",
            &vault_container[0].0,
        ])
        .output()
        .expect("docker inspect");
    let source = String::from_utf8_lossy(&source.stdout).trim().to_string();
    assert!(source.contains("task-files"), "secret mount source: {source:?}");
    let mount = Command::new("findmnt")
        .args(["-n", "-o", "TARGET,FSTYPE", "--target", &source])
        .output()
        .expect("findmnt");
    let mount = String::from_utf8_lossy(&mount.stdout).trim().to_string();
    // The node's own tmpfs over task-files, not merely a temp dir that happens to be in memory.
    let (target, fs) = mount.split_once(char::is_whitespace).unwrap_or_default();
    assert!(
        target.ends_with("/task-files") && fs.trim() == "tmpfs" && source.starts_with(target),
        "mount holding {source}: {mount:?}"
    );
    assert_eq!(crate::support::containers_of_service("app_agent").len(), 3);

    // Only the service whose image changed rolls; the others keep their tasks.
    let out = c.ctl_ok(0, &["stack", "deploy", "--detach=false", "-c", v2, "app"]);
    assert!(out.contains("Updating service app_web"), "{out}");
    assert!(
        out.contains("Service app_agent is unchanged") && out.contains("Service app_vault is unchanged"),
        "{out}"
    );
    let web_after = running_tasks(&c, "app_web").await;
    assert_eq!(web_after.len(), 2);
    assert!(
        web_after.keys().all(|id| !web.contains_key(id)),
        "every web task replaced"
    );
    assert!(
        web_after
            .values()
            .all(|(_, image)| image == "swarm-test/busybox:stack-v2"),
        "{web_after:?}"
    );
    assert_eq!(running_tasks(&c, "app_agent").await, agent, "agent untouched");
    assert_eq!(running_tasks(&c, "app_vault").await, vault, "vault untouched");

    // stack rm takes everything away, containers included.
    c.ctl_ok(0, &["stack", "rm", "app"]);
    for kind in ["service", "secret", "config", "network"] {
        assert!(
            labelled(&c, kind, "app").await.is_empty(),
            "{kind}s of app left after stack rm"
        );
    }
    eventually("the stack's containers are gone", Duration::from_secs(60), || async {
        let left: usize = ["app_web", "app_agent", "app_vault"]
            .iter()
            .map(|s| crate::support::containers_of_service(s).len())
            .sum();
        (left == 0).then_some(())
    })
    .await;
}
