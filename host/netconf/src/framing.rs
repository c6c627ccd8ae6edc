//! NETCONF message framing over SSH (RFC 6242): base:1.0 end-of-message `]]>]]>`, and base:1.1
//! chunked framing. Pure byte handling, tested against the RFC's examples.

pub const END_OF_MESSAGE: &[u8] = b"]]>]]>";
/// Largest chunk-size RFC 6242 allows.
const MAX_CHUNK: u64 = 4_294_967_295;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed NETCONF framing: {0}")]
pub struct FramingError(pub String);

pub fn encode_eom(message: &str) -> Vec<u8> {
    let mut out = message.as_bytes().to_vec();
    out.extend_from_slice(END_OF_MESSAGE);
    out
}

/// One chunk holding the whole message, then the end-of-chunks marker.
pub fn encode_chunked(message: &str) -> Vec<u8> {
    let mut out = format!("\n#{}\n", message.len()).into_bytes();
    out.extend_from_slice(message.as_bytes());
    out.extend_from_slice(b"\n##\n");
    out
}

/// Takes one complete end-of-message framed message off the front of `buf`, if there is one.
/// Whitespace between messages (some servers send a newline after the marker) is dropped.
pub fn decode_eom(buf: &mut Vec<u8>) -> Option<String> {
    let at = buf.windows(END_OF_MESSAGE.len()).position(|w| w == END_OF_MESSAGE)?;
    let message = String::from_utf8_lossy(&buf[..at]).trim().to_owned();
    buf.drain(..at + END_OF_MESSAGE.len());
    Some(message)
}

/// Takes one complete chunked message off the front of `buf`, if all of it has arrived.
pub fn decode_chunked(buf: &mut Vec<u8>) -> Result<Option<String>, FramingError> {
    let mut pos = 0;
    let mut message = Vec::new();
    loop {
        // Each chunk starts with LF '#'.
        if buf.len() < pos + 2 {
            return Ok(None);
        }
        if &buf[pos..pos + 2] != b"\n#" {
            return Err(FramingError(format!("expected LF '#' at byte {pos}, found {:?}", String::from_utf8_lossy(&buf[pos..pos + 2]))));
        }
        pos += 2;
        let Some(&next) = buf.get(pos) else { return Ok(None) };
        if next == b'#' {
            // End of chunks: "\n##\n".
            match buf.get(pos + 1) {
                None => return Ok(None),
                Some(b'\n') => {
                    buf.drain(..pos + 2);
                    return Ok(Some(String::from_utf8_lossy(&message).into_owned()));
                }
                Some(other) => return Err(FramingError(format!("expected LF after '##', found {:?}", *other as char))),
            }
        }
        let digits_start = pos;
        while let Some(c) = buf.get(pos) {
            if c.is_ascii_digit() {
                pos += 1;
            } else {
                break;
            }
        }
        let Some(&terminator) = buf.get(pos) else { return Ok(None) };
        if terminator != b'\n' || pos == digits_start || pos - digits_start > 10 || buf[digits_start] == b'0' {
            return Err(FramingError(format!("invalid chunk size {:?}", String::from_utf8_lossy(&buf[digits_start..=pos]))));
        }
        let size: u64 = String::from_utf8_lossy(&buf[digits_start..pos]).parse().map_err(|_| FramingError("chunk size".into()))?;
        if size == 0 || size > MAX_CHUNK {
            return Err(FramingError(format!("chunk size {size} out of range")));
        }
        pos += 1;
        let size = usize::try_from(size).map_err(|_| FramingError("chunk too large".into()))?;
        if buf.len() < pos + size {
            return Ok(None);
        }
        message.extend_from_slice(&buf[pos..pos + size]);
        pos += size;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6242 section 4.2, the chunked example: an <rpc> split into chunks of 4 and 18 bytes.
    const RFC_CHUNKED: &[u8] = b"\n#4\n<rpc\n#18\n message-id=\"102\"\n\n#79\n     xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\">\n  <close-session/>\n</rpc>\n##\n";

    fn rfc_message() -> String {
        "<rpc message-id=\"102\"\n     xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\">\n  <close-session/>\n</rpc>".to_owned()
    }

    #[test]
    fn decodes_the_rfc_chunked_example() {
        let mut buf = RFC_CHUNKED.to_vec();
        assert_eq!(decode_chunked(&mut buf).unwrap(), Some(rfc_message()));
        assert!(buf.is_empty());
    }

    #[test]
    fn chunked_decoding_waits_for_every_byte_boundary() {
        for split in 0..RFC_CHUNKED.len() {
            let mut buf = RFC_CHUNKED[..split].to_vec();
            assert_eq!(decode_chunked(&mut buf).unwrap(), None, "complete after only {split} bytes?");
            buf.extend_from_slice(&RFC_CHUNKED[split..]);
            assert_eq!(decode_chunked(&mut buf).unwrap(), Some(rfc_message()), "split at {split}");
        }
    }

    #[test]
    fn two_chunked_messages_back_to_back() {
        let mut buf = encode_chunked("<a/>");
        buf.extend(encode_chunked("<b/>"));
        assert_eq!(decode_chunked(&mut buf).unwrap().as_deref(), Some("<a/>"));
        assert_eq!(decode_chunked(&mut buf).unwrap().as_deref(), Some("<b/>"));
        assert_eq!(decode_chunked(&mut buf).unwrap(), None);
    }

    #[test]
    fn rejects_malformed_chunks() {
        for bad in [&b"\n#0\n\n##\n"[..], b"\n#x\n", b"<rpc/>", b"\n#04\nabcd\n##\n", b"\n##x"] {
            assert!(decode_chunked(&mut bad.to_vec()).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn encode_then_decode_chunked() {
        let mut buf = encode_chunked(&rfc_message());
        assert_eq!(decode_chunked(&mut buf).unwrap(), Some(rfc_message()));
    }

    /// RFC 6242 section 4.3: the end-of-message hello exchange.
    #[test]
    fn end_of_message_framing() {
        let mut buf = b"<hello xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\"/>\n]]>]]>\n<rpc-reply/>".to_vec();
        assert_eq!(decode_eom(&mut buf).as_deref(), Some("<hello xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\"/>"));
        assert_eq!(decode_eom(&mut buf), None, "the second message is not complete yet");
        buf.extend_from_slice(b"]]>]]>");
        assert_eq!(decode_eom(&mut buf).as_deref(), Some("<rpc-reply/>"));
        assert_eq!(encode_eom("<x/>"), b"<x/>]]>]]>");
    }
}
