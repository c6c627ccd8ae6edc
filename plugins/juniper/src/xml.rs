//! Just enough XML reading for NETCONF replies: element texts by tag name and the rpc-error
//! message. A hand scan keeps the component small; replies come from the switch, not from users.

/// The text of every `<tag>...</tag>` (any namespace prefix, attributes allowed), trimmed.
pub fn values(doc: &str, tag: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = doc;
    while let Some(start) = find_open(rest, tag) {
        let after = &rest[start..];
        let Some(gt) = after.find('>') else { break };
        if after[..gt].ends_with('/') {
            rest = &after[gt + 1..];
            continue;
        }
        let body = &after[gt + 1..];
        let Some(end) = body.find('<') else { break };
        out.push(unescape(body[..end].trim()));
        rest = &body[end..];
    }
    out
}

/// Position of the next `<tag` or `<prefix:tag` followed by `>`, `/` or whitespace.
fn find_open(doc: &str, tag: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = doc[from..].find('<') {
        let at = from + i;
        let name_start = at + 1;
        let name_end = doc[name_start..].find(|c: char| c == '>' || c == '/' || c.is_whitespace()).map(|n| name_start + n)?;
        let name = &doc[name_start..name_end];
        let local = name.rsplit(':').next().unwrap_or(name);
        if local == tag {
            return Some(at);
        }
        from = name_end;
    }
    None
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
}

/// The message of an `<rpc-error>` in a reply, if any.
pub fn rpc_error(reply: &str) -> Option<String> {
    find_open(reply, "rpc-error")?;
    let messages = values(reply, "error-message");
    let bad = values(reply, "bad-element");
    let mut message = if messages.is_empty() { "the switch returned an rpc-error".to_owned() } else { messages.join("; ") };
    if let Some(element) = bad.first() {
        message.push_str(&format!(" (bad element {element})"));
    }
    Some(message)
}
