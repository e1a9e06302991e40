//! The domain model: one set of types for the store, the raft log, snapshots and the Engine API.
//!
//! JSON shapes follow the Docker Engine API (PascalCase, durations in nanoseconds, RFC3339
//! timestamps). The same serde impls encode the raft log and snapshots as MessagePack maps.

mod cluster;
pub mod defaults;
mod ids;
mod network;
mod node;
mod secret;
mod service;
mod task;
mod time;

#[cfg(feature = "sample")]
pub mod sample;

#[cfg(test)]
mod golden;

pub use cluster::*;
pub use ids::*;
pub use network::*;
pub use node::*;
pub use secret::*;
use serde::Deserialize;
use serde::Serialize;
pub use service::*;
pub use task::*;
pub use time::TimeError;
pub use time::Timestamp;
pub use time::set_wall_clock_skew;
pub use time::wall_clock_now;

/// Labels on any object.
pub type Labels = std::collections::BTreeMap<String, String>;

/// The raft index of an object's last change; clients send it back for optimistic concurrency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Version {
    pub index: u64,
}

impl Version {
    pub fn new(index: u64) -> Self {
        Self { index }
    }
}

/// The kinds of objects the store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    Cluster,
    Node,
    Service,
    Task,
    Network,
    Secret,
    Config,
}

impl Kind {
    /// Lower-case name, as used in error messages ("service X not found").
    pub fn name(self) -> &'static str {
        match self {
            Kind::Cluster => "swarm",
            Kind::Node => "node",
            Kind::Service => "service",
            Kind::Task => "task",
            Kind::Network => "network",
            Kind::Secret => "secret",
            Kind::Config => "config",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Any stored object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Object {
    Cluster(Box<Cluster>),
    Node(Box<Node>),
    Service(Box<Service>),
    Task(Box<Task>),
    Network(Box<Network>),
    Secret(Box<Secret>),
    Config(Box<Config>),
}

/// What every stored object has: an ID, a version and timestamps.
pub trait StoreObject: Clone {
    const KIND: Kind;
    fn id(&self) -> &str;
    fn version(&self) -> Version;
    fn set_version(&mut self, v: Version);
    fn created_at(&self) -> Timestamp;
    fn set_updated_at(&mut self, t: Timestamp);
    /// The unique name, for kinds whose names must be unique.
    fn unique_name(&self) -> Option<&str> {
        None
    }
    fn into_object(self) -> Object;
}

macro_rules! store_object {
    ($ty:ident, $kind:ident, $id:ident $(, name = |$s:ident| $name:expr)?) => {
        impl StoreObject for $ty {
            const KIND: Kind = Kind::$kind;
            fn id(&self) -> &str {
                &self.$id
            }
            fn version(&self) -> Version {
                self.version
            }
            fn set_version(&mut self, v: Version) {
                self.version = v;
            }
            fn created_at(&self) -> Timestamp {
                self.created_at
            }
            fn set_updated_at(&mut self, t: Timestamp) {
                self.updated_at = t;
            }
            $(fn unique_name(&self) -> Option<&str> {
                let $s = self;
                Some($name)
            })?
            fn into_object(self) -> Object {
                Object::$kind(Box::new(self))
            }
        }
    };
}

store_object!(Cluster, Cluster, id);
store_object!(Node, Node, id);
store_object!(Service, Service, id, name = |s| &s.spec.name);
store_object!(Task, Task, id);
store_object!(Network, Network, id, name = |s| &s.name);
store_object!(Secret, Secret, id, name = |s| &s.spec.name);
store_object!(Config, Config, id, name = |s| &s.spec.name);

impl Object {
    pub fn kind(&self) -> Kind {
        match self {
            Object::Cluster(_) => Kind::Cluster,
            Object::Node(_) => Kind::Node,
            Object::Service(_) => Kind::Service,
            Object::Task(_) => Kind::Task,
            Object::Network(_) => Kind::Network,
            Object::Secret(_) => Kind::Secret,
            Object::Config(_) => Kind::Config,
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Object::Cluster(o) => o.id(),
            Object::Node(o) => o.id(),
            Object::Service(o) => o.id(),
            Object::Task(o) => o.id(),
            Object::Network(o) => o.id(),
            Object::Secret(o) => o.id(),
            Object::Config(o) => o.id(),
        }
    }

    pub fn version(&self) -> Version {
        match self {
            Object::Cluster(o) => o.version(),
            Object::Node(o) => o.version(),
            Object::Service(o) => o.version(),
            Object::Task(o) => o.version(),
            Object::Network(o) => o.version(),
            Object::Secret(o) => o.version(),
            Object::Config(o) => o.version(),
        }
    }
}

/// Serde for byte fields: base64 in JSON (as Go encodes `[]byte`), raw bytes in MessagePack.
pub mod bytes_b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::Deserialize;
    use serde::Deserializer;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            None => s.serialize_none(),
            Some(bytes) if s.is_human_readable() => s.serialize_str(&STANDARD.encode(bytes)),
            Some(bytes) => s.serialize_bytes(bytes),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        if d.is_human_readable() {
            let text: Option<String> = Option::deserialize(d)?;
            text.map(|t| {
                STANDARD
                    .decode(t.as_bytes())
                    .map_err(|e| serde::de::Error::custom(format!("invalid base64: {e}")))
            })
            .transpose()
        } else {
            let bytes: Option<serde_bytes::ByteBuf> = Option::deserialize(d)?;
            Ok(bytes.map(|b| b.into_vec()))
        }
    }
}
