//! Swarm-scoped networks, in the Engine API's network shape.

use serde::Deserialize;
use serde::Serialize;

use super::Labels;
use super::Timestamp;
use super::Version;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Network {
    pub name: String,
    pub id: String,
    #[serde(rename = "Created")]
    pub created_at: Timestamp,
    #[serde(default)]
    pub scope: String,
    #[serde(default)]
    pub driver: String,
    #[serde(rename = "EnableIPv6", default)]
    pub enable_ipv6: bool,
    #[serde(rename = "IPAM", default)]
    pub ipam: Ipam,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub attachable: bool,
    #[serde(default)]
    pub ingress: bool,
    #[serde(default)]
    pub config_only: bool,
    #[serde(default)]
    pub options: Labels,
    #[serde(default)]
    pub labels: Labels,
    #[serde(default)]
    pub version: Version,
    #[serde(default)]
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ipam {
    #[serde(default)]
    pub driver: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Labels>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Vec<IpamConfig>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamConfig {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subnet: String,
    #[serde(rename = "IPRange", default, skip_serializing_if = "String::is_empty")]
    pub ip_range: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gateway: String,
}

/// The network option that holds an overlay's VXLAN network identifier, as dockerd shows it.
pub const VXLAN_ID_OPTION: &str = "com.docker.network.driver.overlay.vxlanid_list";

impl Network {
    /// The network's subnet and gateway, once the managers have given it them.
    pub fn ipam_config(&self) -> Option<&IpamConfig> {
        self.ipam.config.as_ref().and_then(|c| c.first())
    }

    /// The VXLAN network identifier the managers gave the network.
    pub fn vxlan_id(&self) -> Option<u32> {
        self.options.get(VXLAN_ID_OPTION).and_then(|v| v.parse().ok())
    }
}

/// A task's place on one network, as `Task.NetworksAttachments` shows it: the network in
/// Swarm's object shape, so a node can build it without asking, and the task's addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkAttachment {
    pub network: SwarmNetwork,
    /// CIDR strings, e.g. `10.0.1.5/24`.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Extra DNS names for the task on this network (a stack's short service name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aliases: Option<Vec<String>>,
}

/// A network in SwarmKit's shape (`ID`, `Spec`, `DriverState`, `IPAMOptions`), which is how
/// Swarm shows it inside a task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SwarmNetwork {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(default)]
    pub version: Version,
    #[serde(default)]
    pub created_at: Timestamp,
    #[serde(default)]
    pub updated_at: Timestamp,
    #[serde(default)]
    pub spec: SwarmNetworkSpec,
    #[serde(default)]
    pub driver_state: super::Driver,
    #[serde(rename = "IPAMOptions", default)]
    pub ipam_options: IpamOptions,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SwarmNetworkSpec {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub labels: Labels,
    #[serde(default)]
    pub driver_configuration: super::Driver,
    #[serde(default, skip_serializing_if = "super::service::is_false")]
    pub internal: bool,
    #[serde(default, skip_serializing_if = "super::service::is_false")]
    pub attachable: bool,
    #[serde(default, skip_serializing_if = "super::service::is_false")]
    pub ingress: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamOptions {
    #[serde(default)]
    pub driver: super::Driver,
    #[serde(default)]
    pub configs: Vec<IpamConfig>,
}

impl From<&Network> for SwarmNetwork {
    fn from(n: &Network) -> Self {
        let driver = |name: &str, options: Option<Labels>| super::Driver {
            name: name.to_string(),
            options,
        };
        SwarmNetwork {
            id: n.id.clone(),
            version: n.version,
            created_at: n.created_at,
            updated_at: n.updated_at,
            spec: SwarmNetworkSpec {
                name: n.name.clone(),
                labels: n.labels.clone(),
                driver_configuration: driver(&n.driver, None),
                internal: n.internal,
                attachable: n.attachable,
                ingress: n.ingress,
                scope: n.scope.clone(),
            },
            driver_state: driver(&n.driver, Some(n.options.clone())),
            ipam_options: IpamOptions {
                driver: driver(
                    if n.ipam.driver.is_empty() {
                        "default"
                    } else {
                        &n.ipam.driver
                    },
                    n.ipam.options.clone(),
                ),
                configs: n.ipam.config.clone().unwrap_or_default(),
            },
        }
    }
}
