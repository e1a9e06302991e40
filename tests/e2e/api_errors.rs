use serde_json::Value;
use serde_json::json;

use crate::support::Cluster;
use crate::support::service_spec;

/// Bad requests get a clear answer: 404 naming the object, 400 naming the field, 409 for a
/// name in use or a stale version, and the versioned and unversioned paths both work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_answers() {
    let mut c = Cluster::new();
    let api = format!("127.0.0.1:{}", crate::support::free_port());
    let m1 = c.init("m1", &["--api-addr", &api]);
    let client = c.nodes[m1].client();

    // The Engine API is also served on TCP when asked, and swarmctl reaches it there.
    let out = std::process::Command::new(crate::support::SWARMCTL)
        .args(["-H", &format!("tcp://{api}"), "node", "ls", "-q"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);

    let err = client.get::<Value>("/services/nosuch").await.unwrap_err();
    assert_eq!(err.status().unwrap().as_u16(), 404);
    assert_eq!(err.to_string(), "service nosuch not found");
    let err = client.get::<Value>("/nodes/nosuch").await.unwrap_err();
    assert_eq!(err.to_string(), "node nosuch not found");
    let err = client.delete("/services/nosuch").await.unwrap_err();
    assert_eq!(err.status().unwrap().as_u16(), 404);

    // Malformed JSON and a field of the wrong type are 400s that say where.
    let (status, body) = client
        .request(hyper::Method::POST, "/services/create", Some(b"{not json".to_vec()))
        .await
        .unwrap();
    assert_eq!(status.as_u16(), 400, "{}", String::from_utf8_lossy(&body));
    let bad = json!({"Name": "x", "Mode": {"Replicated": {"Replicas": "three"}},
        "TaskTemplate": {"ContainerSpec": {"Image": "busybox"}}});
    let err = client.post::<Value>("/services/create", &bad).await.unwrap_err();
    assert_eq!(err.status().unwrap().as_u16(), 400);
    assert!(err.to_string().contains("Mode.Replicated.Replicas"), "{err}");
    let no_image = json!({"Name": "x", "TaskTemplate": {"ContainerSpec": {}}});
    let err = client.post::<Value>("/services/create", &no_image).await.unwrap_err();
    assert!(err.to_string().contains("TaskTemplate.ContainerSpec.Image"), "{err}");

    // A name in use.
    let created: Value = client.post("/services/create", &service_spec("web")).await.unwrap();
    let id = created["ID"].as_str().unwrap().to_string();
    let err = client
        .post::<Value>("/services/create", &service_spec("web"))
        .await
        .unwrap_err();
    assert_eq!(err.status().unwrap().as_u16(), 409);
    assert!(err.to_string().contains("web already exists"), "{err}");

    // Optimistic concurrency: the second update with the same version is out of sequence.
    let svc: Value = client.get(&format!("/services/{id}")).await.unwrap();
    let v = svc["Version"]["Index"].as_u64().unwrap();
    let mut spec = svc["Spec"].clone();
    spec["Mode"]["Replicated"]["Replicas"] = 3.into();
    let ok: Value = client
        .post(&format!("/services/{id}/update?version={v}"), &spec)
        .await
        .unwrap();
    assert_eq!(ok, json!({"Warnings": null}));
    let err = client
        .post::<Value>(&format!("/services/{id}/update?version={v}"), &spec)
        .await
        .unwrap_err();
    assert_eq!(err.status().unwrap().as_u16(), 409);
    assert_eq!(err.to_string(), "update out of sequence");
    let svc: Value = client.get("/services/web").await.unwrap();
    assert_eq!(svc["Spec"]["Mode"]["Replicated"]["Replicas"], 3);
    assert!(svc["Version"]["Index"].as_u64().unwrap() > v);
    assert!(svc["PreviousSpec"].is_object());

    // Renaming and mode changes are refused.
    let mut renamed = svc["Spec"].clone();
    renamed["Name"] = "web2".into();
    let v = svc["Version"]["Index"].as_u64().unwrap();
    let err = client
        .post::<Value>(&format!("/services/{id}/update?version={v}"), &renamed)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("renaming services is not supported"), "{err}");

    // Unknown filters are refused like dockerd does.
    let err = client
        .get::<Value>("/services?filters=%7B%22bogus%22%3A%7B%22x%22%3Atrue%7D%7D")
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "Invalid filter 'bogus'");

    // Versioned and unversioned paths; ping headers.
    let (status, _) = client.request(hyper::Method::GET, "/_ping", None).await.unwrap();
    assert_eq!(status.as_u16(), 200);
    // Unversioned paths and the ping headers, seen by a plain HTTP client.
    let out = std::process::Command::new("curl")
        .args(["-s", "-i", "--unix-socket"])
        .arg(c.nodes[m1].socket())
        .arg("http://localhost/_ping")
        .output()
        .expect("curl is installed (.ci/run installs it)");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 200"), "{text}");
    assert!(text.contains("api-version: 1.47"), "{text}");
    assert!(text.contains("swarm: active/manager"), "{text}");
    let inspect: Value = client.get("/services/web?insertDefaults=true").await.unwrap();
    assert_eq!(inspect["Spec"]["UpdateConfig"]["FailureAction"], "pause");
    assert_eq!(inspect["Spec"]["TaskTemplate"]["RestartPolicy"]["Condition"], "any");

    // swarmctl reports API errors on stderr with a non-zero exit.
    let out = c.ctl(m1, &["service", "rm", "nosuch"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("service nosuch not found"));
}
