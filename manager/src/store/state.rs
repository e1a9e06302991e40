//! The in-memory tables and their secondary indexes.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use serde::Deserialize;
use serde::Serialize;
use swarm_model::Cluster;
use swarm_model::Config;
use swarm_model::Kind;
use swarm_model::Network;
use swarm_model::Node;
use swarm_model::Object;
use swarm_model::Secret;
use swarm_model::Service;
use swarm_model::StoreObject;
use swarm_model::Task;
use swarm_model::TaskState;
use swarm_model::Version;

use super::action::StoreAction;
use super::action::StoreError;
use super::addresses::AddressIndex;
use super::addresses::allocate_node;
use super::addresses::allocate_task;
use super::addresses::allocate_vips;
use super::watch::Event;

/// Objects of one kind by ID, with a name index for kinds whose names are unique.
#[derive(Debug, Clone)]
pub struct Table<T: StoreObject> {
    items: BTreeMap<String, T>,
    by_name: BTreeMap<String, String>,
}

impl<T: StoreObject> Default for Table<T> {
    fn default() -> Self {
        Self {
            items: BTreeMap::new(),
            by_name: BTreeMap::new(),
        }
    }
}

impl<T: StoreObject> Table<T> {
    pub fn get(&self, id: &str) -> Option<&T> {
        self.items.get(id)
    }

    pub fn by_name(&self, name: &str) -> Option<&T> {
        self.by_name.get(name).and_then(|id| self.items.get(id))
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.items.values()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Objects whose ID starts with `prefix`.
    pub fn with_id_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a T> + 'a {
        self.items
            .range(prefix.to_string()..)
            .take_while(move |(id, _)| id.starts_with(prefix))
            .map(|(_, v)| v)
    }

    fn insert(&mut self, obj: T) -> Option<T> {
        let old = self.items.remove(obj.id());
        if let Some(old_name) = old.as_ref().and_then(|o| o.unique_name()) {
            self.by_name.remove(old_name);
        }
        if let Some(name) = obj.unique_name() {
            self.by_name.insert(name.to_string(), obj.id().to_string());
        }
        self.items.insert(obj.id().to_string(), obj);
        old
    }

    fn remove(&mut self, id: &str) -> Option<T> {
        let old = self.items.remove(id)?;
        if let Some(name) = old.unique_name() {
            self.by_name.remove(name);
        }
        Some(old)
    }

    fn rebuild(items: Vec<T>) -> Self {
        let mut t = Self::default();
        for item in items {
            t.insert(item);
        }
        t
    }
}

/// Task lookups by service, by node and by (service, slot).
#[derive(Debug, Clone, Default)]
pub struct TaskIndexes {
    by_service: BTreeMap<String, BTreeSet<String>>,
    by_node: BTreeMap<String, BTreeSet<String>>,
    by_slot: BTreeMap<(String, u64), BTreeSet<String>>,
}

impl TaskIndexes {
    fn add(&mut self, t: &Task) {
        self.by_service
            .entry(t.service_id.clone())
            .or_default()
            .insert(t.id.clone());
        if !t.node_id.is_empty() {
            self.by_node.entry(t.node_id.clone()).or_default().insert(t.id.clone());
        }
        if t.slot != 0 {
            self.by_slot
                .entry((t.service_id.clone(), t.slot))
                .or_default()
                .insert(t.id.clone());
        }
    }

    fn remove(&mut self, t: &Task) {
        fn drop_from<K: Ord + Clone>(map: &mut BTreeMap<K, BTreeSet<String>>, key: &K, id: &str) {
            if let Some(set) = map.get_mut(key) {
                set.remove(id);
                if set.is_empty() {
                    map.remove(key);
                }
            }
        }
        drop_from(&mut self.by_service, &t.service_id, &t.id);
        drop_from(&mut self.by_node, &t.node_id, &t.id);
        drop_from(&mut self.by_slot, &(t.service_id.clone(), t.slot), &t.id);
    }
}

/// The whole replicated state.
#[derive(Debug, Clone, Default)]
pub struct StoreState {
    pub clusters: Table<Cluster>,
    pub nodes: Table<Node>,
    pub services: Table<Service>,
    pub tasks: Table<Task>,
    pub networks: Table<Network>,
    pub secrets: Table<Secret>,
    pub configs: Table<Config>,
    task_index: TaskIndexes,
    /// The overlay addresses held by tasks and services, per network.
    pub addresses: AddressIndex,
    /// The raft index of the last applied entry.
    pub applied_index: u64,
}

/// The snapshot format: plain lists, indexes are rebuilt on restore.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SnapshotData {
    pub format: u32,
    pub applied_index: u64,
    pub clusters: Vec<Cluster>,
    pub nodes: Vec<Node>,
    pub services: Vec<Service>,
    pub tasks: Vec<Task>,
    pub networks: Vec<Network>,
    pub secrets: Vec<Secret>,
    pub configs: Vec<Config>,
}

pub(crate) const SNAPSHOT_FORMAT: u32 = 1;

impl StoreState {
    /// The cluster object, once `swarmd init` has created it.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.clusters.iter().next()
    }

    /// The `ingress` network, which carries the routing mesh; a swarm has at most one.
    pub fn ingress_network(&self) -> Option<&Network> {
        self.networks.iter().find(|n| n.ingress)
    }

    pub fn tasks_by_service<'a>(&'a self, service_id: &str) -> impl Iterator<Item = &'a Task> + 'a {
        self.task_index
            .by_service
            .get(service_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.tasks.get(id))
    }

    pub fn tasks_by_node<'a>(&'a self, node_id: &str) -> impl Iterator<Item = &'a Task> + 'a {
        self.task_index
            .by_node
            .get(node_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.tasks.get(id))
    }

    pub fn tasks_by_slot<'a>(&'a self, service_id: &str, slot: u64) -> impl Iterator<Item = &'a Task> + 'a {
        self.task_index
            .by_slot
            .get(&(service_id.to_string(), slot))
            .into_iter()
            .flatten()
            .filter_map(|id| self.tasks.get(id))
    }

    pub fn get(&self, kind: Kind, id: &str) -> Option<Object> {
        match kind {
            Kind::Cluster => self.clusters.get(id).cloned().map(StoreObject::into_object),
            Kind::Node => self.nodes.get(id).cloned().map(StoreObject::into_object),
            Kind::Service => self.services.get(id).cloned().map(StoreObject::into_object),
            Kind::Task => self.tasks.get(id).cloned().map(StoreObject::into_object),
            Kind::Network => self.networks.get(id).cloned().map(StoreObject::into_object),
            Kind::Secret => self.secrets.get(id).cloned().map(StoreObject::into_object),
            Kind::Config => self.configs.get(id).cloned().map(StoreObject::into_object),
        }
    }

    /// Applies one transaction at raft index `index`: all actions or none.
    pub(crate) fn apply_tx(
        &mut self,
        index: u64,
        actions: Vec<StoreAction>,
        events: &mut Vec<Event>,
    ) -> Result<(), StoreError> {
        let mut tx_events = Vec::new();
        for action in actions {
            if let Err(e) = self.apply_action(index, action, &mut tx_events) {
                // Every change made so far has its event, which holds what it replaced: undo
                // them from the last.
                for event in tx_events.into_iter().rev() {
                    match event {
                        Event::Create(obj) => self.take(obj.kind(), obj.id()),
                        Event::Update { old, .. } | Event::Delete(old) => {
                            self.put(old);
                        }
                        Event::Commit { .. } | Event::Restored { .. } => {}
                    }
                }
                return Err(e);
            }
        }
        events.extend(tx_events);
        Ok(())
    }

    fn apply_action(&mut self, index: u64, action: StoreAction, events: &mut Vec<Event>) -> Result<(), StoreError> {
        match action {
            StoreAction::Create(mut obj) => {
                let kind = obj.kind();
                let id = obj.id().to_string();
                if id.is_empty() {
                    return Err(StoreError::Invalid(format!("{kind} without an ID")));
                }
                if self.contains(kind, &id) {
                    return Err(StoreError::IdConflict { kind, id });
                }
                if let Some(name) = self.name_taken(&obj) {
                    return Err(StoreError::NameConflict { kind, name });
                }
                set_version(&mut obj, Version::new(index));
                if let Object::Service(s) = &mut obj {
                    s.spec_version = Some(Version::new(index));
                    super::ports::allocate(s, None, self.services.iter())
                        .map_err(|e| StoreError::Refused(e.to_string()))?;
                    allocate_vips(self, s, None).map_err(|e| StoreError::Refused(e.to_string()))?;
                }
                if let Object::Network(n) = &mut obj {
                    if let Some(other) = self.networks.iter().find(|o| n.ingress && o.ingress) {
                        return Err(StoreError::Refused(format!(
                            "network {}: an ingress network already exists ({}); a swarm has one",
                            n.name, other.name
                        )));
                    }
                    let host_networks = super::subnets::host_networks(self.nodes.iter());
                    super::subnets::allocate(n, self.cluster(), self.networks.iter(), &host_networks)
                        .map_err(|e| StoreError::Refused(format!("network {}: {e}", n.name)))?;
                }
                if let Object::Task(t) = &mut obj {
                    // Addresses are given when the task leaves NEW, never by the writer.
                    t.networks_attachments = None;
                }
                if let Object::Node(n) = &mut obj {
                    allocate_node(self, n, None);
                }
                let new_ingress = matches!(&obj, Object::Network(n) if n.ingress);
                self.put(obj.clone());
                events.push(Event::Create(obj));
                if new_ingress {
                    // Every node gets its routing-mesh address on the new ingress network.
                    let nodes: Vec<Node> = self.nodes.iter().cloned().collect();
                    for old in nodes {
                        let mut new = old.clone();
                        allocate_node(self, &mut new, Some(&old));
                        if new.attachments != old.attachments {
                            new.version = Version::new(index);
                            let (old, new) = (old.into_object(), new.into_object());
                            self.put(new.clone());
                            events.push(Event::Update { old, new });
                        }
                    }
                }
            }
            StoreAction::Update(mut obj) => {
                let kind = obj.kind();
                let id = obj.id().to_string();
                let Some(old) = self.get(kind, &id) else {
                    return Err(StoreError::NotFound { kind, id });
                };
                if old.version() != obj.version() {
                    return Err(StoreError::OutOfSequence { kind, id });
                }
                if let Some(name) = self.name_taken(&obj) {
                    return Err(StoreError::NameConflict { kind, name });
                }
                set_version(&mut obj, Version::new(index));
                if let (Object::Service(old_s), Object::Service(new_s)) = (&old, &mut obj) {
                    new_s.spec_version = if old_s.spec != new_s.spec {
                        Some(Version::new(index))
                    } else {
                        old_s.spec_version
                    };
                    super::ports::allocate(new_s, Some(old_s), self.services.iter())
                        .map_err(|e| StoreError::Refused(e.to_string()))?;
                    allocate_vips(self, new_s, Some(old_s)).map_err(|e| StoreError::Refused(e.to_string()))?;
                }
                if let (Object::Node(old_n), Object::Node(new_n)) = (&old, &mut obj) {
                    allocate_node(self, new_n, Some(old_n));
                }
                if let (Object::Task(old_t), Object::Task(new_t)) = (&old, &mut obj) {
                    // A task's addresses belong to the state machine: writers cannot change them.
                    new_t.networks_attachments = old_t.networks_attachments.clone();
                }
                self.put(obj.clone());
                events.push(Event::Update { old, new: obj });
            }
            StoreAction::Remove { kind, id, version } => {
                let Some(old) = self.get(kind, &id) else {
                    return Err(StoreError::NotFound { kind, id });
                };
                if let Some(v) = version
                    && v != old.version()
                {
                    return Err(StoreError::OutOfSequence { kind, id });
                }
                self.take(kind, &id);
                events.push(Event::Delete(old));
            }
            StoreAction::TaskStatus { id, status } => {
                let old = self.task_or_err(&id)?;
                if status.state < old.status.state || status == old.status {
                    return Ok(());
                }
                let mut new = old.clone();
                new.updated_at = status.timestamp;
                let leaves_new = old.status.state == TaskState::New && status.state > TaskState::New;
                if leaves_new && !status.state.is_terminal() && old.networks_attachments.is_none() {
                    allocate_task(self, &mut new).map_err(|e| StoreError::Refused(format!("task {id}: {e}")))?;
                }
                if status.state >= TaskState::Running && old.status.state < TaskState::Running {
                    new.running_since = (status.state == TaskState::Running).then_some(status.timestamp);
                }
                new.status = status;
                self.replace(index, new.into_object(), events);
            }
            StoreAction::ServiceUpdateStatus {
                id,
                spec_version,
                status,
            } => {
                let Some(old) = self.services.get(&id) else {
                    return Err(StoreError::NotFound {
                        kind: Kind::Service,
                        id,
                    });
                };
                if old.spec_version != spec_version || old.update_status == status {
                    return Ok(());
                }
                let mut new = old.clone();
                new.update_status = status;
                self.replace(index, new.into_object(), events);
            }
            StoreAction::TaskDesired { id, desired } => {
                let old = self.task_or_err(&id)?;
                if desired <= old.desired_state {
                    return Ok(());
                }
                let mut new = old.clone();
                new.desired_state = desired;
                self.replace(index, new.into_object(), events);
            }
            StoreAction::TaskAssign { id, node_id, status } => {
                let old = self.task_or_err(&id)?;
                let preset_elsewhere = !old.node_id.is_empty() && old.node_id != node_id;
                if preset_elsewhere || old.status.state >= TaskState::Assigned {
                    return Ok(());
                }
                let mut new = old.clone();
                new.node_id = node_id;
                new.updated_at = status.timestamp;
                new.status = status;
                self.replace(index, new.into_object(), events);
            }
            StoreAction::NodeStatus {
                id,
                status,
                description,
            } => {
                let Some(old) = self.nodes.get(&id) else {
                    return Err(StoreError::NotFound { kind: Kind::Node, id });
                };
                let mut new = old.clone();
                new.status = status;
                if let Some(d) = description {
                    new.description = d;
                }
                if new == *old {
                    return Ok(());
                }
                self.replace(index, new.into_object(), events);
            }
            StoreAction::NodeCertificate { id, key } => {
                let Some(old) = self.nodes.get(&id) else {
                    return Err(StoreError::NotFound { kind: Kind::Node, id });
                };
                if old.certificate_key.as_deref() == Some(key.as_str()) {
                    return Ok(());
                }
                let mut new = old.clone();
                new.certificate_key = Some(key);
                self.replace(index, new.into_object(), events);
            }
        }
        Ok(())
    }

    fn task_or_err(&self, id: &str) -> Result<&Task, StoreError> {
        self.tasks.get(id).ok_or_else(|| StoreError::NotFound {
            kind: Kind::Task,
            id: id.to_string(),
        })
    }

    /// Puts `new`, versioned at `index`, in place of the object with its ID. The old object
    /// moves into the event rather than being copied: an update costs one copy for the store
    /// and one for the event.
    fn replace(&mut self, index: u64, mut new: Object, events: &mut Vec<Event>) {
        set_version(&mut new, Version::new(index));
        if let Some(old) = self.put(new.clone()) {
            events.push(Event::Update { old, new });
        }
    }

    /// Whether an object of `kind` with `id` exists.
    fn contains(&self, kind: Kind, id: &str) -> bool {
        match kind {
            Kind::Cluster => self.clusters.get(id).is_some(),
            Kind::Node => self.nodes.get(id).is_some(),
            Kind::Service => self.services.get(id).is_some(),
            Kind::Task => self.tasks.get(id).is_some(),
            Kind::Network => self.networks.get(id).is_some(),
            Kind::Secret => self.secrets.get(id).is_some(),
            Kind::Config => self.configs.get(id).is_some(),
        }
    }

    /// The name of `obj` if another object of its kind already uses it.
    fn name_taken(&self, obj: &Object) -> Option<String> {
        fn check<T: StoreObject>(table: &Table<T>, o: &T) -> Option<String> {
            let name = o.unique_name()?;
            match table.by_name(name) {
                Some(other) if other.id() != o.id() => Some(name.to_string()),
                _ => None,
            }
        }
        match obj {
            Object::Service(o) => check(&self.services, o),
            Object::Network(o) => check(&self.networks, o),
            Object::Secret(o) => check(&self.secrets, o),
            Object::Config(o) => check(&self.configs, o),
            _ => None,
        }
    }

    /// Stores `obj` and returns the object it replaced.
    fn put(&mut self, obj: Object) -> Option<Object> {
        match obj {
            Object::Cluster(o) => self.clusters.insert(*o).map(StoreObject::into_object),
            Object::Node(o) => {
                if let Some(old) = self.nodes.get(&o.id) {
                    self.addresses.remove_node(old);
                }
                self.addresses.add_node(&o);
                self.nodes.insert(*o).map(StoreObject::into_object)
            }
            Object::Service(o) => {
                if let Some(old) = self.services.get(&o.id) {
                    self.addresses.remove_service(old);
                }
                self.addresses.add_service(&o);
                self.services.insert(*o).map(StoreObject::into_object)
            }
            Object::Task(o) => {
                if let Some(old) = self.tasks.get(&o.id) {
                    self.task_index.remove(old);
                    self.addresses.remove_task(old);
                }
                self.task_index.add(&o);
                self.addresses.add_task(&o);
                self.tasks.insert(*o).map(StoreObject::into_object)
            }
            Object::Network(o) => self.networks.insert(*o).map(StoreObject::into_object),
            Object::Secret(o) => self.secrets.insert(*o).map(StoreObject::into_object),
            Object::Config(o) => self.configs.insert(*o).map(StoreObject::into_object),
        }
    }

    fn take(&mut self, kind: Kind, id: &str) {
        match kind {
            Kind::Cluster => {
                self.clusters.remove(id);
            }
            Kind::Node => {
                if let Some(old) = self.nodes.remove(id) {
                    self.addresses.remove_node(&old);
                }
            }
            Kind::Service => {
                if let Some(old) = self.services.remove(id) {
                    self.addresses.remove_service(&old);
                }
            }
            Kind::Task => {
                if let Some(old) = self.tasks.remove(id) {
                    self.task_index.remove(&old);
                    self.addresses.remove_task(&old);
                }
            }
            Kind::Network => {
                self.networks.remove(id);
            }
            Kind::Secret => {
                self.secrets.remove(id);
            }
            Kind::Config => {
                self.configs.remove(id);
            }
        }
    }

    pub(crate) fn to_snapshot(&self) -> SnapshotData {
        SnapshotData {
            format: SNAPSHOT_FORMAT,
            applied_index: self.applied_index,
            clusters: self.clusters.iter().cloned().collect(),
            nodes: self.nodes.iter().cloned().collect(),
            services: self.services.iter().cloned().collect(),
            tasks: self.tasks.iter().cloned().collect(),
            networks: self.networks.iter().cloned().collect(),
            secrets: self.secrets.iter().cloned().collect(),
            configs: self.configs.iter().cloned().collect(),
        }
    }

    pub(crate) fn from_snapshot(data: SnapshotData) -> Self {
        let mut task_index = TaskIndexes::default();
        let mut addresses = AddressIndex::default();
        for t in &data.tasks {
            task_index.add(t);
            addresses.add_task(t);
        }
        for s in &data.services {
            addresses.add_service(s);
        }
        Self {
            clusters: Table::rebuild(data.clusters),
            nodes: Table::rebuild(data.nodes),
            services: Table::rebuild(data.services),
            tasks: Table::rebuild(data.tasks),
            networks: Table::rebuild(data.networks),
            secrets: Table::rebuild(data.secrets),
            configs: Table::rebuild(data.configs),
            task_index,
            addresses,
            applied_index: data.applied_index,
        }
    }
}

fn set_version(obj: &mut Object, v: Version) {
    match obj {
        Object::Cluster(o) => o.set_version(v),
        Object::Node(o) => o.set_version(v),
        Object::Service(o) => o.set_version(v),
        Object::Task(o) => o.set_version(v),
        Object::Network(o) => o.set_version(v),
        Object::Secret(o) => o.set_version(v),
        Object::Config(o) => o.set_version(v),
    }
}
