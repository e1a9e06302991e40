//! Request bodies are read as dockerd reads them: field names in any case, unknown keys skipped
//! (and named in the response's warnings where it has them). Each endpoint that takes a body
//! gets the canonical body and its variants, and what it stores must be the same.

use std::time::Duration;

use serde_json::Value;
use serde_json::json;

use crate::support::Cluster;
use crate::support::eventually;
use crate::support::tasks_of;
use crate::support::view::TaskView;

/// Keys whose objects are maps of data (labels, options), not structs: their keys stay as
/// written.
const MAP_FIELDS: &[&str] = &["Labels", "Options", "DriverOpts", "Sysctls"];

/// `v` with every field name passed through `recase` and, if `extra` is set, an unknown key
/// `Future` added to every struct object.
fn vary(v: &Value, recase: Recase, extra: bool) -> Value {
    match v {
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, child) in map {
                let child = if MAP_FIELDS.contains(&k.as_str()) {
                    child.clone()
                } else {
                    vary(child, recase, extra)
                };
                out.insert(recase(k), child);
            }
            if extra {
                out.insert("Future".to_string(), json!({"Any": [1, 2]}));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|i| vary(i, recase, extra)).collect()),
        other => other.clone(),
    }
}

fn lower(k: &str) -> String {
    k.to_ascii_lowercase()
}

fn upper(k: &str) -> String {
    k.to_ascii_uppercase()
}

/// How a variant spells field names.
type Recase = fn(&str) -> String;

/// (name, recasing, with an unknown key in every struct object).
const VARIANTS: [(&str, Recase, bool); 3] = [
    ("lower", lower, false),
    ("upper", upper, true),
    ("lower+extra", lower, true),
];

/// `v` without the keys that differ between two objects made from one body.
fn without(v: &Value, keys: &[&str]) -> Value {
    let mut v = v.clone();
    if let Some(map) = v.as_object_mut() {
        for k in keys {
            map.remove(*k);
        }
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_decoded_as_dockerd_decodes_them() {
    let mut c = Cluster::new();
    let m1 = c.init("m1", &[]);
    let client = c.nodes[m1].client();

    // Services: every variant of the body stores the spec the canonical body stores.
    let service = |name: &str| {
        json!({
            "Name": name,
            "Labels": {"Tier": "front", "tier": "lower"},
            "Mode": {"Replicated": {"Replicas": 1}},
            "TaskTemplate": {
                "ContainerSpec": {"Image": "swarm-test/busybox:latest", "Args": ["sleep", "60"],
                    "Env": ["A=1"], "Labels": {"Kind": "x"}, "StopGracePeriod": 1_000_000_000},
                "RestartPolicy": {"Condition": "on-failure", "MaxAttempts": 3},
                "Placement": {"Constraints": ["node.role==manager"]},
                "Resources": {"Limits": {"NanoCPUs": 500_000_000}}
            },
            "UpdateConfig": {"Parallelism": 2, "Order": "start-first"},
            "EndpointSpec": {"Mode": "vip"}
        })
    };
    let _: Value = client.post("/services/create", &service("canonical")).await.unwrap();
    let canonical: Value = client.get("/services/canonical").await.unwrap();
    for (case, recase, extra) in VARIANTS {
        let name = format!("svc-{}", case.replace('+', "-"));
        let body = vary(&service(&name), recase, extra);
        let created: Value = client.post("/services/create", &body).await.unwrap();
        if extra {
            let warnings = created["Warnings"].as_array().expect("warnings for unknown keys");
            assert!(
                warnings.contains(&json!("unknown field Spec.Future ignored")),
                "{case}: {created}"
            );
            assert!(
                warnings.contains(&json!("unknown field Spec.TaskTemplate.ContainerSpec.Future ignored")),
                "{case}: {created}"
            );
            assert_eq!(warnings.len(), 11, "one per struct object sent: {created}");
        } else {
            assert!(created.get("Warnings").is_none(), "{case}: {created}");
        }
        let stored: Value = client.get(&format!("/services/{name}")).await.unwrap();
        assert_eq!(
            without(&stored["Spec"], &["Name"]),
            without(&canonical["Spec"], &["Name"]),
            "{case}"
        );
    }

    // A create and a scale with the mode keys in lower case, as some SDKs send them.
    let created: Value = client
        .post(
            "/services/create",
            &json!({"name": "sdk", "mode": {"replicated": {"replicas": 2}},
                "taskTemplate": {"containerSpec": {"image": "swarm-test/busybox:latest"}}}),
        )
        .await
        .unwrap();
    assert!(created["ID"].is_string(), "{created}");
    let running = |n: usize| {
        let c = &c;
        move || async move {
            let tasks = tasks_of(c, m1, "sdk").await?;
            (tasks.iter().filter(|t| t.is_live()).count() == n).then_some(())
        }
    };
    eventually("2 sdk tasks running", Duration::from_secs(30), running(2)).await;
    let svc: Value = client.get("/services/sdk").await.unwrap();
    let version = svc["Version"]["Index"].as_u64().unwrap();
    let scaled: Value = client
        .post(
            &format!("/services/sdk/update?version={version}"),
            &json!({"name": "sdk", "mode": {"replicated": {"replicas": 3}},
                "tasktemplate": {"containerspec": {"image": "swarm-test/busybox:latest"}}}),
        )
        .await
        .unwrap();
    assert_eq!(scaled, json!({"Warnings": null}));
    eventually("3 sdk tasks running", Duration::from_secs(30), running(3)).await;
    let svc: Value = client.get("/services/sdk").await.unwrap();
    assert_eq!(svc["Spec"]["Mode"]["Replicated"]["Replicas"], 3);

    // Service update: an unknown key is a warning, and the update is applied.
    let svc: Value = client.get("/services/canonical").await.unwrap();
    let version = svc["Version"]["Index"].as_u64().unwrap();
    let mut spec = vary(&svc["Spec"], lower, false);
    spec["future"] = json!(true);
    spec["mode"]["replicated"]["replicas"] = json!(0);
    let updated: Value = client
        .post(&format!("/services/canonical/update?version={version}"), &spec)
        .await
        .unwrap();
    assert_eq!(updated, json!({"Warnings": ["unknown field Spec.future ignored"]}));
    let svc: Value = client.get("/services/canonical").await.unwrap();
    assert_eq!(svc["Spec"]["Mode"]["Replicated"]["Replicas"], 0);
    assert_eq!(svc["Spec"]["Labels"], json!({"Tier": "front", "tier": "lower"}));

    // Node update.
    let node_id = c.node_id(m1);
    let node_spec = json!({"Role": "manager", "Availability": "active", "Labels": {"Zone": "a", "zone": "b"}});
    for (case, recase, extra) in VARIANTS {
        let node: Value = client.get(&format!("/nodes/{node_id}")).await.unwrap();
        let version = node["Version"]["Index"].as_u64().unwrap();
        let _: Value = client
            .post(
                &format!("/nodes/{node_id}/update?version={version}"),
                &vary(&node_spec, recase, extra),
            )
            .await
            .unwrap();
        let node: Value = client.get(&format!("/nodes/{node_id}")).await.unwrap();
        assert_eq!(node["Spec"], node_spec, "{case}");
    }

    // Swarm update: the whole spec, recased, with a changed setting.
    for (i, (case, recase, extra)) in VARIANTS.into_iter().enumerate() {
        let swarm: Value = client.get("/swarm").await.unwrap();
        let version = swarm["Version"]["Index"].as_u64().unwrap();
        let mut spec = swarm["Spec"].clone();
        spec["Orchestration"]["TaskHistoryRetentionLimit"] = json!(7 + i);
        let _: Value = client
            .post(&format!("/swarm/update?version={version}"), &vary(&spec, recase, extra))
            .await
            .unwrap();
        let swarm: Value = client.get("/swarm").await.unwrap();
        assert_eq!(swarm["Spec"], spec, "{case}");
    }

    // Secrets and configs: create, then a labels-only update.
    for kind in ["secrets", "configs"] {
        let blob = |name: &str| json!({"Name": name, "Data": "aGVsbG8=", "Labels": {"Key": "v"}});
        let _: Value = client
            .post(&format!("/{kind}/create"), &blob("canonical"))
            .await
            .unwrap();
        let canonical: Value = client.get(&format!("/{kind}/canonical")).await.unwrap();
        for (case, recase, extra) in VARIANTS {
            let name = format!("b-{}", case.replace('+', "-"));
            let created: Value = client
                .post(&format!("/{kind}/create"), &vary(&blob(&name), recase, extra))
                .await
                .unwrap();
            let id = created["ID"].as_str().expect("an ID");
            let stored: Value = client.get(&format!("/{kind}/{id}")).await.unwrap();
            assert_eq!(
                without(&stored["Spec"], &["Name", "Data"]),
                without(&canonical["Spec"], &["Name", "Data"]),
                "{kind} {case}"
            );
            assert_eq!(stored["Spec"]["Name"], json!(name), "{kind} {case}");

            let version = stored["Version"]["Index"].as_u64().unwrap();
            let mut spec = blob(&name);
            spec["Labels"] = json!({"Key": "w", "key": "x"});
            let _: Value = client
                .post(
                    &format!("/{kind}/{id}/update?version={version}"),
                    &vary(&spec, recase, extra),
                )
                .await
                .unwrap();
            let stored: Value = client.get(&format!("/{kind}/{id}")).await.unwrap();
            assert_eq!(
                stored["Spec"]["Labels"],
                json!({"Key": "w", "key": "x"}),
                "{kind} {case}"
            );
        }
    }

    // Networks: the create response has a single `Warning` string.
    let network = |name: &str| {
        json!({"Name": name, "Driver": "overlay", "Attachable": true, "Internal": false,
            "IPAM": {"Driver": "default", "Config": [{"Subnet": "10.9.8.0/24"}]},
            "Options": {"Opt": "1"}, "Labels": {"Key": "v"}})
    };
    let _: Value = client.post("/networks/create", &network("canonical")).await.unwrap();
    let canonical: Value = client.get("/networks/canonical").await.unwrap();
    for (i, (case, recase, extra)) in VARIANTS.into_iter().enumerate() {
        let name = format!("n-{}", case.replace('+', "-"));
        let mut body = network(&name);
        body["IPAM"]["Config"][0]["Subnet"] = json!(format!("10.9.{i}.0/24"));
        let created: Value = client
            .post("/networks/create", &vary(&body, recase, extra))
            .await
            .unwrap();
        let warning = created["Warning"].as_str().unwrap_or_default();
        if extra {
            assert!(warning.contains("unknown field Future ignored"), "{case}: {created}");
            assert!(
                warning.contains("unknown field IPAM.Config[0].Future ignored"),
                "{case}: {created}"
            );
        } else {
            assert_eq!(warning, "", "{case}");
        }
        let mut stored: Value = client.get(&format!("/networks/{name}")).await.unwrap();
        // Each network has its own VXLAN ID.
        let vxlan = "com.docker.network.driver.overlay.vxlanid_list";
        assert!(
            stored["Options"][vxlan]
                .as_str()
                .is_some_and(|v| v.parse::<u32>().is_ok())
        );
        stored["Options"][vxlan] = canonical["Options"][vxlan].clone();
        for field in ["Driver", "Scope", "Attachable", "Internal", "Options", "Labels"] {
            assert_eq!(stored[field], canonical[field], "{case}: {field}");
        }
        assert_eq!(stored["IPAM"]["Driver"], canonical["IPAM"]["Driver"], "{case}");
        assert_eq!(
            stored["IPAM"]["Config"][0]["Subnet"], body["IPAM"]["Config"][0]["Subnet"],
            "{case}"
        );
    }
}
