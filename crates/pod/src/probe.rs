//! Probe result state machine, as kubelet's prober worker (pkg/kubelet/prober/worker.go,
//! prober_manager.go UpdatePodStatus, results/results_manager.go).
//!
//! - Defaults: initialDelaySeconds 0, periodSeconds 10, timeoutSeconds 1,
//!   successThreshold 1, failureThreshold 3 (SetDefaults_Probe).
//! - Published result before any probe: readiness Failure, liveness Success,
//!   startup Unknown.
//! - A raw result is published only after `successThreshold` (resp.
//!   `failureThreshold`) equal results in a row.
//! - Until the startup probe succeeds, liveness and readiness do not run;
//!   once it has, startup stops running.
//! - A published liveness or startup Failure puts the worker on hold (the
//!   container is to be killed); [`ProbeWorker::new_container`] resumes it.
//! - Prober errors (the probe could not be run) are not results: don't record them.
//! - Timing: nothing runs before `startedAt + initialDelaySeconds`; then a
//!   probe is due every `periodSeconds` after the previous run. (kubelet adds
//!   a random initial jitter; podrun probes at the first due time.)
//!
//! Times are `Duration`s since any fixed origin; nothing here reads a clock.

use k8s_openapi::api::core::v1::Probe;
use std::time::Duration;

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

/// A probe result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeResult {
    Success,
    Failure,
    Unknown,
}

/// Effective probe timing and thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSettings {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        ProbeSettings {
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            success_threshold: 1,
            failure_threshold: 3,
        }
    }
}

impl ProbeSettings {
    /// Settings of a manifest probe; unset or non-positive values take the
    /// defaults (validation rejects negative ones before this).
    pub fn from_probe(p: &Probe) -> Self {
        let d = ProbeSettings::default();
        let secs = |v: Option<i32>, def: Duration| match v {
            Some(v) if v > 0 => Duration::from_secs(v as u64),
            _ => def,
        };
        let count = |v: Option<i32>, def: u32| match v {
            Some(v) if v > 0 => v as u32,
            _ => def,
        };
        ProbeSettings {
            initial_delay: match p.initial_delay_seconds {
                Some(v) if v > 0 => Duration::from_secs(v as u64),
                _ => Duration::ZERO,
            },
            period: secs(p.period_seconds, d.period),
            timeout: secs(p.timeout_seconds, d.timeout),
            success_threshold: count(p.success_threshold, d.success_threshold),
            failure_threshold: count(p.failure_threshold, d.failure_threshold),
        }
    }
}

/// What the supervisor must do after a published change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeAction {
    /// Nothing beyond updating status (readiness changes, startup success).
    None,
    /// Liveness or startup failed: kill the container (then restart policy).
    KillContainer,
}

/// One probe of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeWorker {
    pub kind: ProbeKind,
    pub settings: ProbeSettings,
    published: ProbeResult,
    last_raw: Option<ProbeResult>,
    run: u32,
    on_hold: bool,
    last_run: Option<Duration>,
}

/// The published result a probe starts with.
pub fn initial_result(kind: ProbeKind) -> ProbeResult {
    match kind {
        ProbeKind::Readiness => ProbeResult::Failure,
        ProbeKind::Liveness => ProbeResult::Success,
        ProbeKind::Startup => ProbeResult::Unknown,
    }
}

impl ProbeWorker {
    pub fn new(kind: ProbeKind, settings: ProbeSettings) -> Self {
        ProbeWorker {
            kind,
            settings,
            published: initial_result(kind),
            last_raw: None,
            run: 0,
            on_hold: false,
            last_run: None,
        }
    }

    /// The published result.
    pub fn result(&self) -> ProbeResult {
        self.published
    }

    /// On hold after a published liveness/startup failure.
    pub fn on_hold(&self) -> bool {
        self.on_hold
    }

    /// A new container instance (restart): back to the initial result.
    pub fn new_container(&mut self) {
        self.published = initial_result(self.kind);
        self.last_raw = None;
        self.run = 0;
        self.on_hold = false;
        self.last_run = None;
    }

    /// When the next probe may run (absolute), or None if this probe does
    /// not run now (on hold, or gated by `started`).
    /// `started_at`: the container's start; `started`: startup has succeeded
    /// (or there is no startup probe).
    pub fn next_due(&self, started_at: Duration, started: bool) -> Option<Duration> {
        if self.on_hold {
            return None;
        }
        match (self.kind, started) {
            (ProbeKind::Startup, true) => return None,
            (ProbeKind::Liveness | ProbeKind::Readiness, false) => return None,
            _ => {}
        }
        let earliest = started_at + self.settings.initial_delay;
        Some(match self.last_run {
            Some(last) => (last + self.settings.period).max(earliest),
            None => earliest,
        })
    }

    /// Is a probe due at `now`?
    pub fn is_due(&self, started_at: Duration, started: bool, now: Duration) -> bool {
        self.next_due(started_at, started)
            .is_some_and(|due| now >= due)
    }

    /// A probe ran at `now` but could not produce a result (a prober error):
    /// the period restarts, the streak of results is kept (kubelet throws
    /// the result away).
    pub fn ran_without_result(&mut self, now: Duration) {
        self.last_run = Some(now);
    }

    /// Records a raw result obtained by a probe run at `now`. Returns the
    /// newly published result and the action when the published result
    /// changed (or a liveness/startup failure was published).
    pub fn record(
        &mut self,
        raw: ProbeResult,
        now: Duration,
    ) -> Option<(ProbeResult, ProbeAction)> {
        self.last_run = Some(now);
        if self.last_raw == Some(raw) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last_raw = Some(raw);
            self.run = 1;
        }
        let below = match raw {
            ProbeResult::Failure => self.run < self.settings.failure_threshold,
            ProbeResult::Success => self.run < self.settings.success_threshold,
            ProbeResult::Unknown => true,
        };
        if below {
            return None;
        }
        let changed = self.published != raw;
        self.published = raw;
        let kill = raw == ProbeResult::Failure
            && matches!(self.kind, ProbeKind::Liveness | ProbeKind::Startup);
        if kill {
            self.on_hold = true;
            self.run = 0;
            return Some((raw, ProbeAction::KillContainer));
        }
        changed.then_some((raw, ProbeAction::None))
    }
}

/// Container `started` (UpdatePodStatus): running and startup succeeded (or no startup probe).
pub fn container_started(running: bool, startup: Option<&ProbeWorker>) -> bool {
    running && startup.is_none_or(|w| w.result() == ProbeResult::Success)
}

/// Container `ready`: started, and readiness succeeded (or no readiness probe).
pub fn container_ready(running: bool, started: bool, readiness: Option<&ProbeWorker>) -> bool {
    running && started && readiness.is_none_or(|w| w.result() == ProbeResult::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: u64) -> Duration {
        Duration::from_secs(x)
    }

    #[test]
    fn defaults_and_from_probe() {
        let d = ProbeSettings::from_probe(&Probe::default());
        assert_eq!(d, ProbeSettings::default());
        assert_eq!(
            (
                d.period,
                d.timeout,
                d.success_threshold,
                d.failure_threshold
            ),
            (s(10), s(1), 1, 3)
        );
        let p = Probe {
            initial_delay_seconds: Some(5),
            period_seconds: Some(2),
            timeout_seconds: Some(3),
            success_threshold: Some(2),
            failure_threshold: Some(4),
            ..Default::default()
        };
        let x = ProbeSettings::from_probe(&p);
        assert_eq!(
            (
                x.initial_delay,
                x.period,
                x.timeout,
                x.success_threshold,
                x.failure_threshold
            ),
            (s(5), s(2), s(3), 2, 4)
        );
    }

    #[test]
    fn initial_results() {
        assert_eq!(
            ProbeWorker::new(ProbeKind::Readiness, Default::default()).result(),
            ProbeResult::Failure
        );
        assert_eq!(
            ProbeWorker::new(ProbeKind::Liveness, Default::default()).result(),
            ProbeResult::Success
        );
        assert_eq!(
            ProbeWorker::new(ProbeKind::Startup, Default::default()).result(),
            ProbeResult::Unknown
        );
    }

    #[test]
    fn liveness_needs_failure_threshold_in_a_row() {
        let mut w = ProbeWorker::new(ProbeKind::Liveness, ProbeSettings::default());
        assert_eq!(w.record(ProbeResult::Failure, s(1)), None);
        assert_eq!(w.record(ProbeResult::Failure, s(2)), None);
        assert_eq!(w.record(ProbeResult::Success, s(3)), None); // streak broken, still Success
        assert_eq!(w.record(ProbeResult::Failure, s(4)), None);
        assert_eq!(w.record(ProbeResult::Failure, s(5)), None);
        assert_eq!(
            w.record(ProbeResult::Failure, s(6)),
            Some((ProbeResult::Failure, ProbeAction::KillContainer))
        );
        assert!(w.on_hold());
        assert_eq!(w.next_due(s(0), true), None);
        w.new_container();
        assert_eq!(w.result(), ProbeResult::Success);
        assert!(!w.on_hold());
    }

    #[test]
    fn readiness_thresholds_both_ways() {
        let mut w = ProbeWorker::new(
            ProbeKind::Readiness,
            ProbeSettings {
                success_threshold: 2,
                failure_threshold: 2,
                ..Default::default()
            },
        );
        assert_eq!(w.record(ProbeResult::Success, s(1)), None);
        assert_eq!(
            w.record(ProbeResult::Success, s(2)),
            Some((ProbeResult::Success, ProbeAction::None))
        );
        assert_eq!(w.record(ProbeResult::Success, s(3)), None); // no change
        assert_eq!(w.record(ProbeResult::Failure, s(4)), None);
        assert_eq!(
            w.record(ProbeResult::Failure, s(5)),
            Some((ProbeResult::Failure, ProbeAction::None))
        );
        assert!(!w.on_hold()); // readiness keeps probing
        assert_eq!(w.record(ProbeResult::Unknown, s(6)), None);
        assert_eq!(w.result(), ProbeResult::Failure);
    }

    #[test]
    fn startup_success_and_failure() {
        let mut w = ProbeWorker::new(
            ProbeKind::Startup,
            ProbeSettings {
                failure_threshold: 2,
                ..Default::default()
            },
        );
        assert!(!container_started(true, Some(&w)));
        assert_eq!(
            w.record(ProbeResult::Success, s(1)),
            Some((ProbeResult::Success, ProbeAction::None))
        );
        assert!(container_started(true, Some(&w)));
        assert_eq!(w.next_due(s(0), true), None); // stops once started
        let mut f = ProbeWorker::new(
            ProbeKind::Startup,
            ProbeSettings {
                failure_threshold: 2,
                ..Default::default()
            },
        );
        assert_eq!(f.record(ProbeResult::Failure, s(1)), None);
        assert_eq!(
            f.record(ProbeResult::Failure, s(2)),
            Some((ProbeResult::Failure, ProbeAction::KillContainer))
        );
    }

    #[test]
    fn gating_by_startup() {
        let l = ProbeWorker::new(ProbeKind::Liveness, ProbeSettings::default());
        let r = ProbeWorker::new(ProbeKind::Readiness, ProbeSettings::default());
        assert_eq!(l.next_due(s(100), false), None);
        assert_eq!(r.next_due(s(100), false), None);
        assert_eq!(l.next_due(s(100), true), Some(s(100)));
        assert!(!container_ready(true, false, None));
        assert!(container_ready(true, true, None));
        assert!(!container_ready(true, true, Some(&r)));
        assert!(!container_ready(false, true, None));
        assert!(!container_started(false, None));
    }

    #[test]
    fn due_times() {
        let mut w = ProbeWorker::new(
            ProbeKind::Readiness,
            ProbeSettings {
                initial_delay: s(5),
                period: s(3),
                ..Default::default()
            },
        );
        let start = s(100);
        assert!(!w.is_due(start, true, s(104)));
        assert!(w.is_due(start, true, s(105)));
        w.record(ProbeResult::Success, s(105));
        assert_eq!(w.next_due(start, true), Some(s(108)));
        assert!(!w.is_due(start, true, s(107)));
        assert!(w.is_due(start, true, s(108)));
        w.new_container();
        // New container started at 200: the initial delay applies again.
        assert_eq!(w.next_due(s(200), true), Some(s(205)));
    }
}
