//! When to try a failed step again: capped exponential backoff with jitter, only for transient
//! failure kinds, and only while the pause and another attempt as long as the last still fit
//! before the state's deadline (so the step fails with its own error, not the deadline's).

use std::time::Duration;

use tokio::time::Instant;

/// Slack left before the deadline beyond the next attempt's expected length.
const ATTEMPT_MARGIN: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The pause before attempt `attempt + 1` (the first failure is attempt 1): `initial` doubled
    /// per further failure, capped at `max`, then scaled by `unit` in [0, 1) into its upper half, so
    /// runners that failed together (every node behind one locked switch) do not retry in step.
    pub fn pause(&self, attempt: u32, unit: f64) -> Duration {
        let doubled = self.initial.saturating_mul(1u32.checked_shl(attempt.saturating_sub(1)).unwrap_or(u32::MAX));
        let capped = doubled.min(self.max);
        capped.mul_f64(0.5 + unit.clamp(0.0, 1.0) / 2.0)
    }

    /// The pause before the next attempt, or None when the failure is permanent or the pause and
    /// an attempt twice as long as the last (`took`), plus a margin, would end past `deadline` (no
    /// deadline: no retry, as for an operator's request).
    /// `transient`: the failure's kind is (`FailureKind::is_transient`), or it is a store error that
    /// another attempt may not meet (`StoreError::is_transient`).
    pub fn next_if(&self, transient: bool, attempt: u32, took: Duration, deadline: Option<Instant>) -> Option<Duration> {
        if !transient {
            return None;
        }
        let pause = self.pause(attempt, rand::random::<f64>());
        let deadline = deadline?;
        // The next attempt may well take longer than the last (a loaded host, a slower answer):
        // room for twice as long plus a margin, so the step still ends with its own error.
        (Instant::now() + pause + took.saturating_mul(2) + ATTEMPT_MARGIN < deadline).then_some(pause)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::FailureKind;

    impl Backoff {
        fn next(&self, kind: FailureKind, attempt: u32, took: Duration, deadline: Option<Instant>) -> Option<Duration> {
            self.next_if(kind.is_transient(), attempt, took, deadline)
        }
    }

    fn backoff() -> Backoff {
        Backoff { initial: Duration::from_millis(500), max: Duration::from_secs(8) }
    }

    #[test]
    fn doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let b = backoff();
        let top: Vec<u64> = (1..=7).map(|a| b.pause(a, 1.0).as_millis() as u64).collect();
        assert_eq!(top, [500, 1000, 2000, 4000, 8000, 8000, 8000]);
        assert_eq!(b.pause(3, 0.0), Duration::from_millis(1000));
        assert_eq!(b.pause(200, 0.5), Duration::from_millis(6000), "a huge attempt count stays capped");
    }

    #[tokio::test]
    async fn permanent_kinds_and_a_near_deadline_stop_retrying() {
        let b = backoff();
        let far = Some(Instant::now() + Duration::from_secs(60));
        let quick = Duration::from_millis(10);
        assert!(b.next(FailureKind::Unreachable, 1, quick, far).is_some());
        assert!(b.next(FailureKind::SwitchLocked, 4, quick, far).is_some());
        for permanent in [FailureKind::AuthFailed, FailureKind::InvalidConfig, FailureKind::NotFound, FailureKind::Unsupported] {
            assert_eq!(b.next(permanent, 1, quick, far), None, "{permanent}");
        }
        assert_eq!(b.next(FailureKind::Unreachable, 1, quick, Some(Instant::now() + Duration::from_millis(100))), None);
        // A 250..500 ms pause + 2 × 10 ms + the margin need 770..1020 ms.
        assert_eq!(b.next(FailureKind::Unreachable, 1, quick, Some(Instant::now() + Duration::from_millis(700))), None);
        assert!(b.next(FailureKind::Unreachable, 1, quick, Some(Instant::now() + Duration::from_millis(1100))).is_some());
        assert_eq!(b.next(FailureKind::Unreachable, 1, Duration::from_secs(60), far), None, "a slow attempt must fit too");
        assert_eq!(b.next(FailureKind::Unreachable, 1, quick, None), None);
    }
}
