//! Cluster events for `GET /events`, in dockerd's message shape: every change the store applies
//! to a service, node, task, secret, config or network becomes one event. Each manager keeps
//! the recent ones (for `--since`) and streams new ones to subscribers.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;

use serde::Serialize;
use swarm_model::Labels;
use swarm_model::Object;
use swarm_model::Timestamp;
use swarm_sync::lock;
use tokio::sync::broadcast;
use tokio::sync::watch;

use crate::store::Event;
use crate::store::Store;

/// How many past events a manager keeps.
const HISTORY: usize = 2000;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventActor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes")]
    pub attributes: Labels,
}

/// One event, as dockerd's `events.Message`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventMessage {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: EventActor,
    pub scope: String,
    pub time: i64,
    #[serde(rename = "timeNano")]
    pub time_nano: i128,
}

fn lower(v: impl Serialize) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// `k.old`/`k.new` attributes when a value changed.
fn changed(attrs: &mut Labels, key: &str, old: String, new: String) {
    if old != new {
        attrs.insert(format!("{key}.old"), old);
        attrs.insert(format!("{key}.new"), new);
    }
}

/// The type, ID and attributes an object contributes to an event; `None` for objects without
/// events (the cluster object).
fn describe(obj: &Object) -> Option<(&'static str, String, Labels)> {
    let mut attrs = Labels::new();
    let (kind, id) = match obj {
        Object::Service(s) => {
            attrs.insert("name".into(), s.spec.name.clone());
            ("service", s.id.clone())
        }
        Object::Node(n) => {
            attrs.insert("name".into(), n.description.hostname.clone());
            ("node", n.id.clone())
        }
        Object::Task(t) => {
            attrs.insert("service".into(), t.service_id.clone());
            if let Some(a) = &t.service_annotations {
                attrs.insert("name".into(), t.display_name(&a.name));
                attrs.insert("com.docker.swarm.service.name".into(), a.name.clone());
            }
            if !t.node_id.is_empty() {
                attrs.insert("node".into(), t.node_id.clone());
            }
            attrs.insert("state".into(), lower(t.status.state));
            attrs.insert("desired-state".into(), lower(t.desired_state));
            ("task", t.id.clone())
        }
        Object::Secret(s) => {
            attrs.insert("name".into(), s.spec.name.clone());
            ("secret", s.id.clone())
        }
        Object::Config(c) => {
            attrs.insert("name".into(), c.spec.name.clone());
            ("config", c.id.clone())
        }
        Object::Network(n) => {
            attrs.insert("name".into(), n.name.clone());
            ("network", n.id.clone())
        }
        Object::Cluster(_) => return None,
    };
    Some((kind, id, attrs))
}

/// The events for one store change.
pub fn from_store(event: &Event, now: Timestamp) -> Option<EventMessage> {
    let (action, obj, old) = match event {
        Event::Create(o) => ("create", o, None),
        Event::Update { old, new } => ("update", new, Some(old)),
        Event::Delete(o) => ("remove", o, None),
        Event::Commit { .. } | Event::Restored { .. } => return None,
    };
    let (kind, id, mut attributes) = describe(obj)?;
    match (old, obj) {
        (Some(Object::Service(o)), Object::Service(n)) => {
            let image = |s: &swarm_model::Service| {
                s.spec
                    .task_template
                    .container_spec
                    .as_ref()
                    .map(|c| c.image.clone())
                    .unwrap_or_default()
            };
            let replicas = |s: &swarm_model::Service| {
                s.spec
                    .mode
                    .replicated
                    .as_ref()
                    .and_then(|r| r.replicas)
                    .unwrap_or(0)
                    .to_string()
            };
            let update =
                |s: &swarm_model::Service| s.update_status.as_ref().map(|u| u.state.clone()).unwrap_or_default();
            changed(&mut attributes, "image", image(o), image(n));
            changed(&mut attributes, "replicas", replicas(o), replicas(n));
            changed(&mut attributes, "updatestate", update(o), update(n));
        }
        (Some(Object::Node(o)), Object::Node(n)) => {
            changed(&mut attributes, "state", lower(o.status.state), lower(n.status.state));
            changed(
                &mut attributes,
                "availability",
                lower(o.spec.availability),
                lower(n.spec.availability),
            );
            changed(&mut attributes, "role", lower(o.spec.role), lower(n.spec.role));
        }
        (Some(Object::Task(o)), Object::Task(_)) => {
            if let Some(new_state) = attributes.get("state").cloned() {
                changed(&mut attributes, "state", lower(o.status.state), new_state);
            }
        }
        _ => {}
    }
    let nanos = now.unix_nanos().unwrap_or(0);
    Some(EventMessage {
        kind: kind.to_string(),
        action: action.to_string(),
        actor: EventActor { id, attributes },
        scope: "swarm".to_string(),
        time: (nanos / 1_000_000_000) as i64,
        time_nano: nanos,
    })
}

/// The recent events and the live feed of one manager.
pub struct EventLog {
    history: Mutex<VecDeque<EventMessage>>,
    live: broadcast::Sender<EventMessage>,
}

impl Default for EventLog {
    fn default() -> Self {
        Self {
            history: Mutex::new(VecDeque::new()),
            live: broadcast::channel(4096).0,
        }
    }
}

impl EventLog {
    pub fn record(&self, msg: EventMessage) {
        let mut h = lock(&self.history);
        if h.len() >= HISTORY {
            h.pop_front();
        }
        h.push_back(msg.clone());
        let _ = self.live.send(msg);
    }

    /// Past events from `since_nanos` on, and the live feed from right after them.
    pub fn subscribe(&self, since_nanos: Option<i128>) -> (Vec<EventMessage>, broadcast::Receiver<EventMessage>) {
        let h = lock(&self.history);
        let past = match since_nanos {
            Some(since) => h.iter().filter(|e| e.time_nano >= since).cloned().collect(),
            None => Vec::new(),
        };
        (past, self.live.subscribe())
    }
}

/// Turns every change `store` applies into a cluster event in `log`, until `shutdown`.
pub async fn record_store_changes(store: Arc<Store>, log: Arc<EventLog>, mut shutdown: watch::Receiver<bool>) {
    let mut watcher = store.watch();
    loop {
        let batch = tokio::select! {
            b = watcher.next() => b,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let Some(batch) = batch else { return };
        let now = Timestamp::now();
        for e in batch.iter() {
            if let Some(msg) = from_store(e, now) {
                log.record(msg);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use swarm_model::Node;
    use swarm_model::NodeState;
    use swarm_model::Service;
    use swarm_model::StoreObject;

    use super::*;

    #[test]
    fn changes_become_dockerd_shaped_events() {
        let mut s = Service {
            id: "svc".into(),
            ..Default::default()
        };
        s.spec.name = "web".into();
        let created = from_store(&Event::Create(s.clone().into_object()), Timestamp::from_unix_nanos(5)).unwrap();
        assert_eq!((created.kind.as_str(), created.action.as_str()), ("service", "create"));
        assert_eq!(created.actor.attributes["name"], "web");
        let json = serde_json::to_value(&created).unwrap();
        assert_eq!(json["Type"], "service");
        assert_eq!(json["Actor"]["ID"], "svc");
        assert_eq!(json["scope"], "swarm");
        assert_eq!(json["timeNano"], 5);

        let mut n = Node {
            id: "n".into(),
            ..Default::default()
        };
        let old = n.clone().into_object();
        n.status.state = NodeState::Down;
        let ev = from_store(
            &Event::Update {
                old,
                new: n.into_object(),
            },
            Timestamp::now(),
        )
        .unwrap();
        assert_eq!(ev.actor.attributes["state.new"], "down");
        assert_eq!(ev.actor.attributes["state.old"], "unknown");
    }

    #[test]
    fn the_log_replays_from_since_then_streams() {
        let log = EventLog::default();
        let msg = |t: i128| EventMessage {
            kind: "node".into(),
            action: "update".into(),
            actor: EventActor {
                id: "n".into(),
                attributes: Labels::new(),
            },
            scope: "swarm".into(),
            time: 0,
            time_nano: t,
        };
        log.record(msg(1));
        log.record(msg(5));
        let (past, mut live) = log.subscribe(Some(3));
        assert_eq!(past.len(), 1);
        log.record(msg(9));
        assert_eq!(live.try_recv().unwrap().time_nano, 9);
    }
}
