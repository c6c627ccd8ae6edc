//! RMCP+ session establishment (IPMI 2.0 §13.17-13.32): Open Session, RAKP messages 1-4, and the
//! keys they derive (SIK, K1, K2). Pure: the caller supplies random numbers and sends the bytes.

use super::CodecError;
use super::rmcp::SessionKeys;
use super::suite::{CONF_AES_CBC_128, Suite};

/// Administrator: chassis control needs Operator, boot options need Administrator... on some
/// BMCs; asking for Administrator matches what ipmitool asks for by default.
pub const PRIV_ADMIN: u8 = 0x04;
/// RAKP 1 "name-only lookup" bit (§13.20): find the user by name alone, as ipmitool does.
const NAME_ONLY_LOOKUP: u8 = 0x10;

/// The remote console's half of a handshake: everything RAKP codes are computed over.
#[derive(Clone)]
pub struct Handshake {
    pub suite: Suite,
    pub console_session_id: u32,
    pub bmc_session_id: u32,
    pub console_random: [u8; 16],
    pub bmc_random: [u8; 16],
    pub bmc_guid: [u8; 16],
    pub username: Vec<u8>,
    /// The password padded with zeros to 20 bytes (Kuid, §13.31).
    pub key: Vec<u8>,
}

/// The RMCP+ status codes a BMC returns in Open Session and RAKP messages (§13.24), by name.
pub fn status_text(code: u8) -> &'static str {
    match code {
        0x01 => "insufficient resources to create a session",
        0x02 => "invalid session id",
        0x03 => "invalid payload type",
        0x04 => "invalid authentication algorithm",
        0x05 => "invalid integrity algorithm",
        0x06 => "no matching authentication payload",
        0x07 => "no matching integrity payload",
        0x08 => "inactive session id",
        0x09 => "invalid role",
        0x0a => "unauthorized role or privilege level requested",
        0x0b => "insufficient resources to create a session at the requested role",
        0x0c => "invalid name length",
        0x0d => "unauthorized name",
        0x0e => "unauthorized GUID",
        0x0f => "invalid integrity check value",
        0x10 => "invalid confidentiality algorithm",
        0x11 => "no cipher suite match with proposed security algorithms",
        0x12 => "illegal or unrecognized parameter",
        _ => "unknown status",
    }
}

/// Open Session Request: tag, maximum privilege, our session id, then one algorithm record each
/// for authentication, integrity and confidentiality.
pub fn open_session_request(tag: u8, console_session_id: u32, suite: Suite) -> Vec<u8> {
    let mut out = vec![tag, PRIV_ADMIN, 0, 0];
    out.extend(console_session_id.to_le_bytes());
    for (kind, algorithm) in [(0u8, suite.auth_algorithm()), (1, suite.integrity_algorithm()), (2, CONF_AES_CBC_128)] {
        out.extend([kind, 0, 0, 8, algorithm, 0, 0, 0]);
    }
    out
}

/// What the BMC said to Open Session: its session id, or the status code it refused with.
pub fn parse_open_session_response(payload: &[u8], tag: u8, console_session_id: u32) -> Result<Result<u32, u8>, CodecError> {
    let head = payload.get(..2).ok_or_else(|| CodecError::new("empty Open Session Response"))?;
    if head[0] != tag {
        return Err(CodecError::new("Open Session Response for another request"));
    }
    if head[1] != 0 {
        return Ok(Err(head[1]));
    }
    let body = payload.get(..36).ok_or_else(|| CodecError::new(format!("Open Session Response of {} bytes, expected 36", payload.len())))?;
    if le32(&body[4..8]) != console_session_id {
        return Err(CodecError::new("Open Session Response names another console session"));
    }
    Ok(Ok(le32(&body[8..12])))
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// The role byte of RAKP 1, and part of every code: requested privilege with name-only lookup.
fn role() -> u8 {
    PRIV_ADMIN | NAME_ONLY_LOOKUP
}

impl Handshake {
    /// Kuid: the password as a 20-byte key (longer passwords are not valid IPMI 2.0 passwords;
    /// they are cut, which the BMC then refuses as an integrity failure).
    pub fn key_from_password(password: &str) -> Vec<u8> {
        let mut key = password.as_bytes().to_vec();
        key.resize(20, 0);
        key
    }

    /// RAKP Message 1: the BMC's session id, our random number, role and user name.
    pub fn rakp1(&self, tag: u8) -> Vec<u8> {
        let mut out = vec![tag, 0, 0, 0];
        out.extend(self.bmc_session_id.to_le_bytes());
        out.extend(self.console_random);
        out.extend([role(), 0, 0, self.username.len() as u8]);
        out.extend(&self.username);
        out
    }

    /// Reads RAKP Message 2 into the handshake (BMC random, GUID) and checks its key exchange
    /// code: a mismatch means the password is wrong. `Err(status)` is the BMC's refusal.
    pub fn accept_rakp2(&mut self, payload: &[u8], tag: u8) -> Result<Result<(), u8>, CodecError> {
        let head = payload.get(..2).ok_or_else(|| CodecError::new("empty RAKP 2"))?;
        if head[0] != tag {
            return Err(CodecError::new("RAKP 2 for another request"));
        }
        if head[1] != 0 {
            return Ok(Err(head[1]));
        }
        let code_len = self.suite.hmac(&[], &[]).len();
        let body = payload.get(..40 + code_len).ok_or_else(|| CodecError::new(format!("RAKP 2 of {} bytes is too short", payload.len())))?;
        if le32(&body[4..8]) != self.console_session_id {
            return Err(CodecError::new("RAKP 2 names another console session"));
        }
        self.bmc_random.copy_from_slice(&body[8..24]);
        self.bmc_guid.copy_from_slice(&body[24..40]);
        let expected = self.suite.hmac(
            &self.key,
            &[
                &self.console_session_id.to_le_bytes(),
                &self.bmc_session_id.to_le_bytes(),
                &self.console_random,
                &self.bmc_random,
                &self.bmc_guid,
                &[role(), self.username.len() as u8],
                &self.username,
            ],
        );
        if expected != body[40..] {
            return Err(CodecError::integrity("RAKP 2 key exchange code does not match: wrong password"));
        }
        Ok(Ok(()))
    }

    /// RAKP Message 3: proves we know the password.
    pub fn rakp3(&self, tag: u8) -> Vec<u8> {
        let mut out = vec![tag, 0, 0, 0];
        out.extend(self.bmc_session_id.to_le_bytes());
        out.extend(
            self.suite
                .hmac(&self.key, &[&self.bmc_random, &self.console_session_id.to_le_bytes(), &[role(), self.username.len() as u8], &self.username]),
        );
        out
    }

    /// The session integrity key: HMAC(Kg = Kuid, Rm | Rc | role | name).
    fn sik(&self) -> Vec<u8> {
        self.suite.hmac(&self.key, &[&self.console_random, &self.bmc_random, &[role(), self.username.len() as u8], &self.username])
    }

    /// Reads RAKP Message 4 and checks the BMC's integrity check value; returns the session keys.
    pub fn accept_rakp4(&self, payload: &[u8], tag: u8) -> Result<Result<SessionKeys, u8>, CodecError> {
        let head = payload.get(..2).ok_or_else(|| CodecError::new("empty RAKP 4"))?;
        if head[0] != tag {
            return Err(CodecError::new("RAKP 4 for another request"));
        }
        if head[1] != 0 {
            return Ok(Err(head[1]));
        }
        let icv_len = self.suite.icv_len();
        let body = payload.get(..8 + icv_len).ok_or_else(|| CodecError::new("RAKP 4 is too short"))?;
        let sik = self.sik();
        let mut icv = self.suite.hmac(&sik, &[&self.console_random, &self.bmc_session_id.to_le_bytes(), &self.bmc_guid]);
        icv.truncate(icv_len);
        if icv != body[8..] {
            return Err(CodecError::integrity("RAKP 4 integrity check value does not match"));
        }
        let k1 = self.suite.hmac(&sik, &[&[0x01; 20]]);
        let k2 = self.suite.hmac(&sik, &[&[0x02; 20]]);
        let mut aes_key = [0u8; 16];
        aes_key.copy_from_slice(&k2[..16]);
        Ok(Ok(SessionKeys { suite: self.suite, k1, aes_key }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handshake(suite: Suite) -> Handshake {
        Handshake {
            suite,
            console_session_id: 0xa0a2a3a4,
            bmc_session_id: 0x0102_0304,
            console_random: [0x11; 16],
            bmc_random: [0; 16],
            bmc_guid: [0; 16],
            username: b"admin".to_vec(),
            key: Handshake::key_from_password("s3cret"),
        }
    }

    /// The BMC side of RAKP 2, written from the spec's formula independently of `accept_rakp2`.
    fn rakp2(h: &Handshake, key: &[u8], tag: u8) -> Vec<u8> {
        let (rc, guid) = ([0x22u8; 16], [0x33u8; 16]);
        let mut data = h.console_session_id.to_le_bytes().to_vec();
        data.extend(h.bmc_session_id.to_le_bytes());
        data.extend(h.console_random);
        data.extend(rc);
        data.extend(guid);
        data.extend([0x14, 5]);
        data.extend(b"admin");
        let mut out = vec![tag, 0, 0, 0];
        out.extend(h.console_session_id.to_le_bytes());
        out.extend(rc);
        out.extend(guid);
        out.extend(h.suite.hmac(key, &[&data]));
        out
    }

    #[test]
    fn open_session_request_bytes() {
        let req = open_session_request(0, 0xa0a2a3a4, Suite::Seventeen);
        assert_eq!(
            req,
            [0x00, 0x04, 0, 0, 0xa4, 0xa3, 0xa2, 0xa0, 0x00, 0, 0, 8, 0x03, 0, 0, 0, 0x01, 0, 0, 8, 0x04, 0, 0, 0, 0x02, 0, 0, 8, 0x01, 0, 0, 0]
        );
    }

    #[test]
    fn open_session_refusal_is_its_status() {
        assert_eq!(parse_open_session_response(&[0, 0x11, 0, 0, 0xa4, 0xa3, 0xa2, 0xa0], 0, 0xa0a2a3a4).expect("parse"), Err(0x11));
    }

    #[test]
    fn rakp1_bytes() {
        let msg = handshake(Suite::Three).rakp1(1);
        assert_eq!(msg[..8], [1, 0, 0, 0, 0x04, 0x03, 0x02, 0x01]);
        assert_eq!(msg[24..], [0x14, 0, 0, 5, b'a', b'd', b'm', b'i', b'n']);
    }

    #[test]
    fn rakp2_with_the_right_password_is_accepted_and_keys_follow() {
        for suite in [Suite::Three, Suite::Seventeen] {
            let mut h = handshake(suite);
            let msg = rakp2(&h, &Handshake::key_from_password("s3cret"), 1);
            assert_eq!(h.accept_rakp2(&msg, 1).expect("rakp2"), Ok(()));
            assert_eq!(h.bmc_random, [0x22; 16]);
            // RAKP 4 as a BMC computes it from the same SIK.
            let sik = h.sik();
            let icv = suite.hmac(&sik, &[&h.console_random, &h.bmc_session_id.to_le_bytes(), &h.bmc_guid]);
            let mut rakp4 = vec![2, 0, 0, 0];
            rakp4.extend(h.console_session_id.to_le_bytes());
            rakp4.extend(&icv[..suite.icv_len()]);
            let keys = h.accept_rakp4(&rakp4, 2).expect("rakp4").expect("accepted");
            assert_eq!(keys.k1.len(), if suite == Suite::Three { 20 } else { 32 });
        }
    }

    #[test]
    fn rakp2_with_another_password_is_an_integrity_failure() {
        let mut h = handshake(Suite::Seventeen);
        let msg = rakp2(&h, &Handshake::key_from_password("other"), 1);
        let err = h.accept_rakp2(&msg, 1).expect_err("wrong password");
        assert!(err.integrity);
        assert!(!err.to_string().contains("s3cret"));
    }

    #[test]
    fn rakp2_refusal_names_the_status() {
        let mut h = handshake(Suite::Three);
        assert_eq!(h.accept_rakp2(&[1, 0x0d, 0, 0, 0, 0, 0, 0], 1).expect("parse"), Err(0x0d));
        assert_eq!(status_text(0x0d), "unauthorized name");
    }
}
