//! What `stack config` prints: the loaded tree without the fields docker leaves out.
//!
//! docker prints its Go compose types with `omitempty`, so a field at its zero value (empty
//! string, 0, `0s`, `false`, empty list or map, or a struct whose fields are all zero) is not
//! printed unless the Go field is a pointer, which prints whenever it is set (`replicas: 0`,
//! `restart_policy: {delay: 0s}`, `logging: {}`). Map values and list items are always printed.
//! The shapes below follow docker/cli's `cli/compose/types` field by field; keys they do not
//! list (`x-*` extensions) are printed as written.

use crate::value::Map;
use crate::value::Value;

/// How a value is printed, as far as leaving out zero values goes.
enum Shape {
    /// A scalar, list or map whose zero is the empty or zero value.
    Plain,
    /// A Go `Duration`: zero is `0s`.
    Duration,
    /// A Go `UnitBytes`, printed as a decimal string: zero is `0`.
    Bytes,
    /// A Go struct: its fields, each with whether it is a pointer.
    Struct(&'static [(&'static str, Field)]),
    /// A map whose values have this shape and are always printed.
    MapOf(&'static Shape),
    /// A list whose items have this shape and are always printed.
    SeqOf(&'static Shape),
}

/// A struct field: printed when zero only if it is a pointer (or has no `omitempty`).
struct Field {
    always: bool,
    shape: &'static Shape,
}

const fn omit(shape: &'static Shape) -> Field {
    Field { always: false, shape }
}

/// A pointer field, or one without `omitempty`: printed whenever it is present.
const fn keep(shape: &'static Shape) -> Field {
    Field { always: true, shape }
}

const PLAIN: Shape = Shape::Plain;
const DURATION: Shape = Shape::Duration;
const BYTES: Shape = Shape::Bytes;

const CONFIG: Shape = Shape::Struct(&[
    ("version", keep(&PLAIN)),
    ("services", keep(&Shape::MapOf(&SERVICE))),
    ("networks", omit(&Shape::MapOf(&NETWORK))),
    ("volumes", omit(&Shape::MapOf(&VOLUME))),
    ("secrets", omit(&Shape::MapOf(&FILE_OBJECT))),
    ("configs", omit(&Shape::MapOf(&FILE_OBJECT))),
]);

const SERVICE: Shape = Shape::Struct(&[
    ("build", omit(&BUILD)),
    ("cap_add", omit(&PLAIN)),
    ("cap_drop", omit(&PLAIN)),
    ("cgroupns_mode", omit(&PLAIN)),
    ("cgroup_parent", omit(&PLAIN)),
    ("command", omit(&PLAIN)),
    ("configs", omit(&Shape::SeqOf(&FILE_REFERENCE))),
    ("container_name", omit(&PLAIN)),
    ("credential_spec", omit(&CREDENTIAL_SPEC)),
    ("depends_on", omit(&PLAIN)),
    ("deploy", omit(&DEPLOY)),
    ("devices", omit(&PLAIN)),
    ("dns", omit(&PLAIN)),
    ("dns_search", omit(&PLAIN)),
    ("domainname", omit(&PLAIN)),
    ("entrypoint", omit(&PLAIN)),
    ("environment", omit(&Shape::MapOf(&PLAIN))),
    ("env_file", omit(&PLAIN)),
    ("expose", omit(&PLAIN)),
    ("external_links", omit(&PLAIN)),
    ("extra_hosts", omit(&PLAIN)),
    ("hostname", omit(&PLAIN)),
    ("healthcheck", keep(&HEALTHCHECK)),
    ("image", omit(&PLAIN)),
    ("init", keep(&PLAIN)),
    ("ipc", omit(&PLAIN)),
    ("isolation", omit(&PLAIN)),
    ("labels", omit(&Shape::MapOf(&PLAIN))),
    ("links", omit(&PLAIN)),
    ("logging", keep(&LOGGING)),
    ("mac_address", omit(&PLAIN)),
    ("network_mode", omit(&PLAIN)),
    ("networks", omit(&Shape::MapOf(&SERVICE_NETWORK))),
    ("pid", omit(&PLAIN)),
    ("ports", omit(&Shape::SeqOf(&PORT))),
    ("privileged", omit(&PLAIN)),
    ("read_only", omit(&PLAIN)),
    ("restart", omit(&PLAIN)),
    ("secrets", omit(&Shape::SeqOf(&FILE_REFERENCE))),
    ("security_opt", omit(&PLAIN)),
    ("shm_size", omit(&PLAIN)),
    ("stdin_open", omit(&PLAIN)),
    ("stop_grace_period", keep(&DURATION)),
    ("stop_signal", omit(&PLAIN)),
    ("sysctls", omit(&Shape::MapOf(&PLAIN))),
    ("tmpfs", omit(&PLAIN)),
    ("tty", omit(&PLAIN)),
    ("ulimits", omit(&Shape::MapOf(&ULIMIT))),
    ("user", omit(&PLAIN)),
    ("userns_mode", omit(&PLAIN)),
    ("volumes", omit(&Shape::SeqOf(&SERVICE_VOLUME))),
    ("working_dir", omit(&PLAIN)),
]);

const BUILD: Shape = Shape::Struct(&[
    ("context", omit(&PLAIN)),
    ("dockerfile", omit(&PLAIN)),
    ("args", omit(&Shape::MapOf(&PLAIN))),
    ("labels", omit(&Shape::MapOf(&PLAIN))),
    ("cache_from", omit(&PLAIN)),
    ("extra_hosts", omit(&PLAIN)),
    ("network", omit(&PLAIN)),
    ("target", omit(&PLAIN)),
]);

const CREDENTIAL_SPEC: Shape = Shape::Struct(&[
    ("config", omit(&PLAIN)),
    ("file", omit(&PLAIN)),
    ("registry", omit(&PLAIN)),
]);

const LOGGING: Shape = Shape::Struct(&[("driver", omit(&PLAIN)), ("options", omit(&Shape::MapOf(&PLAIN)))]);

const HEALTHCHECK: Shape = Shape::Struct(&[
    ("test", omit(&PLAIN)),
    ("timeout", keep(&DURATION)),
    ("interval", keep(&DURATION)),
    ("retries", keep(&PLAIN)),
    ("start_period", keep(&DURATION)),
    ("start_interval", keep(&DURATION)),
    ("disable", omit(&PLAIN)),
]);

const DEPLOY: Shape = Shape::Struct(&[
    ("mode", omit(&PLAIN)),
    ("replicas", keep(&PLAIN)),
    ("labels", omit(&Shape::MapOf(&PLAIN))),
    ("update_config", keep(&UPDATE_CONFIG)),
    ("rollback_config", keep(&UPDATE_CONFIG)),
    ("resources", omit(&RESOURCES)),
    ("restart_policy", keep(&RESTART_POLICY)),
    ("placement", omit(&PLACEMENT)),
    ("endpoint_mode", omit(&PLAIN)),
]);

const UPDATE_CONFIG: Shape = Shape::Struct(&[
    ("parallelism", keep(&PLAIN)),
    ("delay", omit(&DURATION)),
    ("failure_action", omit(&PLAIN)),
    ("monitor", omit(&DURATION)),
    ("max_failure_ratio", omit(&PLAIN)),
    ("order", omit(&PLAIN)),
]);

const RESOURCES: Shape = Shape::Struct(&[("limits", keep(&RESOURCE)), ("reservations", keep(&RESOURCE))]);

const RESOURCE: Shape = Shape::Struct(&[
    ("cpus", omit(&PLAIN)),
    ("memory", omit(&BYTES)),
    ("pids", omit(&PLAIN)),
    ("generic_resources", omit(&Shape::SeqOf(&GENERIC_RESOURCE))),
]);

const GENERIC_RESOURCE: Shape = Shape::Struct(&[("discrete_resource_spec", keep(&DISCRETE_RESOURCE))]);

/// `kind` and `value` have no `omitempty`.
const DISCRETE_RESOURCE: Shape = Shape::Struct(&[("kind", keep(&PLAIN)), ("value", keep(&PLAIN))]);

const RESTART_POLICY: Shape = Shape::Struct(&[
    ("condition", omit(&PLAIN)),
    ("delay", keep(&DURATION)),
    ("max_attempts", keep(&PLAIN)),
    ("window", keep(&DURATION)),
]);

const PLACEMENT: Shape = Shape::Struct(&[
    ("constraints", omit(&PLAIN)),
    ("preferences", omit(&Shape::SeqOf(&PLACEMENT_PREFERENCE))),
    ("max_replicas_per_node", omit(&PLAIN)),
]);

const PLACEMENT_PREFERENCE: Shape = Shape::Struct(&[("spread", omit(&PLAIN))]);

const SERVICE_NETWORK: Shape = Shape::Struct(&[
    ("aliases", omit(&PLAIN)),
    ("driver_opts", omit(&Shape::MapOf(&PLAIN))),
    ("ipv4_address", omit(&PLAIN)),
    ("ipv6_address", omit(&PLAIN)),
]);

const PORT: Shape = Shape::Struct(&[
    ("mode", omit(&PLAIN)),
    ("target", omit(&PLAIN)),
    ("published", omit(&PLAIN)),
    ("protocol", omit(&PLAIN)),
]);

const SERVICE_VOLUME: Shape = Shape::Struct(&[
    ("type", omit(&PLAIN)),
    ("source", omit(&PLAIN)),
    ("target", omit(&PLAIN)),
    ("read_only", omit(&PLAIN)),
    ("consistency", omit(&PLAIN)),
    ("bind", keep(&Shape::Struct(&[("propagation", omit(&PLAIN))]))),
    (
        "volume",
        keep(&Shape::Struct(&[("nocopy", omit(&PLAIN)), ("subpath", omit(&PLAIN))])),
    ),
    ("image", keep(&Shape::Struct(&[("subpath", omit(&PLAIN))]))),
    ("tmpfs", keep(&Shape::Struct(&[("size", omit(&PLAIN))]))),
    ("cluster", keep(&Shape::Struct(&[]))),
]);

const FILE_REFERENCE: Shape = Shape::Struct(&[
    ("source", omit(&PLAIN)),
    ("target", omit(&PLAIN)),
    ("uid", omit(&PLAIN)),
    ("gid", omit(&PLAIN)),
    ("mode", keep(&PLAIN)),
]);

/// A ulimit is a bare number or `{soft, hard}`.
const ULIMIT: Shape = Shape::Struct(&[("soft", omit(&PLAIN)), ("hard", omit(&PLAIN))]);

const NETWORK: Shape = Shape::Struct(&[
    ("name", omit(&PLAIN)),
    ("driver", omit(&PLAIN)),
    ("driver_opts", omit(&Shape::MapOf(&PLAIN))),
    (
        "ipam",
        omit(&Shape::Struct(&[
            ("driver", omit(&PLAIN)),
            (
                "config",
                omit(&Shape::SeqOf(&Shape::Struct(&[("subnet", omit(&PLAIN))]))),
            ),
        ])),
    ),
    ("external", omit(&PLAIN)),
    ("internal", omit(&PLAIN)),
    ("attachable", omit(&PLAIN)),
    ("labels", omit(&Shape::MapOf(&PLAIN))),
]);

const VOLUME: Shape = Shape::Struct(&[
    ("name", omit(&PLAIN)),
    ("driver", omit(&PLAIN)),
    ("driver_opts", omit(&Shape::MapOf(&PLAIN))),
    ("external", omit(&PLAIN)),
    ("labels", omit(&Shape::MapOf(&PLAIN))),
    ("x-cluster-spec", keep(&CLUSTER_VOLUME)),
]);

const CLUSTER_VOLUME: Shape = Shape::Struct(&[
    ("group", omit(&PLAIN)),
    (
        "access_mode",
        keep(&Shape::Struct(&[
            ("scope", omit(&PLAIN)),
            ("sharing", omit(&PLAIN)),
            (
                "mount_volume",
                keep(&Shape::Struct(&[
                    ("fs_type", omit(&PLAIN)),
                    ("mount_flags", omit(&PLAIN)),
                ])),
            ),
            ("block_volume", keep(&Shape::Struct(&[]))),
        ])),
    ),
    (
        "accessibility_requirements",
        keep(&Shape::Struct(&[
            ("requisite", omit(&Shape::SeqOf(&TOPOLOGY))),
            ("preferred", omit(&Shape::SeqOf(&TOPOLOGY))),
        ])),
    ),
    (
        "capacity_range",
        keep(&Shape::Struct(&[
            ("required_bytes", omit(&BYTES)),
            ("limit_bytes", omit(&BYTES)),
        ])),
    ),
    (
        "secrets",
        omit(&Shape::SeqOf(&Shape::Struct(&[
            ("key", omit(&PLAIN)),
            ("secret", omit(&PLAIN)),
        ]))),
    ),
    ("availability", omit(&PLAIN)),
]);

const TOPOLOGY: Shape = Shape::Struct(&[("segments", omit(&Shape::MapOf(&PLAIN)))]);

const FILE_OBJECT: Shape = Shape::Struct(&[
    ("name", omit(&PLAIN)),
    ("file", omit(&PLAIN)),
    ("external", omit(&PLAIN)),
    ("labels", omit(&Shape::MapOf(&PLAIN))),
    ("driver", omit(&PLAIN)),
    ("driver_opts", omit(&Shape::MapOf(&PLAIN))),
    ("template_driver", omit(&PLAIN)),
]);

/// The loaded tree as docker prints it: zero values of non-pointer fields left out.
pub fn printable(config: &Map) -> Map {
    let mut out = config.clone();
    prune_struct(&mut out, &CONFIG);
    out
}

/// Leaves out the zero fields of a struct's map, innermost first.
fn prune_struct(map: &mut Map, shape: &Shape) {
    let Shape::Struct(fields) = shape else {
        return;
    };
    map.retain(|key, value| {
        let Some((_, field)) = fields.iter().find(|(name, _)| name == key) else {
            return true;
        };
        prune(value, field.shape);
        field.always && !value.is_null() || !is_zero(value, field.shape)
    });
}

/// Prunes inside a value: struct fields, and the structs inside maps and lists.
fn prune(value: &mut Value, shape: &Shape) {
    match (value, shape) {
        (Value::Map(map), Shape::Struct(_)) => prune_struct(map, shape),
        (Value::Map(map), Shape::MapOf(inner)) => map.values_mut().for_each(|v| prune(v, inner)),
        (Value::Seq(items), Shape::SeqOf(inner)) => items.iter_mut().for_each(|v| prune(v, inner)),
        _ => {}
    }
}

/// Go's zero value for the field's type, after pruning: a struct is zero when nothing is left.
fn is_zero(value: &Value, shape: &Shape) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Int(i) => *i == 0,
        Value::Float(f) => *f == 0.0,
        Value::String(s) => match shape {
            Shape::Duration => s.is_empty() || s == "0s",
            Shape::Bytes => s.is_empty() || s == "0",
            _ => s.is_empty(),
        },
        Value::Seq(items) => items.is_empty(),
        Value::Map(map) => map.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use crate::Details;
    use crate::load;
    use crate::to_yaml;
    use crate::value::Value;
    use crate::value::parse_yaml;

    /// `stack config` of one file, parsed back as plain YAML.
    fn printed(file: &str, env: &[(&str, &str)]) -> Value {
        let details = Details {
            working_dir: PathBuf::from("/stack"),
            files: vec![("compose.yml".to_string(), file.to_string())],
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        };
        let loaded = load(&details).unwrap_or_else(|e| panic!("{file}\n{e}"));
        let text = to_yaml(&loaded.config).unwrap_or_else(|e| panic!("{file}\n{e}"));
        parse_yaml(&text).unwrap_or_else(|e| panic!("{text}\n{e}"))
    }

    fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
        path.split('.').try_fold(v, |v, key| match key.parse::<usize>() {
            Ok(i) => v.as_seq()?.get(i),
            Err(_) => v.as_map()?.get(key),
        })
    }

    /// (service keys set to a zero value, path under the service, printed as; None = left out).
    /// docker/cli's `types.go`: pointers print when set, everything else with `omitempty` not.
    const SERVICE_ZEROS: &[(&str, &str, Option<&str>)] = &[
        ("user: ''", "user", None),
        ("hostname: ''", "hostname", None),
        ("working_dir: ''", "working_dir", None),
        ("stop_signal: ''", "stop_signal", None),
        ("isolation: ''", "isolation", None),
        ("read_only: false", "read_only", None),
        ("tty: false", "tty", None),
        ("stdin_open: false", "stdin_open", None),
        ("privileged: false", "privileged", None),
        ("init: false", "init", Some("false")),
        ("cap_add: []", "cap_add", None),
        ("cap_drop: []", "cap_drop", None),
        ("command: []", "command", None),
        ("entrypoint: []", "entrypoint", None),
        ("dns: []", "dns", None),
        ("dns_search: []", "dns_search", None),
        ("extra_hosts: []", "extra_hosts", None),
        ("tmpfs: []", "tmpfs", None),
        ("labels: {}", "labels", None),
        ("environment: {}", "environment", None),
        ("environment: {A: ''}", "environment.A", Some("")),
        ("sysctls: {}", "sysctls", None),
        ("ulimits: {}", "ulimits", None),
        ("ulimits: {nofile: {soft: 0, hard: 0}}", "ulimits.nofile", Some("{}")),
        ("ports: []", "ports", None),
        ("ports: [{target: 80, published: 0}]", "ports.0.published", None),
        ("ports: [{target: 80, published: 0}]", "ports.0.target", Some("80")),
        ("volumes: []", "volumes", None),
        (
            "volumes: [{type: volume, source: v, target: /v, read_only: false}]",
            "volumes.0.read_only",
            None,
        ),
        (
            "volumes: [{type: volume, source: v, target: /v, volume: {nocopy: false}}]",
            "volumes.0.volume",
            Some("{}"),
        ),
        (
            "volumes: [{type: tmpfs, target: /t, tmpfs: {size: 0}}]",
            "volumes.0.tmpfs",
            Some("{}"),
        ),
        (
            "volumes: [{type: bind, source: /s, target: /b, bind: {propagation: ''}}]",
            "volumes.0.bind",
            Some("{}"),
        ),
        ("stop_grace_period: 0s", "stop_grace_period", Some("0s")),
        ("logging: {}", "logging", Some("{}")),
        ("logging: {driver: '', options: {}}", "logging", Some("{}")),
        ("healthcheck: {}", "healthcheck", Some("{}")),
        ("healthcheck: {disable: false, test: []}", "healthcheck", Some("{}")),
        ("healthcheck: {timeout: 0s}", "healthcheck.timeout", Some("0s")),
        ("healthcheck: {interval: 0s}", "healthcheck.interval", Some("0s")),
        ("healthcheck: {retries: 0}", "healthcheck.retries", Some("0")),
        (
            "healthcheck: {start_period: 0s}",
            "healthcheck.start_period",
            Some("0s"),
        ),
        ("credential_spec: {config: '', file: ''}", "credential_spec", None),
        ("deploy: {}", "deploy", None),
        ("deploy: {mode: '', endpoint_mode: ''}", "deploy", None),
        ("deploy: {replicas: 0}", "deploy.replicas", Some("0")),
        ("deploy: {labels: {}}", "deploy", None),
        (
            "deploy: {placement: {constraints: [], preferences: []}}",
            "deploy",
            None,
        ),
        ("deploy: {placement: {max_replicas_per_node: 0}}", "deploy", None),
        ("deploy: {resources: {}}", "deploy", None),
        (
            "deploy: {resources: {limits: {}}}",
            "deploy.resources.limits",
            Some("{}"),
        ),
        (
            "deploy: {resources: {limits: {cpus: '', memory: '0', pids: 0}}}",
            "deploy.resources.limits",
            Some("{}"),
        ),
        (
            "deploy: {resources: {reservations: {generic_resources: []}}}",
            "deploy.resources.reservations",
            Some("{}"),
        ),
        (
            "deploy: {resources: {reservations: {generic_resources: [{discrete_resource_spec: {kind: gpu, value: 0}}]}}}",
            "deploy.resources.reservations.generic_resources.0.discrete_resource_spec.value",
            Some("0"),
        ),
        ("deploy: {restart_policy: {}}", "deploy.restart_policy", Some("{}")),
        (
            "deploy: {restart_policy: {condition: ''}}",
            "deploy.restart_policy",
            Some("{}"),
        ),
        (
            "deploy: {restart_policy: {delay: 0s}}",
            "deploy.restart_policy.delay",
            Some("0s"),
        ),
        (
            "deploy: {restart_policy: {window: 0s}}",
            "deploy.restart_policy.window",
            Some("0s"),
        ),
        (
            "deploy: {restart_policy: {max_attempts: 0}}",
            "deploy.restart_policy.max_attempts",
            Some("0"),
        ),
        ("deploy: {update_config: {}}", "deploy.update_config", Some("{}")),
        (
            "deploy: {update_config: {parallelism: 0}}",
            "deploy.update_config.parallelism",
            Some("0"),
        ),
        (
            "deploy: {update_config: {delay: 0s}}",
            "deploy.update_config",
            Some("{}"),
        ),
        (
            "deploy: {update_config: {monitor: 0s}}",
            "deploy.update_config",
            Some("{}"),
        ),
        (
            "deploy: {update_config: {max_failure_ratio: 0}}",
            "deploy.update_config",
            Some("{}"),
        ),
        (
            "deploy: {update_config: {failure_action: ''}}",
            "deploy.update_config",
            Some("{}"),
        ),
        (
            "deploy: {rollback_config: {delay: 0s, max_failure_ratio: 0}}",
            "deploy.rollback_config",
            Some("{}"),
        ),
        (
            "deploy: {rollback_config: {parallelism: 0}}",
            "deploy.rollback_config.parallelism",
            Some("0"),
        ),
        ("networks: {front: {aliases: []}}", "networks.front", Some("{}")),
        ("networks: {front: null}", "networks.front", Some("null")),
        ("secrets: [{source: s, uid: '', gid: ''}]", "secrets.0.uid", None),
        ("secrets: [{source: s, mode: 0}]", "secrets.0.mode", Some("0")),
        ("configs: [{source: c, target: ''}]", "configs.0.target", None),
    ];

    /// Top-level objects with zero fields: (the sections after `services`, path, printed as).
    const OBJECT_ZEROS: &[(&str, &str, Option<&str>)] = &[
        ("networks: {front: {}}", "networks.front", Some("{}")),
        (
            "networks: {front: {driver: '', internal: false, attachable: false, labels: {}}}",
            "networks.front",
            Some("{}"),
        ),
        (
            "networks: {front: {ipam: {driver: '', config: []}}}",
            "networks.front",
            Some("{}"),
        ),
        ("networks: {front: {driver_opts: {}}}", "networks.front", Some("{}")),
        ("volumes: {data: {}}", "volumes.data", Some("{}")),
        (
            "volumes: {data: {driver: '', driver_opts: {}, labels: {}}}",
            "volumes.data",
            Some("{}"),
        ),
        ("secrets: {s: {file: ./s, labels: {}}}", "secrets.s.labels", None),
        (
            "configs: {c: {file: ./c, template_driver: ''}}",
            "configs.c.template_driver",
            None,
        ),
    ];

    fn show(v: Option<&Value>) -> Option<String> {
        v.map(|v| match v {
            Value::Null => "null".to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::String(s) => s.clone(),
            Value::Map(m) if m.is_empty() => "{}".to_string(),
            Value::Seq(s) if s.is_empty() => "[]".to_string(),
            other => format!("{other:?}"),
        })
    }

    #[test]
    fn every_service_field_at_its_zero_value_prints_as_docker_prints_it() {
        for (keys, path, expected) in SERVICE_ZEROS {
            let file = format!("version: '3.13'\nservices:\n  web:\n    image: x\n    {keys}\n");
            let out = printed(&file, &[]);
            let service = at(&out, "services.web").unwrap_or_else(|| panic!("{keys}: no service printed"));
            assert_eq!(
                show(at(service, path)).as_deref(),
                *expected,
                "`{keys}` prints {path} as docker does"
            );
        }
    }

    #[test]
    fn every_object_field_at_its_zero_value_prints_as_docker_prints_it() {
        for (section, path, expected) in OBJECT_ZEROS {
            let file = format!("version: '3.13'\nservices:\n  web:\n    image: x\n{section}\n");
            let out = printed(&file, &[]);
            assert_eq!(
                show(at(&out, path)).as_deref(),
                *expected,
                "`{section}` prints {path} as docker does"
            );
        }
    }

    #[test]
    fn an_interpolated_empty_string_is_left_out() {
        let file = "services:\n  web:\n    image: x\n    user: \"${EMPTY_VAR-notused}\"\n";
        let out = printed(file, &[("EMPTY_VAR", "")]);
        assert_eq!(at(&out, "services.web.user"), None);
        assert_eq!(show(at(&out, "services.web.image")).as_deref(), Some("x"));
    }

    #[test]
    fn set_values_are_all_printed() {
        let file = "services:\n  web:\n    image: x\n    user: nobody\n    read_only: true\n    deploy:\n      replicas: 2\n      update_config: {delay: 5s, max_failure_ratio: 0.5}\n";
        let out = printed(file, &[]);
        assert_eq!(show(at(&out, "services.web.user")).as_deref(), Some("nobody"));
        assert_eq!(show(at(&out, "services.web.read_only")).as_deref(), Some("true"));
        assert_eq!(show(at(&out, "services.web.deploy.replicas")).as_deref(), Some("2"));
        assert_eq!(
            show(at(&out, "services.web.deploy.update_config.delay")).as_deref(),
            Some("5s")
        );
        assert_eq!(
            show(at(&out, "services.web.deploy.update_config.max_failure_ratio")).as_deref(),
            Some("0.5")
        );
    }
}
