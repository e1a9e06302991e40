//! `/networks`: swarm-scoped overlay networks. Services name them by ID or name; the API stores
//! IDs. A network in use by a service cannot be removed.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::Query;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use serde_json::json;
use swarm_model::Ipam;
use swarm_model::Kind;
use swarm_model::Labels;
use swarm_model::Network;
use swarm_model::ServiceSpec;
use swarm_model::StoreObject;
use swarm_model::Timestamp;
use swarm_model::Version;
use swarm_model::new_id;

use super::ApiState;
use super::body::decode_json;
use super::body::ignored_key_warnings;
use super::error::ApiError;
use super::error::ApiResult;
use super::filters::Filters;
use super::references::resolve_in;
use super::validate::valid_name;
use crate::ipam::address_of;
use crate::store::StoreAction;
use crate::store::StoreState;
use crate::store::addresses::holds_addresses;
use crate::store::addresses::publishes_ingress;

const FILTERS: &[&str] = &["id", "name", "label", "driver", "scope", "type"];

/// The network option that asks for an encrypted overlay (`--opt encrypted`).
const ENCRYPTED_OPTION: &str = "encrypted";

/// What `docker network create` sends.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkCreate {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Driver", default)]
    pub driver: String,
    #[serde(rename = "Scope", default)]
    pub scope: String,
    #[serde(rename = "EnableIPv6", default)]
    pub enable_ipv6: Option<bool>,
    /// Accepted and ignored: overlay networks carry IPv4.
    #[serde(rename = "EnableIPv4", default)]
    pub _enable_ipv4: Option<bool>,
    #[serde(rename = "IPAM", default)]
    pub ipam: Option<Ipam>,
    #[serde(rename = "Internal", default)]
    pub internal: bool,
    #[serde(rename = "Attachable", default)]
    pub attachable: bool,
    #[serde(rename = "Ingress", default)]
    pub ingress: bool,
    #[serde(rename = "ConfigOnly", default)]
    pub config_only: bool,
    #[serde(rename = "ConfigFrom", default)]
    pub config_from: Option<Value>,
    #[serde(rename = "Options", default)]
    pub options: Option<Labels>,
    #[serde(rename = "Labels", default)]
    pub labels: Option<Labels>,
    /// Accepted and ignored: names are always unique.
    #[serde(rename = "CheckDuplicate", default)]
    pub _check_duplicate: Option<bool>,
}

/// Finds a network by full ID, then exact name, then unique ID prefix.
pub fn resolve_network(s: &StoreState, reference: &str) -> Result<Network, ApiError> {
    resolve_in(&s.networks, "network", reference)
}

/// Replaces network names in a service spec by IDs (stack deploy sends names), refusing
/// networks that do not exist.
pub fn resolve_targets(s: &StoreState, spec: &mut ServiceSpec) -> Result<(), ApiError> {
    let lists = [spec.task_template.networks.as_mut(), spec.networks.as_mut()];
    for list in lists.into_iter().flatten() {
        for att in list.iter_mut() {
            let net = resolve_network(s, &att.target).map_err(|_| {
                ApiError::bad_request(format!(
                    "invalid service spec: Networks: network {} not found",
                    att.target
                ))
            })?;
            att.target = net.id;
        }
    }
    Ok(())
}

pub async fn create(State(state): State<ApiState>, body: Bytes) -> ApiResult<(StatusCode, Json<Value>)> {
    let m = state.manager()?;
    let decoded = decode_json::<NetworkCreate>(&body, "network create request")?;
    let warning = ignored_key_warnings(&decoded.ignored, "", "network create request").join("; ");
    let req = decoded.value;
    if !valid_name(&req.name) {
        return Err(ApiError::bad_request(format!(
            "invalid network name {:?}: letters, digits, '-', '_' and '.', at most 63, starting and ending with a letter or digit",
            req.name
        )));
    }
    let driver = if req.driver.is_empty() {
        "overlay"
    } else {
        req.driver.as_str()
    };
    if driver != "overlay" {
        return Err(ApiError::bad_request(format!(
            "network driver {driver:?} is not supported: a swarm-rs manager creates swarm-scoped overlay networks only"
        )));
    }
    if !req.scope.is_empty() && req.scope != "swarm" {
        return Err(ApiError::bad_request(format!(
            "network scope {:?} is not supported: overlay networks are swarm-scoped",
            req.scope
        )));
    }
    if req.config_only || req.config_from.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(ApiError::bad_request("config-only networks are not supported"));
    }
    // As in Swarm, the option's presence asks for encryption, whatever its value.
    if req.options.as_ref().is_some_and(|o| o.contains_key(ENCRYPTED_OPTION)) {
        return Err(ApiError::bad_request(format!(
            "network {}: encrypted overlay networks are not supported yet, and swarm-rs will not \
             send their traffic in plaintext; create the network without --opt {ENCRYPTED_OPTION}",
            req.name
        )));
    }
    let exists = m.store.view(|s| s.networks.by_name(&req.name).is_some());
    if exists {
        return Err(ApiError::conflict(format!(
            "network with name {} already exists",
            req.name
        )));
    }
    let now = Timestamp::now();
    let mut ipam = req.ipam.unwrap_or_default();
    if ipam.driver.is_empty() {
        ipam.driver = "default".to_string();
    }
    let net = Network {
        name: req.name,
        id: new_id(),
        created_at: now,
        scope: "swarm".to_string(),
        driver: driver.to_string(),
        enable_ipv6: req.enable_ipv6.unwrap_or(false),
        ipam,
        internal: req.internal,
        attachable: req.attachable,
        ingress: req.ingress,
        config_only: false,
        options: req.options.unwrap_or_default(),
        labels: req.labels.unwrap_or_default(),
        version: Version::default(),
        updated_at: now,
    };
    let id = net.id.clone();
    m.committer.commit(vec![StoreAction::Create(net.into_object())]).await?;
    Ok((StatusCode::CREATED, Json(json!({ "Id": id, "Warning": warning }))))
}

pub async fn list(
    State(state): State<ApiState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<Network>>> {
    let m = state.manager()?;
    let filters = Filters::parse(q.get("filters"), FILTERS)?;
    let out = m.store.view(|s| {
        s.networks
            .iter()
            .filter(|n| {
                filters.any("id", |v| n.id.starts_with(v))
                    && filters.any("name", |v| n.name.contains(v))
                    && filters.any("driver", |v| n.driver == v)
                    && filters.any("scope", |v| v == "swarm")
                    && filters.any("type", |v| v == "custom")
                    && filters.labels_match("label", &n.labels)
            })
            .cloned()
            .collect()
    });
    Ok(Json(out))
}

pub async fn inspect(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let m = state.manager()?;
    let verbose = q.get("verbose").is_some_and(|v| v == "true" || v == "1");
    let out = m.store.view(|s| {
        let net = resolve_network(s, &id)?;
        let mut out = serde_json::to_value(&net).map_err(|e| ApiError::internal(e.to_string()))?;
        if verbose && let Value::Object(map) = &mut out {
            let (services, peers) = attached(s, &net);
            map.insert("Services".to_string(), services);
            map.insert("Peers".to_string(), peers);
        }
        Ok::<_, ApiError>(out)
    })?;
    Ok(Json(out))
}

/// What `docker network inspect --verbose` adds: each service on the network with its
/// virtual IP and its tasks' addresses and nodes, and the nodes that have tasks there.
fn attached(s: &StoreState, net: &Network) -> (Value, Value) {
    let mut services = serde_json::Map::new();
    let mut peers = std::collections::BTreeMap::new();
    for svc in s.services.iter() {
        let vip = svc
            .endpoint
            .virtual_ips
            .iter()
            .flatten()
            .find(|v| v.network_id == net.id)
            .and_then(|v| address_of(&v.addr));
        let mut tasks = Vec::new();
        for t in s.tasks_by_service(&svc.id).filter(|t| holds_addresses(t)) {
            let Some(att) = t.networks_attachments.iter().flatten().find(|a| a.network.id == net.id) else {
                continue;
            };
            let node = s.nodes.get(&t.node_id);
            let host_ip = node.map(|n| n.status.addr.clone()).unwrap_or_default();
            if let Some(n) = node {
                peers.insert(n.id.clone(), json!({ "Name": n.description.hostname, "IP": host_ip }));
            }
            tasks.push(json!({
                "Name": format!("{}.{}", t.display_name(&svc.spec.name), t.id),
                "EndpointID": "",
                "EndpointIP": att.addresses.first().and_then(|a| address_of(a)).map(|a| a.to_string()).unwrap_or_default(),
                "Info": { "Host IP": host_ip },
            }));
        }
        if vip.is_none() && tasks.is_empty() {
            continue;
        }
        services.insert(
            svc.spec.name.clone(),
            json!({
                "VIP": vip.map(|a| a.to_string()).unwrap_or_default(),
                "Ports": [],
                "LocalLBIndex": 0,
                "Tasks": tasks,
            }),
        );
    }
    (Value::Object(services), Value::Array(peers.into_values().collect()))
}

/// `docker network connect`/`disconnect`: standalone containers join attachable networks on
/// their own engine, which a swarm-rs manager is not; say so rather than answer 404.
pub async fn connect(State(state): State<ApiState>, Path(id): Path<String>, body: Bytes) -> ApiResult<StatusCode> {
    // Read the whole request before answering, so the client is not cut off mid-write.
    drop(body);
    let m = state.manager()?;
    let net = m.store.view(|s| resolve_network(s, &id))?;
    if !net.attachable {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("network {} not manually attachable", net.name),
        ));
    }
    Err(ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        format!(
            "cannot connect a container to network {}: swarm-rs runs no standalone containers yet; \
             put services on it with --network or service update --network-add",
            net.name
        ),
    ))
}

pub async fn remove(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let m = state.manager()?;
    let (net, users) = m.store.view(|s| {
        resolve_network(s, &id).map(|n| {
            let users: Vec<String> = s
                .services
                .iter()
                .filter(|svc| {
                    svc.spec
                        .task_template
                        .networks
                        .iter()
                        .chain(svc.spec.networks.iter())
                        .flatten()
                        .any(|a| a.target == n.id)
                })
                .map(|svc| svc.spec.name.clone())
                .collect();
            (n, users)
        })
    })?;
    let mesh_users: Vec<String> = m.store.view(|s| {
        s.services
            .iter()
            .filter(|svc| net.ingress && publishes_ingress(svc))
            .map(|svc| svc.spec.name.clone())
            .collect()
    });
    if !mesh_users.is_empty() {
        return Err(ApiError::bad_request(format!(
            "ingress network cannot be removed because service {} depends on it",
            mesh_users.join(", ")
        )));
    }
    if !users.is_empty() {
        return Err(ApiError::bad_request(format!(
            "network {} is in use by service {}",
            net.name,
            users.join(", ")
        )));
    }
    m.committer
        .commit(vec![StoreAction::Remove {
            kind: Kind::Network,
            id: net.id,
            version: None,
        }])
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::api::body::decode_json;

    /// `docker network create`'s body, as the CLI sends it.
    const CANONICAL: &str = r#"{"Name":"n","Driver":"overlay","Scope":"swarm","EnableIPv6":false,
        "EnableIPv4":true,"IPAM":{"Driver":"default","Options":{"o":"p"},"Config":[{"Subnet":"10.0.9.0/24",
        "Gateway":"10.0.9.1"}]},"Internal":true,"Attachable":true,"Ingress":false,"ConfigOnly":false,
        "ConfigFrom":null,"Options":{"Opt":"1"},"Labels":{"Key":"v"},"CheckDuplicate":true}"#;

    /// The same body with every field name in lower case and unknown keys at two levels.
    const LOWER: &str = r#"{"name":"n","driver":"overlay","scope":"swarm","enableipv6":false,
        "enableipv4":true,"ipam":{"driver":"default","options":{"o":"p"},"config":[{"subnet":"10.0.9.0/24",
        "gateway":"10.0.9.1","Future":1}]},"internal":true,"attachable":true,"ingress":false,
        "configonly":false,"configfrom":null,"options":{"Opt":"1"},"labels":{"Key":"v"},
        "checkduplicate":true,"Future":{"x":1}}"#;

    #[test]
    fn a_network_create_body_in_any_case_decodes_as_the_canonical_one() {
        let canonical = decode_json::<NetworkCreate>(&Bytes::from_static(CANONICAL.as_bytes()), "n").unwrap();
        let lower = decode_json::<NetworkCreate>(&Bytes::from_static(LOWER.as_bytes()), "n").unwrap();
        assert_eq!(format!("{:?}", lower.value), format!("{:?}", canonical.value));
        assert!(canonical.ignored.is_empty(), "{:?}", canonical.ignored);
        assert_eq!(
            lower.ignored,
            vec!["Future".to_string(), "IPAM.Config[0].Future".to_string()]
        );
        let ipam = canonical.value.ipam.unwrap();
        assert_eq!(ipam.config.unwrap()[0].subnet, "10.0.9.0/24");
        assert_eq!(
            canonical.value.labels.unwrap().get("Key").map(String::as_str),
            Some("v")
        );
    }
}
