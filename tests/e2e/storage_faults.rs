use std::fs;
use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::support::Cluster;
use crate::support::service_names;
use crate::support::service_spec;

fn wal_files(data_dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(data_dir.join("raft/log"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().map(|e| e == "wal").unwrap_or(false))
        .collect();
    v.sort();
    v
}

/// Starts `swarmd run` on node `i` and expects it to refuse to start with `expect` in its log.
fn expect_refusal(c: &mut Cluster, i: usize, expect: &str) {
    let log_before = c.nodes[i].log_text().len();
    c.start_run(i);
    let status = c
        .wait_exit(i, Duration::from_secs(30))
        .expect("swarmd refuses to start");
    assert!(!status.success());
    let log = c.nodes[i].log_text()[log_before..].to_string();
    assert!(log.contains(expect), "expected {expect:?} in:\n{log}");
}

/// A torn tail is cut off and the node comes back with every committed write; a corrupt
/// record, a log of another cluster and missing files stop the node with an error that names
/// the problem, instead of starting with lost or mixed state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_storage_is_recovered_or_refused_clearly() {
    let mut c = Cluster::new();
    let a = c.init("a", &[]);
    for i in 0..5 {
        let _: Value = c.nodes[a]
            .client()
            .post("/services/create", &service_spec(&format!("s{i}")))
            .await
            .unwrap();
    }
    assert!(c.stop(a).unwrap().success());
    let dir = c.nodes[a].data_dir.clone();
    let wal = wal_files(&dir).pop().expect("a WAL file");
    let before_last_write = fs::metadata(&wal).unwrap().len();

    // Phase: a torn tail is cut off on start, and every earlier committed write is there. The
    // tear lands in the middle of the records written for "last": as if the machine died while
    // writing them, before their fsync, so "last" was never acknowledged and may be gone.
    // The log's durable mark (raft/log.mark) is put back as it was before that write; with
    // the mark of the fsynced write, the same damage is refused (records on disk are missing).
    let mark = dir.join("raft/log.mark");
    let mark_before_last_write = fs::read(&mark).unwrap();
    c.restart(a);
    let _: Value = c.nodes[a]
        .client()
        .post("/services/create", &service_spec("last"))
        .await
        .unwrap();
    assert!(c.stop(a).unwrap().success());
    let after_last_write = fs::metadata(&wal).unwrap().len();
    assert!(after_last_write > before_last_write);
    let torn = before_last_write + (after_last_write - before_last_write) / 2;
    fs::OpenOptions::new()
        .write(true)
        .open(&wal)
        .unwrap()
        .set_len(torn)
        .unwrap();
    expect_refusal(&mut c, a, "records that were fsynced are missing");
    fs::write(&mark, &mark_before_last_write).unwrap();
    c.restart(a);
    let names = service_names(&c, a).await.unwrap();
    for i in 0..5 {
        assert!(names.contains(&format!("s{i}")), "s{i} survives a torn tail: {names:?}");
    }
    let _: Value = c.nodes[a]
        .client()
        .post("/services/create", &service_spec("after-tear"))
        .await
        .unwrap();
    assert!(c.stop(a).unwrap().success());
    let wal = wal_files(&dir).pop().unwrap();
    let pristine = fs::read(&wal).unwrap();
    let expected = names.len() + 1;

    // Phase: a flipped byte inside a committed record is refused, naming the raft log.
    let wal = wal_files(&dir).pop().unwrap();
    let mut bytes = fs::read(&wal).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&wal, &bytes).unwrap();
    expect_refusal(&mut c, a, "raft log");
    fs::write(&wal, &pristine).unwrap();
    let saved: Vec<(PathBuf, Vec<u8>)> = wal_files(&dir)
        .into_iter()
        .map(|p| {
            let b = fs::read(&p).unwrap();
            (p, b)
        })
        .collect();

    // Phase: a raft log of another cluster is refused.
    let b = c.init("b", &[]);
    assert!(c.stop(b).unwrap().success());
    let own_log = dir.join("raft/log");
    let moved = dir.join("raft/log.own");
    fs::rename(&own_log, &moved).unwrap();
    copy_dir(&c.nodes[b].data_dir.join("raft/log"), &own_log);
    expect_refusal(&mut c, a, "belongs to cluster");
    fs::remove_dir_all(&own_log).unwrap();
    fs::rename(&moved, &own_log).unwrap();

    // Phase: missing files are named.
    let cert = dir.join("certs/node.pem");
    let cert_bytes = fs::read(&cert).unwrap();
    fs::remove_file(&cert).unwrap();
    expect_refusal(&mut c, a, "node.pem");
    fs::write(&cert, &cert_bytes).unwrap();
    fs::rename(&own_log, &moved).unwrap();
    expect_refusal(&mut c, a, "raft log");
    // Log files lost but the directory's LOCK left: refused, not started over empty (the
    // manager would forget its votes and could vote twice in a term).
    assert!(!own_log.exists(), "a refused start creates no log");
    fs::create_dir(&own_log).unwrap();
    fs::copy(moved.join("LOCK"), own_log.join("LOCK")).unwrap();
    expect_refusal(&mut c, a, "its files are lost");
    fs::remove_dir_all(&own_log).unwrap();
    fs::rename(&moved, &own_log).unwrap();

    // Phase: after all that, the untouched data still starts fine.
    for (p, b) in saved {
        fs::write(p, b).unwrap();
    }
    c.restart(a);
    assert_eq!(service_names(&c, a).await.unwrap().len(), expected);
}

/// A log purged past a missing snapshot is refused: starting would lose committed state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_snapshot_behind_a_purged_log_is_refused() {
    let mut c = Cluster::new();
    let a = c.init(
        "a",
        &["--snapshot-interval", "10", "--log-entries-for-slow-followers", "2"],
    );
    for i in 0..30 {
        let _: Value = c.nodes[a]
            .client()
            .post("/services/create", &service_spec(&format!("s{i}")))
            .await
            .unwrap();
    }
    crate::support::eventually("log purged behind a snapshot", Duration::from_secs(30), || {
        let c = &c;
        async move {
            let r = c.raft(a).await?;
            (r["purged"].as_u64()? > 0).then_some(())
        }
    })
    .await;
    assert!(c.stop(a).unwrap().success());
    let snaps = c.nodes[a].data_dir.join("raft/snapshots");
    let hidden = c.nodes[a].data_dir.join("snapshots.away");
    fs::rename(&snaps, &hidden).unwrap();
    fs::create_dir(&snaps).unwrap();
    expect_refusal(&mut c, a, "purged up to index");
    fs::remove_dir(&snaps).unwrap();
    fs::rename(&hidden, &snaps).unwrap();
    c.restart(a);
    assert_eq!(service_names(&c, a).await.unwrap().len(), 30);
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap().flatten() {
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Found by the fault suite: a manager whose disk filled up had its raft stop for good while the
/// process went on serving, so once another manager went down the cluster had no quorum, even
/// with the space back. Now the manager starts again in place once it can write, catches up, and
/// counts toward the quorum again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_manager_whose_disk_filled_up_comes_back_once_space_is_freed() {
    let mut c = Cluster::new();
    let small = c.root.path().join("m2");
    fs::create_dir_all(&small).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=32m,mode=0700", "tmpfs"])
        .arg(&small)
        .output()
        .unwrap();
    if !mounted.status.success() {
        eprintln!(
            "skipping: cannot mount a tmpfs: {}",
            String::from_utf8_lossy(&mounted.stderr)
        );
        return;
    }
    c.mounts.push(small.clone());
    let m1 = c.init("m1", &[]);
    let token = c.token(m1, "manager");
    let m2 = c.join("m2", &token, m1);
    let m3 = c.join("m3", &token, m1);
    c.wait_leader(Duration::from_secs(30)).await;

    // Phase: fill m2's disk; writes go on through m1 and m3 until m2's raft hits the full disk.
    let fill = small.join("fill");
    let _ = std::process::Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", fill.display()))
        .args(["bs=1M", "status=none"])
        .output();
    let client = c.nodes[m1].client();
    let mut written = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !c.nodes[m2].log_text().contains("raft stopped on a fault") {
        assert!(
            std::time::Instant::now() < deadline,
            "m2's raft never met the full disk"
        );
        written += 1;
        let _: Result<Value, _> = client
            .post("/services/create", &service_spec(&format!("full-{written}")))
            .await;
    }

    // Phase: free the space; m2 starts again in place (same process) and catches up.
    let pid = c.nodes[m2].pid();
    fs::remove_file(&fill).unwrap();
    crate::support::eventually("m2 started again", Duration::from_secs(90), || {
        let log = c.nodes[m2].log_text();
        async move { log.contains("manager started again after the raft fault").then_some(()) }
    })
    .await;
    assert_eq!(c.nodes[m2].pid(), pid, "the same process carries on");
    assert!(c.nodes[m2].is_running());

    // Phase: with m3 gone, m1 and m2 are the quorum: writes commit and m2 reads them.
    c.kill(m3);
    crate::support::eventually("a write with m1 and m2 as the quorum", Duration::from_secs(60), || {
        let client = client.clone();
        async move {
            match client
                .post::<Value>("/services/create", &service_spec("after-the-disk"))
                .await
            {
                Ok(_) => Some(()),
                // An earlier attempt that timed out may have committed it.
                Err(e) if e.status().map(|s| s.as_u16()) == Some(409) => Some(()),
                Err(_) => None,
            }
        }
    })
    .await;
    let names = service_names(&c, m2).await.expect("m2 reads");
    assert!(names.contains("after-the-disk"), "{names:?}");
    assert!(names.contains("full-1"), "{names:?}");

    // Phase (fault suite, seed 741362855): m2 is killed while its disk is full and started
    // again at once. It waits for space instead of exiting, and comes back once it is freed.
    c.restart(m3);
    c.wait_leader(Duration::from_secs(30)).await;
    let faults_before = c.nodes[m2].log_text().matches("raft stopped on a fault").count();
    c.kill(m2);
    // A write torn by the kill: the log must cut its tail off before it can open.
    let log_dir = small.join("raft").join("log");
    let newest_chunk = fs::read_dir(&log_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n != "LOCK"))
        .max()
        .expect("a chunk file");
    {
        use std::io::Write;
        let mut f = fs::OpenOptions::new().append(true).open(&newest_chunk).unwrap();
        f.write_all(&[0u8; 64]).unwrap();
    }
    let _ = std::process::Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", fill.display()))
        .args(["bs=4k", "status=none"])
        .output();
    c.start_run(m2);
    // Depending on where the disk filled, opening the log fails (a torn tail to cut off) or
    // raft starts and stops at its first write: either way the process must wait.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let log = c.nodes[m2].log_text();
        if log.contains("starting the manager failed for want of disk space")
            || log.matches("raft stopped on a fault").count() > faults_before
        {
            break;
        }
        assert!(c.nodes[m2].is_running(), "m2 exited on the full disk:\n{log}");
        assert!(std::time::Instant::now() < deadline, "m2 never met the full disk");
        written += 1;
        let _: Result<Value, _> = client
            .post("/services/create", &service_spec(&format!("full-{written}")))
            .await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(c.nodes[m2].is_running(), "m2 exited on the full disk");
    fs::remove_file(&fill).unwrap();
    crate::support::eventually("m2 reads after the space is back", Duration::from_secs(90), || {
        let c = &c;
        async move { service_names(c, m2).await.filter(|n| n.contains("after-the-disk")) }
    })
    .await;
    assert!(c.nodes[m2].is_running());
}
