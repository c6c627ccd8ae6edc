//! Just enough XML reading for NETCONF replies (switch plugins): element texts and element bodies by local name,
//! and the `<rpc-error>`s of a reply. A hand scan keeps the component small; replies come from
//! the switch, and everything we look for is a leaf or a non-recursive container.

/// The text of every `<tag>...</tag>` (any namespace prefix, attributes allowed), trimmed and
/// unescaped. An element with child elements yields the text before its first child.
pub fn values(doc: &str, tag: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = doc;
    while let Some((start_tag_end, self_closing)) = find_open(rest, tag) {
        let body = &rest[start_tag_end..];
        if self_closing {
            out.push(String::new());
            rest = body;
            continue;
        }
        let Some(end) = body.find('<') else { break };
        out.push(unescape(body[..end].trim()));
        rest = &body[end..];
    }
    out
}

/// The inner text of every `<tag>...</tag>` (empty for `<tag/>`). Elements of the same name
/// nested inside each other are not supported: the first closing tag ends the element.
pub fn elements<'a>(doc: &'a str, tag: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut rest = doc;
    while let Some((start_tag_end, self_closing)) = find_open(rest, tag) {
        let body = &rest[start_tag_end..];
        if self_closing {
            out.push("");
            rest = body;
            continue;
        }
        let Some((close_at, close_end)) = find_close(body, tag) else { break };
        out.push(&body[..close_at]);
        rest = &body[close_end..];
    }
    out
}

/// The first `values` of `tag`, if any.
pub fn first_value(doc: &str, tag: &str) -> Option<String> {
    values(doc, tag).into_iter().next()
}

/// Finds the next start tag `<tag ...>` or `<prefix:tag ...>`; returns the index just past it
/// and whether it was self-closing.
fn find_open(doc: &str, tag: &str) -> Option<(usize, bool)> {
    let mut from = 0;
    while let Some(i) = doc[from..].find('<') {
        let name_start = from + i + 1;
        let name_end = doc[name_start..].find(|c: char| c == '>' || c == '/' || c.is_whitespace()).map(|n| name_start + n)?;
        let name = &doc[name_start..name_end];
        let gt = doc[name_end..].find('>').map(|n| name_end + n)?;
        if !name.starts_with(['/', '?', '!']) && local(name) == tag {
            return Some((gt + 1, doc[..gt].ends_with('/')));
        }
        from = name_end.max(name_start);
    }
    None
}

/// Finds `</tag>` or `</prefix:tag>`; returns where it starts and the index just past it.
fn find_close(doc: &str, tag: &str) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some(i) = doc[from..].find("</") {
        let at = from + i;
        let gt = doc[at..].find('>').map(|n| at + n)?;
        if local(doc[at + 2..gt].trim()) == tag {
            return Some((at, gt + 1));
        }
        from = gt;
    }
    None
}

fn local(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
}

/// Escapes text for use inside an element or a quoted attribute.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    /// `error` or `warning` (Junos reports commit warnings as rpc-errors of severity warning).
    pub severity: String,
    pub message: String,
}

impl RpcError {
    pub fn is_warning(&self) -> bool {
        self.severity == "warning"
    }
}

/// Every `<rpc-error>` in a reply, with its severity and a readable message.
pub fn rpc_errors(reply: &str) -> Vec<RpcError> {
    elements(reply, "rpc-error")
        .into_iter()
        .map(|body| {
            let severity = first_value(body, "error-severity").unwrap_or_else(|| "error".into());
            let mut message = first_value(body, "error-message")
                .filter(|m| !m.is_empty())
                .or_else(|| first_value(body, "error-tag").map(|t| format!("the switch answered {t}")))
                .unwrap_or_else(|| "the switch returned an rpc-error".into());
            if let Some(element) = first_value(body, "bad-element") {
                message.push_str(&format!(" (bad element {element})"));
            }
            RpcError { severity, message }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fake-switches emulator's answer to `<validate>`, as captured from it, and a Junos commit warning.
    const ERRORS: &str = r#"<rpc-reply xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="7">
  <rpc-error>
    <error-type>protocol</error-type>
    <error-tag>operation-not-supported</error-tag>
    <error-severity>error</error-severity>
    <error-message>No vlan matches vlan tag 300 for interface ge-0/0/3.0</error-message>
    <error-info><bad-element>members</bad-element></error-info>
  </rpc-error>
  <rpc-error><error-severity>warning</error-severity><error-message>statement has no contents; ignored</error-message></rpc-error>
  <nc:rpc-error xmlns:nc="x"><nc:error-tag>lock-denied</nc:error-tag></nc:rpc-error>
</rpc-reply>"#;

    #[test]
    fn reads_rpc_errors_with_severity() {
        assert_eq!(
            rpc_errors(ERRORS),
            [
                RpcError { severity: "error".into(), message: "No vlan matches vlan tag 300 for interface ge-0/0/3.0 (bad element members)".into() },
                RpcError { severity: "warning".into(), message: "statement has no contents; ignored".into() },
                RpcError { severity: "error".into(), message: "the switch answered lock-denied".into() },
            ]
        );
        assert!(rpc_errors("<rpc-reply message-id=\"1\">\n  <ok/>\n</rpc-reply>").is_empty());
    }

    #[test]
    fn values_and_elements_by_local_name() {
        let doc = "<a><x:name> ge-0/0/1 </x:name><name/><name>a&amp;b</name><names>no</names></a>";
        assert_eq!(values(doc, "name"), ["ge-0/0/1", "", "a&b"]);
        assert_eq!(elements("<v><i>1</i></v><v/><v>2</v>", "v"), ["<i>1</i>", "", "2"]);
        assert_eq!(elements("<?xml version=\"1.0\"?><!-- v --><v>x</v >", "v"), ["x"]);
        assert!(values("<a><b>unterminated", "c").is_empty());
    }

    #[test]
    fn escapes_text() {
        assert_eq!(escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&apos;");
    }
}
