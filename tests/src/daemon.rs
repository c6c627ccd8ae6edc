//! Test helper: daemon (to be written).
