//! IPMI LAN messages (IPMI 2.0 §13.8): the request a remote console sends to the BMC at slave
//! address 0x20 and the response it gets back, with their two checksums.

use super::CodecError;

/// The BMC's slave address.
const BMC_ADDR: u8 = 0x20;
/// A remote console's software id (IPMI 2.0 §5.5).
const CONSOLE_SWID: u8 = 0x81;

/// Network functions this plugin uses.
pub const NETFN_CHASSIS: u8 = 0x00;
pub const NETFN_APP: u8 = 0x06;

/// A request: network function, command, data, and the 6-bit sequence number that pairs it with
/// its response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub netfn: u8,
    pub cmd: u8,
    pub data: Vec<u8>,
}

/// A response to a [`Request`]: its completion code and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub netfn: u8,
    pub cmd: u8,
    pub seq: u8,
    pub completion: u8,
    pub data: Vec<u8>,
}

fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)).wrapping_neg()
}

impl Request {
    pub fn new(netfn: u8, cmd: u8, data: impl Into<Vec<u8>>) -> Request {
        Request { netfn, cmd, data: data.into() }
    }

    /// The message bytes with sequence number `seq` (0..64).
    pub fn encode(&self, seq: u8) -> Vec<u8> {
        let mut out = vec![BMC_ADDR, self.netfn << 2];
        out.push(checksum(&out));
        let body_start = out.len();
        out.extend([CONSOLE_SWID, (seq & 0x3f) << 2, self.cmd]);
        out.extend(&self.data);
        out.push(checksum(&out[body_start..]));
        out
    }
}

impl Response {
    /// Reads a response message; checks both checksums.
    pub fn decode(bytes: &[u8]) -> Result<Response, CodecError> {
        if bytes.len() < 8 {
            return Err(CodecError::new(format!("an IPMI response of {} bytes is too short", bytes.len())));
        }
        if checksum(&bytes[..2]) != bytes[2] || checksum(&bytes[3..bytes.len() - 1]) != bytes[bytes.len() - 1] {
            return Err(CodecError::new("an IPMI response failed its checksum"));
        }
        Ok(Response { netfn: bytes[1] >> 2, seq: bytes[4] >> 2, cmd: bytes[5], completion: bytes[6], data: bytes[7..bytes.len() - 1].to_vec() })
    }

    /// Whether this answers `req` sent with `seq` (response netfn is the request's + 1).
    pub fn answers(&self, req: &Request, seq: u8) -> bool {
        self.netfn == req.netfn | 1 && self.cmd == req.cmd && self.seq == seq & 0x3f
    }

    /// Encodes a response (for tests and the lab responder's packets).
    #[cfg(test)]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![CONSOLE_SWID, self.netfn << 2];
        out.push(checksum(&out));
        let start = out.len();
        out.extend([BMC_ADDR, (self.seq & 0x3f) << 2, self.cmd, self.completion]);
        out.extend(&self.data);
        out.push(checksum(&out[start..]));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_channel_auth_caps_request_as_ipmitool_sends_it() {
        // ipmitool -I lanplus, first message (captured at the lab responder): 20 18 c8 81 00 38 8e 04 b5
        let req = Request::new(NETFN_APP, 0x38, [0x8e, 0x04]);
        assert_eq!(req.encode(0), [0x20, 0x18, 0xc8, 0x81, 0x00, 0x38, 0x8e, 0x04, 0xb5]);
    }

    #[test]
    fn a_response_decodes_and_pairs_with_its_request() {
        let req = Request::new(NETFN_CHASSIS, 0x01, []);
        let resp = Response { netfn: 0x01, cmd: 0x01, seq: 5, completion: 0, data: vec![0x01, 0x00, 0x00] };
        let decoded = Response::decode(&resp.encode()).expect("decode");
        assert_eq!(decoded, resp);
        assert!(decoded.answers(&req, 5));
        assert!(!decoded.answers(&req, 6));
    }

    #[test]
    fn a_bad_checksum_is_refused() {
        let mut bytes = Response { netfn: 0x07, cmd: 0x38, seq: 0, completion: 0, data: vec![1] }.encode();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(Response::decode(&bytes).is_err());
    }
}
