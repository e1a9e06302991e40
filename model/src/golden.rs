//! Golden files of every model type's JSON: what the Engine API sends and accepts. A change to
//! a name, a default that shows, or the order of fields makes these tests fail; if the change is
//! meant, rerun with `SWARM_GOLDEN_UPDATE=1` and review the diff of `model/golden/`.

use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::sample::samples;
use crate::*;

/// Enough samples to show every variant of the largest enum (TaskState).
const VARIANTS: usize = 16;

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("golden")
        .join(format!("{name}.json"))
}

/// Compares `text` with the golden file `name`, or writes it when updating.
pub(crate) fn check_golden(name: &str, text: &str) -> Result<(), String> {
    let path = golden_path(name);
    if std::env::var_os("SWARM_GOLDEN_UPDATE").is_some() {
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        return Ok(());
    }
    let want = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "cannot read {}: {e} (run with SWARM_GOLDEN_UPDATE=1 to create it)",
            path.display()
        )
    })?;
    if want == text {
        return Ok(());
    }
    let line = want
        .lines()
        .zip(text.lines())
        .position(|(a, b)| a != b)
        .unwrap_or(want.lines().count().min(text.lines().count()));
    Err(format!(
        "{} differs from what the code produces, first at line {}:\n  golden: {:?}\n  now:    {:?}\n\
         If the change is meant, rerun with SWARM_GOLDEN_UPDATE=1 and review the diff.",
        path.display(),
        line + 1,
        want.lines().nth(line).unwrap_or(""),
        text.lines().nth(line).unwrap_or("")
    ))
}

/// The samples of `T` as pretty JSON must equal the golden file, and the golden file must decode
/// to the same samples.
fn golden_json<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
    name: &str,
    variants: usize,
) -> Result<(), String> {
    let values: Vec<T> = samples(variants).map_err(|e| format!("{name}: {e}"))?;
    let text = serde_json::to_string_pretty(&values).map_err(|e| format!("{name}: {e}"))? + "\n";
    check_golden(name, &text)?;
    let back: Vec<T> = serde_json::from_str(&text).map_err(|e| format!("{name}: golden JSON does not decode: {e}"))?;
    if back != values {
        return Err(format!("{name}: golden JSON decodes to different values"));
    }
    Ok(())
}

/// Structs get one sample: the enums in them show their first variant, and every variant in
/// the enum's own golden file. Enums get one sample per variant.
macro_rules! golden_types {
    (structs: $($ty:ident),* ; enums: $($en:ident),* $(,)?) => {
        #[test]
        fn every_model_type_matches_its_golden_json() {
            let failures: Vec<String> = [
                $(golden_json::<$ty>(stringify!($ty), 1),)*
                $(golden_json::<$en>(stringify!($en), VARIANTS),)*
            ]
                .into_iter()
                .filter_map(Result::err)
                .collect();
            assert!(failures.is_empty(), "{}", failures.join("\n\n"));
        }
    };
}

golden_types!(
    structs:
    Cluster,
    JoinTokens,
    RootCaState,
    ClusterSpec,
    OrchestrationConfig,
    RaftSettings,
    DispatcherConfig,
    CaConfig,
    TaskDefaults,
    EncryptionConfig,
    Version,
    Network,
    Ipam,
    IpamConfig,
    Node,
    NodeSpec,
    NodeDescription,
    EngineDescription,
    PluginDescription,
    TlsInfo,
    NodeStatus,
    ManagerStatus,
    SecretSpec,
    Secret,
    Config,
    Service,
    ServiceSpec,
    ServiceMode,
    Empty,
    ReplicatedService,
    ReplicatedJob,
    UpdateConfig,
    EndpointSpec,
    PortConfig,
    Endpoint,
    VirtualIp,
    UpdateStatus,
    UpdateProgress,
    ServiceStatus,
    SchedulingStatus,
    JobStatus,
    TaskSpec,
    ContainerSpec,
    Privileges,
    CredentialSpec,
    SeLinuxContext,
    SeccompOpts,
    AppArmorOpts,
    Mount,
    BindOptions,
    VolumeOptions,
    TmpfsOptions,
    Driver,
    HealthConfig,
    DnsConfig,
    FileTarget,
    SecretReference,
    ConfigReference,
    Ulimit,
    ResourceRequirements,
    Limit,
    Resources,
    GenericResource,
    NamedGenericResource,
    DiscreteGenericResource,
    RestartPolicy,
    Placement,
    PlacementPreference,
    SpreadOver,
    Platform,
    NetworkAttachmentConfig,
    Task,
    Annotations,
    TaskStatus,
    ContainerStatus,
    PortStatus,
    Timestamp;
    enums: Kind, Object, NodeRole, Availability, NodeState, Reachability, TaskState,
);
