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
/// Whitespace before the first chunk is skipped: a server that answered the 1.0 hello with
/// `]]>]]>` and a newline leaves that newline in front of the first chunked message.
pub fn decode_chunked(buf: &mut Vec<u8>) -> Result<Option<String>, FramingError> {
    let Some(mut pos) = start_of_chunks(buf) else { return Ok(None) };
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

/// Where the first chunk header starts after any stray whitespace; None until that is decidable.
fn start_of_chunks(buf: &[u8]) -> Option<usize> {
    let mut pos = 0;
    while let Some(&byte) = buf.get(pos) {
        if !byte.is_ascii_whitespace() {
            return Some(pos);
        }
        match (byte, buf.get(pos + 1)) {
            (b'\n', Some(b'#')) => return Some(pos),
            // A lone LF at the end may be the start of a chunk header: wait for the next byte.
            (b'\n', None) => return None,
            _ => pos += 1,
        }
    }
    if pos == 0 { Some(0) } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6242 section 4.2, the chunked example verbatim: an <rpc> in chunks of 4, 18 and 79 bytes.
    const RFC_CHUNKED: &[u8] =
        b"\n#4\n<rpc\n#18\n message-id=\"102\"\n\n#79\n     xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\">\n  <close-session/>\n</rpc>\n##\n";

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

    #[test]
    fn chunked_decoding_fed_one_byte_at_a_time() {
        let mut buf = Vec::new();
        let mut decoded = None;
        for (i, byte) in RFC_CHUNKED.iter().enumerate() {
            assert_eq!(decoded, None, "complete before byte {i}");
            buf.push(*byte);
            decoded = decode_chunked(&mut buf).unwrap();
        }
        assert_eq!(decoded, Some(rfc_message()));
        assert!(buf.is_empty());
    }

    /// A server that ends its 1.0 hello with `]]>]]>\n` leaves that LF in front of the first chunk.
    #[test]
    fn stray_newline_before_the_first_chunk() {
        let mut buf = b"\n".to_vec();
        assert_eq!(decode_chunked(&mut buf).unwrap(), None, "a lone LF may start a chunk header");
        buf.extend_from_slice(RFC_CHUNKED);
        assert_eq!(decode_chunked(&mut buf).unwrap(), Some(rfc_message()));
        let mut buf = b"\r\n  ".to_vec();
        assert_eq!(decode_chunked(&mut buf).unwrap(), None);
        buf.extend_from_slice(&encode_chunked("<ok/>"));
        assert_eq!(decode_chunked(&mut buf).unwrap().as_deref(), Some("<ok/>"));
    }

    /// RFC 6242 section 4.3: a base:1.0 message ends with `]]>]]>`; the emulator also sends a LF
    /// after it, which belongs to no message.
    #[test]
    fn end_of_message_framing() {
        let mut buf = b"<hello xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\"/>\n]]>]]>\n<rpc-reply/>".to_vec();
        assert_eq!(decode_eom(&mut buf).as_deref(), Some("<hello xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\"/>"));
        assert_eq!(decode_eom(&mut buf), None, "the second message is not complete yet");
        buf.extend_from_slice(b"]]>]]>");
        assert_eq!(decode_eom(&mut buf).as_deref(), Some("<rpc-reply/>"));
        assert_eq!(encode_eom("<x/>"), b"<x/>]]>]]>");
    }

    #[test]
    fn end_of_message_marker_split_at_every_byte_boundary() {
        let wire = b"<rpc-reply message-id=\"101\">\n  <ok/>\n</rpc-reply>\n]]>]]>";
        for split in 0..wire.len() {
            let mut buf = wire[..split].to_vec();
            assert_eq!(decode_eom(&mut buf), None, "complete after only {split} bytes?");
            buf.extend_from_slice(&wire[split..]);
            assert_eq!(decode_eom(&mut buf).as_deref(), Some("<rpc-reply message-id=\"101\">\n  <ok/>\n</rpc-reply>"));
        }
    }
}
