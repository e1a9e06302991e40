//! Compose files to swarm service specs: pure parsing and conversion, no network.
//!
//! This crate is a skeleton until the stacks issue lands; it only fixes the crate's place in the
//! workspace and its error type. The planned pipeline (see `docs/architecture.md`): parse YAML
//! with merge keys, interpolate `${VAR}`, drop `x-*` keys, expand short syntax, then deserialise
//! into our own compose types with unknown fields refused.
#![forbid(unsafe_code)]

/// Why a compose file could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// The file is not supported yet: stacks are not implemented in this version.
    #[error("compose files are not supported yet: {0}")]
    Unsupported(String),
}
