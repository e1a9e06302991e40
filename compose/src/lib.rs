//! Compose files to swarm service specs: pure parsing and conversion, no network.
//!
//! The pipeline follows docker's `stack deploy` so the same file gives the same error and the
//! same specs: parse YAML (anchors, merge keys) → version and forbidden-key checks →
//! `${VAR}` interpolation and type casts → schema validation with normalisation → merge of
//! several files → conversion to [`swarm_model::ServiceSpec`]s. The only I/O is reading the
//! `env_file`s a file names; everything else is handed in through [`Details`].

mod convert;
mod error;
mod interpolate;
mod load;
mod merge;
mod print;
mod schema;
mod syntax;
#[cfg(test)]
mod tests;
mod units;
mod value;

pub use convert::DEFAULT_NETWORK_DRIVER;
pub use convert::FileObjectPlan;
pub use convert::IMAGE_LABEL;
pub use convert::NAMESPACE_LABEL;
pub use convert::NetworkPlan;
pub use convert::StackPlan;
pub use convert::convert;
pub use convert::is_builtin_network;
pub use convert::validate_stack_name;
pub use convert::warnings;
pub use error::ComposeError;
pub use error::ImageRefError;
pub use error::ServiceProblem;
pub use load::Details;
pub use load::Loaded;
pub use load::load;
pub use syntax::shell_split;
pub use units::DurationProblem;
pub use units::UnitError;
pub use units::parse_duration;
pub use units::parse_nano_cpus;
pub use units::parse_ram_bytes;
pub use value::Map;
pub use value::Value;

/// The loaded file as `stack config` prints it (YAML): as docker prints it, without the zero
/// values its types leave out.
pub fn to_yaml(config: &Map) -> Result<String, ComposeError> {
    serde_saphyr::to_string(&print::printable(config))
        .map_err(|e| ComposeError::Invalid(format!("cannot print the configuration: {e}")))
}
