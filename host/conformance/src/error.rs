//! What stops the suite from running at all: the test bench, never the plugin.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{tool} is needed for the {kind} suite and was not found ({hint})")]
    MissingTool { tool: String, kind: &'static str, hint: &'static str },
    #[error("cannot start {what}: {source}")]
    Start { what: String, source: std::io::Error },
    #[error("{what} did not become ready: {detail}")]
    NotReady { what: String, detail: String },
    #[error("{0}")]
    Setup(String),
    #[error("interrupted by {0}; everything the suite started was stopped")]
    Interrupted(&'static str),
}
