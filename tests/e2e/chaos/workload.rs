//! The workload: clients that create, update, scale, remove and read services under unique
//! names against random managers while the faults run, recording every operation's invocation,
//! outcome (ok, fail or unknown) and time.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use serde_json::Value;
use serde_json::json;
use swarm_ctl::client::ApiClient;
use swarm_ctl::client::ClientError;

use crate::support::linearizable::ServiceOp;
use crate::support::linearizable::ServiceResult;
use crate::support::linearizable::Shape;

use super::schedule::Rng;

/// A service's history is checked on its own and kept short.
const OPS_PER_SERVICE: usize = 60;
/// A client gives up on an answer after this long: the outcome is then unknown.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(4);

/// One recorded operation.
#[derive(Debug, Clone)]
pub struct Op {
    pub client: usize,
    /// The manager (node index) it was sent to.
    pub node: usize,
    pub service: String,
    pub input: ServiceOp,
    /// Microseconds since the workload started.
    pub invoked: u64,
    /// `None`: unknown (timed out, connection lost, or a server error that may have committed).
    pub returned: Option<(u64, ServiceResult)>,
    /// For a read that found the service: the version index it saw.
    pub version: Option<u64>,
    /// Why it failed or is unknown, for the report.
    pub error: Option<String>,
}

pub struct History {
    pub started: Instant,
    pub ops: Mutex<Vec<Op>>,
    /// Names of services that may exist: created (or tried), in order.
    names: Mutex<Vec<String>>,
    generation: AtomicU64,
}

impl History {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            started: Instant::now(),
            ops: Mutex::new(Vec::new()),
            names: Mutex::new(Vec::new()),
            generation: AtomicU64::new(0),
        })
    }

    pub fn micros(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    pub fn names(&self) -> Vec<String> {
        self.names.lock().unwrap().clone()
    }

    fn ops_on(&self, service: &str) -> usize {
        self.ops.lock().unwrap().iter().filter(|o| o.service == service).count()
    }
}

/// The service spec the workload creates and updates: `replicas` sleeping tasks whose template
/// carries `generation`, updated one at a time with a short monitor.
pub fn spec(name: &str, replicas: u64, generation: u64) -> Value {
    json!({
        "Name": name,
        "Labels": { "chaos": "1" },
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "swarm-test/busybox:latest",
                "Args": ["sleep", "3600"],
                "Env": [format!("GENERATION={generation}")],
                "StopGracePeriod": 1_000_000_000u64
            },
            "RestartPolicy": { "Condition": "any", "Delay": 200_000_000u64 }
        },
        "Mode": { "Replicated": { "Replicas": replicas } },
        "UpdateConfig": { "Parallelism": 1, "Monitor": 500_000_000u64, "FailureAction": "continue" }
    })
}

/// What a service object says of its shape.
pub fn shape_of(service: &Value) -> Option<Shape> {
    let replicas = service["Spec"]["Mode"]["Replicated"]["Replicas"].as_u64()?;
    let env = service["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"].as_array()?;
    let generation = env
        .iter()
        .filter_map(Value::as_str)
        .find_map(|e| e.strip_prefix("GENERATION="))?
        .parse()
        .ok()?;
    Some(Shape { replicas, generation })
}

/// How a request ended, for the history.
enum Outcome<T> {
    Ok(T),
    /// Nothing was done: refused with a client error, or never sent.
    Fail(String),
    /// May or may not have been done.
    Unknown(String),
}

fn outcome<T>(res: Result<T, ClientError>) -> Outcome<T> {
    match res {
        Ok(v) => Outcome::Ok(v),
        Err(e @ ClientError::Connect { .. }) => Outcome::Fail(e.to_string()),
        Err(e) => match e.status() {
            Some(s) if s.is_client_error() && s.as_u16() != 408 => Outcome::Fail(e.to_string()),
            _ => Outcome::Unknown(e.to_string()),
        },
    }
}

pub struct Client {
    pub id: usize,
    /// Clients of the managers, by node index.
    pub managers: Vec<(usize, ApiClient)>,
    pub history: Arc<History>,
    pub rng: Rng,
    /// Replica counts are kept small when workers run real containers.
    pub max_replicas: u64,
    /// A pause between operations: real containers start far slower than simulated ones, and
    /// the engine must keep up for the cluster to converge soon after healing.
    pub pace: Duration,
}

impl Client {
    pub fn new(
        id: usize,
        managers: Vec<(usize, ApiClient)>,
        history: Arc<History>,
        seed: u64,
        max_replicas: u64,
        pace: Duration,
    ) -> Self {
        let managers = managers
            .into_iter()
            .map(|(i, c)| (i, c.with_timeout(CLIENT_TIMEOUT)))
            .collect();
        Self {
            id,
            managers,
            history,
            rng: Rng::new(seed ^ (0xC11E_0000 + id as u64)),
            max_replicas,
            pace,
        }
    }

    pub async fn run(mut self, stop: Arc<AtomicBool>) {
        let mut created = 0;
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(self.pace).await;
            let names = self.history.names();
            let existing: Vec<&String> = names
                .iter()
                .filter(|n| self.history.ops_on(n) < OPS_PER_SERVICE)
                .collect();
            let roll = self.rng.below(100);
            if existing.is_empty() || roll < 20 {
                created += 1;
                let name = format!("c{}-{created}", self.id);
                self.history.names.lock().unwrap().push(name.clone());
                self.create(&name).await;
            } else {
                let name = existing[self.rng.below(existing.len() as u64) as usize].clone();
                match roll {
                    20..=44 => self.read(&name).await.map(drop).unwrap_or(()),
                    45..=64 => self.scale(&name).await,
                    65..=84 => self.update(&name).await,
                    _ => self.remove(&name).await,
                }
            }
        }
    }

    fn target(&mut self) -> (usize, ApiClient) {
        let i = self.rng.below(self.managers.len() as u64) as usize;
        self.managers[i].clone()
    }

    fn record(
        &self,
        node: usize,
        service: &str,
        input: ServiceOp,
        invoked: u64,
        result: Outcome<Option<Shape>>,
        version: Option<u64>,
    ) {
        let now = self.history.micros();
        let (returned, error) = match result {
            Outcome::Ok(seen) => (Some((now, ServiceResult::Ok(seen))), None),
            Outcome::Fail(e) => (Some((now, ServiceResult::Fail)), Some(e)),
            Outcome::Unknown(e) => (None, Some(e)),
        };
        self.history.ops.lock().unwrap().push(Op {
            client: self.id,
            node,
            service: service.to_string(),
            input,
            invoked,
            returned,
            version,
            error,
        });
    }

    async fn create(&mut self, name: &str) {
        let (node, client) = self.target();
        let replicas = self.rng.below(self.max_replicas + 1);
        let invoked = self.history.micros();
        let res = outcome(client.post::<Value>("/services/create", &spec(name, replicas, 0)).await);
        let res = match res {
            Outcome::Ok(_) => Outcome::Ok(None),
            Outcome::Fail(e) => Outcome::Fail(e),
            Outcome::Unknown(e) => Outcome::Unknown(e),
        };
        self.record(node, name, ServiceOp::Create { replicas }, invoked, res, None);
    }

    /// Inspects the service on a random manager; returns what it saw with its version index.
    async fn read(&mut self, name: &str) -> Option<(Value, u64)> {
        let (node, client) = self.target();
        let invoked = self.history.micros();
        let res = match client.get::<Value>(&format!("/services/{name}")).await {
            Err(e) if e.status().map(|s| s.as_u16()) == Some(404) => Outcome::Ok(None),
            other => match outcome(other) {
                Outcome::Ok(v) => Outcome::Ok(Some(v)),
                Outcome::Fail(e) => Outcome::Fail(e),
                Outcome::Unknown(e) => Outcome::Unknown(e),
            },
        };
        let (seen, version, out) = match res {
            Outcome::Ok(Some(v)) => match shape_of(&v) {
                Some(shape) => {
                    let version = v["Version"]["Index"].as_u64();
                    (Outcome::Ok(Some(shape)), version, version.map(|ver| (v, ver)))
                }
                None => (Outcome::Unknown(format!("unreadable service {v}")), None, None),
            },
            Outcome::Ok(None) => (Outcome::Ok(None), None, None),
            Outcome::Fail(e) => (Outcome::Fail(e), None, None),
            Outcome::Unknown(e) => (Outcome::Unknown(e), None, None),
        };
        self.record(node, name, ServiceOp::Read, invoked, seen, version);
        out
    }

    async fn scale(&mut self, name: &str) {
        let Some((current, version)) = self.read(name).await else {
            return;
        };
        let replicas = self.rng.below(self.max_replicas + 1);
        let mut spec = current["Spec"].clone();
        spec["Mode"]["Replicated"]["Replicas"] = json!(replicas);
        self.write_spec(name, version, spec, ServiceOp::Scale { replicas })
            .await;
    }

    async fn update(&mut self, name: &str) {
        let Some((current, version)) = self.read(name).await else {
            return;
        };
        let generation = self.history.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let mut spec = current["Spec"].clone();
        spec["TaskTemplate"]["ContainerSpec"]["Env"] = json!([format!("GENERATION={generation}")]);
        self.write_spec(name, version, spec, ServiceOp::Update { generation })
            .await;
    }

    async fn write_spec(&mut self, name: &str, version: u64, spec: Value, op: ServiceOp) {
        let (node, client) = self.target();
        let invoked = self.history.micros();
        let path = format!("/services/{name}/update?version={version}");
        let res = match outcome(client.post::<Value>(&path, &spec).await) {
            Outcome::Ok(_) => Outcome::Ok(None),
            Outcome::Fail(e) => Outcome::Fail(e),
            Outcome::Unknown(e) => Outcome::Unknown(e),
        };
        self.record(node, name, op, invoked, res, None);
    }

    async fn remove(&mut self, name: &str) {
        let (node, client) = self.target();
        let invoked = self.history.micros();
        let res = match outcome(client.delete(&format!("/services/{name}")).await) {
            Outcome::Ok(()) => Outcome::Ok(None),
            Outcome::Fail(e) => Outcome::Fail(e),
            Outcome::Unknown(e) => Outcome::Unknown(e),
        };
        self.record(node, name, ServiceOp::Remove, invoked, res, None);
    }
}

/// Reads every service the workload named from `client` (the healed cluster's leader), as
/// the last operations of each history: what survived must be what was acknowledged.
pub async fn final_reads(history: &History, node: usize, client: &ApiClient) {
    for name in history.names() {
        let invoked = history.micros();
        let res = client.get::<Value>(&format!("/services/{name}")).await;
        let (seen, version, error) = match res {
            Ok(v) => (shape_of(&v), v["Version"]["Index"].as_u64(), None),
            Err(e) if e.status().map(|s| s.as_u16()) == Some(404) => (None, None, None),
            Err(e) => panic!("the healed cluster cannot read service {name}: {e}"),
        };
        let returned = Some((history.micros(), ServiceResult::Ok(seen)));
        history.ops.lock().unwrap().push(Op {
            client: usize::MAX,
            node,
            service: name,
            input: ServiceOp::Read,
            invoked,
            returned,
            version,
            error,
        });
    }
}
