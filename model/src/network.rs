//! Swarm-scoped networks, in the Engine API's network shape.

use serde::Deserialize;
use serde::Serialize;

use super::Labels;
use super::Timestamp;
use super::Version;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Created")]
    pub created_at: Timestamp,
    #[serde(rename = "Scope", default)]
    pub scope: String,
    #[serde(rename = "Driver", default)]
    pub driver: String,
    #[serde(rename = "EnableIPv6", default)]
    pub enable_ipv6: bool,
    #[serde(rename = "IPAM", default)]
    pub ipam: Ipam,
    #[serde(rename = "Internal", default)]
    pub internal: bool,
    #[serde(rename = "Attachable", default)]
    pub attachable: bool,
    #[serde(rename = "Ingress", default)]
    pub ingress: bool,
    #[serde(rename = "ConfigOnly", default)]
    pub config_only: bool,
    #[serde(rename = "Options", default)]
    pub options: Labels,
    #[serde(rename = "Labels", default)]
    pub labels: Labels,
    #[serde(rename = "Version", default)]
    pub version: Version,
    #[serde(rename = "UpdatedAt", default)]
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipam {
    #[serde(rename = "Driver", default)]
    pub driver: String,
    #[serde(rename = "Options", default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Labels>,
    #[serde(rename = "Config", default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Vec<IpamConfig>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamConfig {
    #[serde(rename = "Subnet", default, skip_serializing_if = "String::is_empty")]
    pub subnet: String,
    #[serde(rename = "IPRange", default, skip_serializing_if = "String::is_empty")]
    pub ip_range: String,
    #[serde(rename = "Gateway", default, skip_serializing_if = "String::is_empty")]
    pub gateway: String,
}
