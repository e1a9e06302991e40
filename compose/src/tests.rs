//! Fixtures of our own: one per key group docker converts, and one per error class.

use std::collections::BTreeMap;

use swarm_model::ServiceSpec;

use crate::ComposeError;
use crate::Details;
use crate::convert;
use crate::load;

fn details(files: &[&str], env: &[(&str, &str)]) -> Details {
    Details {
        working_dir: "/work/app".into(),
        files: files
            .iter()
            .enumerate()
            .map(|(i, f)| (format!("f{i}.yml"), f.to_string()))
            .collect(),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn error_of(text: &str) -> String {
    match load(&details(&[text], &[])) {
        Ok(loaded) => match convert(&loaded.config, "s") {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        },
        Err(e) => e.to_string(),
    }
}

fn specs(text: &str, env: &[(&str, &str)]) -> BTreeMap<String, ServiceSpec> {
    let loaded = load(&details(&[text], env)).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let plan = convert(&loaded.config, "s").unwrap_or_else(|e| panic!("{e}\n{text}"));
    plan.services.into_iter().map(|s| (s.name.clone(), s)).collect()
}

fn one(text: &str) -> ServiceSpec {
    specs(text, &[]).remove("s_web").expect("service web")
}

#[test]
fn every_error_class_names_the_place() {
    let cases: &[(&str, &str)] = &[
        ("[a, b]", "top-level object must be a mapping"),
        ("version: 3.8\nservices: {}", "version must be a string"),
        ("version: '2'\nservices: {}", "unsupported Compose file version: 2"),
        (
            "services:\n  web:\n    image: x\n    extends: y\n",
            "extends: Support for `extends` is not implemented yet.",
        ),
        (
            "services:\n  web:\n    image: x\n    deploy:\n      replica: 2\n",
            "services.web.deploy Additional property replica is not allowed",
        ),
        ("foo: 1\nservices: {}", "(root) Additional property foo is not allowed"),
        (
            "services:\n  web:\n    image: [x]\n",
            "services.web.image must be a string",
        ),
        (
            "services:\n  web:\n    image: x\n    deploy:\n      resources:\n        limits:\n          cpus: 0.5\n",
            "services.web.deploy.resources.limits.cpus must be a string",
        ),
        (
            "services:\n  web:\n    image: x\n    environment: {A: [1]}\n",
            "services.web.environment.A must be a string, number or null",
        ),
        (
            "services:\n  web:\n    image: x\n    environment: A=1\n",
            "services.web.environment must be a mapping",
        ),
        (
            "services:\n  web:\n    image: x\n    ports: ['80:80:80:80']\n",
            "services.web.ports.0 Does not match format 'ports'",
        ),
        (
            "services:\n  web:\n    image: x\n    stop_grace_period: 10\n",
            "services.web.stop_grace_period must be a string",
        ),
        (
            "services:\n  web:\n    image: x\n    stop_grace_period: 10 seconds\n",
            "services.web.stop_grace_period Does not match format 'duration'",
        ),
        (
            "services:\n  web:\n    image: x\n    deploy:\n      update_config: {order: later}\n",
            "services.web.deploy.update_config.order services.web.deploy.update_config.order must be one of the following: \"start-first\", \"stop-first\"",
        ),
        (
            "version: '3.2'\nservices:\n  web:\n    image: x\n    init: true\n",
            "services.web Additional property init is not allowed",
        ),
        (
            "services:\n  web:\n    image: \"${T:?T must be set}\"\n",
            "invalid interpolation format for services.web.image: \"required variable T is missing a value: T must be set\"",
        ),
        (
            "services:\n  web:\n    image: \"${T:+x}\"\n",
            "invalid interpolation format for services.web.image: \"${T:+x}\"",
        ),
        (
            "services:\n  web:\n    image: x\n    deploy:\n      replicas: two\n",
            "strconv.Atoi: parsing \"two\": invalid syntax",
        ),
        (
            "services:\n  web:\n    image: x\n    deploy:\n      resources:\n        limits:\n          memory: 5q\n",
            "error decoding 'Deploy.Resources.Limits.memory': invalid suffix: 'q'",
        ),
        (
            "services:\n  web:\n    image: x\n    deploy:\n      replicas: -1\n",
            "-1 overflows uint",
        ),
        (
            "networks:\n  n:\n    external: true\n    driver: overlay\nservices: {}",
            "conflicting parameters \"external\" and \"driver\" specified for network \"n\"",
        ),
        (
            "secrets:\n  s:\n    name: a\n    external: {name: b}\nservices: {}",
            "secret s: secret.external.name and secret.name conflict; only use secret.name",
        ),
        (
            "services:\n  web:\n    image: x\n  web:\n    image: y\n",
            "f0.yml: duplicate mapping key: web at line 4, column 3",
        ),
        (
            "services:\n  web:\n    image: x\n    networks: [nowhere]\n",
            "service web: undefined network \"nowhere\"",
        ),
        (
            "services:\n  web:\n    image: x\n    volumes: ['data:/data']\n",
            "service web: undefined volume \"data\"",
        ),
        (
            "services:\n  web:\n    image: x\n    secrets: [s]\n",
            "service web: undefined secret \"s\"",
        ),
        (
            "services:\n  web:\n    image: x\n    deploy: {mode: global, replicas: 2}\n",
            "service web: replicas can only be used with replicated or replicated-job mode",
        ),
        (
            "services:\n  web:\n    image: x\n    deploy: {mode: sometimes}\n",
            "service web: unknown mode: sometimes",
        ),
        (
            "services:\n  web:\n    image: x\n    restart: sometimes\n",
            "invalid restart policy: unknown policy 'sometimes'",
        ),
        (
            "services:\n  web:\n    image: x\n    healthcheck: {test: 'true', disable: true}\n",
            "test and disable can't be set at the same time",
        ),
        (
            "services:\n  web:\n    command: x\n",
            "invalid image reference for service web: no image specified",
        ),
        (
            "services:\n  web:\n    image: 'postgres:'\n",
            "invalid image reference for service web: invalid reference format",
        ),
        (
            "services:\n  web:\n    image: NGINX\n",
            "invalid image reference for service web: invalid reference format: repository name (library/NGINX) must be lowercase",
        ),
        (
            "services:\n  web:\n    image: x\n    env_file: ./nope.env\n",
            "/work/app/./nope.env (env_file of services.web): No such file or directory",
        ),
    ];
    for (text, expected) in cases {
        let err = error_of(text);
        assert!(
            err.contains(expected),
            "expected {expected:?}\n   got {err:?}\nfor {text}"
        );
    }
}

#[test]
fn image_references_are_checked_as_docker_checks_them() {
    let good = [
        "busybox",
        "busybox:1.36",
        "localhost:5000/app:v2",
        "Example.com/team/app",
        "a/b__c-d.e:tag_1",
        "app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    ];
    for image in good {
        assert_eq!(crate::convert::check_image_reference(image), Ok(()), "{image}");
    }
    for image in [
        "",
        "app:",
        "app:-x",
        "a//b",
        "-app",
        "app@sha256:zz",
        "app@sha256:0123456789abcdef0123456789abcdef",
        "app name",
    ] {
        assert!(crate::convert::check_image_reference(image).is_err(), "{image}");
    }
}

#[test]
fn docker_refuses_what_its_schema_and_parsers_refuse() {
    let cases: &[(&str, &str)] = &[
        ("ports: ['8080:80-81']", "Does not match format 'ports'"),
        ("ports: ['8000-8001:80']", "Does not match format 'ports'"),
        (
            "ports: ['80:80', '80:80']",
            "services.web.ports array items[0,1] must be unique",
        ),
        (
            "expose: ['80', '80']",
            "services.web.expose array items[0,1] must be unique",
        ),
        ("volumes: ['']", "invalid empty volume spec"),
        ("volumes: ['a::b']", "empty section between colons"),
        (
            "labels: {a: true}",
            "services.web.labels.a must be a string, number or null",
        ),
        (
            "environment: {A: true}",
            "services.web.environment.A must be a string, number or null",
        ),
        (
            "credential_spec: {file: a, registry: b}",
            "invalid credential spec: cannot specify both \"File\" and \"Registry\"",
        ),
        (
            "credential_spec: {config: nope}",
            "service web: undefined config \"nope\"",
        ),
    ];
    for (key, expected) in cases {
        let text = format!("version: '3.8'\nservices:\n  web:\n    image: x\n    {key}\n");
        let err = error_of(&text);
        assert!(
            err.contains(expected),
            "expected {expected:?}\n   got {err:?}\nfor {text}"
        );
    }
    let ok = one("services:\n  web:\n    image: x\n    ports: ['8000-8001:80-81']\n    credential_spec: {}\n");
    let published: Vec<Option<u32>> = ok
        .endpoint_spec
        .iter()
        .flat_map(|e| e.ports.iter().flatten())
        .map(|p| p.published_port)
        .collect();
    assert_eq!(published, [Some(8000), Some(8001)]);
    let privileges = ok
        .task_template
        .container_spec
        .and_then(|c| c.privileges)
        .expect("privileges");
    assert_eq!(
        privileges.credential_spec, None,
        "an empty credential_spec is none, as docker converts it"
    );
}

#[test]
fn two_files_must_share_a_version() {
    let err = load(&details(
        &["version: '3.4'\nservices: {}", "version: '3.1'\nservices: {}"],
        &[],
    ))
    .unwrap_err();
    assert_eq!(err, ComposeError::VersionMismatch("3.4".into(), "3.1".into()));
}

#[test]
fn deploy_keys_convert_as_docker_converts_them() {
    let spec = one(
        "services:\n  web:\n    image: nginx:1\n    deploy:\n      replicas: 3\n      endpoint_mode: DNSRR\n      labels: [a=b]\n      \
         placement: {constraints: [node.role==worker], preferences: [{spread: node.labels.az}], max_replicas_per_node: 2}\n      \
         resources:\n        limits: {cpus: '0.5', memory: 50M, pids: 10}\n        reservations: {cpus: '0.25', memory: 1g, generic_resources: [{discrete_resource_spec: {kind: gpu, value: 2}}]}\n      \
         restart_policy: {condition: on-failure, delay: 5s, max_attempts: 3, window: 1m}\n      \
         update_config: {delay: 10s, failure_action: rollback, monitor: 1m, max_failure_ratio: 0.5, order: start-first}\n      \
         rollback_config: {parallelism: 0}\n",
    );
    assert_eq!(spec.mode.replicated.as_ref().and_then(|r| r.replicas), Some(3));
    assert_eq!(spec.labels["a"], "b");
    assert_eq!(spec.labels[crate::NAMESPACE_LABEL], "s");
    assert_eq!(spec.labels[crate::IMAGE_LABEL], "nginx:1");
    let ep = spec.endpoint_spec.as_ref().expect("endpoint spec always set");
    assert_eq!(ep.mode, "dnsrr");
    assert_eq!(ep.ports, None);
    let placement = spec.task_template.placement.as_ref().expect("placement");
    assert_eq!(
        placement.constraints.as_deref(),
        Some(&["node.role==worker".to_string()][..])
    );
    assert_eq!(placement.max_replicas, 2);
    let spread = placement
        .preferences
        .as_ref()
        .and_then(|p| p[0].spread.as_ref())
        .expect("spread");
    assert_eq!(spread.spread_descriptor, "node.labels.az");
    let res = spec.task_template.resources.as_ref().expect("resources");
    let limits = res.limits.as_ref().expect("limits");
    assert_eq!(
        (limits.nano_cpus, limits.memory_bytes, limits.pids),
        (500_000_000, 52_428_800, 10)
    );
    let reservations = res.reservations.as_ref().expect("reservations");
    assert_eq!(
        (reservations.nano_cpus, reservations.memory_bytes),
        (250_000_000, 1 << 30)
    );
    let gpu = reservations
        .generic_resources
        .as_ref()
        .and_then(|g| g[0].discrete_resource_spec.as_ref())
        .expect("gpu");
    assert_eq!((gpu.kind.as_str(), gpu.value), ("gpu", 2));
    let restart = spec.task_template.restart_policy.as_ref().expect("restart policy");
    assert_eq!(restart.condition, "on-failure");
    assert_eq!(
        (restart.delay, restart.max_attempts, restart.window),
        (Some(5_000_000_000), Some(3), Some(60_000_000_000))
    );
    let update = spec.update_config.as_ref().expect("update config");
    assert_eq!(update.parallelism, 1, "an update_config without parallelism means 1");
    assert_eq!((update.delay, update.monitor), (10_000_000_000, 60_000_000_000));
    assert_eq!(
        (update.failure_action.as_str(), update.order.as_str()),
        ("rollback", "start-first")
    );
    assert_eq!(update.max_failure_ratio, 0.5);
    assert_eq!(
        spec.rollback_config.as_ref().map(|r| r.parallelism),
        Some(0),
        "explicit 0 is kept"
    );
}

#[test]
fn modes_and_jobs() {
    let all = specs(
        "services:\n  a: {image: x, deploy: {mode: global}}\n  b: {image: x, deploy: {mode: replicated-job, replicas: 4}}\n  \
         c: {image: x, deploy: {mode: global-job}}\n  d: {image: x}\n",
        &[],
    );
    assert!(all["s_a"].mode.global.is_some());
    let job = all["s_b"].mode.replicated_job.as_ref().expect("job");
    assert_eq!((job.max_concurrent, job.total_completions), (Some(4), Some(4)));
    assert!(all["s_c"].mode.global_job.is_some());
    assert_eq!(
        all["s_d"].mode.replicated.as_ref().map(|r| r.replicas),
        Some(None),
        "the manager picks 1"
    );
}

#[test]
fn container_keys_convert() {
    let spec = one(
        "services:\n  web:\n    image: x\n    entrypoint: /bin/sh -c\n    command: 'echo \"hello world\"'\n    \
         environment: {B: '2', A: 1, NOVALUE: null}\n    labels: [c=d]\n    hostname: h\n    user: '1000'\n    working_dir: /w\n    \
         stop_grace_period: 1m30s\n    stop_signal: SIGINT\n    sysctls: [net.core.somaxconn=1024]\n    \
         ulimits: {nproc: 64, nofile: {soft: 10, hard: 20}}\n    logging: {driver: syslog, options: {tag: t}}\n    \
         dns: [1.1.1.1]\n    dns_search: example.com\n    extra_hosts: {db: '10.0.0.1', v6: '[::1]'}\n    \
         cap_add: [net_admin, ALL]\n    cap_drop: [NET_ADMIN, chown]\n    init: false\n    read_only: true\n    tty: true\n    stdin_open: true\n    \
         healthcheck: {test: [CMD, ok], interval: 30s, timeout: 5s, retries: 2, start_period: 1s}\n",
    );
    let c = spec.task_template.container_spec.as_ref().expect("container");
    assert_eq!(
        c.command.as_deref(),
        Some(&["/bin/sh".to_string(), "-c".to_string()][..])
    );
    assert_eq!(
        c.args.as_deref(),
        Some(&["echo".to_string(), "hello world".to_string()][..])
    );
    assert_eq!(
        c.env.as_deref(),
        Some(&["A=1".to_string(), "B=2".to_string(), "NOVALUE".to_string()][..])
    );
    assert_eq!(c.labels.as_ref().map(|l| l["c"].as_str()), Some("d"));
    assert_eq!(
        (c.hostname.as_str(), c.user.as_str(), c.dir.as_str()),
        ("h", "1000", "/w")
    );
    assert_eq!(
        (c.stop_grace_period, c.stop_signal.as_str()),
        (Some(90_000_000_000), "SIGINT")
    );
    assert_eq!(
        c.sysctls.as_ref().map(|s| s["net.core.somaxconn"].as_str()),
        Some("1024")
    );
    let ulimits: Vec<(&str, i64, i64)> = c
        .ulimits
        .iter()
        .flatten()
        .map(|u| (u.name.as_str(), u.soft, u.hard))
        .collect();
    assert_eq!(ulimits, [("nofile", 10, 20), ("nproc", 64, 64)]);
    let log = spec.task_template.log_driver.as_ref().expect("log driver");
    assert_eq!(
        (log.name.as_str(), log.options.as_ref().map(|o| o["tag"].as_str())),
        ("syslog", Some("t"))
    );
    let dns = c.dns_config.as_ref().expect("dns");
    assert_eq!(dns.nameservers.as_deref(), Some(&["1.1.1.1".to_string()][..]));
    assert_eq!(dns.search.as_deref(), Some(&["example.com".to_string()][..]));
    assert_eq!(
        c.hosts.as_deref(),
        Some(&["10.0.0.1 db".to_string(), "::1 v6".to_string()][..])
    );
    assert_eq!(c.capability_add.as_deref(), Some(&["ALL".to_string()][..]));
    assert_eq!(
        c.capability_drop.as_deref(),
        Some(&["CAP_CHOWN".to_string(), "CAP_NET_ADMIN".to_string()][..])
    );
    assert_eq!(c.init, Some(false), "init: false is not unset");
    assert!(c.read_only && c.tty && c.open_stdin);
    let h = c.healthcheck.as_ref().expect("healthcheck");
    assert_eq!(h.test.as_deref(), Some(&["CMD".to_string(), "ok".to_string()][..]));
    assert_eq!(
        (h.interval, h.timeout, h.retries, h.start_period),
        (Some(30_000_000_000), Some(5_000_000_000), Some(2), Some(1_000_000_000))
    );
}

#[test]
fn ports_networks_volumes_secrets_and_configs() {
    let all = specs(
        "services:\n  web:\n    image: x\n    ports: ['127.0.0.1:8000-8001:80-81/udp', '3000', {target: 22, published: 2222, mode: host}]\n    \
         networks: {front: {aliases: [www]}, host: null}\n    \
         volumes: ['data:/data:ro,nocopy', './site:/site:rslave', '~/cfg:/cfg', {type: tmpfs, target: /tmp, tmpfs: {size: 100}}, 'anon']\n    \
         secrets: [{source: token, target: tok, uid: '1', mode: 0400}, api]\n    configs: [conf]\n  \
         lone:\n    image: x\n\
         networks:\n  front: {name: custom-front}\n  host: {external: true, name: host}\n\
         volumes:\n  data: {driver: local, labels: {k: v}}\n\
         secrets:\n  token: {file: ./token}\n  api: {external: true, name: prod-api}\n\
         configs:\n  conf: {name: shared-conf, file: /etc/conf}\n",
        &[("HOME", "/home/me")],
    );
    let web = &all["s_web"];
    let ports: Vec<(u32, Option<u32>, &str, &str)> = web
        .endpoint_spec
        .iter()
        .flat_map(|e| e.ports.iter().flatten())
        .map(|p| {
            (
                p.target_port,
                p.published_port,
                p.protocol.as_str(),
                p.publish_mode.as_str(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            (3000, None, "tcp", "ingress"),
            (22, Some(2222), "", "host"),
            (80, Some(8000), "udp", "ingress"),
            (81, Some(8001), "udp", "ingress")
        ]
    );
    let nets: Vec<(&str, Option<&Vec<String>>)> = web
        .task_template
        .networks
        .iter()
        .flatten()
        .map(|n| (n.target.as_str(), n.aliases.as_ref()))
        .collect();
    assert_eq!(
        nets,
        [
            ("custom-front", Some(&vec!["www".to_string(), "web".to_string()])),
            ("host", None)
        ]
    );
    let lone = &all["s_lone"];
    assert_eq!(
        lone.task_template.networks.as_ref().map(|n| n[0].target.as_str()),
        Some("s_default")
    );

    let c = web.task_template.container_spec.as_ref().expect("container");
    let mounts = c.mounts.as_ref().expect("mounts");
    assert_eq!(mounts[0].type_, "volume");
    assert_eq!((mounts[0].source.as_str(), mounts[0].read_only), ("s_data", true));
    let vo = mounts[0].volume_options.as_ref().expect("volume options");
    assert!(vo.no_copy);
    assert_eq!(vo.labels.as_ref().map(|l| l["k"].as_str()), Some("v"));
    assert_eq!(vo.driver_config.as_ref().map(|d| d.name.as_str()), Some("local"));
    assert_eq!(
        (mounts[1].type_.as_str(), mounts[1].source.as_str()),
        ("bind", "/work/app/site")
    );
    assert_eq!(
        mounts[1].bind_options.as_ref().map(|b| b.propagation.as_str()),
        Some("rslave")
    );
    assert_eq!(mounts[2].source, "/home/me/cfg");
    assert_eq!(mounts[3].tmpfs_options.as_ref().and_then(|t| t.size_bytes), Some(100));
    assert_eq!(
        (
            mounts[4].type_.as_str(),
            mounts[4].source.as_str(),
            mounts[4].target.as_str()
        ),
        ("volume", "", "anon")
    );

    let secrets: Vec<(&str, &str, &str, u32)> = c
        .secrets
        .iter()
        .flatten()
        .map(|s| {
            let f = s.file.as_ref().expect("file target");
            (s.secret_name.as_str(), f.name.as_str(), f.uid.as_str(), f.mode)
        })
        .collect();
    assert_eq!(
        secrets,
        [("prod-api", "api", "0", 0o444), ("s_token", "tok", "1", 0o400)]
    );
    assert_eq!(
        c.configs.as_ref().map(|v| v[0].config_name.as_str()),
        Some("shared-conf")
    );
}

#[test]
fn the_plan_creates_only_used_networks_and_owned_objects() {
    let loaded = load(&details(
        &["services:\n  web: {image: x, networks: [front, ext]}\n\
           networks:\n  front: {driver_opts: {a: 1}, attachable: true}\n  unused: {}\n  ext: {external: true, name: shared}\n\
           secrets:\n  s: {file: ./s}\n  e: {external: true}\n"],
        &[],
    ))
    .expect("load");
    let plan = convert(&loaded.config, "st").expect("convert");
    assert_eq!(plan.networks.len(), 1);
    let front = &plan.networks[0];
    assert_eq!(
        (front.name.as_str(), front.driver.as_str(), front.attachable),
        ("st_front", "overlay", true)
    );
    assert_eq!(front.options["a"], "1");
    assert_eq!(front.labels[crate::NAMESPACE_LABEL], "st");
    assert_eq!(plan.external_networks, ["shared"]);
    assert_eq!(plan.secrets.len(), 1);
    assert_eq!(plan.secrets[0].name, "st_s");
    assert_eq!(
        plan.secrets[0].file.as_deref(),
        Some(std::path::Path::new("/work/app/s"))
    );
}

#[test]
fn legacy_restart_is_converted_and_warned_about() {
    let loaded = load(&details(
        &["services:\n  web: {image: x, restart: always, container_name: c}\n"],
        &[],
    ))
    .expect("load");
    let warnings = crate::warnings(&loaded.config);
    assert_eq!(warnings[0], "Ignoring unsupported options: restart");
    assert!(warnings[1].starts_with("Ignoring deprecated options:\n\ncontainer_name: "));
    let plan = convert(&loaded.config, "s").expect("convert");
    let policy = plan.services[0].task_template.restart_policy.as_ref().expect("policy");
    assert_eq!((policy.condition.as_str(), policy.max_attempts), ("any", None));
}

#[test]
fn interpolation_and_overrides_across_files() {
    let base = "version: '3.8'\nservices:\n  web:\n    image: \"app:${TAG:-latest}\"\n    environment: {A: '1'}\n    deploy: {replicas: 3}\n";
    let over = "version: '3.8'\nservices:\n  web:\n    environment: {B: $$literal}\n    deploy: {replicas: 0}\n";
    let loaded = load(&details(&[base, over], &[("TAG", "v2")])).expect("load");
    let plan = convert(&loaded.config, "s").expect("convert");
    let spec = &plan.services[0];
    let c = spec.task_template.container_spec.as_ref().expect("container");
    assert_eq!(c.image, "app:v2");
    assert_eq!(
        c.env.as_deref(),
        Some(&["A=1".to_string(), "B=$literal".to_string()][..])
    );
    assert_eq!(
        spec.mode.replicated.as_ref().and_then(|r| r.replicas),
        Some(0),
        "replicas: 0 wins a merge"
    );
}

#[test]
fn stack_config_prints_yaml_that_loads_to_the_same_file() {
    let loaded = load(&details(
        &["services:\n  web:\n    image: x\n    ports: ['80']\n    stop_grace_period: 60s\n"],
        &[],
    ))
    .expect("load");
    let text = crate::to_yaml(&loaded.config).expect("yaml");
    assert!(text.contains("stop_grace_period: 1m0s"), "{text}");
    let again = load(&details(&[&text], &[])).expect("reload");
    assert_eq!(again.config, loaded.config);
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Whatever the replicas, ports and environment, conversion keeps every value, sorts
        /// what docker sorts and labels the service with its stack.
        #[test]
        fn conversion_keeps_values_and_sorts(
            replicas in 0u64..1000,
            ports in proptest::collection::btree_set(1u32..65535, 0..6),
            env in proptest::collection::btree_map("[A-Z][A-Z0-9_]{0,6}", "[a-z0-9]{0,6}", 0..6),
            stack in "[a-z][a-z0-9]{0,8}",
        ) {
            let ports_yaml: Vec<String> = ports.iter().map(|p| format!("'{p}:80'")).collect();
            let env_yaml: Vec<String> = env.iter().map(|(k, v)| format!("{k}: '{v}'")).collect();
            let text = format!(
                "services:\n  web:\n    image: x\n    deploy: {{replicas: {replicas}}}\n    ports: [{}]\n    environment: {{{}}}\n",
                ports_yaml.join(", "), env_yaml.join(", ")
            );
            let loaded = load(&details(&[&text], &[])).expect("load");
            let plan = convert(&loaded.config, &stack).expect("convert");
            let spec = &plan.services[0];
            prop_assert_eq!(&spec.name, &format!("{stack}_web"));
            prop_assert_eq!(&spec.labels[crate::NAMESPACE_LABEL], &stack);
            prop_assert_eq!(spec.mode.replicated.as_ref().and_then(|r| r.replicas), Some(replicas));
            let published: Vec<u32> = spec.endpoint_spec.iter().flat_map(|e| e.ports.iter().flatten())
                .filter_map(|p| p.published_port).collect();
            prop_assert_eq!(published, ports.iter().copied().collect::<Vec<_>>());
            let mut want: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
            want.sort();
            let got = spec.task_template.container_spec.as_ref().and_then(|c| c.env.clone()).unwrap_or_default();
            prop_assert_eq!(got, want);
        }

        /// No input makes the loader panic: it accepts or refuses.
        #[test]
        fn arbitrary_text_never_panics(text in "[ -~\n]{0,200}") {
            let _ = load(&details(&[&text], &[]));
        }

        /// Nor do arbitrary (multibyte) values in the keys with their own parsers: templates,
        /// short ports and volumes, durations, sizes, hosts, commands and images.
        #[test]
        fn arbitrary_values_never_panic(value in "\\PC{0,40}") {
            let v = value.replace('\'', "''");
            let text = format!(
                "services:\n  web:\n    image: '{v}'\n    command: '{v}'\n    ports: ['{v}']\n    volumes: ['{v}']\n    \
                 extra_hosts: ['{v}']\n    stop_grace_period: '{v}'\n    environment: ['{v}']\n    \
                 deploy: {{resources: {{limits: {{cpus: '{v}', memory: '{v}'}}}}}}\n"
            );
            if let Ok(loaded) = load(&details(&[&text], &[])) {
                let _ = convert(&loaded.config, "s");
            }
        }
    }
}

/// The quirks docs/compose.md says we follow, pinned so a change is deliberate.
mod quirks {
    use super::*;

    #[test]
    fn oom_score_adj_is_validated_then_dropped() {
        let loaded = load(&details(
            &["services:\n  web:\n    image: x\n    oom_score_adj: 100\n"],
            &[],
        ))
        .expect("load");
        let web = loaded.config["services"]
            .as_map()
            .and_then(|s| s["web"].as_map())
            .expect("web");
        assert!(
            !web.contains_key("oom_score_adj"),
            "dropped from the loaded file, as docker's loader drops it"
        );
        assert!(error_of("services:\n  web:\n    image: x\n    oom_score_adj: [1]\n").contains("must be a integer"));
    }

    #[test]
    fn a_host_ip_in_a_short_port_is_dropped_with_a_warning() {
        let loaded = load(&details(
            &["services:\n  web:\n    image: x\n    ports: ['127.0.0.1:8443:443']\n"],
            &[],
        ))
        .expect("load");
        assert_eq!(
            loaded.warnings,
            ["ignoring IP-address (127.0.0.1:8443:443/tcp) service will listen on '0.0.0.0'"]
        );
    }

    #[test]
    fn unset_variables_are_empty_and_defaults_do_not_nest() {
        let spec = one("services:\n  web:\n    image: \"x${UNSET}\"\n    hostname: \"${A:-${B}}\"\n");
        let c = spec.task_template.container_spec.expect("container");
        assert_eq!(c.image, "x");
        assert_eq!(c.hostname, "${B}", "the default runs to the first closing brace");
    }

    #[test]
    fn env_files_keep_trailing_whitespace_and_drop_unknown_bare_keys() {
        let env: BTreeMap<String, String> = [("FROM_SHELL".to_string(), "s".to_string())].into();
        let parsed = crate::syntax::parse_env_file("  A=1  \n# c\nFROM_SHELL\nMISSING\nB=\"q\"\n", &env);
        let want = [("A", "1  "), ("FROM_SHELL", "s"), ("B", "\"q\"")];
        let want: Vec<(String, String)> = want.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(parsed, want);
    }

    #[test]
    fn depends_on_and_service_tmpfs_are_accepted_and_not_converted() {
        let text = "services:\n  web:\n    image: x\n    depends_on: [db]\n    tmpfs: /run\n";
        let loaded = load(&details(&[text], &[])).expect("load");
        let web = loaded.config["services"]
            .as_map()
            .and_then(|s| s["web"].as_map())
            .expect("web");
        assert_eq!(
            web["depends_on"],
            crate::Value::Seq(vec![crate::Value::String("db".into())]),
            "stack config prints it"
        );
        assert_eq!(
            web["tmpfs"],
            crate::Value::Seq(vec![crate::Value::String("/run".into())])
        );
        let spec = one(text);
        assert_eq!(
            spec.task_template.container_spec.and_then(|c| c.mounts),
            None,
            "no tmpfs mount is made"
        );
        assert!(
            error_of("services:\n  web:\n    image: x\n    depends_on: {db: {}}\n")
                .contains("services.web.depends_on must be a list")
        );
    }
}

#[test]
fn services_sharing_an_env_file_each_get_its_values_under_their_own_environment() {
    let dir = std::env::temp_dir().join(format!("swarm-compose-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("shared.env");
    std::fs::write(&file, "A=from_file\nB=file_b\n").expect("env file");
    let text = format!(
        "services:\n  web:\n    image: x\n    env_file: {f}\n    environment: {{B: web_b}}\n  \
         api:\n    image: x\n    env_file: [{f}]\n",
        f = file.display()
    );
    let specs = specs(&text, &[]);
    let _ = std::fs::remove_dir_all(&dir);
    let env_of = |name: &str| {
        specs[name]
            .task_template
            .container_spec
            .as_ref()
            .and_then(|c| c.env.clone())
            .unwrap_or_default()
    };
    assert_eq!(env_of("s_web"), ["A=from_file", "B=web_b"]);
    assert_eq!(env_of("s_api"), ["A=from_file", "B=file_b"]);
}

#[test]
fn lists_of_objects_name_the_item_that_is_wrong() {
    let cases = [
        (
            "services:\n  web:\n    image: x\n    deploy:\n      placement: {preferences: [{spread: a}, {spreed: b}]}\n",
            "services.web.deploy.placement.preferences.1 Additional property spreed is not allowed",
        ),
        (
            "services:\n  web:\n    image: x\n    deploy:\n      placement: {preferences: {spread: a}}\n",
            "services.web.deploy.placement.preferences must be a list",
        ),
        (
            "services:\n  web:\n    image: x\n    deploy:\n      resources:\n        reservations: {generic_resources: [gpu]}\n",
            "services.web.deploy.resources.reservations.generic_resources.0 must be a mapping",
        ),
        (
            "services:\n  web:\n    image: x\nnetworks:\n  front: {ipam: {config: [{subnet: 10.0.0.0/24, gateway: 10.0.0.1}]}}\n",
            "networks.front.ipam.config.0 Additional property gateway is not allowed",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(error_of(text), expected, "for {text}");
    }
}
