//! Engine API request bodies (decoded as dockerd does, then validated) and query strings
//! (filters, booleans, versions).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use swarm_manager::api::body::decode_json;
use swarm_manager::api::body::query_bool;
use swarm_manager::api::body::query_version;
use swarm_manager::api::filters::Filters;
use swarm_manager::api::validate::validate_service_spec;
use swarm_model::ServiceSpec;

fuzz_target!(|data: &[u8]| {
    let body = Bytes::copy_from_slice(data);
    if let Ok(spec) = decode_json::<ServiceSpec>(&body, "service spec") {
        let _ = validate_service_spec(&spec.value);
    }
    let _ = decode_json::<swarm_model::SecretSpec>(&body, "secret spec");
    let _ = decode_json::<swarm_model::NodeSpec>(&body, "node spec");
    let _ = decode_json::<swarm_model::ClusterSpec>(&body, "swarm spec");
    if let Ok(text) = std::str::from_utf8(data) {
        let raw = text.to_string();
        let _ = Filters::parse(Some(&raw), &["name", "id", "label", "mode", "node", "desired-state"]);
        let _ = query_bool(Some(&raw));
        let _ = query_version(Some(&raw));
        let _ = swarm_manager::api::validate::check_constraint(text);
    }
});
