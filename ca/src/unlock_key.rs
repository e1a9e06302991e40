//! Swarm's unlock key (`SWMKEY-1-…`): with autolock on, it encrypts each manager's raft data
//! key on disk, so a stolen disk or a restarted manager reveals nothing without it.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use ring::aead;
use ring::hkdf;
use swarm_model::random_bytes;

const PREFIX: &str = "SWMKEY-1-";
const KEY_LEN: usize = 32;
/// Keeps keys derived from the unlock key apart from any other use of it.
const KEY_INFO: &[u8] = b"swarm-rs data key wrapping v1";

/// Why an unlock key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnlockKeyError {
    #[error("an unlock key starts with {PREFIX}")]
    Prefix,
    #[error("the unlock key is not valid base64 after {PREFIX}")]
    Encoding,
    #[error("an unlock key holds {KEY_LEN} bytes, this one {0}")]
    Length(usize),
    /// The key is well formed but does not open what was sealed with the current key.
    #[error("swarm could not be unlocked: invalid key provided")]
    Wrong,
    #[error("cannot seal with the unlock key")]
    Seal,
}

/// Swarm's key-encrypting key, replicated in the cluster object and shown to the operator.
#[derive(Clone, PartialEq, Eq)]
pub struct UnlockKey([u8; KEY_LEN]);

impl UnlockKey {
    pub fn generate() -> Self {
        let mut key = [0u8; KEY_LEN];
        random_bytes(&mut key);
        Self(key)
    }

    /// A key made from other 32 secret bytes, to seal with as an unlock key seals: a
    /// manager's node key is sealed with one made from its raft data key.
    pub fn from_secret(bytes: &[u8]) -> Result<Self, UnlockKeyError> {
        let key: [u8; KEY_LEN] = bytes.try_into().map_err(|_| UnlockKeyError::Length(bytes.len()))?;
        Ok(Self(key))
    }

    /// Parses `SWMKEY-1-<base64>`, as `docker swarm unlock-key` prints it.
    pub fn parse(text: &str) -> Result<Self, UnlockKeyError> {
        let encoded = text.trim().strip_prefix(PREFIX).ok_or(UnlockKeyError::Prefix)?;
        let bytes = STANDARD_NO_PAD
            .decode(encoded.trim_end_matches('='))
            .map_err(|_| UnlockKeyError::Encoding)?;
        let key: [u8; KEY_LEN] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| UnlockKeyError::Length(bytes.len()))?;
        Ok(Self(key))
    }

    fn aead_key(&self, salt: &[u8]) -> Result<aead::LessSafeKey, UnlockKeyError> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(&self.0);
        let okm = prk
            .expand(&[KEY_INFO], &aead::AES_256_GCM)
            .map_err(|_| UnlockKeyError::Seal)?;
        Ok(aead::LessSafeKey::new(aead::UnboundKey::from(okm)))
    }

    /// Seals `secret` (a data key): random salt (16 bytes) ‖ ciphertext with tag. Every seal
    /// derives a key of its own from a fresh salt, so the fixed nonce is never reused.
    pub fn seal(&self, secret: &[u8]) -> Result<Vec<u8>, UnlockKeyError> {
        let mut salt = [0u8; 16];
        random_bytes(&mut salt);
        let mut data = secret.to_vec();
        self.aead_key(&salt)?
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key([0; aead::NONCE_LEN]),
                aead::Aad::empty(),
                &mut data,
            )
            .map_err(|_| UnlockKeyError::Seal)?;
        let mut out = salt.to_vec();
        out.extend(data);
        Ok(out)
    }

    /// Opens what [`UnlockKey::seal`] sealed; [`UnlockKeyError::Wrong`] for any other key.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, UnlockKeyError> {
        if sealed.len() < 16 {
            return Err(UnlockKeyError::Wrong);
        }
        let (salt, data) = sealed.split_at(16);
        let mut data = data.to_vec();
        let plain = self
            .aead_key(salt)?
            .open_in_place(
                aead::Nonce::assume_unique_for_key([0; aead::NONCE_LEN]),
                aead::Aad::empty(),
                &mut data,
            )
            .map_err(|_| UnlockKeyError::Wrong)?;
        Ok(plain.to_vec())
    }
}

impl fmt::Display for UnlockKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}", STANDARD_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for UnlockKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UnlockKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_printed_key_parses_back_and_opens_what_it_sealed() {
        let key = UnlockKey::generate();
        let text = key.to_string();
        assert!(text.starts_with("SWMKEY-1-"), "{text}");
        let back = UnlockKey::parse(&format!("  {text}\n")).unwrap();
        assert_eq!(back, key);
        let sealed = key.seal(b"data key bytes").unwrap();
        assert_eq!(back.open(&sealed).unwrap(), b"data key bytes");
        assert_ne!(key.seal(b"data key bytes").unwrap(), sealed, "a fresh salt every time");
        assert_eq!(UnlockKey::generate().open(&sealed), Err(UnlockKeyError::Wrong));
    }

    #[test]
    fn malformed_keys_are_refused_saying_why() {
        assert_eq!(UnlockKey::parse("SWMTKN-1-abc"), Err(UnlockKeyError::Prefix));
        assert_eq!(UnlockKey::parse("SWMKEY-1-!!!"), Err(UnlockKeyError::Encoding));
        assert_eq!(UnlockKey::parse("SWMKEY-1-AAAA"), Err(UnlockKeyError::Length(3)));
    }
}
