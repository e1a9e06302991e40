//! Golden files of every model type's JSON: what the Engine API sends and accepts. Each file
//! must decode and encode again to exactly itself, so a renamed field, a default that shows or
//! hides, or a change of field order fails here.
//!
//! The files were made from fully populated values ([`crate::sample`]); after a meant change,
//! make them again and review the diff of `model/golden/`:
//! `SWARM_GOLDEN_UPDATE=1 cargo test -p swarm-model --features sample golden`. Without the
//! feature the values' generator is not built, which keeps `make test` quick.

use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::*;

/// Enough samples to show every variant of the largest enum (TaskState).
#[cfg_attr(not(feature = "sample"), allow(dead_code))]
const VARIANTS: usize = 16;

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("golden")
        .join(format!("{name}.json"))
}

/// Where `want` and `now` first differ, for a failure message.
pub(crate) fn first_difference(want: &str, now: &str) -> (usize, String, String) {
    let line = want
        .lines()
        .zip(now.lines())
        .position(|(a, b)| a != b)
        .unwrap_or(want.lines().count().min(now.lines().count()));
    (
        line + 1,
        want.lines().nth(line).unwrap_or("").to_string(),
        now.lines().nth(line).unwrap_or("").to_string(),
    )
}

/// Writes the samples of `T` as the golden file when asked to (with the `sample` feature).
#[cfg(feature = "sample")]
fn update<T: Serialize + DeserializeOwned + PartialEq>(name: &str, variants: usize) -> Result<(), String> {
    if std::env::var_os("SWARM_GOLDEN_UPDATE").is_none() {
        return Ok(());
    }
    let values: Vec<T> = crate::sample::samples(variants).map_err(|e| format!("{name}: {e}"))?;
    let text = serde_json::to_string_pretty(&values).map_err(|e| format!("{name}: {e}"))? + "\n";
    let path = golden_path(name);
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(not(feature = "sample"))]
fn refuse_update() -> Result<(), String> {
    if std::env::var_os("SWARM_GOLDEN_UPDATE").is_some() {
        return Err("making golden files needs the sample feature: add --features sample".to_string());
    }
    Ok(())
}

/// The golden file of `T` decodes, and encodes again to exactly the same text.
fn golden_json<T: Serialize + DeserializeOwned + PartialEq>(name: &str, variants: usize) -> Result<(), String> {
    #[cfg(feature = "sample")]
    update::<T>(name, variants)?;
    #[cfg(not(feature = "sample"))]
    let _ = (refuse_update()?, variants);
    let path = golden_path(name);
    let want = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let values: Vec<T> =
        serde_json::from_str(&want).map_err(|e| format!("{}: does not decode: {e}", path.display()))?;
    let now = serde_json::to_string_pretty(&values).map_err(|e| format!("{name}: {e}"))? + "\n";
    if now == want {
        return Ok(());
    }
    let (line, golden, encoded) = first_difference(&want, &now);
    Err(format!(
        "{} does not encode back to itself, first at line {line}:\n  golden: {golden:?}\n  now:    {encoded:?}\n\
         If the change is meant, make the golden files again (see model/src/golden.rs) and review the diff.",
        path.display()
    ))
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
    NetworkAttachment,
    SwarmNetwork,
    SwarmNetworkSpec,
    IpamOptions,
    Task,
    Annotations,
    TaskStatus,
    ContainerStatus,
    PortStatus,
    Timestamp;
    enums: Kind, Object, NodeRole, Availability, NodeState, Reachability, TaskState,
);
