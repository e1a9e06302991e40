//! The data directory of one node: identity, certificates, raft state and the control socket.
//!
//! ```text
//! D/node.json           who this node is (written last during init/join)
//! D/certs/ca.pem        the cluster's root CA
//! D/certs/node.pem      this node's certificate
//! D/certs/node.key      its private key (mode 0600; sealed under autolock, see node_key.rs)
//! D/raft/log/           the raft log (managers)
//! D/raft/snapshots/     raft snapshots (managers)
//! D/raft/data-key.json  the key raft state is sealed with (managers, see data_key.rs)
//! D/swarmd.sock         the Engine API control socket (mode 0660)
//! D/lock                held while swarmd runs
//! ```

use std::fs;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;

use serde::Deserialize;
use serde::Serialize;
use swarm_ca::UnlockKey;
use swarm_model::NodeRole;
use swarm_sync::lock;

use crate::node_key;
use crate::node_key::NodeKeySealing;

const CONFIG_FORMAT: u32 = 1;

/// What a node needs to restart without any flag.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeConfig {
    pub format: u32,
    pub node_id: String,
    pub cluster_id: String,
    pub role: NodeRole,
    /// The raft id of this manager incarnation.
    pub raft_id: Option<u64>,
    pub hostname: String,
    pub listen_addr: String,
    pub advertise_addr: String,
    /// Optional TCP Engine API address.
    pub api_addr: Option<String>,
    /// TLS of the TCP API (`--tlsverify`); plain text when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_tls: Option<crate::api_listener::ApiTls>,
    /// Plain-text TCP API off loopback, asked for by name (`--insecure-api`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_api: bool,
    /// Managers this node knew of when it last saved its config, `(node ID, address)`.
    pub managers: Vec<(String, String)>,
    /// False until `swarmd init` has committed the cluster object.
    pub initialised: bool,
    /// How this node runs tasks: `docker` or `sim`.
    #[serde(default = "default_executor")]
    pub executor: String,
    /// Where containers' resolvers forward names outside the cluster; the host's when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_upstream: Vec<String>,
}

fn default_executor() -> String {
    "docker".to_string()
}

impl NodeConfig {
    pub fn new(node_id: String, cluster_id: String, role: NodeRole) -> Self {
        Self {
            format: CONFIG_FORMAT,
            node_id,
            cluster_id,
            role,
            raft_id: None,
            hostname: String::new(),
            listen_addr: String::new(),
            advertise_addr: String::new(),
            api_addr: None,
            api_tls: None,
            insecure_api: false,
            managers: Vec::new(),
            initialised: false,
            executor: default_executor(),
            dns_upstream: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("data dir {dir}: {source}")]
    Io {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error("data dir {0} is not initialised (no node.json); run `swarmd init` or `swarmd join` with --data-dir {0}")]
    NotInitialised(String),
    #[error(
        "data dir {dir} already belongs to node {node_id} of cluster {cluster_id}; restart it with `swarmd run --data-dir {dir}`, or use an empty data dir"
    )]
    AlreadyInitialised {
        dir: String,
        node_id: String,
        cluster_id: String,
    },
    #[error("data dir {dir} is not empty and holds no node.json (found {found}); use an empty or new directory")]
    NotEmpty { dir: String, found: String },
    #[error("data dir {dir} is damaged: {problem}")]
    Damaged { dir: String, problem: String },
    #[error("data dir {0} is in use by another swarmd process")]
    Locked(String),
}

/// A role switch, recorded before it is carried out.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RoleSwitch {
    config: NodeConfig,
    cert_pem: String,
    key_pem: String,
}

/// Paths inside a data dir.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
    /// How `certs/node.key` is kept; shared by the clones of one handle, and taken by every
    /// write of the node key, so a renewal and an autolock change never interleave.
    node_key: Arc<Mutex<NodeKeySealing>>,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            node_key: Arc::default(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn display(&self) -> String {
        self.root.display().to_string()
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join("node.json")
    }

    pub fn certs(&self) -> PathBuf {
        self.root.join("certs")
    }

    pub fn ca_path(&self) -> PathBuf {
        self.certs().join("ca.pem")
    }

    pub fn cert_path(&self) -> PathBuf {
        self.certs().join("node.pem")
    }

    pub fn key_path(&self) -> PathBuf {
        self.certs().join("node.key")
    }

    pub fn raft(&self) -> PathBuf {
        self.root.join("raft")
    }

    /// Secret and config files of this node's task containers, one dir per task.
    pub fn task_files(&self) -> PathBuf {
        self.root.join("task-files")
    }

    pub fn socket(&self) -> PathBuf {
        self.root.join(swarm_protocol::engine::SOCKET_NAME)
    }

    fn io(&self, source: std::io::Error) -> DataDirError {
        DataDirError::Io {
            dir: self.display(),
            source,
        }
    }

    /// Takes the data dir's lock for the life of the returned file.
    pub fn lock(&self) -> Result<File, DataDirError> {
        create_dir_durably(&self.root).map_err(|e| self.io(e))?;
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join("lock"))
            .map_err(|e| self.io(e))?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(DataDirError::Locked(self.display())),
            Err(std::fs::TryLockError::Error(e)) => Err(self.io(e)),
        }
    }

    /// Checks that a new node may be created here: no node.json and nothing else of ours.
    pub fn ensure_fresh(&self) -> Result<(), DataDirError> {
        if let Ok(cfg) = self.load_config() {
            return Err(DataDirError::AlreadyInitialised {
                dir: self.display(),
                node_id: cfg.node_id,
                cluster_id: cfg.cluster_id,
            });
        }
        if self.config_path().exists() {
            // Present but unreadable: load_config's error says why.
            self.load_config()?;
        }
        let leftovers: Vec<String> = match fs::read_dir(&self.root) {
            Ok(entries) => entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n != "lock")
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(self.io(e)),
        };
        if !leftovers.is_empty() {
            return Err(DataDirError::NotEmpty {
                dir: self.display(),
                found: leftovers.join(", "),
            });
        }
        Ok(())
    }

    pub fn load_config(&self) -> Result<NodeConfig, DataDirError> {
        let path = self.config_path();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(DataDirError::NotInitialised(self.display()));
            }
            Err(e) => return Err(self.io(e)),
        };
        let cfg: NodeConfig = serde_json::from_str(&text).map_err(|e| DataDirError::Damaged {
            dir: self.display(),
            problem: format!("node.json is not valid: {e}"),
        })?;
        if cfg.format != CONFIG_FORMAT {
            return Err(DataDirError::Damaged {
                dir: self.display(),
                problem: format!(
                    "node.json has format {}, this swarmd reads format {CONFIG_FORMAT}",
                    cfg.format
                ),
            });
        }
        Ok(cfg)
    }

    pub fn save_config(&self, cfg: &NodeConfig) -> Result<(), DataDirError> {
        let text = serde_json::to_string_pretty(cfg).map_err(|e| self.io(std::io::Error::other(e)))?;
        create_dir_durably(&self.root).map_err(|e| self.io(e))?;
        write_durably(&self.config_path(), text.as_bytes(), 0o644).map_err(|e| self.io(e))
    }

    /// Restricts a new data dir: others may only traverse the root (to reach the control socket);
    /// certificates and raft state (which holds the CA key) are private to the owner.
    pub fn restrict(&self) -> Result<(), DataDirError> {
        create_dir_durably(&self.root).map_err(|e| self.io(e))?;
        fs::set_permissions(&self.root, fs::Permissions::from_mode(0o711)).map_err(|e| self.io(e))?;
        for private in [self.certs(), self.raft()] {
            create_dir_durably(&private).map_err(|e| self.io(e))?;
            fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).map_err(|e| self.io(e))?;
        }
        Ok(())
    }

    /// Writes the CA, the node certificate and its key. The certificate and key are a pair that
    /// must change together (a renewal replaces both): each is staged as `*.next` first, the key
    /// before the certificate, and only then renamed into place, so that a crash at any point
    /// leaves either the old pair or a swap that [`Self::load_certs`] completes.
    pub fn save_certs(&self, ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<(), DataDirError> {
        create_dir_durably(&self.certs()).map_err(|e| self.io(e))?;
        write_durably(&self.ca_path(), ca_pem.as_bytes(), 0o644).map_err(|e| self.io(e))?;
        self.save_node_certificate(cert_pem, key_pem)
    }

    /// Replaces the node certificate and its key (the CA stays): a renewal or a role switch.
    pub fn save_node_certificate(&self, cert_pem: &str, key_pem: &str) -> Result<(), DataDirError> {
        let sealing = lock(&self.node_key);
        let stored = sealing.encode(key_pem).map_err(|e| self.io(std::io::Error::other(e)))?;
        write_durably(&staged(&self.key_path()), stored.as_bytes(), 0o600).map_err(|e| self.io(e))?;
        write_durably(&staged(&self.cert_path()), cert_pem.as_bytes(), 0o644).map_err(|e| self.io(e))?;
        self.finish_certificate_swap()
    }

    /// Completes a certificate swap that a crash interrupted, or drops one that was never fully
    /// staged (a staged key without a staged certificate).
    fn finish_certificate_swap(&self) -> Result<(), DataDirError> {
        let (cert_next, key_next) = (staged(&self.cert_path()), staged(&self.key_path()));
        if cert_next.exists() {
            if key_next.exists() {
                fs::rename(&key_next, self.key_path()).map_err(|e| self.io(e))?;
                // The key's rename must be on disk before the certificate's.
                File::open(self.certs())
                    .and_then(|d| d.sync_all())
                    .map_err(|e| self.io(e))?;
            }
            fs::rename(&cert_next, self.cert_path()).map_err(|e| self.io(e))?;
        } else if key_next.exists() {
            fs::remove_file(&key_next).map_err(|e| self.io(e))?;
        } else {
            return Ok(());
        }
        File::open(self.certs())
            .and_then(|d| d.sync_all())
            .map_err(|e| self.io(e))
    }

    fn read(&self, p: PathBuf) -> Result<String, DataDirError> {
        fs::read_to_string(&p).map_err(|e| DataDirError::Damaged {
            dir: self.display(),
            problem: format!("cannot read {}: {e}", p.display()),
        })
    }

    /// Reads (CA, certificate, key), naming any missing file. A sealed key is opened.
    pub fn load_certs(&self) -> Result<(String, String, String), DataDirError> {
        self.finish_certificate_swap()?;
        let (ca, cert) = (self.read(self.ca_path())?, self.read(self.cert_path())?);
        let stored = self.read(self.key_path())?;
        let key = lock(&self.node_key)
            .decode(&stored, &self.key_path().display().to_string())
            .map_err(|problem| DataDirError::Damaged {
                dir: self.display(),
                problem,
            })?;
        Ok((ca, cert, key))
    }

    /// Reads the cluster's root CA certificate.
    pub fn load_ca(&self) -> Result<String, DataDirError> {
        self.read(self.ca_path())
    }

    /// Reads this node's certificate (never sealed).
    pub fn load_node_cert(&self) -> Result<String, DataDirError> {
        self.finish_certificate_swap()?;
        self.read(self.cert_path())
    }

    /// Makes the node key openable with `sealer` (a manager's, made from its data key).
    pub(crate) fn use_node_key_sealer(&self, sealer: Option<UnlockKey>) {
        let mut sealing = lock(&self.node_key);
        sealing.sealer = sealer;
        sealing.sealed = false;
    }

    /// Keeps the node key sealed (autolock on) or plain, rewriting it if it is stored the
    /// other way. Needs the sealer to seal or to open a sealed key.
    pub(crate) fn seal_node_key(&self, sealed: bool) -> Result<(), DataDirError> {
        self.finish_certificate_swap()?;
        let mut sealing = lock(&self.node_key);
        if sealed && sealing.sealer.is_none() {
            return Err(self.io(std::io::Error::other("no sealer for the node key")));
        }
        sealing.sealed = sealed;
        let stored = self.read(self.key_path())?;
        if node_key::is_sealed(&stored) == sealed {
            return Ok(());
        }
        let path = self.key_path().display().to_string();
        let damaged = |problem: String| DataDirError::Damaged {
            dir: self.display(),
            problem,
        };
        let pem = sealing.decode(&stored, &path).map_err(damaged)?;
        let rewritten = sealing.encode(&pem).map_err(damaged)?;
        write_durably(&self.key_path(), rewritten.as_bytes(), 0o600).map_err(|e| self.io(e))
    }

    /// Where a role switch in progress is recorded.
    fn switch_path(&self) -> PathBuf {
        self.root.join("switch.json")
    }

    /// Switches this node to a new role in one resumable step: the new config, certificate and
    /// key are recorded first (`switch.json`, private), then the old raft state is removed and
    /// the certificates and config are written. A crash anywhere in between is completed by
    /// [`Self::finish_interrupted_switch`] on the next start, instead of leaving a node whose
    /// config, certificate and raft state disagree.
    pub fn switch_role(&self, cfg: &NodeConfig, cert_pem: &str, key_pem: &str) -> Result<(), DataDirError> {
        let plan = RoleSwitch {
            config: cfg.clone(),
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.to_string(),
        };
        let text = serde_json::to_vec(&plan).map_err(|e| self.io(std::io::Error::other(e)))?;
        write_durably(&self.switch_path(), &text, 0o600).map_err(|e| self.io(e))?;
        self.carry_out(&plan)
    }

    /// Completes a role switch that a crash interrupted, if there is one.
    pub fn finish_interrupted_switch(&self) -> Result<bool, DataDirError> {
        let text = match fs::read(self.switch_path()) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(self.io(e)),
        };
        let plan: RoleSwitch = serde_json::from_slice(&text).map_err(|e| DataDirError::Damaged {
            dir: self.display(),
            problem: format!("switch.json (an interrupted role switch) is not valid: {e}"),
        })?;
        self.carry_out(&plan)?;
        Ok(true)
    }

    /// The steps of a role switch; each may be repeated.
    fn carry_out(&self, plan: &RoleSwitch) -> Result<(), DataDirError> {
        // The new role starts with a plain node key: a worker never locks, and a new manager
        // incarnation has a new data key (autolock seals it again once the manager runs).
        *lock(&self.node_key) = NodeKeySealing::default();
        // Raft state belongs to one manager incarnation; a new role starts without it.
        match fs::remove_dir_all(self.raft()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.io(e)),
        }
        self.save_node_certificate(&plan.cert_pem, &plan.key_pem)?;
        self.save_config(&plan.config)?;
        fs::remove_file(self.switch_path()).map_err(|e| self.io(e))?;
        File::open(&self.root)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.io(e))
    }

    /// Makes the control socket group-accessible only.
    pub fn secure_socket(&self) -> Result<(), DataDirError> {
        fs::set_permissions(self.socket(), fs::Permissions::from_mode(0o660)).map_err(|e| self.io(e))
    }
}

/// Creates `path` and any missing parents, each fsynced into its own parent, so that a crash
/// cannot lose a directory whose files were already fsynced. Does nothing if it exists.
pub fn create_dir_durably(path: &Path) -> std::io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_durably(parent)?;
    }
    match fs::create_dir(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(parent)?.sync_all()
}

/// Where the next version of a file waits until it is swapped in.
fn staged(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".next");
    path.with_file_name(name)
}

/// Writes `data` to a temp file, fsyncs it, renames it over `path` and fsyncs the directory.
/// Each call has a temp file of its own: `node.pem` and `node.key`, or two writers of
/// `node.json`, must never write into one file and rename each other's data.
pub fn write_durably(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    {
        let mut f = fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_and_a_second_init_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path().join("d"));
        dir.ensure_fresh().unwrap();
        dir.restrict().unwrap();
        let mode = |p: PathBuf| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(dir.certs()), 0o700);
        assert_eq!(mode(dir.raft()), 0o700);
        let cfg = NodeConfig::new("n1".into(), "c1".into(), NodeRole::Manager);
        dir.save_config(&cfg).unwrap();
        assert_eq!(dir.load_config().unwrap().node_id, "n1");
        let err = dir.ensure_fresh().unwrap_err();
        assert!(
            err.to_string().contains("already belongs to node n1 of cluster c1"),
            "{err}"
        );
    }

    /// node.pem and node.key used to share the temp file node.tmp: written at the same time,
    /// one could end up holding the other's data.
    #[test]
    fn files_written_at_once_keep_their_own_data() {
        let tmp = tempfile::tempdir().unwrap();
        let (pem, key) = (tmp.path().join("node.pem"), tmp.path().join("node.key"));
        for round in 0..200 {
            let writers: Vec<_> = [(pem.clone(), "certificate"), (key.clone(), "key")]
                .into_iter()
                .map(|(p, what)| {
                    let data = format!("{what} {round}");
                    std::thread::spawn(move || write_durably(&p, data.as_bytes(), 0o600))
                })
                .collect();
            for w in writers {
                w.join().unwrap().unwrap();
            }
            assert_eq!(fs::read_to_string(&pem).unwrap(), format!("certificate {round}"));
            assert_eq!(fs::read_to_string(&key).unwrap(), format!("key {round}"));
        }
        let left: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    /// A renewal replaces the certificate and its key together: a crash after staging either
    /// leaves the old pair or completes the new one, never one of each.
    #[test]
    fn an_interrupted_certificate_swap_keeps_a_matching_pair() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        dir.save_certs("ca", "cert 1", "key 1").unwrap();
        assert_eq!(
            dir.load_certs().unwrap(),
            ("ca".into(), "cert 1".into(), "key 1".into())
        );
        // Crash after staging the key only: the old pair stays.
        write_durably(&staged(&dir.key_path()), b"key 2", 0o600).unwrap();
        assert_eq!(
            dir.load_certs().unwrap(),
            ("ca".into(), "cert 1".into(), "key 1".into())
        );
        // Crash after staging both: the new pair is completed.
        write_durably(&staged(&dir.key_path()), b"key 3", 0o600).unwrap();
        write_durably(&staged(&dir.cert_path()), b"cert 3", 0o644).unwrap();
        assert_eq!(
            dir.load_certs().unwrap(),
            ("ca".into(), "cert 3".into(), "key 3".into())
        );
        // Crash after the key was renamed in: the certificate follows.
        write_durably(&staged(&dir.cert_path()), b"cert 4", 0o644).unwrap();
        write_durably(&dir.key_path(), b"key 4", 0o600).unwrap();
        assert_eq!(
            dir.load_certs().unwrap(),
            ("ca".into(), "cert 4".into(), "key 4".into())
        );
        dir.save_certs("ca", "cert 5", "key 5").unwrap();
        assert_eq!(
            dir.load_certs().unwrap(),
            ("ca".into(), "cert 5".into(), "key 5".into())
        );
        let mode = fs::metadata(dir.key_path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<_> = fs::read_dir(dir.certs())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".next")), "{names:?}");
    }

    /// A kill -9 in the middle of a role switch used to leave a node that could not start: its
    /// raft dir gone, its certificate for one role and node.json for the other.
    #[test]
    fn an_interrupted_role_switch_is_completed_on_the_next_start() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        let mut manager = NodeConfig::new("n1".into(), "c1".into(), NodeRole::Manager);
        manager.raft_id = Some(7);
        manager.initialised = true;
        dir.save_config(&manager).unwrap();
        dir.save_certs("ca", "manager cert", "manager key").unwrap();
        fs::create_dir_all(dir.raft().join("log")).unwrap();
        fs::write(dir.raft().join("log/wal"), "entries").unwrap();
        let mut worker = manager.clone();
        worker.role = NodeRole::Worker;
        worker.raft_id = None;

        // Crashed right after recording the switch, and after each later step.
        let plan = RoleSwitch {
            config: worker.clone(),
            cert_pem: "worker cert".into(),
            key_pem: "worker key".into(),
        };
        for steps_done in 0..3 {
            fs::create_dir_all(dir.raft().join("log")).unwrap();
            write_durably(&dir.switch_path(), &serde_json::to_vec(&plan).unwrap(), 0o600).unwrap();
            if steps_done >= 1 {
                fs::remove_dir_all(dir.raft()).unwrap();
            }
            if steps_done >= 2 {
                dir.save_certs("ca", "worker cert", "worker key").unwrap();
            }
            assert!(dir.finish_interrupted_switch().unwrap());
            assert!(!dir.raft().exists());
            assert_eq!(
                dir.load_certs().unwrap(),
                ("ca".into(), "worker cert".into(), "worker key".into())
            );
            assert_eq!(dir.load_config().unwrap().role, NodeRole::Worker);
            assert!(!dir.finish_interrupted_switch().unwrap(), "nothing left to do");
        }
        dir.switch_role(&manager, "manager cert 2", "manager key 2").unwrap();
        assert_eq!(dir.load_config().unwrap().raft_id, Some(7));
        assert!(!dir.switch_path().exists());
    }

    #[test]
    fn missing_and_damaged_files_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        assert!(matches!(dir.load_config(), Err(DataDirError::NotInitialised(_))));
        fs::write(dir.config_path(), "{not json").unwrap();
        let err = dir.load_config().unwrap_err();
        assert!(err.to_string().contains("node.json is not valid"), "{err}");
        let err = dir.load_certs().unwrap_err();
        assert!(err.to_string().contains("ca.pem"), "{err}");
    }

    #[test]
    fn a_sealed_node_key_is_written_and_read_through_the_sealer_and_unsealed_by_a_role_switch() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        let mut manager = NodeConfig::new("n1".into(), "c1".into(), NodeRole::Manager);
        manager.initialised = true;
        dir.save_config(&manager).unwrap();
        dir.save_certs("ca", "cert 1", "key 1").unwrap();
        dir.use_node_key_sealer(Some(UnlockKey::generate()));
        dir.seal_node_key(true).unwrap();
        let stored = fs::read_to_string(dir.key_path()).unwrap();
        assert!(node_key::is_sealed(&stored) && !stored.contains("key 1"), "{stored}");
        assert_eq!(dir.load_certs().unwrap().2, "key 1");

        dir.save_node_certificate("cert 2", "key 2").unwrap();
        assert!(
            node_key::is_sealed(&fs::read_to_string(dir.key_path()).unwrap()),
            "a renewal stays sealed"
        );
        assert_eq!(dir.load_certs().unwrap().2, "key 2");
        let err = DataDir::new(tmp.path()).load_certs().unwrap_err().to_string();
        assert!(err.contains("not open"), "{err}");

        dir.seal_node_key(false).unwrap();
        assert_eq!(fs::read_to_string(dir.key_path()).unwrap(), "key 2");
        dir.seal_node_key(true).unwrap();
        let mut worker = manager.clone();
        worker.role = NodeRole::Worker;
        dir.switch_role(&worker, "worker cert", "worker key").unwrap();
        assert_eq!(
            fs::read_to_string(dir.key_path()).unwrap(),
            "worker key",
            "a worker's key is plain"
        );
    }

    #[test]
    fn the_lock_is_exclusive() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        let _held = dir.lock().unwrap();
        assert!(matches!(dir.lock(), Err(DataDirError::Locked(_))));
    }
}
