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
use std::io;
use std::io::Write;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Mutex;

use swarm_sync::lock;

pub(crate) struct DurableMark {
    path: PathBuf,
    /// The value last written.
    current: Mutex<Option<u64>>,
}

impl DurableMark {
    /// The mark of the log in `log_dir`, and the index it holds, if any.
    pub(crate) fn open(log_dir: &Path) -> (Self, Option<u64>) {
        let name = log_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let path = log_dir.with_file_name(format!("{name}.mark"));
        let found = match fs::read_to_string(&path) {
            Ok(text) => match text.trim().parse::<u64>() {
                Ok(index) => Some(index),
                Err(_) => {
                    tracing::warn!(path = %path.display(), "the raft log's durable mark is unreadable; ignoring it");
                    None
                }
            },
            Err(_) => None,
        };
        let mark = Self {
            path,
            current: Mutex::new(found),
        };
        (mark, found)
    }

    fn write(&self, index: u64, durable: bool) -> Result<(), io::Error> {
        let tmp = self.path.with_extension("mark.tmp");
        {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(index.to_string().as_bytes())?;
            if durable {
                f.sync_all()?;
            }
        }
        fs::rename(&tmp, &self.path)?;
        if durable && let Some(dir) = self.path.parent() {
            fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    /// Records that the log is on disk up to `index` (called after its fsync).
    pub(crate) fn raise(&self, index: u64) {
        let mut current = lock(&self.current);
        if current.is_some_and(|c| c >= index) {
            return;
        }
        match self.write(index, false) {
            Ok(()) => *current = Some(index),
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot update the raft log's durable mark")
            }
        }
    }

    /// Lowers the mark to `index`, durably, before the log is truncated to it.
    pub(crate) fn lower(&self, index: Option<u64>) -> Result<(), io::Error> {
        let mut current = lock(&self.current);
        if current.is_none_or(|c| index.is_some_and(|i| i >= c)) {
            return Ok(());
        }
        match index {
            Some(i) => self.write(i, true)?,
            None => {
                fs::remove_file(&self.path)?;
                if let Some(dir) = self.path.parent() {
                    fs::File::open(dir)?.sync_all()?;
                }
            }
        }
        *current = index;
        Ok(())
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
