//! `/secrets` and `/configs`: named blobs for services. Both have the same shape; a secret's
//! data is never returned, a config's is. As in Swarm, only labels can change after creation,
//! and an object in use by a service cannot be removed.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::Query;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;
use serde_json::json;
use swarm_model::Config;
use swarm_model::Secret;
use swarm_model::SecretSpec;
use swarm_model::Service;
use swarm_model::StoreObject;
use swarm_model::Timestamp;
use swarm_model::Version;
use swarm_model::new_id;

use super::ApiState;
use super::body::decode_json_logged;
use super::body::query_version;
use super::error::ApiError;
use super::error::ApiResult;
use super::filters::Filters;
use super::references::resolve_in;
use super::validate::valid_name;
use crate::store::StoreAction;
use crate::store::StoreState;
use crate::store::Table;

const FILTERS: &[&str] = &["id", "name", "names", "label"];

/// What differs between secrets and configs.
pub trait Blob: StoreObject + serde::Serialize + Send + Sync + 'static {
    const NOUN: &'static str;
    /// Largest data, as Swarm allows.
    const MAX_BYTES: usize;
    /// Whether the API shows the data.
    const SHOWS_DATA: bool;
    fn table(s: &StoreState) -> &Table<Self>;
    fn new(id: String, spec: SecretSpec, now: Timestamp) -> Self;
    fn spec(&self) -> &SecretSpec;
    fn spec_mut(&mut self) -> &mut SecretSpec;
    /// Names of the services that use the object with `id`.
    fn users(s: &StoreState, id: &str) -> Vec<String>;
}

fn container_of(svc: &Service) -> Option<&swarm_model::ContainerSpec> {
    svc.spec.task_template.container_spec.as_ref()
}

impl Blob for Secret {
    const NOUN: &'static str = "secret";
    const MAX_BYTES: usize = 500 * 1024;
    const SHOWS_DATA: bool = false;
    fn table(s: &StoreState) -> &Table<Self> {
        &s.secrets
    }
    fn new(id: String, spec: SecretSpec, now: Timestamp) -> Self {
        Secret {
            id,
            version: Version::default(),
            created_at: now,
            updated_at: now,
            spec,
        }
    }
    fn spec(&self) -> &SecretSpec {
        &self.spec
    }
    fn spec_mut(&mut self) -> &mut SecretSpec {
        &mut self.spec
    }
    fn users(s: &StoreState, id: &str) -> Vec<String> {
        s.services
            .iter()
            .filter(|svc| container_of(svc).is_some_and(|c| c.secrets.iter().flatten().any(|r| r.secret_id == id)))
            .map(|svc| svc.spec.name.clone())
            .collect()
    }
}

impl Blob for Config {
    const NOUN: &'static str = "config";
    const MAX_BYTES: usize = 1000 * 1024;
    const SHOWS_DATA: bool = true;
    fn table(s: &StoreState) -> &Table<Self> {
        &s.configs
    }
    fn new(id: String, spec: SecretSpec, now: Timestamp) -> Self {
        Config {
            id,
            version: Version::default(),
            created_at: now,
            updated_at: now,
            spec,
        }
    }
    fn spec(&self) -> &SecretSpec {
        &self.spec
    }
    fn spec_mut(&mut self) -> &mut SecretSpec {
        &mut self.spec
    }
    fn users(s: &StoreState, id: &str) -> Vec<String> {
        s.services
            .iter()
            .filter(|svc| container_of(svc).is_some_and(|c| c.configs.iter().flatten().any(|r| r.config_id == id)))
            .map(|svc| svc.spec.name.clone())
            .collect()
    }
}

/// Finds an object by full ID, then exact name, then unique ID prefix.
pub fn resolve<T: Blob>(s: &StoreState, reference: &str) -> Result<T, ApiError> {
    resolve_in(T::table(s), T::NOUN, reference)
}

/// The object as the API shows it.
fn shown<T: Blob>(mut o: T) -> T {
    if !T::SHOWS_DATA {
        o.spec_mut().data = None;
    }
    o
}

fn check_spec<T: Blob>(spec: &SecretSpec) -> Result<(), ApiError> {
    let bad = |m: String| ApiError::bad_request(format!("invalid {} spec: {m}", T::NOUN));
    if !valid_name(&spec.name) {
        return Err(bad(format!(
            "Name: {:?} is not a valid name (letters, digits, '-', '_' and '.', at most 63, starting and ending with a letter or digit)",
            spec.name
        )));
    }
    if spec.driver.is_some() {
        return Err(bad(format!("Driver: external {} drivers are not supported", T::NOUN)));
    }
    if spec.templating.is_some() {
        return Err(bad("Templating: templated data is not supported".to_string()));
    }
    match &spec.data {
        None => Err(bad("Data: must be provided".to_string())),
        Some(d) if d.len() > T::MAX_BYTES => Err(bad(format!(
            "Data: {} bytes is more than the {} bytes allowed",
            d.len(),
            T::MAX_BYTES
        ))),
        Some(_) => Ok(()),
    }
}

pub async fn create<T: Blob>(State(state): State<ApiState>, body: Bytes) -> ApiResult<(StatusCode, Json<Value>)> {
    let m = state.manager()?;
    let spec: SecretSpec = decode_json_logged(&body, &format!("{} spec", T::NOUN))?;
    check_spec::<T>(&spec)?;
    let id = new_id();
    let obj = T::new(id.clone(), spec, Timestamp::now());
    m.committer.commit(vec![StoreAction::Create(obj.into_object())]).await?;
    Ok((StatusCode::CREATED, Json(json!({ "ID": id }))))
}

pub async fn list<T: Blob>(
    State(state): State<ApiState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<T>>> {
    let m = state.manager()?;
    let filters = Filters::parse(q.get("filters"), FILTERS)?;
    let out = m.store.view(|s| {
        T::table(s)
            .iter()
            .filter(|o| {
                let spec = o.spec();
                filters.any("id", |v| o.id().starts_with(v))
                    && filters.any("name", |v| spec.name.starts_with(v))
                    && filters.any("names", |v| spec.name == v)
                    && filters.labels_match("label", &spec.labels)
            })
            .cloned()
            .map(shown)
            .collect()
    });
    Ok(Json(out))
}

pub async fn inspect<T: Blob>(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult<Json<T>> {
    let m = state.manager()?;
    Ok(Json(shown(m.store.view(|s| resolve::<T>(s, &id))?)))
}

/// Only labels may change; the same data may be sent again (stack deploy does).
pub async fn update<T: Blob>(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let m = state.manager()?;
    let version = query_version(q.get("version"))?;
    let spec: SecretSpec = decode_json_logged(&body, &format!("{} spec", T::NOUN))?;
    let mut current = m.store.view(|s| resolve::<T>(s, &id))?;
    let old = current.spec().clone();
    let only_labels = spec.name == old.name
        && spec.data.as_ref().is_none_or(|d| Some(d) == old.data.as_ref())
        && spec.driver == old.driver
        && spec.templating == old.templating;
    if !only_labels {
        return Err(ApiError::bad_request(format!(
            "only updates to Labels are allowed on {} {}",
            T::NOUN,
            old.name
        )));
    }
    current.spec_mut().labels = spec.labels;
    current.set_version(Version::new(version));
    current.set_updated_at(Timestamp::now());
    m.committer
        .commit(vec![StoreAction::Update(current.into_object())])
        .await?;
    Ok(StatusCode::OK)
}

pub async fn remove<T: Blob>(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let m = state.manager()?;
    let (obj, users) = m.store.view(|s| {
        resolve::<T>(s, &id).map(|o| {
            let users = T::users(s, o.id());
            (o, users)
        })
    })?;
    if !users.is_empty() {
        let noun = if users.len() == 1 { "service" } else { "services" };
        return Err(ApiError::bad_request(format!(
            "{} '{}' is in use by the following {noun}: {}",
            T::NOUN,
            obj.spec().name,
            users.join(", ")
        )));
    }
    m.committer
        .commit(vec![StoreAction::Remove {
            kind: T::KIND,
            id: obj.id().to_string(),
            version: None,
        }])
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
