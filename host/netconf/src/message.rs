//! The few facts the session itself reads from NETCONF messages: the hello's capabilities, the
//! framing both hellos allow, and which request an `<rpc-reply>` answers. Plugins parse the rest.

use crate::Framing;

/// The standard base capabilities (RFC 6241 section 8.1). The emulator announces a non-standard
/// `urn:ietf:params:xml:ns:netconf:base:1.0`, which is neither and so means 1.0 framing.
pub const BASE_10: &str = "urn:ietf:params:netconf:base:1.0";
pub const BASE_11: &str = "urn:ietf:params:netconf:base:1.1";

/// Our hello: we speak both framings, so the server's hello alone decides.
pub fn client_hello() -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><hello xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\"><capabilities><capability>{BASE_10}</capability><capability>{BASE_11}</capability></capabilities></hello>"
    )
}

/// RFC 6242 section 4.1: chunked framing when both peers announce base:1.1.
pub fn negotiate(ours: &[&str], theirs: &[String]) -> Framing {
    if ours.contains(&BASE_11) && theirs.iter().any(|c| c == BASE_11) { Framing::Chunked } else { Framing::EndOfMessage }
}

/// The `<capability>` values of a server hello, or None when the message is not a hello.
pub fn hello_capabilities(message: &str) -> Option<Vec<String>> {
    let (name, _) = root_start_tag(message)?;
    if local_name(name) != "hello" {
        return None;
    }
    let mut out = Vec::new();
    let mut rest = message;
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        let end = rest.find('>')?;
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if tag.starts_with(['/', '?', '!']) || tag.ends_with('/') || local_name(tag.split_whitespace().next().unwrap_or("")) != "capability" {
            continue;
        }
        let text_end = rest.find('<')?;
        out.push(rest[..text_end].trim().to_owned());
        rest = &rest[text_end..];
    }
    Some(out)
}

/// The root element of a reply must be `<rpc-reply>`; returns its `message-id` attribute.
pub fn reply_message_id(message: &str) -> Result<Option<&str>, String> {
    let (name, attributes) = root_start_tag(message).ok_or("the reply is not XML")?;
    if local_name(name) != "rpc-reply" {
        return Err(format!("expected an rpc-reply, got <{name}>"));
    }
    Ok(attribute(attributes, "message-id"))
}

/// Name and attribute text of the first element, skipping the XML declaration, comments and
/// processing instructions.
fn root_start_tag(message: &str) -> Option<(&str, &str)> {
    let mut rest = message.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix("<?") {
            rest = after[after.find("?>")? + 2..].trim_start();
        } else if let Some(after) = rest.strip_prefix("<!--") {
            rest = after[after.find("-->")? + 3..].trim_start();
        } else {
            break;
        }
    }
    let tag = &rest.strip_prefix('<')?[..rest.find('>')? - 1];
    let tag = tag.strip_suffix('/').unwrap_or(tag);
    let name_end = tag.find(char::is_whitespace).unwrap_or(tag.len());
    Some((&tag[..name_end], &tag[name_end..]))
}

fn local_name(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

/// The value of `name="..."` or `name='...'` in a start tag's attribute text.
fn attribute<'a>(attributes: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = attributes;
    loop {
        let at = rest.find(name)?;
        let before_ok = at == 0 || rest[..at].ends_with(char::is_whitespace);
        let after = rest[at + name.len()..].trim_start();
        rest = &rest[at + name.len()..];
        let Some(value) = after.strip_prefix('=').map(str::trim_start) else { continue };
        if !before_ok {
            continue;
        }
        let quote = value.chars().next()?;
        if quote != '"' && quote != '\'' {
            return None;
        }
        let value = &value[1..];
        return Some(&value[..value.find(quote)?]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fake-switches emulator's hello, verbatim as captured from it.
    const EMULATOR_HELLO: &str = "<hello>\n  <session-id>1</session-id>\n  <capabilities>\n    <capability>urn:ietf:params:xml:ns:netconf:base:1.0</capability>\n    <capability>urn:ietf:params:xml:ns:netconf:capability:candidate:1.0</capability>\n    <capability>http://xml.juniper.net/netconf/junos/1.0</capability>\n  </capabilities>\n</hello>";

    #[test]
    fn reads_the_emulator_hello() {
        let caps = hello_capabilities(EMULATOR_HELLO).unwrap();
        assert_eq!(
            caps,
            [
                "urn:ietf:params:xml:ns:netconf:base:1.0",
                "urn:ietf:params:xml:ns:netconf:capability:candidate:1.0",
                "http://xml.juniper.net/netconf/junos/1.0"
            ]
        );
        assert_eq!(negotiate(&[BASE_10, BASE_11], &caps), Framing::EndOfMessage);
    }

    #[test]
    fn reads_a_prefixed_hello_with_a_declaration() {
        let hello = "<?xml version=\"1.0\"?>\n<!-- junos -->\n<nc:hello xmlns:nc=\"urn:ietf:params:xml:ns:netconf:base:1.0\"><nc:capabilities><nc:capability>urn:ietf:params:netconf:base:1.0</nc:capability><nc:capability> urn:ietf:params:netconf:base:1.1 </nc:capability></nc:capabilities></nc:hello>";
        let caps = hello_capabilities(hello).unwrap();
        assert_eq!(caps, [BASE_10, BASE_11]);
        assert_eq!(negotiate(&[BASE_10, BASE_11], &caps), Framing::Chunked);
        assert_eq!(negotiate(&[BASE_10], &caps), Framing::EndOfMessage, "both sides must announce 1.1");
    }

    #[test]
    fn a_non_hello_is_refused() {
        assert_eq!(hello_capabilities("<rpc-reply message-id=\"1\"><ok/></rpc-reply>"), None);
        assert_eq!(hello_capabilities("garbage"), None);
    }

    #[test]
    fn finds_the_reply_message_id() {
        let reply = "<rpc-reply xmlns:junos=\"http://xml.juniper.net/junos/11.4R1/junos\" xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\" message-id=\"101\">\n  <ok/>\n</rpc-reply>";
        assert_eq!(reply_message_id(reply), Ok(Some("101")));
        assert_eq!(reply_message_id("<nc:rpc-reply message-id='7' xmlns:nc=\"x\"/>"), Ok(Some("7")));
        assert_eq!(reply_message_id("<rpc-reply><ok/></rpc-reply>"), Ok(None));
        // Only the root's own attribute counts, not one that merely ends in message-id.
        assert_eq!(reply_message_id("<rpc-reply x-message-id=\"9\"><data message-id=\"9\"/></rpc-reply>"), Ok(None));
        assert!(reply_message_id("<hello/>").is_err());
    }
}
