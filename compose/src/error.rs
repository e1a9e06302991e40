//! Why a compose file was refused, worded as docker words it so users can search for it.

/// One refusal. Every variant names the place (file, key path or service) and the problem.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ComposeError {
    /// The YAML itself is broken (syntax, duplicate keys, a non-string key).
    #[error("{file}: {message}")]
    Yaml { file: String, message: String },
    #[error("top-level object must be a mapping")]
    TopLevelNotMapping,
    #[error("version must be a string")]
    VersionNotString,
    #[error("unsupported Compose file version: {0}")]
    UnsupportedVersion(String),
    #[error("version mismatched between two composefiles : {0} and {1}")]
    VersionMismatch(String, String),
    /// Keys docker refuses outright, each with docker's explanation.
    #[error("Compose file contains unsupported options:\n\n{}", .0.iter().map(|(k, m)| format!("{k}: {m}\n")).collect::<Vec<_>>().join("\n"))]
    Forbidden(Vec<(String, String)>),
    #[error("invalid interpolation format for {path}: \"{detail}\"; you may need to escape any $ with another $")]
    Interpolation { path: String, detail: String },
    #[error("error while interpolating {path}: failed to cast to expected type: {reason}")]
    Cast { path: String, reason: String },
    /// A schema violation: `services.web.deploy Additional property replica is not allowed`.
    #[error("{path} {problem}")]
    Schema { path: String, problem: String },
    /// A value that has the right type but cannot be used (a bad size, a bad port spec).
    #[error("{0}")]
    Invalid(String),
    /// A problem converting one service: `service web: undefined network "x"`.
    #[error("service {service}: {problem}")]
    Service { service: String, problem: String },
    /// A file the compose file points at (env_file) could not be read.
    #[error("{path}: {problem}")]
    File { path: String, problem: String },
}

impl ComposeError {
    pub(crate) fn schema(path: &str, problem: impl Into<String>) -> Self {
        let path = if path.is_empty() {
            "(root)".to_string()
        } else {
            path.to_string()
        };
        ComposeError::Schema {
            path,
            problem: problem.into(),
        }
    }
}
