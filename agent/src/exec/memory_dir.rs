//! Keeps the node's task secret and config files in memory: a tmpfs over the task-files dir,
//! as dockerd keeps secrets, so their plaintext never reaches the disk. The mount outlives
//! swarmd (containers that outlive a restart keep their files); leaving the swarm removes it.

use std::path::Path;
use std::path::PathBuf;
use std::process::Command;

/// Filesystems whose files live only in memory.
const MEMORY_FILESYSTEMS: [&str; 2] = ["tmpfs", "ramfs"];

/// Where a dir's files are kept, and why, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backing {
    /// On `fs` (tmpfs or ramfs); `mounted_now` if this call mounted it.
    Memory { fs: String, mounted_now: bool },
    /// On disk, because a tmpfs could not be mounted there.
    Disk { why: String },
}

/// The mount point and filesystem type holding `path`, read from the text of
/// `/proc/self/mountinfo`: the deepest mount point that contains the (canonical) path.
pub fn filesystem_of(mountinfo: &str, path: &Path) -> Option<(PathBuf, String)> {
    let mut best: Option<(PathBuf, String)> = None;
    for line in mountinfo.lines() {
        let Some((mount, fs)) = parse_mountinfo_line(line) else {
            continue;
        };
        if !path.starts_with(&mount) {
            continue;
        }
        // Later lines are mounted later, so an equal mount point on a later line covers the earlier.
        let deeper = best
            .as_ref()
            .is_none_or(|(b, _)| mount.components().count() >= b.components().count());
        if deeper {
            best = Some((mount, fs));
        }
    }
    best
}

/// `36 35 98:0 /root /mnt/point rw,noatime master:1 - ext3 /dev/root rw`: the mount point
/// (fifth field, octal-escaped) and the filesystem type (first field after `-`).
fn parse_mountinfo_line(line: &str) -> Option<(PathBuf, String)> {
    let (before, after) = line.split_once(" - ")?;
    let mount = before.split(' ').nth(4)?;
    let fs = after.split(' ').next()?;
    Some((PathBuf::from(unescape_octal(mount)), fs.to_string()))
}

/// The kernel writes space, tab, newline and backslash in paths as `\040`, `\011`, `\012`, `\134`.
fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let code = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .map(|d| d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0')));
        match code.and_then(|c| u8::try_from(c).ok()) {
            Some(c) => {
                out.push(c);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Why the mounts of a task files dir could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum MemoryDirError {
    #[error("reading /proc/self/mountinfo: {0}")]
    MountInfo(std::io::Error),
    #[error("no mount in /proc/self/mountinfo holds {}", .0.display())]
    NoMount(PathBuf),
    #[error("cannot run umount: {0}")]
    Umount(std::io::Error),
    #[error("unmounting {} failed: {stderr}", dir.display())]
    UmountFailed { dir: PathBuf, stderr: String },
}

fn current_filesystem(dir: &Path) -> Result<(PathBuf, String), MemoryDirError> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").map_err(MemoryDirError::MountInfo)?;
    filesystem_of(&info, dir).ok_or_else(|| MemoryDirError::NoMount(dir.to_path_buf()))
}

/// Creates `dir` (mode 0700) and makes sure its files live in memory, mounting a tmpfs over it
/// when they would not. Needs root to mount; otherwise the files stay on disk and the answer
/// says why.
pub fn keep_in_memory(dir: &Path) -> Backing {
    use std::os::unix::fs::DirBuilderExt;
    if let Err(e) = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir) {
        return Backing::Disk {
            why: format!("cannot create {}: {e}", dir.display()),
        };
    }
    let dir = match std::fs::canonicalize(dir) {
        Ok(d) => d,
        Err(e) => {
            return Backing::Disk {
                why: format!("cannot resolve {}: {e}", dir.display()),
            };
        }
    };
    match current_filesystem(&dir) {
        Ok((_, fs)) if MEMORY_FILESYSTEMS.contains(&fs.as_str()) => {
            return Backing::Memory { fs, mounted_now: false };
        }
        Ok(_) => {}
        Err(e) => return Backing::Disk { why: e.to_string() },
    }
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "mode=0700,nosuid,nodev", "tmpfs"])
        .arg(&dir)
        .output();
    match mounted {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            return Backing::Disk {
                why: format!(
                    "mounting a tmpfs on {} failed: {}",
                    dir.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            };
        }
        Err(e) => {
            return Backing::Disk {
                why: format!("cannot run mount: {e}"),
            };
        }
    }
    match current_filesystem(&dir) {
        Ok((mount, fs)) if mount == dir && MEMORY_FILESYSTEMS.contains(&fs.as_str()) => {
            Backing::Memory { fs, mounted_now: true }
        }
        Ok((mount, fs)) => Backing::Disk {
            why: format!(
                "mount succeeded but {} is on {fs} mounted at {}",
                dir.display(),
                mount.display()
            ),
        },
        Err(e) => Backing::Disk { why: e.to_string() },
    }
}

/// Unmounts the tmpfs [`keep_in_memory`] put on `dir`, if there is one, so the dir can be
/// removed. Lazy: containers still holding files keep them until they go.
pub fn release(dir: &Path) -> Result<(), MemoryDirError> {
    let Ok(dir) = std::fs::canonicalize(dir) else {
        return Ok(()); // no dir, no mount
    };
    let (mount, fs) = current_filesystem(&dir)?;
    if mount != dir || !MEMORY_FILESYSTEMS.contains(&fs.as_str()) {
        return Ok(());
    }
    let out = Command::new("umount")
        .arg("-l")
        .arg(&dir)
        .output()
        .map_err(MemoryDirError::Umount)?;
    if !out.status.success() {
        return Err(MemoryDirError::UmountFailed {
            dir,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
23 22 0:21 / /proc rw,nosuid - proc proc rw
30 22 0:25 / /tmp rw,nosuid,nodev shared:5 - tmpfs tmpfs rw
31 22 8:2 / /var/lib rw - xfs /dev/sda2 rw
40 31 0:40 / /var/lib/swarm\\040data/task-files rw - tmpfs tmpfs rw,mode=700
41 31 8:3 / /var/lib/swarm rw - ext4 /dev/sda3 rw
";

    fn fs_of(path: &str) -> Option<(String, String)> {
        filesystem_of(MOUNTINFO, Path::new(path)).map(|(m, f)| (m.display().to_string(), f))
    }

    #[test]
    fn the_deepest_mount_point_holding_the_path_wins() {
        assert_eq!(fs_of("/home/x"), Some(("/".into(), "ext4".into())));
        assert_eq!(fs_of("/tmp/a/b"), Some(("/tmp".into(), "tmpfs".into())));
        assert_eq!(fs_of("/var/lib/docker"), Some(("/var/lib".into(), "xfs".into())));
        assert_eq!(
            fs_of("/var/lib/swarm/node"),
            Some(("/var/lib/swarm".into(), "ext4".into()))
        );
    }

    #[test]
    fn a_prefix_of_a_name_is_not_a_parent() {
        assert_eq!(fs_of("/tmpfoo"), Some(("/".into(), "ext4".into())));
    }

    #[test]
    fn escaped_spaces_in_mount_points_are_read_back() {
        assert_eq!(
            fs_of("/var/lib/swarm data/task-files/t1"),
            Some(("/var/lib/swarm data/task-files".into(), "tmpfs".into()))
        );
        assert_eq!(unescape_octal(r"a\040b\134c\09"), r"a b\c\09");
    }

    #[test]
    fn a_later_mount_on_the_same_point_covers_the_earlier() {
        let info = "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n2 1 8:1 / /d rw - ext4 /dev/sda1 rw\n3 1 0:9 / /d rw - tmpfs tmpfs rw\n";
        let got = filesystem_of(info, Path::new("/d/x")).map(|(_, f)| f);
        assert_eq!(got.as_deref(), Some("tmpfs"));
    }

    #[test]
    fn lines_that_are_not_mountinfo_are_skipped() {
        let info = "garbage\n\n1 0 8:1 / / rw - ext4 /dev/sda1 rw\nshort - \n";
        let got = filesystem_of(info, Path::new("/x")).map(|(_, f)| f);
        assert_eq!(got.as_deref(), Some("ext4"));
    }
}
