//! Snapshot files: written to a temp file, fsynced, renamed into place, and the directory
//! fsynced, so a crash leaves either the old snapshot or the new one, never half of one.
//!
//! Layout of a snapshot file:
//!
//! ```text
//! "SWRSNAP2"  8 bytes magic ("SWRSNAP1": plain text, written before sealing and on the wire)
//! u32 BE      header length
//! header      MessagePack: SnapshotHeader { meta, data_len, data_crc32, seal }
//! data        data_len bytes: the application state, sealed with the data key (see
//!             crate::sealing) under SWRSNAP2, in plain text under SWRSNAP1
//! ```
//!
//! On disk, snapshots are always sealed; a plain one left by an older version is sealed when the
//! store opens. Between managers a snapshot travels in the plain layout, inside mutual TLS, and
//! the receiver seals it with its own data key.

use std::fs;
use std::fs::File;
use std::io;
use std::io::Read;
use std::io::Write;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::MutexGuard;
use std::time::SystemTime;

use serde::Deserialize;
use serde::Serialize;
use swarm_sync::lock;

use crate::codec;
use crate::sealing::DataKey;
use crate::sealing::Sealed;
use crate::sealing::Sealer;
use crate::types::SnapshotMeta;

/// Snapshot data in plain text: files from before sealing, and snapshots on the wire.
const PLAIN_MAGIC: &[u8; 8] = b"SWRSNAP1";
/// Snapshot data sealed with the data key.
const SEALED_MAGIC: &[u8; 8] = b"SWRSNAP2";
const SUFFIX: &str = ".snap";
/// Refuse absurd header lengths instead of allocating them.
const MAX_HEADER_LEN: u32 = 64 << 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SnapshotHeader {
    meta: SnapshotMeta,
    data_len: u64,
    data_crc32: u32,
    /// The salt and nonce counter the data was sealed with; none in the plain layout.
    #[serde(default)]
    seal: Option<SealParams>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SealParams {
    #[serde(with = "serde_bytes")]
    salt: Vec<u8>,
    counter: u64,
}

/// What sealed snapshot data is bound to: its metadata, so data cannot be passed off as
/// another snapshot's.
fn snapshot_context(meta: &SnapshotMeta) -> Result<Vec<u8>, io::Error> {
    let mut context = b"raft snapshot ".to_vec();
    context.extend(codec::encode(meta)?);
    Ok(context)
}

/// A snapshot's header and where its data starts, parsed from the start of a file or stream.
struct Parsed {
    header: SnapshotHeader,
    data_offset: u64,
}

fn parse_header(mut r: impl Read, what: &Path) -> Result<Parsed, io::Error> {
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)
        .map_err(|_| corrupt(what, "file is too short"))?;
    let sealed = match &magic {
        SEALED_MAGIC => true,
        PLAIN_MAGIC => false,
        _ => return Err(corrupt(what, "not a swarm-rs snapshot (bad magic)")),
    };
    let mut len = [0u8; 4];
    r.read_exact(&mut len).map_err(|_| corrupt(what, "file is too short"))?;
    let header_len = u32::from_be_bytes(len);
    if header_len > MAX_HEADER_LEN {
        return Err(corrupt(what, "header length is implausible"));
    }
    let mut header = vec![0u8; header_len as usize];
    r.read_exact(&mut header)
        .map_err(|_| corrupt(what, "header is truncated"))?;
    let header: SnapshotHeader =
        codec::decode(&header, "snapshot header").map_err(|e| corrupt(what, &e.to_string()))?;
    if sealed != header.seal.is_some() {
        return Err(corrupt(what, "the header does not match the layout its magic names"));
    }
    Ok(Parsed {
        header,
        data_offset: 12 + header_len as u64,
    })
}

/// A snapshot in the plain layout, as it travels between managers.
fn plain_layout(meta: &SnapshotMeta, data: &[u8]) -> Result<Vec<u8>, io::Error> {
    let header = codec::encode(&SnapshotHeader {
        meta: meta.clone(),
        data_len: data.len() as u64,
        data_crc32: crc32fast::hash(data),
        seal: None,
    })?;
    let mut out = Vec::with_capacity(12 + header.len() + data.len());
    out.extend_from_slice(PLAIN_MAGIC);
    out.extend_from_slice(&(header.len() as u32).to_be_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(data);
    Ok(out)
}

/// One snapshot file on disk, validated when it was opened.
#[derive(Debug)]
pub struct SnapshotFile {
    pub path: PathBuf,
    pub meta: SnapshotMeta,
    data_offset: u64,
    data_len: u64,
    data_crc32: u32,
    seal: Option<SealParams>,
    sealer: Arc<Sealer>,
}

impl SnapshotFile {
    /// Size of the whole file.
    pub fn file_len(&self) -> u64 {
        self.data_offset + self.data_len
    }

    /// Whether the data is sealed (always, except in files left by an older version).
    pub fn is_sealed(&self) -> bool {
        self.seal.is_some()
    }

    /// The snapshot in the plain layout, for sending it to another manager.
    pub fn wire_bytes(&self) -> Result<Vec<u8>, io::Error> {
        plain_layout(&self.meta, &self.read_data()?)
    }

    /// Reads, verifies and opens the application data.
    pub fn read_data(&self) -> Result<Vec<u8>, io::Error> {
        let mut f = File::open(&self.path)?;
        let mut head = vec![0u8; self.data_offset as usize];
        f.read_exact(&mut head)?;
        let mut data = Vec::with_capacity(self.data_len as usize);
        f.take(self.data_len).read_to_end(&mut data)?;
        if data.len() as u64 != self.data_len {
            return Err(corrupt(&self.path, "data is shorter than its header says"));
        }
        if crc32fast::hash(&data) != self.data_crc32 {
            return Err(corrupt(&self.path, "data checksum mismatch"));
        }
        match &self.seal {
            None => Ok(data),
            Some(seal) => {
                let sealed = Sealed {
                    salt: seal.salt.clone(),
                    counter: seal.counter,
                    data,
                };
                let what = format!("snapshot {}", self.path.display());
                self.sealer.open(sealed, &snapshot_context(&self.meta)?, &what)
            }
        }
    }

    /// Parses and fully verifies a snapshot file.
    fn open(path: &Path, sealer: &Arc<Sealer>) -> Result<Self, io::Error> {
        let mut f = File::open(path)?;
        let Parsed { header, data_offset } = parse_header(&mut f, path)?;
        let actual_len = f.metadata()?.len();
        if actual_len != data_offset + header.data_len {
            return Err(corrupt(
                path,
                &format!(
                    "file has {actual_len} bytes, header says {}",
                    data_offset + header.data_len
                ),
            ));
        }
        let file = SnapshotFile {
            path: path.to_path_buf(),
            meta: header.meta,
            data_offset,
            data_len: header.data_len,
            data_crc32: header.data_crc32,
            seal: header.seal,
            sealer: sealer.clone(),
        };
        // Verify the checksum (and the seal) now so a damaged snapshot is found at open, not
        // at install.
        file.read_data()?;
        Ok(file)
    }
}

fn corrupt(path: &Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("snapshot {} is corrupt: {why}", path.display()),
    )
}

/// The snapshot directory of one manager. Cheap to clone; clones serialise their changes.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    dir: PathBuf,
    sealer: Arc<Sealer>,
    /// Building (on a background task) and installing (from the leader) can overlap: changes to
    /// the directory take this lock so an older snapshot never replaces a newer one.
    lock: Arc<Mutex<()>>,
}

fn index_of(meta: &SnapshotMeta) -> u64 {
    meta.last_log_id.as_ref().map(|l| l.index).unwrap_or(0)
}

/// The log index in a snapshot file name, `snapshot-<index>.snap`.
fn index_in_name(name: &str) -> Option<u64> {
    name.strip_prefix("snapshot-")?.strip_suffix(SUFFIX)?.parse().ok()
}

impl SnapshotStore {
    /// The store in `dir`, sealing with `data_key`. A plain snapshot left by an older version
    /// is sealed here, before anything reads it.
    pub fn new(dir: &Path, data_key: &DataKey) -> Result<Self, io::Error> {
        fs::create_dir_all(dir)?;
        let store = Self {
            dir: dir.to_path_buf(),
            sealer: Arc::new(Sealer::new(data_key.clone())?),
            lock: Arc::new(Mutex::new(())),
        };
        if let Some(plain) = store.latest()?.filter(|s| !s.is_sealed()) {
            tracing::info!(path = %plain.path.display(), "sealing a snapshot written before encryption at rest");
            let sealed = store.write_sealed(&plain.meta, plain.read_data()?)?;
            store.replace_with(&plain.path, &sealed.path)?;
        }
        Ok(store)
    }

    /// Replaces `old` by `new` (same index) durably.
    fn replace_with(&self, old: &Path, new: &Path) -> Result<(), io::Error> {
        let _guard = self.guard();
        fs::rename(new, old)?;
        File::open(&self.dir)?.sync_all()
    }

    /// Writes `data` sealed to a new temp file in the directory and fsyncs it. The file is
    /// described from what was written, not read back.
    fn write_sealed(&self, meta: &SnapshotMeta, data: Vec<u8>) -> Result<SnapshotFile, io::Error> {
        let sealed = self.sealer.seal(data, &snapshot_context(meta)?)?;
        let header = SnapshotHeader {
            meta: meta.clone(),
            data_len: sealed.data.len() as u64,
            data_crc32: crc32fast::hash(&sealed.data),
            seal: Some(SealParams {
                salt: sealed.salt,
                counter: sealed.counter,
            }),
        };
        let encoded = codec::encode(&header)?;
        let tmp = self.dir.join(format!("building-{}.tmp", unique_suffix()));
        let written = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(SEALED_MAGIC)?;
            f.write_all(&(encoded.len() as u32).to_be_bytes())?;
            f.write_all(&encoded)?;
            f.write_all(&sealed.data)?;
            f.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(SnapshotFile {
            path: tmp,
            meta: header.meta,
            data_offset: 12 + encoded.len() as u64,
            data_len: header.data_len,
            data_crc32: header.data_crc32,
            seal: header.seal,
            sealer: self.sealer.clone(),
        })
    }

    /// Verifies a snapshot received from the leader (plain layout, see [`SnapshotFile::wire_bytes`])
    /// and writes it sealed to a temp file, ready for [`SnapshotStore::adopt`].
    pub fn receive(&self, mut bytes: Vec<u8>) -> Result<SnapshotFile, io::Error> {
        let what = Path::new("received from the leader");
        let Parsed { header, data_offset } = parse_header(&bytes[..], what)?;
        if header.seal.is_some() {
            return Err(corrupt(what, "a snapshot must travel in the plain layout"));
        }
        bytes.drain(..data_offset as usize);
        let data = bytes;
        if data.len() as u64 != header.data_len {
            return Err(corrupt(
                what,
                &format!(
                    "it has {} bytes of data, its header says {}",
                    data.len(),
                    header.data_len
                ),
            ));
        }
        if crc32fast::hash(&data) != header.data_crc32 {
            return Err(corrupt(what, "data checksum mismatch"));
        }
        self.write_sealed(&header.meta, data)
    }

    fn guard(&self) -> MutexGuard<'_, ()> {
        lock(&self.lock)
    }

    /// Snapshot files by index, without opening them.
    fn snapshot_files(&self) -> Result<Vec<(u64, PathBuf)>, io::Error> {
        let mut snaps = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            if let Some(index) = index_in_name(&entry.file_name().to_string_lossy()) {
                snaps.push((index, entry.path()));
            }
        }
        snaps.sort();
        Ok(snaps)
    }

    fn final_path(&self, meta: &SnapshotMeta) -> PathBuf {
        self.dir.join(format!("snapshot-{:020}{SUFFIX}", index_of(meta)))
    }

    /// Writes a new snapshot durably and removes the older ones.
    pub fn write(&self, meta: &SnapshotMeta, data: Vec<u8>) -> Result<SnapshotFile, io::Error> {
        let file = self.write_sealed(meta, data)?;
        self.adopt(file)
    }

    /// Moves a complete snapshot file (written, and fsynced, by [`Self::write_sealed`]) into
    /// place durably and removes older snapshots. If a newer snapshot is already in place
    /// (installed while this one was being built), the file is discarded and the newer snapshot
    /// is returned.
    pub fn adopt(&self, mut file: SnapshotFile) -> Result<SnapshotFile, io::Error> {
        let _guard = self.guard();
        let index = index_of(&file.meta);
        if let Some((newest, path)) = self.snapshot_files()?.pop()
            && newest > index
        {
            tracing::info!(discarded = index, kept = newest, "a newer snapshot is already in place");
            let _ = fs::remove_file(&file.path);
            return SnapshotFile::open(&path, &self.sealer);
        }
        let target = self.final_path(&file.meta);
        fs::rename(&file.path, &target)?;
        File::open(&self.dir)?.sync_all()?;
        file.path = target;
        for (older, path) in self.snapshot_files()? {
            if older < index
                && let Err(e) = fs::remove_file(&path)
            {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove old snapshot");
            }
        }
        Ok(file)
    }

    /// Loads the newest snapshot, if any. Leftover temp files from a crash are removed. A newest
    /// snapshot that fails verification is an error: the log before it may already be purged,
    /// so falling back to an older one could silently lose committed state.
    pub fn latest(&self) -> Result<Option<SnapshotFile>, io::Error> {
        self.find_latest(true)
    }

    /// Like [`SnapshotStore::latest`], but leaves temp files alone: a snapshot may be arriving.
    pub fn latest_existing(&self) -> Result<Option<SnapshotFile>, io::Error> {
        self.find_latest(false)
    }

    fn find_latest(&self, remove_temp: bool) -> Result<Option<SnapshotFile>, io::Error> {
        let _guard = self.guard();
        if remove_temp {
            for entry in fs::read_dir(&self.dir)?.flatten() {
                if entry.file_name().to_string_lossy().ends_with(".tmp") {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        match self.snapshot_files()?.pop() {
            None => Ok(None),
            Some((_, path)) => SnapshotFile::open(&path, &self.sealer).map(Some),
        }
    }
}

fn unique_suffix() -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{}-{nanos}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta_at(index: u64) -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: Some(openraft::LogId::new(
                openraft::impls::leader_id_adv::LeaderId { term: 1, node_id: 7 },
                index,
            )),
            ..Default::default()
        }
    }

    #[test]
    fn written_snapshot_reads_back_and_replaces_older_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::new(dir.path(), &DataKey::generate().unwrap()).unwrap();
        store.write(&meta_at(5), b"five".to_vec()).unwrap();
        let second = store.write(&meta_at(9), b"nine".to_vec()).unwrap();
        assert_eq!(second.read_data().unwrap(), b"nine");
        let latest = store.latest().unwrap().unwrap();
        assert_eq!(latest.meta.last_log_id.unwrap().index, 9);
        let snaps: Vec<_> = fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(snaps.len(), 1, "older snapshot is removed");
    }

    #[test]
    fn an_older_snapshot_finishing_late_does_not_replace_a_newer_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::new(dir.path(), &DataKey::generate().unwrap()).unwrap();
        store.write(&meta_at(20), b"twenty".to_vec()).unwrap();
        let late = store.write(&meta_at(10), b"ten".to_vec()).unwrap();
        assert_eq!(late.meta.last_log_id.unwrap().index, 20, "the newer snapshot is kept");
        let latest = store.latest().unwrap().unwrap();
        assert_eq!(latest.read_data().unwrap(), b"twenty");
        assert_eq!(store.snapshot_files().unwrap().len(), 1);
    }

    #[test]
    fn flipped_byte_is_reported_with_the_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::new(dir.path(), &DataKey::generate().unwrap()).unwrap();
        let file = store.write(&meta_at(3), b"some state bytes".to_vec()).unwrap();
        let mut bytes = fs::read(&file.path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&file.path, bytes).unwrap();
        let err = store.latest().unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
        assert!(err.to_string().contains(&file.path.display().to_string()), "{err}");
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn snapshots_are_sealed_on_disk_and_travel_to_a_manager_with_another_key() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let key_a = DataKey::generate().unwrap();
        let leader = SnapshotStore::new(a.path(), &key_a).unwrap();
        let file = leader.write(&meta_at(4), b"the root CA key".to_vec()).unwrap();
        assert!(file.is_sealed());
        assert!(
            !contains(&fs::read(&file.path).unwrap(), b"root CA"),
            "plain text on disk"
        );

        let follower = SnapshotStore::new(b.path(), &DataKey::generate().unwrap()).unwrap();
        let received = follower.receive(file.wire_bytes().unwrap()).unwrap();
        let installed = follower.adopt(received).unwrap();
        assert_eq!(installed.read_data().unwrap(), b"the root CA key");
        assert!(!contains(&fs::read(&installed.path).unwrap(), b"root CA"));

        let err = SnapshotStore::new(a.path(), &DataKey::generate().unwrap()).unwrap_err();
        assert!(err.to_string().contains("cannot decrypt snapshot"), "{err}");
        let mut damaged = file.wire_bytes().unwrap();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        let err = follower.receive(damaged).unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
    }

    #[test]
    fn a_plain_snapshot_from_before_sealing_is_sealed_when_the_store_opens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("snapshot-{:020}{SUFFIX}", 7));
        fs::write(&path, plain_layout(&meta_at(7), b"old secrets").unwrap()).unwrap();
        let store = SnapshotStore::new(dir.path(), &DataKey::generate().unwrap()).unwrap();
        let latest = store.latest().unwrap().unwrap();
        assert!(latest.is_sealed());
        assert_eq!(latest.path, path);
        assert_eq!(latest.read_data().unwrap(), b"old secrets");
        assert!(!contains(&fs::read(&path).unwrap(), b"old secrets"));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temp file left");
    }

    #[test]
    fn leftover_temp_files_are_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::new(dir.path(), &DataKey::generate().unwrap()).unwrap();
        fs::write(dir.path().join("building-1.tmp"), b"half").unwrap();
        assert!(store.latest().unwrap().is_none());
        assert!(!dir.path().join("building-1.tmp").exists());
    }
}
