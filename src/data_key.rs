//! A manager's raft data key in its data dir, `raft/data-key.json` (mode 0600, in the private
//! raft dir): in plain text, as dockerd keeps its raft DEK beside the node key, or sealed with
//! the cluster's unlock key while autolock is on. A role switch removes the raft dir, and a
//! new manager incarnation gets a new key.

use std::path::PathBuf;

use std::os::unix::fs::PermissionsExt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde::Serialize;
use swarm_ca::UnlockKey;
use swarm_ca::UnlockKeyError;
use swarm_raft::DataKey;
use tokio::sync::watch;

use crate::datadir::DataDir;
use crate::datadir::DataDirError;
use crate::datadir::create_dir_durably;
use crate::datadir::write_durably;

const FORMAT: u32 = 1;

/// The file's layout. Exactly one of `key` and `sealed` is set.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct KeyFile {
    format: u32,
    /// The data key, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    /// The data key sealed with the unlock key (`UnlockKey::seal`), base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sealed: Option<String>,
}

/// A data key as found on disk.
pub(crate) enum StoredKey {
    Plain(DataKey),
    /// Autolock: the unlock key is needed to open it.
    Sealed(Vec<u8>),
}

impl StoredKey {
    /// Opens a sealed key with `unlock`; a plain key needs none.
    pub(crate) fn open(&self, unlock: &UnlockKey) -> Result<DataKey, UnlockKeyError> {
        match self {
            StoredKey::Plain(key) => Ok(key.clone()),
            StoredKey::Sealed(sealed) => {
                let bytes = unlock.open(sealed)?;
                DataKey::from_bytes(&bytes, "the unsealed data key").map_err(|_| UnlockKeyError::Wrong)
            }
        }
    }
}

pub(crate) fn path(dir: &DataDir) -> PathBuf {
    dir.raft().join("data-key.json")
}

fn damaged(dir: &DataDir, problem: String) -> DataDirError {
    DataDirError::Damaged {
        dir: dir.root().display().to_string(),
        problem,
    }
}

/// Reads the key file; `None` if there is none yet.
pub(crate) fn load(dir: &DataDir) -> Result<Option<StoredKey>, DataDirError> {
    let file = path(dir);
    let text = match std::fs::read(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(damaged(dir, format!("cannot read {}: {e}", file.display()))),
    };
    let bad = |why: String| damaged(dir, format!("{} is not valid: {why}", file.display()));
    let parsed: KeyFile = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
    if parsed.format != FORMAT {
        return Err(bad(format!(
            "it has format {}, this swarmd reads format {FORMAT}",
            parsed.format
        )));
    }
    let decode = |b64: &str| STANDARD.decode(b64).map_err(|e| bad(format!("bad base64: {e}")));
    match (parsed.key, parsed.sealed) {
        (Some(key), None) => {
            let key = DataKey::from_bytes(&decode(&key)?, "Key").map_err(|e| bad(e.to_string()))?;
            Ok(Some(StoredKey::Plain(key)))
        }
        (None, Some(sealed)) => Ok(Some(StoredKey::Sealed(decode(&sealed)?))),
        _ => Err(bad("it must hold either Key or Sealed".to_string())),
    }
}

/// Writes `key`, sealed with `unlock` if given, durably and privately.
pub(crate) fn save(dir: &DataDir, key: &DataKey, unlock: Option<&UnlockKey>) -> Result<(), DataDirError> {
    let io = |source: std::io::Error| DataDirError::Io {
        dir: dir.root().display().to_string(),
        source,
    };
    let file = match unlock {
        None => KeyFile {
            format: FORMAT,
            key: Some(STANDARD.encode(key.as_bytes())),
            sealed: None,
        },
        Some(unlock) => KeyFile {
            format: FORMAT,
            key: None,
            sealed: Some(
                STANDARD.encode(
                    unlock
                        .seal(key.as_bytes())
                        .map_err(|e| io(std::io::Error::other(e.to_string())))?,
                ),
            ),
        },
    };
    let text = serde_json::to_vec_pretty(&file).map_err(|e| io(std::io::Error::other(e)))?;
    // The raft dir may be new (a new manager, or a role switch): private before anything is in it.
    create_dir_durably(&dir.raft()).map_err(io)?;
    std::fs::set_permissions(dir.raft(), std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    write_durably(&path(dir), &text, 0o600).map_err(io)
}

/// A manager's data key as it starts, and the unlock key it is sealed with on disk, if any.
#[derive(Debug, Clone)]
pub(crate) struct ManagerKey {
    pub(crate) key: DataKey,
    pub(crate) sealed_with: Option<UnlockKey>,
}

/// The data key of a manager that is not locked: the one on disk, or a new one for a new
/// manager (or a manager from before encryption at rest, whose raft state is then sealed).
/// A sealed key is handed back as it is: the manager is locked.
pub(crate) fn unlocked(dir: &DataDir) -> Result<Result<ManagerKey, StoredKey>, DataDirError> {
    match load(dir)? {
        Some(StoredKey::Plain(key)) => Ok(Ok(ManagerKey { key, sealed_with: None })),
        Some(sealed) => Ok(Err(sealed)),
        None => {
            let key = DataKey::generate().map_err(|source| DataDirError::Io {
                dir: dir.root().display().to_string(),
                source,
            })?;
            save(dir, &key, None)?;
            Ok(Ok(ManagerKey { key, sealed_with: None }))
        }
    }
}

/// Keeps this manager's key file sealed as the cluster wants (`wanted`: the unlock key while
/// autolock is on, `None` otherwise), re-sealing it whenever that changes, until the sender
/// goes away at shutdown. A manager that was off during a rotation is unlocked with the key it
/// was sealed with, and re-sealed with the new one here.
pub(crate) async fn keep_sealed_as_wanted(dir: DataDir, key: ManagerKey, mut wanted: watch::Receiver<Option<String>>) {
    let mut current = key.sealed_with.as_ref().map(|k| k.to_string());
    while wanted.changed().await.is_ok() {
        let want = wanted.borrow_and_update().clone();
        if want == current {
            continue;
        }
        let unlock = match want.as_deref().map(UnlockKey::parse).transpose() {
            Ok(unlock) => unlock,
            Err(e) => {
                tracing::error!(error = %e, "the cluster's unlock key is not usable; the data key stays as it is");
                continue;
            }
        };
        let (d, k) = (dir.clone(), key.key.clone());
        // Whatever a crash leaves between the two writes, the node key is sealed only if the
        // data key is: it is sealed second and unsealed first.
        let write = move || match unlock {
            Some(unlock) => {
                save(&d, &k, Some(&unlock))?;
                d.seal_node_key(true)
            }
            None => {
                d.seal_node_key(false)?;
                save(&d, &k, None)
            }
        };
        match tokio::task::spawn_blocking(write).await {
            Ok(Ok(())) => {
                tracing::info!(
                    autolock = want.is_some(),
                    "re-sealed this manager's raft data key and node key"
                );
                current = want;
            }
            Ok(Err(e)) => tracing::error!(error = %e, "cannot re-seal this manager's raft data key"),
            Err(e) => tracing::error!(error = %e, "the data key writer failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_kept_plain_or_sealed_and_only_the_unlock_key_opens_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        assert!(load(&dir).unwrap().is_none());
        let key = unlocked(&dir).unwrap().ok().unwrap().key;
        let mode = std::fs::metadata(path(&dir)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            unlocked(&dir).unwrap().ok().unwrap().key,
            key,
            "the same key on the next start"
        );

        let unlock = UnlockKey::generate();
        save(&dir, &key, Some(&unlock)).unwrap();
        let text = std::fs::read_to_string(path(&dir)).unwrap();
        assert!(!text.contains(&STANDARD.encode(key.as_bytes())), "{text}");
        let Some(stored @ StoredKey::Sealed(_)) = load(&dir).unwrap() else {
            panic!("sealed")
        };
        assert_eq!(stored.open(&UnlockKey::generate()).unwrap_err(), UnlockKeyError::Wrong);
        assert_eq!(stored.open(&unlock).unwrap(), key);
        assert!(unlocked(&dir).unwrap().is_err(), "a sealed key is not replaced");
    }

    #[test]
    fn a_damaged_key_file_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        std::fs::create_dir_all(dir.raft()).unwrap();
        std::fs::write(path(&dir), r#"{"Format":1}"#).unwrap();
        let err = load(&dir).err().unwrap().to_string();
        assert!(
            err.contains("data-key.json") && err.contains("either Key or Sealed"),
            "{err}"
        );
    }
}
