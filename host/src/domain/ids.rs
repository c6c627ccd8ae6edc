//! Typed row ids, so a node id can never be passed where a switch id is expected, and the
//! id-or-name key the CLI and URL paths use.

macro_rules! id_type {
    ($name:ident) => {
        // Transparent on the wire: the API shows ids as plain integers.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(NodeId);
id_type!(SwitchId);
id_type!(ImageId);
id_type!(InstanceId);
id_type!(TaskId);
id_type!(EventId);
id_type!(ProjectId);
id_type!(UserId);
id_type!(TokenId);

/// A row looked up by id or by name, as the CLI and the URL paths allow.
#[derive(Debug, Clone)]
pub enum Key {
    Id(i64),
    Name(String),
}

impl Key {
    pub fn parse(s: &str) -> Key {
        s.parse().map(Key::Id).unwrap_or_else(|_| Key::Name(s.to_owned()))
    }

    /// Does this key name the row with this id and name?
    pub fn matches(&self, id: i64, name: &str) -> bool {
        match self {
            Key::Id(i) => *i == id,
            Key::Name(n) => n == name,
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Id(id) => write!(f, "{id}"),
            Key::Name(name) => write!(f, "{name:?}"),
        }
    }
}
