//! Why a workflow step failed, typed end to end: the driver's kind survives from the plugin to the
//! node's `last_error`, the retry decision and the API's status code.

use std::time::Duration;

use crate::domain::{FailureKind, ProvisionState};
use crate::drivers::DriverFailure;
use crate::store::StoreError;
use crate::store::last_error::LastError;

/// What went wrong inside a step, before it is pinned to the step's name.
#[derive(Debug, thiserror::Error)]
pub enum Fault {
    #[error(transparent)]
    Driver(#[from] DriverFailure),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The agent's task failed (the kind its result carried), or there is none to wait for.
    #[error("{message}")]
    Agent { kind: FailureKind, message: String },
    /// The node's record does not allow the step (it holds no instance, ...).
    #[error("{0}")]
    Internal(String),
}

impl Fault {
    pub fn kind(&self) -> FailureKind {
        match self {
            Fault::Driver(d) => d.kind,
            Fault::Agent { kind, .. } => *kind,
            Fault::Store(_) | Fault::Internal(_) => FailureKind::Internal,
        }
    }

    /// Worth another attempt: a transient kind, or a store call that may succeed as it is (a lost
    /// session, a serialization failure), although its kind stays `internal` if it never does.
    pub fn is_transient(&self) -> bool {
        match self {
            Fault::Store(e) => e.is_transient(),
            other => other.kind().is_transient(),
        }
    }

    /// This daemon no longer holds (or can no longer count on) the node's lease.
    pub fn is_fenced(&self) -> bool {
        matches!(self, Fault::Store(StoreError::LeaseLost(_)))
    }

    pub fn at(self, step: &'static str) -> StepFailure {
        match self {
            Fault::Driver(source) => StepFailure::Driver { step, source },
            Fault::Store(source) => StepFailure::Store { step, source },
            Fault::Agent { kind, message } => StepFailure::Agent { step, kind, message },
            Fault::Internal(message) => StepFailure::Internal { step, message },
        }
    }
}

/// A step that failed: which one, and why.
#[derive(Debug, thiserror::Error)]
pub enum StepFailure {
    #[error("{step}: {source}")]
    Driver {
        step: &'static str,
        #[source]
        source: DriverFailure,
    },
    #[error("{step}: {source}")]
    Store {
        step: &'static str,
        #[source]
        source: StoreError,
    },
    #[error("{step}: {message}")]
    Agent { step: &'static str, kind: FailureKind, message: String },
    #[error("{step}: the node did not leave {state} within its deadline ({} s)", budget.as_secs())]
    Deadline { step: &'static str, state: ProvisionState, budget: Duration },
    #[error("{step}: {message}")]
    Internal { step: &'static str, message: String },
}

impl StepFailure {
    pub fn step(&self) -> &'static str {
        match self {
            StepFailure::Driver { step, .. }
            | StepFailure::Store { step, .. }
            | StepFailure::Agent { step, .. }
            | StepFailure::Deadline { step, .. }
            | StepFailure::Internal { step, .. } => step,
        }
    }

    pub fn kind(&self) -> FailureKind {
        match self {
            StepFailure::Driver { source, .. } => source.kind,
            StepFailure::Agent { kind, .. } => *kind,
            StepFailure::Deadline { .. } => FailureKind::Deadline,
            StepFailure::Store { .. } | StepFailure::Internal { .. } => FailureKind::Internal,
        }
    }

    /// Why this daemon must stop driving the node, when that is the failure: another daemon took
    /// the lease, or it may have run out (fencing, store/cluster.rs). Not the node's failure.
    pub fn fenced(&self) -> Option<&str> {
        match self {
            StepFailure::Store { source: StoreError::LeaseLost(why), .. } => Some(why),
            _ => None,
        }
    }

    /// The record kept on the node and its instance.
    pub fn to_last_error(&self) -> LastError {
        let (plugin, operation, message) = match self {
            StepFailure::Driver { source, .. } => (Some(source.plugin.clone()), Some(source.operation.clone()), source.message.clone()),
            StepFailure::Store { source, .. } => (None, None, source.to_string()),
            StepFailure::Agent { message, .. } | StepFailure::Internal { message, .. } => (None, None, message.clone()),
            StepFailure::Deadline { state, budget, .. } => {
                (None, None, format!("the node did not leave {state} within its deadline ({} s)", budget.as_secs()))
            }
        };
        LastError { step: Some(self.step().to_owned()), plugin, operation, kind: Some(self.kind()), message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_driver_failure_keeps_its_kind_plugin_and_operation() {
        let driver = DriverFailure {
            plugin: "ipmitool".into(),
            operation: "set-boot-device".into(),
            kind: FailureKind::AuthFailed,
            message: "RAKP 2 HMAC is invalid".into(),
        };
        let failure = Fault::from(driver).at("boot device -> pxe");
        assert_eq!(failure.kind(), FailureKind::AuthFailed);
        assert!(std::error::Error::source(&failure).is_some());
        let record = failure.to_last_error();
        assert_eq!(
            (record.step.as_deref(), record.plugin.as_deref(), record.operation.as_deref(), record.kind),
            (Some("boot device -> pxe"), Some("ipmitool"), Some("set-boot-device"), Some(FailureKind::AuthFailed))
        );
        assert_eq!(record.to_string(), failure.to_string());
    }

    #[test]
    fn an_agent_failure_keeps_the_kind_its_result_carried() {
        let fault = Fault::Agent { kind: FailureKind::Transport, message: "the agent's deploy task failed: downloading the image: HTTP 503".into() };
        assert_eq!(fault.kind(), FailureKind::Transport);
        let failure = fault.at("agent writes the image");
        assert_eq!(failure.kind(), FailureKind::Transport);
        let record = failure.to_last_error();
        assert_eq!((record.kind, record.plugin.as_deref()), (Some(FailureKind::Transport), None));
        assert_eq!(record.message, "the agent's deploy task failed: downloading the image: HTTP 503");
        assert_eq!(record.to_string(), "agent writes the image: transport: the agent's deploy task failed: downloading the image: HTTP 503");
    }
}
