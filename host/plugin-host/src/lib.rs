//! The plugin runtime (issue 3).
