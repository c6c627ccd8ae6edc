//! RMCP and IPMI session framing (IPMI 2.0 §13.6, §13.28): the sessionless IPMI 1.5 wrapper used
//! before a session exists, and the RMCP+ (IPMI 2.0) wrapper with its payload type, session id,
//! sequence number, integrity trailer and AES-CBC-128 payload encryption.

use super::CodecError;
use super::suite::{Suite, aes_cbc_decrypt, aes_cbc_encrypt};

/// RMCP header: version 1.0, reserved, sequence 0xff (no RMCP ack), class IPMI.
const RMCP_HEADER: [u8; 4] = [0x06, 0x00, 0xff, 0x07];
/// Session header auth type of RMCP+ packets.
const AUTH_RMCP_PLUS: u8 = 0x06;

/// RMCP+ payload types (§13.27.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadType {
    Ipmi = 0x00,
    OpenSessionRequest = 0x10,
    OpenSessionResponse = 0x11,
    Rakp1 = 0x12,
    Rakp2 = 0x13,
    Rakp3 = 0x14,
    Rakp4 = 0x15,
}

impl PayloadType {
    fn from_bits(bits: u8) -> Option<PayloadType> {
        Some(match bits {
            0x00 => PayloadType::Ipmi,
            0x10 => PayloadType::OpenSessionRequest,
            0x11 => PayloadType::OpenSessionResponse,
            0x12 => PayloadType::Rakp1,
            0x13 => PayloadType::Rakp2,
            0x14 => PayloadType::Rakp3,
            0x15 => PayloadType::Rakp4,
            _ => return None,
        })
    }
}

/// The keys of an active session: the suite, K1 (integrity) and the AES key (first 16 bytes of K2).
#[derive(Clone)]
pub struct SessionKeys {
    pub suite: Suite,
    pub k1: Vec<u8>,
    pub aes_key: [u8; 16],
}

/// One RMCP+ packet, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub payload_type: PayloadType,
    pub session_id: u32,
    pub seq: u32,
    pub payload: Vec<u8>,
}

/// A sessionless IPMI 1.5 packet (auth type none, session 0) around one IPMI message: what Get
/// Channel Authentication Capabilities and Get Channel Cipher Suites travel in before a session.
pub fn encode_v15(message: &[u8]) -> Vec<u8> {
    let mut out = RMCP_HEADER.to_vec();
    out.push(0x00); // auth type none
    out.extend([0u8; 8]); // session sequence, session id
    out.push(message.len() as u8);
    out.extend(message);
    out
}

/// The IPMI message inside an IPMI 1.5 packet (auth type none).
pub fn decode_v15(packet: &[u8]) -> Result<&[u8], CodecError> {
    check_rmcp(packet)?;
    if packet.get(4) != Some(&0x00) {
        return Err(CodecError::new(format!(
            "expected an unauthenticated IPMI 1.5 reply, got auth type {:#04x}",
            packet.get(4).copied().unwrap_or(0)
        )));
    }
    let len = *packet.get(13).ok_or_else(|| CodecError::new("truncated IPMI 1.5 session header"))? as usize;
    packet.get(14..14 + len).ok_or_else(|| CodecError::new("IPMI 1.5 message shorter than its length"))
}

fn check_rmcp(packet: &[u8]) -> Result<(), CodecError> {
    match packet.get(..4) {
        Some(h) if h[0] == 0x06 && h[3] & 0x1f == 0x07 => Ok(()),
        _ => Err(CodecError::new("not an RMCP IPMI packet")),
    }
}

/// Encodes an RMCP+ packet. With `keys`, the payload is encrypted (AES-CBC-128 with `iv`) and
/// the packet authenticated; without, it goes in clear (session setup).
pub fn encode_v20(packet: &Packet, keys: Option<&SessionKeys>, iv: [u8; 16]) -> Vec<u8> {
    let mut out = RMCP_HEADER.to_vec();
    let session_start = out.len();
    out.push(AUTH_RMCP_PLUS);
    let flags = if keys.is_some() { 0xc0 } else { 0x00 };
    out.push(flags | packet.payload_type as u8);
    out.extend(packet.session_id.to_le_bytes());
    out.extend(packet.seq.to_le_bytes());
    let body = match keys {
        Some(k) => encrypt(&k.aes_key, iv, &packet.payload),
        None => packet.payload.clone(),
    };
    out.extend((body.len() as u16).to_le_bytes());
    out.extend(body);
    if let Some(k) = keys {
        // Integrity pad: session header through next header a multiple of 4 (§13.28.4).
        let pad = (4 - (out.len() - session_start + 2) % 4) % 4;
        out.extend(std::iter::repeat_n(0xffu8, pad));
        out.push(pad as u8);
        out.push(0x07); // next header
        let code = k.suite.auth_code(&k.k1, &out[session_start..]);
        out.extend(code);
    }
    out
}

/// Decodes an RMCP+ packet; with `keys`, an authenticated packet's AuthCode is checked and an
/// encrypted payload decrypted. A packet that should be protected but is not is refused.
pub fn decode_v20(bytes: &[u8], keys: Option<&SessionKeys>) -> Result<Packet, CodecError> {
    check_rmcp(bytes)?;
    let header = bytes.get(4..16).ok_or_else(|| CodecError::new("truncated RMCP+ session header"))?;
    if header[0] != AUTH_RMCP_PLUS {
        return Err(CodecError::new(format!("expected an RMCP+ packet, got auth type {:#04x}", header[0])));
    }
    let encrypted = header[1] & 0x80 != 0;
    let authenticated = header[1] & 0x40 != 0;
    let payload_type =
        PayloadType::from_bits(header[1] & 0x3f).ok_or_else(|| CodecError::new(format!("unknown RMCP+ payload type {:#04x}", header[1] & 0x3f)))?;
    let session_id = u32::from_le_bytes([header[2], header[3], header[4], header[5]]);
    let seq = u32::from_le_bytes([header[6], header[7], header[8], header[9]]);
    let len = u16::from_le_bytes([header[10], header[11]]) as usize;
    let body = bytes.get(16..16 + len).ok_or_else(|| CodecError::new("RMCP+ payload shorter than its length"))?;
    if let Some(k) = keys {
        if !authenticated || !encrypted {
            return Err(CodecError::new("the BMC answered in clear inside an encrypted session"));
        }
        let icv = k.suite.icv_len();
        if bytes.len() < 16 + len + 2 + icv {
            return Err(CodecError::new("RMCP+ packet shorter than its integrity trailer"));
        }
        let (signed, code) = bytes[4..].split_at(bytes.len() - 4 - icv);
        if k.suite.auth_code(&k.k1, signed) != code {
            return Err(CodecError::integrity("the BMC's packet failed its integrity check"));
        }
        let payload = decrypt(&k.aes_key, body)?;
        return Ok(Packet { payload_type, session_id, seq, payload });
    }
    if encrypted || authenticated {
        return Err(CodecError::new("an encrypted packet arrived before the session had keys"));
    }
    Ok(Packet { payload_type, session_id, seq, payload: body.to_vec() })
}

/// IV, then the payload with IPMI's confidentiality pad (1, 2, 3..., then the pad length) to a
/// whole number of blocks, encrypted (§13.29).
fn encrypt(key: &[u8; 16], iv: [u8; 16], payload: &[u8]) -> Vec<u8> {
    let pad = (16 - (payload.len() + 1) % 16) % 16;
    let mut data = payload.to_vec();
    data.extend((1..=pad as u8).collect::<Vec<_>>());
    data.push(pad as u8);
    aes_cbc_encrypt(key, &iv, &mut data);
    let mut out = iv.to_vec();
    out.extend(data);
    out
}

fn decrypt(key: &[u8; 16], body: &[u8]) -> Result<Vec<u8>, CodecError> {
    if body.len() < 32 || !body.len().is_multiple_of(16) {
        return Err(CodecError::new(format!("an encrypted payload of {} bytes is not IV plus whole blocks", body.len())));
    }
    let (iv, rest) = body.split_at(16);
    let iv: [u8; 16] = iv.try_into().map_err(|_| CodecError::new("bad IV"))?;
    let mut data = rest.to_vec();
    aes_cbc_decrypt(key, &iv, &mut data);
    let pad = *data.last().unwrap_or(&0) as usize;
    if pad + 1 > data.len() {
        return Err(CodecError::new("the confidentiality pad is longer than the payload"));
    }
    data.truncate(data.len() - pad - 1);
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(suite: Suite) -> SessionKeys {
        SessionKeys { suite, k1: vec![0x11; 32], aes_key: [0x22; 16] }
    }

    #[test]
    fn v15_get_channel_auth_caps_as_ipmitool_sends_it() {
        let message = [0x20, 0x18, 0xc8, 0x81, 0x00, 0x38, 0x8e, 0x04, 0xb5];
        let packet = encode_v15(&message);
        assert_eq!(packet[..14], [0x06, 0x00, 0xff, 0x07, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0x09]);
        assert_eq!(decode_v15(&packet).expect("decode"), message);
    }

    #[test]
    fn clear_packets_round_trip() {
        let p = Packet { payload_type: PayloadType::OpenSessionRequest, session_id: 0, seq: 0, payload: vec![1, 2, 3] };
        let bytes = encode_v20(&p, None, [0; 16]);
        assert_eq!(bytes[..16], [0x06, 0x00, 0xff, 0x07, 0x06, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0]);
        assert_eq!(decode_v20(&bytes, None).expect("decode"), p);
    }

    #[test]
    fn protected_packets_round_trip_and_are_aligned() {
        for suite in [Suite::Three, Suite::Seventeen] {
            for len in [0usize, 1, 7, 15, 16, 17, 40] {
                let p = Packet { payload_type: PayloadType::Ipmi, session_id: 0xa0a1a2a3, seq: 9, payload: vec![0x5a; len] };
                let bytes = encode_v20(&p, Some(&keys(suite)), [7; 16]);
                // Session header through next header is a multiple of four.
                assert_eq!((bytes.len() - 4 - suite.icv_len()) % 4, 0, "{suite:?} {len}");
                assert_eq!(decode_v20(&bytes, Some(&keys(suite))).expect("decode"), p);
            }
        }
    }

    #[test]
    fn a_tampered_packet_fails_integrity() {
        let p = Packet { payload_type: PayloadType::Ipmi, session_id: 1, seq: 1, payload: vec![1, 2, 3] };
        let mut bytes = encode_v20(&p, Some(&keys(Suite::Seventeen)), [7; 16]);
        bytes[20] ^= 0x01;
        let err = decode_v20(&bytes, Some(&keys(Suite::Seventeen))).expect_err("tampered");
        assert!(err.integrity);
    }

    #[test]
    fn a_clear_answer_inside_a_session_is_refused() {
        let p = Packet { payload_type: PayloadType::Ipmi, session_id: 1, seq: 1, payload: vec![1] };
        let bytes = encode_v20(&p, None, [0; 16]);
        assert!(decode_v20(&bytes, Some(&keys(Suite::Three))).is_err());
    }
}
