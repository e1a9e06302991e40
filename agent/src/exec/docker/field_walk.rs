//! Every field of a task's spec is either given to the container or named here as someone
//! else's, so a field added to the model and forgotten by the agent fails this test.
//!
//! The field lists come from the model types themselves (their serde field names), and one
//! task sets every field the agent is responsible for; each has a check on the create body.

use bollard::models::ContainerCreateBody;
use bollard::models::HostConfigIsolationEnum;
use bollard::models::MountBindOptionsPropagationEnum;
use serde::de::DeserializeOwned;
use serde::de::Visitor;
use swarm_model::AppArmorOpts;
use swarm_model::BindOptions;
use swarm_model::ContainerSpec;
use swarm_model::DnsConfig;
use swarm_model::Driver;
use swarm_model::HealthConfig;
use swarm_model::Limit;
use swarm_model::Mount;
use swarm_model::Privileges;
use swarm_model::ResourceRequirements;
use swarm_model::SeLinuxContext;
use swarm_model::SeccompOpts;
use swarm_model::Task;
use swarm_model::TaskSpec;
use swarm_model::TmpfsOptions;
use swarm_model::Ulimit;
use swarm_model::VolumeOptions;

use super::container::create_body;

/// The serde field names of struct `T`, read from its `Deserialize` implementation.
fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Probe<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Probe<'_> {
        type Error = serde::de::value::Error;
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(serde::de::Error::custom("fields read"))
        }
        fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("not a struct"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

type Check = fn(&ContainerCreateBody) -> bool;

/// How a field reaches the container, or whose it is instead.
enum Owner {
    Container(Check),
    Elsewhere(&'static str),
}

use Owner::Container;
use Owner::Elsewhere;

fn host(b: &ContainerCreateBody) -> bollard::models::HostConfig {
    b.host_config.clone().unwrap_or_default()
}

fn has_opt(b: &ContainerCreateBody, opt: &str) -> bool {
    host(b).security_opt.unwrap_or_default().iter().any(|o| o == opt)
}

fn mount(b: &ContainerCreateBody, target: &str) -> bollard::models::Mount {
    host(b)
        .mounts
        .unwrap_or_default()
        .into_iter()
        .find(|m| m.target.as_deref() == Some(target))
        .unwrap_or_default()
}

fn strings(v: &[&str]) -> Option<Vec<String>> {
    Some(v.iter().map(|s| s.to_string()).collect())
}

const CONTAINER_SPEC: &[(&str, Owner)] = &[
    ("Image", Container(|b| b.image.as_deref() == Some("busybox:1"))),
    (
        "Labels",
        Container(|b| b.labels.clone().unwrap_or_default().get("team").map(String::as_str) == Some("a")),
    ),
    ("Command", Container(|b| b.entrypoint == strings(&["sh", "-c"]))),
    ("Args", Container(|b| b.cmd == strings(&["sleep 1"]))),
    ("Hostname", Container(|b| b.hostname.as_deref() == Some("h1"))),
    ("Env", Container(|b| b.env == strings(&["A=1"]))),
    ("Dir", Container(|b| b.working_dir.as_deref() == Some("/srv"))),
    ("User", Container(|b| b.user.as_deref() == Some("1000"))),
    ("Groups", Container(|b| host(b).group_add == strings(&["audio"]))),
    ("Privileges", Container(|b| has_opt(b, "no-new-privileges=true"))),
    ("TTY", Container(|b| b.tty == Some(true))),
    ("OpenStdin", Container(|b| b.open_stdin == Some(true))),
    ("ReadOnly", Container(|b| host(b).readonly_rootfs == Some(true))),
    ("Mounts", Container(|b| mount(b, "/vol").source.as_deref() == Some("v"))),
    ("StopSignal", Container(|b| b.stop_signal.as_deref() == Some("SIGUSR1"))),
    ("StopGracePeriod", Container(|b| b.stop_timeout == Some(3))),
    (
        "Healthcheck",
        Container(|b| b.healthcheck.as_ref().and_then(|h| h.retries) == Some(4)),
    ),
    ("Hosts", Container(|b| host(b).extra_hosts == strings(&["db:10.0.0.1"]))),
    ("DNSConfig", Container(|b| host(b).dns == strings(&["10.0.0.53"]))),
    (
        "Secrets",
        Elsewhere("files: the controller writes them and passes their mounts in"),
    ),
    (
        "Configs",
        Elsewhere("files: the controller writes them and passes their mounts in"),
    ),
    (
        "Isolation",
        Container(|b| host(b).isolation == Some(HostConfigIsolationEnum::DEFAULT)),
    ),
    ("Init", Container(|b| host(b).init == Some(true))),
    (
        "Sysctls",
        Container(|b| {
            host(b)
                .sysctls
                .unwrap_or_default()
                .get("net.core.somaxconn")
                .map(String::as_str)
                == Some("1024")
        }),
    ),
    (
        "CapabilityAdd",
        Container(|b| host(b).cap_add == strings(&["NET_ADMIN"])),
    ),
    ("CapabilityDrop", Container(|b| host(b).cap_drop == strings(&["MKNOD"]))),
    (
        "Ulimits",
        Container(|b| host(b).ulimits.unwrap_or_default().first().and_then(|u| u.hard) == Some(20)),
    ),
    ("OomScoreAdj", Container(|b| host(b).oom_score_adj == Some(-5))),
];

const TASK_SPEC: &[(&str, Owner)] = &[
    ("PluginSpec", Elsewhere("plugin tasks are refused by the API")),
    ("ContainerSpec", Container(|b| b.image.is_some())),
    (
        "NetworkAttachmentSpec",
        Elsewhere("network attachment tasks are refused by the API"),
    ),
    (
        "Resources",
        Container(|b| host(b).memory == Some(64 << 20) && host(b).nano_cpus == Some(500_000_000)),
    ),
    ("RestartPolicy", Elsewhere("the managers' restart supervisor")),
    ("Placement", Elsewhere("the managers' scheduler")),
    (
        "Networks",
        Elsewhere("overlay networks: not attached to containers yet"),
    ),
    (
        "LogDriver",
        Container(|b| {
            host(b).log_config.is_some_and(|l| {
                l.typ.as_deref() == Some("json-file")
                    && l.config.unwrap_or_default().get("max-size").map(String::as_str) == Some("1m")
            })
        }),
    ),
    ("ForceUpdate", Elsewhere("the managers' update orchestrator")),
    ("Runtime", Elsewhere("the API: only container tasks are accepted")),
];

/// Parts of a mount and of privileges: each option reaches the engine.
const MOUNT: &[(&str, Owner)] = &[
    (
        "Type",
        Container(|b| mount(b, "/b").typ == Some(bollard::models::MountType::BIND)),
    ),
    (
        "Source",
        Container(|b| mount(b, "/b").source.as_deref() == Some("/src")),
    ),
    ("Target", Container(|b| mount(b, "/b").target.as_deref() == Some("/b"))),
    ("ReadOnly", Container(|b| mount(b, "/b").read_only == Some(true))),
    (
        "Consistency",
        Container(|b| mount(b, "/b").consistency.as_deref() == Some("cached")),
    ),
    (
        "BindOptions",
        Container(|b| {
            mount(b, "/b").bind_options.is_some_and(|o| {
                o.propagation == Some(MountBindOptionsPropagationEnum::RSLAVE)
                    && o.non_recursive == Some(true)
                    && o.create_mountpoint == Some(true)
                    && o.read_only_non_recursive == Some(true)
                    && o.read_only_force_recursive == Some(true)
            })
        }),
    ),
    (
        "VolumeOptions",
        Container(|b| {
            mount(b, "/vol").volume_options.is_some_and(|o| {
                o.no_copy == Some(true)
                    && o.subpath.as_deref() == Some("sub")
                    && o.labels.unwrap_or_default().get("l").map(String::as_str) == Some("v")
                    && o.driver_config.is_some_and(|d| {
                        d.name.as_deref() == Some("local")
                            && d.options.unwrap_or_default().get("o").map(String::as_str) == Some("p")
                    })
            })
        }),
    ),
    (
        "TmpfsOptions",
        Container(|b| {
            mount(b, "/t").tmpfs_options.is_some_and(|o| {
                o.size_bytes == Some(1 << 20)
                    && o.mode == Some(0o700)
                    && o.options == Some(vec![strings(&["exec"]).unwrap_or_default()])
            })
        }),
    ),
];

const PRIVILEGES: &[(&str, Owner)] = &[
    (
        "CredentialSpec",
        Elsewhere("Windows only: refused on this node (see the test below)"),
    ),
    (
        "SELinuxContext",
        Container(|b| has_opt(b, "label=user:u") && has_opt(b, "label=level:s0")),
    ),
    ("Seccomp", Container(|b| has_opt(b, "seccomp=unconfined"))),
    ("AppArmor", Container(|b| has_opt(b, "apparmor=unconfined"))),
    ("NoNewPrivileges", Container(|b| has_opt(b, "no-new-privileges=true"))),
];

fn labels(pairs: &[(&str, &str)]) -> Option<swarm_model::Labels> {
    Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

/// A task that sets every field the agent is responsible for.
fn full_task() -> Task {
    let container = ContainerSpec {
        image: "busybox:1".into(),
        labels: labels(&[("team", "a")]),
        command: strings(&["sh", "-c"]),
        args: strings(&["sleep 1"]),
        hostname: "h1".into(),
        env: strings(&["A=1"]),
        dir: "/srv".into(),
        user: "1000".into(),
        groups: strings(&["audio"]),
        privileges: Some(Privileges {
            credential_spec: None,
            selinux_context: Some(SeLinuxContext {
                user: "u".into(),
                level: "s0".into(),
                ..Default::default()
            }),
            seccomp: Some(SeccompOpts {
                mode: "unconfined".into(),
                profile: None,
            }),
            app_armor: Some(AppArmorOpts {
                mode: "disabled".into(),
            }),
            no_new_privileges: true,
        }),
        tty: true,
        open_stdin: true,
        read_only: true,
        mounts: Some(vec![
            Mount {
                type_: "bind".into(),
                source: "/src".into(),
                target: "/b".into(),
                read_only: true,
                consistency: "cached".into(),
                bind_options: Some(BindOptions {
                    propagation: "rslave".into(),
                    non_recursive: true,
                    create_mountpoint: true,
                    read_only_non_recursive: true,
                    read_only_force_recursive: true,
                }),
                ..Default::default()
            },
            Mount {
                type_: "volume".into(),
                source: "v".into(),
                target: "/vol".into(),
                volume_options: Some(VolumeOptions {
                    no_copy: true,
                    labels: labels(&[("l", "v")]),
                    subpath: "sub".into(),
                    driver_config: Some(Driver {
                        name: "local".into(),
                        options: labels(&[("o", "p")]),
                    }),
                }),
                ..Default::default()
            },
            Mount {
                type_: "tmpfs".into(),
                target: "/t".into(),
                tmpfs_options: Some(TmpfsOptions {
                    size_bytes: Some(1 << 20),
                    mode: Some(0o700),
                    options: Some(vec![vec!["exec".to_string()]]),
                }),
                ..Default::default()
            },
        ]),
        stop_signal: "SIGUSR1".into(),
        stop_grace_period: Some(2_500_000_000),
        healthcheck: Some(HealthConfig {
            test: strings(&["CMD", "true"]),
            retries: Some(4),
            ..Default::default()
        }),
        hosts: strings(&["10.0.0.1 db"]),
        dns_config: Some(DnsConfig {
            nameservers: strings(&["10.0.0.53"]),
            ..Default::default()
        }),
        secrets: Some(Vec::new()),
        configs: Some(Vec::new()),
        isolation: "default".into(),
        init: Some(true),
        sysctls: labels(&[("net.core.somaxconn", "1024")]),
        capability_add: strings(&["NET_ADMIN"]),
        capability_drop: strings(&["MKNOD"]),
        ulimits: Some(vec![Ulimit {
            name: "nofile".into(),
            soft: 10,
            hard: 20,
        }]),
        oom_score_adj: Some(-5),
    };
    Task {
        spec: TaskSpec {
            container_spec: Some(container),
            resources: Some(ResourceRequirements {
                limits: Some(Limit {
                    nano_cpus: 500_000_000,
                    memory_bytes: 64 << 20,
                    pids: 100,
                }),
                reservations: None,
            }),
            log_driver: Some(Driver {
                name: "json-file".into(),
                options: labels(&[("max-size", "1m")]),
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Each field of `T` has an entry, each entry names a field of `T`, and each field the
/// container gets is set in one of the `samples` and found in `body`.
fn walk<T: DeserializeOwned + serde::Serialize>(
    what: &str,
    table: &[(&str, Owner)],
    samples: &[&T],
    body: &ContainerCreateBody,
) {
    let fields = field_names::<T>();
    assert!(!fields.is_empty(), "{what}: no fields read");
    for field in fields {
        assert!(
            table.iter().any(|(name, _)| name == field),
            "{what}.{field} is new: give it to the container in create_body, or say here whose it is"
        );
    }
    let set: Vec<serde_json::Value> = samples
        .iter()
        .map(|s| serde_json::to_value(s).unwrap_or_default())
        .collect();
    for (name, owner) in table {
        assert!(fields.contains(name), "{what}.{name} is not a field any more");
        match owner {
            Container(check) => {
                assert!(
                    set.iter().any(|v| !v[*name].is_null()),
                    "{what}.{name}: the sample task must set it"
                );
                assert!(check(body), "{what}.{name} does not reach the container");
            }
            Elsewhere(whose) => assert!(!whose.is_empty(), "{what}.{name}: say whose it is"),
        }
    }
}

#[test]
fn every_task_spec_field_reaches_the_container_or_is_someone_elses() {
    let task = full_task();
    let body = create_body(&task, "n1", "web.1.t1").unwrap();
    let container = task.spec.container_spec.clone().unwrap_or_default();
    walk::<TaskSpec>("TaskSpec", TASK_SPEC, &[&task.spec], &body);
    walk::<ContainerSpec>("ContainerSpec", CONTAINER_SPEC, &[&container], &body);
    let mounts = container.mounts.clone().unwrap_or_default();
    walk::<Mount>("Mount", MOUNT, &mounts.iter().collect::<Vec<_>>(), &body);
    let privileges = container.privileges.clone().unwrap_or_default();
    walk::<Privileges>("Privileges", PRIVILEGES, &[&privileges], &body);
}

#[test]
fn privileges_that_cannot_be_applied_reject_the_task() {
    let refused = |privileges: Privileges| {
        let mut task = full_task();
        if let Some(c) = task.spec.container_spec.as_mut() {
            c.privileges = Some(privileges);
        }
        create_body(&task, "n1", "web.1.t1").expect_err("refused").to_string()
    };
    let windows_only = refused(Privileges {
        credential_spec: Some(Default::default()),
        ..Default::default()
    });
    assert!(windows_only.contains("Privileges.CredentialSpec"), "{windows_only}");
    let bad_seccomp = refused(Privileges {
        seccomp: Some(SeccompOpts {
            mode: "strict".into(),
            profile: None,
        }),
        ..Default::default()
    });
    assert!(bad_seccomp.contains("\"strict\""), "{bad_seccomp}");
    let no_profile = refused(Privileges {
        seccomp: Some(SeccompOpts {
            mode: "custom".into(),
            profile: None,
        }),
        ..Default::default()
    });
    assert!(no_profile.contains("Profile"), "{no_profile}");
    let bad_apparmor = refused(Privileges {
        app_armor: Some(AppArmorOpts {
            mode: "complain".into(),
        }),
        ..Default::default()
    });
    assert!(bad_apparmor.contains("AppArmor"), "{bad_apparmor}");
}

#[test]
fn a_custom_seccomp_profile_is_passed_as_written() {
    let mut task = full_task();
    if let Some(c) = task.spec.container_spec.as_mut() {
        c.privileges = Some(Privileges {
            seccomp: Some(SeccompOpts {
                mode: "custom".into(),
                profile: Some("{\"defaultAction\":\"SCMP_ACT_ALLOW\"}".into()),
            }),
            ..Default::default()
        });
    }
    let body = create_body(&task, "n1", "web.1.t1").unwrap();
    assert!(has_opt(&body, "seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\"}"));
}
