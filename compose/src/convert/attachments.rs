//! What a service attaches: its secret and config files, networks and mounts, each checked
//! against what the stack declares.

use std::collections::BTreeSet;

use swarm_model::Driver;
use swarm_model::FileTarget;
use swarm_model::Mount;
use swarm_model::NetworkAttachmentConfig;
use swarm_model::TmpfsOptions;
use swarm_model::VolumeOptions;

use crate::error::ServiceProblem;
use crate::value::Map;
use crate::value::Value;

use super::*;

/// The engine's own networks (and `container:<id>`), which a stack neither creates nor checks
/// and whose attachments get no service-name alias.
pub fn is_builtin_network(name: &str) -> bool {
    matches!(name, "default" | "bridge" | "host" | "none") || name.starts_with("container:")
}

/// `(file target, object name)` pairs for a service's secrets or configs, sorted by target.
pub(super) fn file_references(
    stack: &str,
    refs: Option<&Value>,
    declared: &Map,
    kind: &'static str,
) -> Result<Vec<(FileTarget, String)>, ServiceProblem> {
    let mut out: Vec<(FileTarget, String)> = Vec::new();
    let mut targets = BTreeSet::new();
    for reference in refs
        .and_then(Value::as_seq)
        .unwrap_or_default()
        .iter()
        .filter_map(Value::as_map)
    {
        let source = text(reference, "source");
        let Some(object) = declared.get(&source).and_then(Value::as_map) else {
            return Err(ServiceProblem::Undefined { kind, name: source });
        };
        let name = object_name(stack, &source, Some(object));
        let target = match text(reference, "target") {
            t if t.is_empty() => source.clone(),
            t => t,
        };
        if !targets.insert(target.clone()) {
            return Err(ServiceProblem::DuplicateTarget { kind, name: source });
        }
        let or_zero = |key: &str| match text(reference, key) {
            s if s.is_empty() => "0".to_string(),
            s => s,
        };
        let mode = reference
            .get("mode")
            .and_then(Value::as_i64)
            .map(|m| m.clamp(0, 0o7777) as u32)
            .unwrap_or(0o444);
        out.push((
            FileTarget {
                name: target,
                uid: or_zero("uid"),
                gid: or_zero("gid"),
                mode,
            },
            name,
        ));
    }
    out.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    Ok(out)
}

pub(super) fn service_networks(
    stack: &str,
    service: &str,
    value: Option<&Value>,
    declared: &Map,
) -> Result<Vec<NetworkAttachmentConfig>, ServiceProblem> {
    let mut requested: Map = value.and_then(Value::as_map).cloned().unwrap_or_default();
    if requested.is_empty() {
        requested.insert("default".to_string(), Value::Null);
    }
    let mut out = Vec::new();
    for (key, attachment) in &requested {
        let network = declared.get(key).and_then(Value::as_map);
        if key != "default" && !declared.contains_key(key) {
            return Err(ServiceProblem::Undefined {
                kind: "network",
                name: key.clone(),
            });
        }
        let target = object_name(stack, key, network);
        let attachment = attachment.as_map();
        let mut aliases = strings(attachment.and_then(|a| a.get("aliases")));
        if !is_builtin_network(&target) {
            aliases.push(service.to_string());
        }
        out.push(NetworkAttachmentConfig {
            target,
            aliases: Some(aliases).filter(|a| !a.is_empty()),
            driver_opts: attachment
                .and_then(|a| a.get("driver_opts"))
                .map(|d| string_map(Some(d))),
        });
    }
    out.sort_by(|a, b| a.target.cmp(&b.target));
    Ok(out)
}

pub(super) fn mounts(stack: &str, value: Option<&Value>, declared: &Map) -> Result<Vec<Mount>, ServiceProblem> {
    let mut out = Vec::new();
    for volume in value
        .and_then(Value::as_seq)
        .unwrap_or_default()
        .iter()
        .filter_map(Value::as_map)
    {
        let kind = text(volume, "type");
        let mut mount = Mount {
            type_: kind.clone(),
            source: text(volume, "source"),
            target: text(volume, "target"),
            read_only: volume.get("read_only").and_then(Value::as_bool).unwrap_or(false),
            consistency: text(volume, "consistency"),
            ..Mount::default()
        };
        let has = |k: &str| volume.contains_key(k);
        match kind.as_str() {
            "volume" => {
                if has("tmpfs") {
                    return Err(ServiceProblem::MountOptions {
                        options: "tmpfs",
                        kind: "volume",
                    });
                }
                if has("bind") {
                    return Err(ServiceProblem::MountOptions {
                        options: "bind",
                        kind: "volume",
                    });
                }
                if !mount.source.is_empty() {
                    let Some(stack_volume) = declared
                        .get(&mount.source)
                        .map(|v| v.as_map().cloned().unwrap_or_default())
                    else {
                        return Err(ServiceProblem::Undefined {
                            kind: "volume",
                            name: mount.source,
                        });
                    };
                    let no_copy = volume
                        .get("volume")
                        .and_then(Value::as_map)
                        .and_then(|v| v.get("nocopy"))
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    let mut options = VolumeOptions {
                        no_copy,
                        ..VolumeOptions::default()
                    };
                    mount.source = object_name(stack, &mount.source, Some(&stack_volume));
                    if stack_volume.get("external").and_then(Value::as_bool) != Some(true) {
                        options.labels = Some(with_stack_label(stack, stack_volume.get("labels")));
                        if stack_volume.contains_key("driver") || stack_volume.contains_key("driver_opts") {
                            options.driver_config = Some(Driver {
                                name: text(&stack_volume, "driver"),
                                options: stack_volume.get("driver_opts").map(|o| string_map(Some(o))),
                            });
                        }
                    }
                    mount.volume_options = Some(options);
                }
            }
            "bind" => {
                if has("tmpfs") {
                    return Err(ServiceProblem::MountOptions {
                        options: "tmpfs",
                        kind: "bind",
                    });
                }
                if has("volume") {
                    return Err(ServiceProblem::MountOptions {
                        options: "volume",
                        kind: "bind",
                    });
                }
                if let Some(b) = volume.get("bind").and_then(Value::as_map) {
                    mount.bind_options = Some(swarm_model::BindOptions {
                        propagation: text(b, "propagation"),
                        ..Default::default()
                    });
                }
            }
            "tmpfs" => {
                if !mount.source.is_empty() {
                    return Err(ServiceProblem::TmpfsSource);
                }
                if let Some(t) = volume.get("tmpfs").and_then(Value::as_map) {
                    mount.tmpfs_options = Some(TmpfsOptions {
                        size_bytes: t.get("size").and_then(Value::as_i64),
                        ..TmpfsOptions::default()
                    });
                }
            }
            "npipe" | "cluster" => {}
            _ => return Err(ServiceProblem::MountType),
        }
        out.push(mount);
    }
    Ok(out)
}
