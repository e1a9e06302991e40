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
    Cast { path: String, reason: CastError },
    /// A schema violation: `services.web.deploy Additional property replica is not allowed`.
    #[error("{path} {problem}")]
    Schema { path: String, problem: String },
    /// A value that has the right type but cannot be used (a bad size, a bad port spec).
    #[error("{0}")]
    Invalid(String),
    #[error("invalid image reference for service {service}: {problem}")]
    ImageReference { service: String, problem: ImageRefError },
    /// A problem converting one service: `service web: undefined network "x"`.
    #[error("service {service}: {problem}")]
    Service { service: String, problem: ServiceProblem },
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

/// Why an image reference is not one docker would parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageRefError {
    #[error("no image specified")]
    Missing,
    #[error("invalid reference format")]
    Format,
    /// `shown` is the repository as docker names it (`library/` added to bare names).
    #[error("invalid reference format: repository name ({shown}) must be lowercase")]
    Uppercase { shown: String },
}

/// Why one service cannot become a service spec, in docker's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceProblem {
    /// A secret, config, network or volume the service uses but the file does not declare.
    #[error("undefined {kind} {name:?}")]
    Undefined { kind: &'static str, name: String },
    #[error("duplicate {kind} target for {name} not allowed")]
    DuplicateTarget { kind: &'static str, name: String },
    /// More than one of a credential spec's config, file and registry (quoted, in order).
    #[error("invalid credential spec: cannot specify both {}", join_both(.0))]
    CredentialSpec(Vec<&'static str>),
    #[error("replicas can only be used with replicated or replicated-job mode")]
    ReplicasWithoutReplicatedMode,
    #[error("unknown mode: {0}")]
    UnknownMode(String),
    #[error("invalid restart policy: maximum retry count must be an integer: {0}")]
    RestartCount(String),
    #[error(
        "invalid restart policy: unknown policy '{0}' (must be one of 'no', 'always', 'on-failure', or 'unless-stopped')"
    )]
    RestartPolicy(String),
    #[error("test and disable can't be set at the same time")]
    HealthcheckTestAndDisable,
    /// Options of one mount type given to a mount of another.
    #[error("{options} options are incompatible with type {kind}")]
    MountOptions { options: &'static str, kind: &'static str },
    #[error("invalid tmpfs source, source must be empty")]
    TmpfsSource,
    #[error("volume type must be volume, bind, tmpfs, npipe, or cluster")]
    MountType,
    #[error(transparent)]
    Unit(#[from] crate::units::UnitError),
}

/// docker's list: `"A" and "B"`, or `"A", "B", and "C"`.
fn join_both(set: &[&str]) -> String {
    match set {
        [a, b] => format!("{a} and {b}"),
        [rest @ .., last] => format!("{}, and {last}", rest.join(", ")),
        [] => String::new(),
    }
}

/// Why an interpolated value does not have the type its key needs, as Go's strconv says it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CastError {
    #[error("strconv.Atoi: parsing {0:?}: invalid syntax")]
    Int(String),
    #[error("strconv.ParseFloat: parsing {0:?}: invalid syntax")]
    Float(String),
    #[error("invalid boolean: {0}")]
    Bool(String),
}
