//! The Engine API's contract between `swarmd` and its clients (`swarmctl`, the docker CLI):
//! the versions spoken and where a daemon listens unless told otherwise.

/// The API version a manager speaks; docker CLI 28 then uses it for every request.
pub const API_VERSION: &str = "1.47";
/// The oldest API version accepted.
pub const MIN_API_VERSION: &str = "1.24";
/// Where `swarmd` keeps its state unless told otherwise.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/swarmd";
/// The control socket's name inside the data dir.
pub const SOCKET_NAME: &str = "swarmd.sock";

/// The control socket of a daemon with the default data dir, as a `-H` value.
pub fn default_host() -> String {
    format!("unix://{DEFAULT_DATA_DIR}/{SOCKET_NAME}")
}
