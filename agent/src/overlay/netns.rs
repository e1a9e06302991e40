//! Work inside another network namespace: a node's, in tests, or a container's.

use std::future::Future;
use std::path::Path;
use std::path::PathBuf;

use rtnetlink::Handle;

use super::OverlayError;

/// Runs `f` on a new OS thread that has entered the network namespace at `path` (a
/// `/proc/PID/ns/net` or `/run/netns/NAME` file). Sockets it opens stay in that namespace.
pub fn spawn_in_netns<T, F>(path: &Path, f: F) -> std::thread::JoinHandle<Result<T, OverlayError>>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, OverlayError> + Send + 'static,
{
    let path: PathBuf = path.to_path_buf();
    std::thread::spawn(move || {
        let entering = |source| OverlayError::Namespace {
            path: path.display().to_string(),
            source,
        };
        let ns = std::fs::File::open(&path).map_err(entering)?;
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| entering(std::io::Error::from(e)))?;
        f()
    })
}

/// Runs `f` on a new OS thread inside the network namespace at `path`, and waits for it
/// without blocking the caller's runtime: for opening a socket there.
pub async fn call_in_netns<T, F>(path: &Path, f: F) -> std::io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> std::io::Result<T> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let path = path.to_path_buf();
    std::thread::Builder::new()
        .name("in-netns".to_string())
        .spawn(move || {
            let result = std::fs::File::open(&path).and_then(|ns| {
                nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
                f()
            });
            let _ = tx.send(result);
        })?;
    rx.await
        .map_err(|_| std::io::Error::other("the thread working in another namespace ended without an answer"))?
}

/// Runs `f` with a netlink handle opened inside the network namespace at `path`, on a thread
/// of its own, and waits for it without blocking the caller's runtime.
pub async fn in_netns<T, F, Fut>(path: &Path, f: F) -> Result<T, OverlayError>
where
    T: Send + 'static,
    F: FnOnce(Handle) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, OverlayError>>,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let shown = path.display().to_string();
    let _thread = spawn_in_netns(path, move || {
        let result = (|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|source| OverlayError::Namespace {
                    path: "a runtime for it".to_string(),
                    source,
                })?;
            runtime.block_on(async move {
                let handle = connect()?;
                f(handle).await
            })
        })();
        let _ = tx.send(result);
        Ok(())
    });
    rx.await
        .map_err(|_| OverlayError::Missing(format!("the thread working in {shown} ended without an answer")))?
}

/// A netlink handle in the calling thread's namespace; its connection runs on the current
/// runtime.
pub fn connect() -> Result<Handle, OverlayError> {
    let (connection, handle, _) = rtnetlink::new_connection().map_err(|source| OverlayError::Namespace {
        path: "netlink (the current namespace)".to_string(),
        source,
    })?;
    tokio::spawn(connection);
    Ok(handle)
}
