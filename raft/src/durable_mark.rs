//! The highest log index known to be on disk, kept beside the log (`log.mark`), so that a log
//! that lost fsynced records is refused instead of silently used.
//!
//! raft-log treats a record it cannot finish reading at the end of its last chunk as a torn
//! write and drops it, with everything after it. That is right for a record that never reached
//! the disk, but a corrupted length field looks the same, and then entries that were fsynced
//! (and acknowledged to the leader) disappear, commit record and all. The mark is outside the
//! log, so it survives such damage.
//!
//! It never claims more than the disk has: it is raised only after an fsync of the log
//! completed, and lowered (durably, before the log is) when raft truncates uncommitted
//! entries. Raising it is not fsynced: after a crash it may be older than the log, which is
//! safe; an unreadable mark is ignored with a warning.

use std::fs;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Mutex;

use swarm_sync::lock;

/// The file: this magic, the index plus one (0: no entries) as u64 LE, and a CRC32 of both. It
/// is overwritten in place with one 16-byte write, which costs the flush worker next to
/// nothing; a torn or damaged mark fails its checksum and is ignored.
const MAGIC: &[u8; 4] = b"SWMK";
const LEN: usize = 16;

fn encode(index: Option<u64>) -> [u8; LEN] {
    let mut bytes = [0u8; LEN];
    bytes[..4].copy_from_slice(MAGIC);
    bytes[4..12].copy_from_slice(&index.map_or(0, |i| i + 1).to_le_bytes());
    let crc = crc32fast::hash(&bytes[..12]);
    bytes[12..].copy_from_slice(&crc.to_le_bytes());
    bytes
}

fn decode(bytes: &[u8]) -> Option<Option<u64>> {
    if bytes.len() != LEN || &bytes[..4] != MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(bytes[12..].try_into().ok()?);
    if crc != crc32fast::hash(&bytes[..12]) {
        return None;
    }
    let stored = u64::from_le_bytes(bytes[4..12].try_into().ok()?);
    Some(stored.checked_sub(1))
}

pub(crate) struct DurableMark {
    path: PathBuf,
    state: Mutex<MarkState>,
}

struct MarkState {
    /// The value last written.
    current: Option<u64>,
    /// Counts truncations. An append's fsync may complete after a truncation that came after
    /// it was queued; its raise then carries an older epoch and is ignored, or the mark would
    /// claim entries the truncation removed.
    epoch: u64,
    /// The mark file, opened on first write.
    file: Option<File>,
}

impl DurableMark {
    /// The mark kept in `path`, and the index it holds, if any.
    pub(crate) fn open(path: &Path) -> (Self, Option<u64>) {
        let path = path.to_path_buf();
        let found = match fs::read(&path) {
            Ok(bytes) => decode(&bytes).unwrap_or_else(|| {
                tracing::warn!(path = %path.display(), "the raft log's durable mark is unreadable; ignoring it");
                None
            }),
            Err(_) => None,
        };
        let mark = Self {
            path,
            state: Mutex::new(MarkState {
                current: found,
                epoch: 0,
                file: None,
            }),
        };
        (mark, found)
    }

    fn write(&self, state: &mut MarkState, index: Option<u64>, durable: bool) -> Result<(), io::Error> {
        let file = match &mut state.file {
            Some(file) => file,
            slot => {
                let file = fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .mode(0o600)
                    .open(&self.path)?;
                if durable && let Some(dir) = self.path.parent() {
                    File::open(dir)?.sync_all()?;
                }
                slot.insert(file)
            }
        };
        file.write_all_at(&encode(index), 0)?;
        if durable {
            file.sync_data()?;
        }
        state.current = index;
        Ok(())
    }

    /// The epoch to pass to [`DurableMark::raise`] for entries queued now.
    pub(crate) fn epoch(&self) -> u64 {
        lock(&self.state).epoch
    }

    /// Records that the log is on disk up to `index` (called after its fsync), unless a
    /// truncation came since the entries were queued (`epoch`).
    pub(crate) fn raise(&self, index: u64, epoch: u64) {
        let mut state = lock(&self.state);
        if state.epoch != epoch || state.current.is_some_and(|c| c >= index) {
            return;
        }
        if let Err(e) = self.write(&mut state, Some(index), false) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot update the raft log's durable mark");
        }
    }

    /// Lowers the mark to `index`, durably, before the log is truncated to it.
    pub(crate) fn lower(&self, index: Option<u64>) -> Result<(), io::Error> {
        let mut state = lock(&self.state);
        state.epoch += 1;
        if state.current.is_none_or(|c| index.is_some_and(|i| i >= c)) {
            return Ok(());
        }
        self.write(&mut state, index, true)
    }
}

/// Refuses a log that ends before its mark: records that were on disk are gone.
pub(crate) fn check(log_dir: &Path, last: Option<u64>, mark: Option<u64>) -> Result<(), io::Error> {
    match (mark, last) {
        (Some(mark), last) if last.is_none_or(|l| l < mark) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the raft log in {} ends at index {}, but it held entries up to index {mark} on disk before: records \
                 that were fsynced are missing (a damaged record at the end of its last chunk). Refusing to start, \
                 as this manager may have acknowledged them; see docs/operations.md",
                log_dir.display(),
                last.map(|l| l.to_string()).unwrap_or_else(|| "none".to_string()),
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An append queued before a truncation may finish its fsync after it: its raise must not
    /// put back the entries the truncation removed.
    #[test]
    fn a_raise_from_before_a_truncation_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let log_dir = dir.path().join("log");
        let path = dir.path().join("log.mark");
        let (mark, found) = DurableMark::open(&path);
        assert_eq!(found, None);
        mark.raise(4, mark.epoch());
        let queued_before = mark.epoch();
        mark.lower(Some(2)).unwrap();
        mark.raise(5, queued_before);
        assert_eq!(DurableMark::open(&path).1, Some(2));
        mark.raise(3, mark.epoch());
        assert_eq!(DurableMark::open(&path).1, Some(3));
        assert!(check(&log_dir, Some(2), Some(3)).is_err());
        assert!(check(&log_dir, Some(3), Some(3)).is_ok());
        assert!(check(&log_dir, None, None).is_ok());
    }

    #[test]
    fn a_damaged_mark_is_ignored_and_none_is_kept_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.mark");
        let (mark, _) = DurableMark::open(&path);
        mark.raise(9, mark.epoch());
        mark.lower(None).unwrap();
        assert_eq!(DurableMark::open(&path).1, None);
        mark.raise(9, mark.epoch());
        assert_eq!(DurableMark::open(&path).1, Some(9));
        let mut bytes = fs::read(&path).unwrap();
        bytes[5] ^= 1;
        fs::write(&path, bytes).unwrap();
        assert_eq!(DurableMark::open(&path).1, None, "a damaged mark checks nothing");
    }
}
