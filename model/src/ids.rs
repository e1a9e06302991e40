//! Object IDs and the base36 encoding SwarmKit uses for IDs and join tokens.

/// Encodes big-endian bytes in lower-case base36, left-padded with zeros to `width`.
pub fn base36(bytes: &[u8], width: usize) -> String {
    let mut digits = Vec::new();
    let mut num: Vec<u8> = bytes.to_vec();
    while num.iter().any(|b| *b != 0) {
        let mut rem: u32 = 0;
        for byte in num.iter_mut() {
            let acc = (rem << 8) | u32::from(*byte);
            *byte = (acc / 36) as u8;
            rem = acc % 36;
        }
        digits.push(std::char::from_digit(rem, 36).unwrap_or('0'));
    }
    while digits.len() < width {
        digits.push('0');
    }
    digits.iter().rev().collect()
}

/// Fills `buf` from the operating system's secure random source.
#[allow(
    clippy::expect_used,
    reason = "the system RNG only fails if the OS cannot provide randomness; then no ID, key or token can be made safely"
)]
pub fn random_bytes(buf: &mut [u8]) {
    use ring::rand::SecureRandom;
    ring::rand::SystemRandom::new()
        .fill(buf)
        .expect("operating system random source failed");
}

/// A new object ID: 128 random bits in base36, 25 characters, like SwarmKit's.
pub fn new_id() -> String {
    let mut buf = [0u8; 16];
    random_bytes(&mut buf);
    base36(&buf, 25)
}

/// A random non-zero 64-bit raft id for a new manager incarnation.
pub fn new_raft_id() -> u64 {
    loop {
        let mut buf = [0u8; 8];
        random_bytes(&mut buf);
        let id = u64::from_be_bytes(buf);
        if id != 0 {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base36_matches_known_values() {
        assert_eq!(base36(&[0], 3), "000");
        assert_eq!(base36(&[35], 1), "z");
        assert_eq!(base36(&[1, 0], 1), "74"); // 256 = 7*36 + 4
        assert_eq!(base36(&[0xff; 32], 50).len(), 50);
        assert_eq!(base36(&[0xff; 16], 25).len(), 25);
    }

    #[test]
    fn ids_are_25_lowercase_alphanumerics() {
        let id = new_id();
        assert_eq!(id.len(), 25);
        assert!(id.chars().all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()));
        assert_ne!(new_id(), id);
    }
}
