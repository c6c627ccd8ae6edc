//! What the API document says a request field is, built from the same definitions the handlers
//! check it with (ARCHITECTURE.md, "API"): the domain types' patterns and value lists, the name
//! rule of `validate.rs`. A field names one of these with `#[schema(value_type = ...)]`, so a
//! client generated from the document sends only what the server accepts.

use std::borrow::Cow;

use utoipa::openapi::schema::{AnyOfBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use super::validate::NAME_PATTERN;
use crate::domain::{BootDevice, BootMode, ChassisId, Compression, Hostname, ImageFormat, MacAddr, PowerAction, SwitchPort};

fn text() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn choice(values: impl IntoIterator<Item = &'static str>, description: &str) -> RefOr<Schema> {
    text().enum_values(Some(values)).description(Some(description)).into()
}

/// Declares a marker type whose schema is `$schema`, under the component name `$name`.
macro_rules! field_schema {
    ($(#[$meta:meta])* $ty:ident, $name:literal, $schema:expr) => {
        $(#[$meta])*
        pub struct $ty;

        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                $schema
            }
        }

        impl ToSchema for $ty {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}

field_schema!(
    /// An Ethernet MAC address, `:`- or `-`-separated.
    Mac,
    "Mac",
    text().pattern(Some(MacAddr::PATTERN)).examples(["52:54:00:12:34:56"]).into()
);

field_schema!(
    /// An IPv4 or IPv6 address.
    IpAddress,
    "IpAddress",
    AnyOfBuilder::new()
        .item(text().format(Some(SchemaFormat::KnownFormat(KnownFormat::Ipv4))))
        .item(text().format(Some(SchemaFormat::KnownFormat(KnownFormat::Ipv6))))
        .examples(["10.0.0.11"])
        .into()
);

field_schema!(
    /// A BMC's or switch's address: an IP address or a DNS host name.
    Host,
    "Host",
    AnyOfBuilder::new()
        .item(text().format(Some(SchemaFormat::KnownFormat(KnownFormat::Ipv4))))
        .item(text().format(Some(SchemaFormat::KnownFormat(KnownFormat::Ipv6))))
        .item(text().pattern(Some(Hostname::NAME_PATTERN)).max_length(Some(Hostname::MAX_LEN)))
        .examples(["10.0.0.2", "bmc-rack1-u12.example.net"])
        .into()
);

field_schema!(
    /// A node, switch, image or instance name: looked up like an id in URLs, so never only digits.
    ResourceName,
    "ResourceName",
    text().pattern(Some(NAME_PATTERN)).min_length(Some(1)).max_length(Some(63)).examples(["rack1-node07"]).into()
);

field_schema!(
    /// A switch port name such as `ge-0/0/3`.
    PortName,
    "PortName",
    text().pattern(Some(SwitchPort::PATTERN)).min_length(Some(1)).max_length(Some(SwitchPort::MAX_LEN)).examples(["ge-0/0/3"]).into()
);

field_schema!(
    /// What a switch announces as its LLDP chassis id: a MAC, or printable text.
    ChassisIdText,
    "ChassisId",
    text().pattern(Some(ChassisId::PATTERN)).min_length(Some(1)).max_length(Some(ChassisId::MAX_LEN)).examples(["00:1b:21:aa:bb:cc"]).into()
);

field_schema!(
    /// A sha256 digest in hex.
    Sha256,
    "Sha256",
    text().pattern(Some("^[0-9A-Fa-f]{64}$")).min_length(Some(64)).max_length(Some(64)).into()
);

field_schema!(
    /// Text that is not empty or only white space (a user name, a password, a plugin's name).
    NonBlank,
    "NonBlank",
    text().min_length(Some(1)).pattern(Some(r"\S")).into()
);

field_schema!(
    /// A power action an operator may ask for.
    PowerActionName,
    "PowerAction",
    choice(PowerAction::OPERATOR.iter().map(|a| a.as_str()), "on, off or reboot (a reboot of a node that is off powers it on).")
);

field_schema!(
    /// A boot device.
    BootDeviceName,
    "BootDevice",
    choice(BootDevice::ALL.iter().map(|d| d.as_str()), "pxe or disk.")
);

field_schema!(
    /// A firmware boot mode.
    BootModeName,
    "BootMode",
    choice(BootMode::ALL.iter().map(|m| m.as_str()), "bios or uefi.")
);

field_schema!(
    /// An image's compression.
    CompressionName,
    "ImageCompression",
    choice(Compression::ALL.iter().map(|c| c.as_str()), "none, gzip or zstd; sniffed from the first bytes when not given.")
);

field_schema!(
    /// An image's format.
    ImageFormatName,
    "ImageFormat",
    choice(ImageFormat::ALL.iter().map(|f| f.as_str()), "raw or qcow2; told from the bytes when not given, refused when the bytes disagree.")
);

field_schema!(
    /// How a console session attaches.
    ConsoleModeName,
    "ConsoleMode",
    choice(super::console::MODES, "type (the default: read and type; one typist per node at a time) or watch (read only).")
);

field_schema!(
    /// A user's role in a project.
    RoleName,
    "Role",
    choice(crate::domain::tenancy::Role::ALL.iter().copied(), "reader (reads the project's instances, nodes, images and logs) or member (also creates and deletes them, and drives their nodes' power and consoles).")
);

field_schema!(
    /// A node's provision state.
    ProvisionStateName,
    "ProvisionState",
    choice(crate::domain::ProvisionState::ALL.iter().map(|s| s.as_str()), "A node's provision state.")
);

field_schema!(
    /// A node's power state.
    PowerStateName,
    "PowerState",
    choice(crate::domain::PowerState::ALL.iter().map(|s| s.as_str()), "on, off or unknown.")
);

field_schema!(
    /// An instance's state.
    InstanceStateName,
    "InstanceState",
    choice(crate::domain::InstanceState::ALL.iter().map(|s| s.as_str()), "An instance's state.")
);

field_schema!(
    /// A node event's kind.
    EventKindName,
    "EventKind",
    choice(crate::store::events::EventKind::ALL.iter().map(|k| k.as_str()), "A node event's kind.")
);

field_schema!(
    /// An audit entry's outcome, as a class of statuses.
    OutcomeClassName,
    "OutcomeClass",
    choice(
        crate::store::audit::OutcomeClass::ALL.iter().map(|o| o.as_str()),
        "ok: below 400; denied: 401, 403 or 404 (the access layer's refusals); failed: any other status from 400."
    )
);

/// Every schema above, for the document's components: query parameters name them by reference
/// too, and a parameter's type is not collected the way a body's field types are.
pub fn components() -> Vec<(String, RefOr<Schema>)> {
    fn entry<T: ToSchema>() -> (String, RefOr<Schema>) {
        (T::name().into_owned(), T::schema())
    }
    vec![
        entry::<Mac>(),
        entry::<IpAddress>(),
        entry::<Host>(),
        entry::<ResourceName>(),
        entry::<PortName>(),
        entry::<ChassisIdText>(),
        entry::<Sha256>(),
        entry::<NonBlank>(),
        entry::<PowerActionName>(),
        entry::<BootDeviceName>(),
        entry::<BootModeName>(),
        entry::<CompressionName>(),
        entry::<ImageFormatName>(),
        entry::<ConsoleModeName>(),
        entry::<RoleName>(),
        entry::<ProvisionStateName>(),
        entry::<PowerStateName>(),
        entry::<InstanceStateName>(),
        entry::<EventKindName>(),
        entry::<OutcomeClassName>(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pattern and the length bounds a string schema states.
    fn rule_of(schema: RefOr<Schema>) -> (String, usize, usize) {
        let json = serde_json::to_value(schema).expect("json");
        let bound = |key: &str, default: usize| json[key].as_u64().map_or(default, |n| usize::try_from(n).unwrap_or(usize::MAX));
        (json["pattern"].as_str().expect("a pattern").to_owned(), bound("minLength", 0), bound("maxLength", usize::MAX))
    }

    /// The document's patterns and the parsers agree on what they accept: the same examples pass
    /// or fail both (the parsers are the server's truth; the patterns are what clients read).
    #[test]
    fn the_patterns_accept_what_the_parsers_accept() {
        let check = |schema: RefOr<Schema>, parses: &dyn Fn(&str) -> bool, samples: &[&str]| {
            let (pattern, min, max) = rule_of(schema);
            let pattern = fancy_regex::Regex::new(&pattern).expect("the pattern compiles");
            for sample in samples {
                let length = sample.chars().count();
                let valid = pattern.is_match(sample).expect("match") && (min..=max).contains(&length);
                assert_eq!(valid, parses(sample), "{pattern} ({min}..={max} characters) vs the parser on {sample:?}");
            }
        };
        check(
            Mac::schema(),
            &|s| s.parse::<MacAddr>().is_ok(),
            &[
                "52:54:00:12:34:56",
                "52-54-00-12-34-AB",
                "52:54:00:12:34",
                "52:54:00:12:34:56:78",
                "52:54-00:12:34:56",
                "5254.0012.3456",
                "",
                "zz:54:00:12:34:56",
            ],
        );
        check(
            ResourceName::schema(),
            &|s| super::super::validate::name("name", s).is_ok(),
            &["node1", "rack-1.node_7", "123", "", "a b", "x", "é", &"a".repeat(63), &"a".repeat(64), "0x", "1.2"],
        );
        check(
            PortName::schema(),
            &|s| s.parse::<SwitchPort>().is_ok(),
            &["ge-0/0/3", "ae1", "xe-0/0/1:2", "", "a b", &"p".repeat(64), &"p".repeat(65)],
        );
        check(
            ChassisIdText::schema(),
            &|s| s.parse::<ChassisId>().is_ok(),
            &["00:1b:21:aa:bb:cc", "switch-1", " ", "a\u{7}b", "tab\there", &"c".repeat(128), &"c".repeat(129)],
        );
        let host_name = text().pattern(Some(Hostname::NAME_PATTERN)).max_length(Some(Hostname::MAX_LEN)).into();
        check(
            host_name,
            &|s| s.parse::<Hostname>().is_ok() && s.parse::<std::net::IpAddr>().is_err(),
            &[
                "bmc1",
                "bmc-1.example.net",
                "-bad",
                "bad-",
                "a..b",
                "",
                "1.2.3",
                "10.0.0.1x",
                "x_y",
                &format!("{}.b", "a".repeat(63)),
                &format!("{}.b", "a".repeat(64)),
            ],
        );
    }
}
