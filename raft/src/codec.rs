//! MessagePack encoding shared by the log, snapshots and RPC bodies.
//!
//! Structs are encoded as maps (field names included) so that a newer manager can still read
//! what an older one wrote when fields are added.

use std::io;

use raft_log::codeq;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Encodes `value` as MessagePack with named fields.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, io::Error> {
    rmp_serde::to_vec_named(value).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Decodes MessagePack written by [`encode`]; `what` names the thing in the error.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, io::Error> {
    rmp_serde::from_slice(bytes)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("cannot decode {what}: {e}")))
}

/// Wraps a serde type so raft-log can store it through `codeq`, keeping the wrapped type's
/// ordering (raft-log compares log ids and votes to refuse reversals).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Rmp<T>(pub T);

impl<T: Serialize> codeq::Encode for Rmp<T> {
    fn encode<W: io::Write>(&self, w: W) -> Result<usize, io::Error> {
        let bytes = encode(&self.0)?;
        bytes.encode(w)
    }
}

impl<T: DeserializeOwned> codeq::Decode for Rmp<T> {
    fn decode<R: io::Read>(r: R) -> Result<Self, io::Error> {
        let bytes: Vec<u8> = codeq::Decode::decode(r)?;
        decode(&bytes, "raft log record").map(Rmp)
    }
}

#[cfg(test)]
mod tests {
    use raft_log::codeq::Decode;
    use raft_log::codeq::Encode;

    use super::*;

    #[test]
    fn rmp_wrapper_round_trips_through_codeq() {
        let mut buf = Vec::new();
        let n = Rmp((3u64, "x".to_string())).encode(&mut buf).unwrap();
        assert_eq!(n, buf.len());
        let back: Rmp<(u64, String)> = Rmp::decode(&buf[..]).unwrap();
        assert_eq!(back.0, (3, "x".to_string()));
    }

    #[test]
    fn decode_error_names_the_thing() {
        let err = decode::<u64>(&[0xc1], "vote request").unwrap_err();
        assert!(err.to_string().contains("vote request"), "{err}");
    }
}
