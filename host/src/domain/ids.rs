//! Typed row ids, so a node id can never be passed where a switch id is expected.

macro_rules! id_type {
    ($name:ident) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
