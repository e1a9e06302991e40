//! The crates' layers, checked from `cargo metadata`: each workspace crate may depend only on
//! the crates below it that docs/architecture.md allows, so a lower layer can never import a
//! higher one (or a sibling's insides) by accident. A new crate must be added here, with its
//! place, before this test passes.

// A test crate: a panic is how it fails.
#![allow(clippy::expect_used)]

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

/// Every workspace crate and the workspace crates it may use, normal, build and dev
/// dependencies alike (a test that reaches up is still a reach up).
const ALLOWED: &[(&str, &[&str])] = &[
    ("swarm-sync", &[]),
    ("swarm-model", &[]),
    ("swarm-raft", &["swarm-sync"]),
    ("swarm-ca", &["swarm-model"]),
    ("swarm-protocol", &["swarm-model"]),
    ("swarm-compose", &["swarm-model"]),
    (
        "swarm-net",
        &["swarm-ca", "swarm-model", "swarm-protocol", "swarm-raft"],
    ),
    (
        "swarm-manager",
        &[
            "swarm-ca",
            "swarm-model",
            "swarm-net",
            "swarm-protocol",
            "swarm-raft",
            "swarm-sync",
        ],
    ),
    (
        "swarm-agent",
        &["swarm-model", "swarm-net", "swarm-protocol", "swarm-sync"],
    ),
    ("swarm-ctl", &["swarm-compose", "swarm-model", "swarm-protocol"]),
    (
        "swarm-rs",
        &[
            "swarm-agent",
            "swarm-ca",
            "swarm-ctl",
            "swarm-manager",
            "swarm-model",
            "swarm-net",
            "swarm-protocol",
            "swarm-raft",
            "swarm-sync",
        ],
    ),
];

/// Workspace crate → the workspace crates it depends on, from `cargo metadata`.
fn workspace_dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let names: BTreeSet<String> = packages
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect();
    packages
        .iter()
        .map(|p| {
            let name = p["name"].as_str().expect("package name").to_string();
            let deps = p["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .filter_map(|d| d["name"].as_str())
                .filter(|d| names.contains(*d) && *d != name)
                .map(str::to_string)
                .collect();
            (name, deps)
        })
        .collect()
}

#[test]
fn every_crate_depends_only_on_the_layers_below_it() {
    let allowed: BTreeMap<&str, BTreeSet<&str>> = ALLOWED
        .iter()
        .map(|(name, deps)| (*name, deps.iter().copied().collect()))
        .collect();
    let actual = workspace_dependencies();
    let mut problems = Vec::new();
    for (name, deps) in &actual {
        let Some(may) = allowed.get(name.as_str()) else {
            problems.push(format!(
                "{name} has no place in the layers: add it to ALLOWED in tests/layers.rs and to docs/architecture.md"
            ));
            continue;
        };
        for dep in deps {
            if !may.contains(dep.as_str()) {
                problems.push(format!("{name} must not depend on {dep}"));
            }
        }
    }
    for name in allowed.keys() {
        if !actual.contains_key(*name) {
            problems.push(format!(
                "{name} is listed in tests/layers.rs but is not in the workspace"
            ));
        }
    }
    assert!(problems.is_empty(), "layer violations:\n  {}", problems.join("\n  "));
}

#[test]
fn the_allowed_dependencies_form_no_circle() {
    // Each crate must come after everything it may use: a circle leaves some crate unplaced.
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    let mut left: Vec<(&str, &[&str])> = ALLOWED.to_vec();
    while !left.is_empty() {
        let before = left.len();
        left.retain(|(name, deps)| {
            if deps.iter().all(|d| placed.contains(d)) {
                placed.insert(name);
                false
            } else {
                true
            }
        });
        assert!(
            left.len() < before,
            "the allowed dependencies go round in a circle among {:?}",
            left.iter().map(|(n, _)| *n).collect::<Vec<_>>()
        );
    }
}
