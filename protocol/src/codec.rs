//! MessagePack bodies and the framing of streamed messages between nodes.
//!
//! Structs are encoded as maps (field names included), so a newer node still reads what an
//! older one sends when fields are added. A stream carries frames: a `u32` big-endian length,
//! then the MessagePack body.

use std::io;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Longest frame accepted: anything longer is a broken or hostile stream.
const MAX_FRAME: usize = 256 << 20;

/// Encodes `value` as MessagePack with named fields.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, io::Error> {
    rmp_serde::to_vec_named(value).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Decodes MessagePack written by [`encode`]; `what` names the thing in the error.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, io::Error> {
    rmp_serde::from_slice(bytes)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("cannot decode {what}: {e}")))
}

/// Frames one message of a stream.
pub fn frame_value<T: Serialize>(msg: &T) -> Result<Vec<u8>, io::Error> {
    let body = encode(msg)?;
    let len = u32::try_from(body.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "message too long for one frame"))?;
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    Ok(out)
}

/// Splits complete frames of `T` off the front of `buf`; an incomplete frame stays for the next
/// read.
pub fn unframe_values<T: DeserializeOwned>(buf: &mut Vec<u8>, what: &str) -> Result<Vec<T>, io::Error> {
    let mut out = Vec::new();
    loop {
        let Some(head) = buf.first_chunk::<4>() else {
            return Ok(out);
        };
        let len = u32::from_be_bytes(*head) as usize;
        if len > MAX_FRAME {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{what} frame is implausibly long"),
            ));
        }
        if buf.len() < 4 + len {
            return Ok(out);
        }
        let msg = decode(&buf[4..4 + len], what)?;
        buf.drain(..4 + len);
        out.push(msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_error_names_the_thing() {
        let err = decode::<u64>(&[0xc1], "vote request").unwrap_err();
        assert!(err.to_string().contains("vote request"), "{err}");
    }

    #[test]
    fn frames_split_and_join_across_reads() {
        let a = frame_value(&("managers", vec![1u8, 2, 3])).unwrap();
        let b = frame_value(&("assignments", vec![4u8])).unwrap();
        let mut all = [a, b].concat();
        let mut buf = all.drain(..5).collect::<Vec<_>>();
        let none: Vec<(String, Vec<u8>)> = unframe_values(&mut buf, "message").unwrap();
        assert!(none.is_empty(), "an incomplete frame waits");
        buf.extend(all);
        let msgs: Vec<(String, Vec<u8>)> = unframe_values(&mut buf, "message").unwrap();
        assert_eq!(
            msgs,
            [
                ("managers".to_string(), vec![1, 2, 3]),
                ("assignments".to_string(), vec![4])
            ]
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn an_implausible_frame_is_refused() {
        let mut buf = u32::MAX.to_be_bytes().to_vec();
        let err = unframe_values::<u64>(&mut buf, "log line").unwrap_err();
        assert!(err.to_string().contains("log line frame"), "{err}");
    }
}
