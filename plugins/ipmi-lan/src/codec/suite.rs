//! The two RMCP+ cipher suites this plugin speaks (IPMI 2.0 §22.15.2): their algorithm numbers,
//! the HMAC each uses for RAKP and session integrity, and AES-CBC-128 confidentiality.

use aes::Aes128;
use aes::cipher::{Block, BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use hmac::{Hmac, Mac};

/// A cipher suite: RAKP authentication, integrity and confidentiality algorithms as a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    /// RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128.
    Three,
    /// RAKP-HMAC-SHA256, HMAC-SHA256-128, AES-CBC-128.
    Seventeen,
}

/// Confidentiality algorithm number of AES-CBC-128, shared by both suites.
pub const CONF_AES_CBC_128: u8 = 0x01;

impl Suite {
    pub fn from_id(id: u8) -> Option<Suite> {
        match id {
            3 => Some(Suite::Three),
            17 => Some(Suite::Seventeen),
            _ => None,
        }
    }

    pub fn id(self) -> u8 {
        match self {
            Suite::Three => 3,
            Suite::Seventeen => 17,
        }
    }

    /// From the algorithm triple a BMC lists in Get Channel Cipher Suites.
    pub fn from_algorithms(auth: u8, integrity: u8, conf: u8) -> Option<Suite> {
        [Suite::Three, Suite::Seventeen]
            .into_iter()
            .find(|s| s.auth_algorithm() == auth && s.integrity_algorithm() == integrity && conf == CONF_AES_CBC_128)
    }

    /// RAKP-HMAC-SHA1 is 0x01, RAKP-HMAC-SHA256 0x03.
    pub fn auth_algorithm(self) -> u8 {
        match self {
            Suite::Three => 0x01,
            Suite::Seventeen => 0x03,
        }
    }

    /// HMAC-SHA1-96 is 0x01, HMAC-SHA256-128 0x04.
    pub fn integrity_algorithm(self) -> u8 {
        match self {
            Suite::Three => 0x01,
            Suite::Seventeen => 0x04,
        }
    }

    /// The full HMAC of the suite's hash: RAKP codes and SIK/K1/K2 derivation.
    pub fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        match self {
            Suite::Three => mac::<Hmac<sha1::Sha1>>(key, parts),
            Suite::Seventeen => mac::<Hmac<sha2::Sha256>>(key, parts),
        }
    }

    /// Length of the truncated codes: RAKP 4's integrity check value and each packet's AuthCode
    /// (96 bits for SHA1, 128 for SHA256).
    pub fn icv_len(self) -> usize {
        match self {
            Suite::Three => 12,
            Suite::Seventeen => 16,
        }
    }

    /// The session packet AuthCode: the suite's HMAC keyed with K1, truncated.
    pub fn auth_code(self, k1: &[u8], data: &[u8]) -> Vec<u8> {
        let mut code = self.hmac(k1, &[data]);
        code.truncate(self.icv_len());
        code
    }
}

fn mac<M: Mac + hmac::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // HMAC takes keys of any length, so this cannot fail; an empty MAC would only fail a check.
    let Ok(mut m) = <M as hmac::KeyInit>::new_from_slice(key) else { return Vec::new() };
    for part in parts {
        m.update(part);
    }
    m.finalize().into_bytes().to_vec()
}

/// AES-CBC-128 over whole blocks (the caller pads, IPMI's pad is not PKCS#7: §13.29.2).
pub fn aes_cbc_encrypt(key: &[u8; 16], iv: &[u8; 16], data: &mut [u8]) {
    let cipher = Aes128::new(key.into());
    let mut prev = *iv;
    for chunk in data.chunks_exact_mut(16) {
        for (b, p) in chunk.iter_mut().zip(prev) {
            *b ^= p;
        }
        // `chunks_exact_mut(16)` yields 16-byte blocks only.
        if let Ok(block) = <&mut Block<Aes128>>::try_from(&mut *chunk) {
            cipher.encrypt_block(block);
        }
        prev.copy_from_slice(chunk);
    }
}

/// The inverse of [`aes_cbc_encrypt`]; `data` must be whole blocks.
pub fn aes_cbc_decrypt(key: &[u8; 16], iv: &[u8; 16], data: &mut [u8]) {
    let cipher = Aes128::new(key.into());
    let mut prev = *iv;
    for chunk in data.chunks_exact_mut(16) {
        let mut this = [0u8; 16];
        this.copy_from_slice(chunk);
        if let Ok(block) = <&mut Block<Aes128>>::try_from(&mut *chunk) {
            cipher.decrypt_block(block);
        }
        for (b, p) in chunk.iter_mut().zip(prev) {
            *b ^= p;
        }
        prev = this;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
    }

    #[test]
    fn hmacs_match_rfc_vectors() {
        // RFC 2202 case 2 and RFC 4231 case 2 ("Jefe").
        assert_eq!(Suite::Three.hmac(b"Jefe", &[b"what do ya want ", b"for nothing?"]), hex("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"));
        assert_eq!(
            Suite::Seventeen.hmac(b"Jefe", &[b"what do ya want for nothing?"]),
            hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
        assert_eq!(Suite::Seventeen.auth_code(b"Jefe", b"what do ya want for nothing?").len(), 16);
    }

    #[test]
    fn aes_cbc_matches_nist_sp800_38a() {
        // F.2.1 CBC-AES128.Encrypt, first two blocks.
        let key: [u8; 16] = hex("2b7e151628aed2a6abf7158809cf4f3c").try_into().expect("key");
        let iv: [u8; 16] = hex("000102030405060708090a0b0c0d0e0f").try_into().expect("iv");
        let plain = hex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51");
        let mut data = plain.clone();
        aes_cbc_encrypt(&key, &iv, &mut data);
        assert_eq!(data, hex("7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2"));
        aes_cbc_decrypt(&key, &iv, &mut data);
        assert_eq!(data, plain);
    }

    #[test]
    fn suites_from_their_algorithms() {
        assert_eq!(Suite::from_algorithms(0x01, 0x01, 0x01), Some(Suite::Three));
        assert_eq!(Suite::from_algorithms(0x03, 0x04, 0x01), Some(Suite::Seventeen));
        assert_eq!(Suite::from_algorithms(0x03, 0x04, 0x00), None);
    }
}
