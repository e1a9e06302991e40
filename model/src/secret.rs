//! Secrets and configs: named blobs mounted into tasks. Secret data is never returned by the API.

use serde::Deserialize;
use serde::Serialize;

use super::Driver;
use super::Labels;
use super::Timestamp;
use super::Version;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSpec {
    #[serde(rename = "Name", default)]
    pub name: String,
    #[serde(rename = "Labels", default)]
    pub labels: Labels,
    #[serde(
        rename = "Data",
        default,
        skip_serializing_if = "Option::is_none",
        with = "super::bytes_b64"
    )]
    pub data: Option<Vec<u8>>,
    #[serde(rename = "Driver", default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<Driver>,
    #[serde(rename = "Templating", default, skip_serializing_if = "Option::is_none")]
    pub templating: Option<Driver>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secret {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Version")]
    pub version: Version,
    #[serde(rename = "CreatedAt")]
    pub created_at: Timestamp,
    #[serde(rename = "UpdatedAt")]
    pub updated_at: Timestamp,
    #[serde(rename = "Spec")]
    pub spec: SecretSpec,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Version")]
    pub version: Version,
    #[serde(rename = "CreatedAt")]
    pub created_at: Timestamp,
    #[serde(rename = "UpdatedAt")]
    pub updated_at: Timestamp,
    /// Same shape as a secret's spec; config data is returned by the API.
    #[serde(rename = "Spec")]
    pub spec: SecretSpec,
}
