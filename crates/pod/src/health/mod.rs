//! Probes and lifecycle hooks, run by the single-threaded pod supervisor.
//!
//! [`ContainerHealth`] is owned by the supervisor per container. It keeps one
//! [`ProbeWorker`] per configured probe (liveness, readiness, startup), starts
//! probe runs when due and a hook run on request, and advances them without
//! blocking: [`ContainerHealth::poll_fds`] and [`ContainerHealth::next_deadline`]
//! go into the supervisor's `poll`, [`ContainerHealth::step`] returns what
//! happened as [`HealthEvent`]s.
//!
//! Kinds: `tcpSocket` (a connect from a socket created in the pod's network
//! namespace), `httpGet` (HTTP/1.1 or HTTPS without verification over such a
//! socket, kubelet's headers and redirect rule), `exec` (the engine's exec in
//! the container's namespaces and cgroup, from a forked helper), and for hooks
//! `sleep`. See docs/pods.md "Probes".

pub mod action;
pub mod exec;
pub mod grpc;
pub mod http;
pub mod net;
pub mod tls;

use crate::probe::{ProbeAction, ProbeKind, ProbeResult, ProbeSettings, ProbeWorker};
use action::{ExecTarget, Inflight, Outcome};
use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use net::NetNs;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A handler that cannot be run as configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HealthError {
    #[error("container {container:?}: {what}: port {port:?} is not a containerPort name of the container")]
    NoNamedPort {
        container: String,
        what: String,
        port: String,
    },
    #[error("container {container:?}: {what}: port {port} is out of range 1-65535")]
    BadPort {
        container: String,
        what: String,
        port: i32,
    },
    #[error("container {container:?}: {what}: no handler (exec, httpGet, tcpSocket{sleep})")]
    NoHandler {
        container: String,
        what: String,
        sleep: &'static str,
    },
    #[error("container {container:?}: {what}: {msg}")]
    Unsupported {
        container: String,
        what: String,
        msg: String,
    },
}

/// An httpGet action, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSpec {
    pub scheme: http::Scheme,
    pub host: String,
    pub port: u16,
    pub path: String,
    /// `httpHeaders` in order.
    pub headers: Vec<(String, String)>,
}

/// A probe or hook handler, resolved against the container (named ports) and the pod IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handler {
    Exec(Vec<String>),
    Tcp {
        host: String,
        port: u16,
    },
    Http(HttpSpec),
    /// grpc.health.v1 Check on the pod IP (plaintext HTTP/2).
    Grpc {
        host: String,
        port: u16,
        service: String,
    },
    Sleep(Duration),
}

/// `port` as a number, or the `containerPort` of the container's port with that name.
pub fn resolve_port(port: &IntOrString, c: &Container, what: &str) -> Result<u16, HealthError> {
    let n = match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(s) => match s.parse::<i32>() {
            Ok(n) => n,
            Err(_) => c
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(s.as_str()))
                .map(|p| p.container_port)
                .ok_or_else(|| HealthError::NoNamedPort {
                    container: c.name.clone(),
                    what: what.into(),
                    port: s.clone(),
                })?,
        },
    };
    u16::try_from(n)
        .ok()
        .filter(|p| *p > 0)
        .ok_or(HealthError::BadPort {
            container: c.name.clone(),
            what: what.into(),
            port: n,
        })
}

fn http_spec(
    h: &k8s_openapi::api::core::v1::HTTPGetAction,
    c: &Container,
    pod_ip: &str,
    what: &str,
) -> Result<HttpSpec, HealthError> {
    let scheme = match h
        .scheme
        .as_deref()
        .unwrap_or("HTTP")
        .to_ascii_uppercase()
        .as_str()
    {
        "HTTP" => http::Scheme::Http,
        "HTTPS" => http::Scheme::Https,
        other => {
            return Err(HealthError::Unsupported {
                container: c.name.clone(),
                what: what.into(),
                msg: format!("scheme {other:?} (HTTP or HTTPS)"),
            })
        }
    };
    Ok(HttpSpec {
        scheme,
        host: h
            .host
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| pod_ip.into()),
        port: resolve_port(&h.port, c, what)?,
        path: h.path.clone().unwrap_or_default(),
        headers: h
            .http_headers
            .iter()
            .flatten()
            .map(|x| (x.name.clone(), x.value.clone()))
            .collect(),
    })
}

fn tcp(
    t: &k8s_openapi::api::core::v1::TCPSocketAction,
    c: &Container,
    pod_ip: &str,
    what: &str,
) -> Result<Handler, HealthError> {
    Ok(Handler::Tcp {
        host: t
            .host
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| pod_ip.into()),
        port: resolve_port(&t.port, c, what)?,
    })
}

/// The handler of a probe (`what` names it in errors, e.g. `livenessProbe`).
pub fn probe_handler(
    p: &Probe,
    c: &Container,
    pod_ip: &str,
    what: &str,
) -> Result<Handler, HealthError> {
    if let Some(e) = &p.exec {
        return Ok(Handler::Exec(e.command.clone().unwrap_or_default()));
    }
    if let Some(h) = &p.http_get {
        return Ok(Handler::Http(http_spec(h, c, pod_ip, what)?));
    }
    if let Some(t) = &p.tcp_socket {
        return tcp(t, c, pod_ip, what);
    }
    if let Some(g) = &p.grpc {
        return Ok(Handler::Grpc {
            host: pod_ip.into(),
            port: resolve_port(&IntOrString::Int(g.port), c, what)?,
            service: g.service.clone().unwrap_or_default(),
        });
    }
    Err(HealthError::NoHandler {
        container: c.name.clone(),
        what: what.into(),
        sleep: "",
    })
}

/// The handler of a lifecycle hook (`what`: `postStart` or `preStop`).
pub fn hook_handler(
    h: &LifecycleHandler,
    c: &Container,
    pod_ip: &str,
    what: &str,
) -> Result<Handler, HealthError> {
    if let Some(e) = &h.exec {
        return Ok(Handler::Exec(e.command.clone().unwrap_or_default()));
    }
    if let Some(x) = &h.http_get {
        return Ok(Handler::Http(http_spec(x, c, pod_ip, what)?));
    }
    if let Some(s) = &h.sleep {
        return Ok(Handler::Sleep(Duration::from_secs(s.seconds.max(0) as u64)));
    }
    if let Some(t) = &h.tcp_socket {
        return tcp(t, c, pod_ip, what);
    }
    Err(HealthError::NoHandler {
        container: c.name.clone(),
        what: what.into(),
        sleep: ", sleep",
    })
}

/// Which lifecycle hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    PostStart,
    PreStop,
}

impl HookKind {
    pub fn field(self) -> &'static str {
        match self {
            HookKind::PostStart => "postStart",
            HookKind::PreStop => "preStop",
        }
    }
}

/// kubelet's capitalized probe type for messages (`Liveness probe failed: ...`).
pub fn probe_name(k: ProbeKind) -> &'static str {
    match k {
        ProbeKind::Liveness => "Liveness",
        ProbeKind::Readiness => "Readiness",
        ProbeKind::Startup => "Startup",
    }
}

/// What happened in a [`ContainerHealth::step`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthEvent {
    /// A probe's published result changed; `kill` for a published liveness or
    /// startup failure (kill the container, then restart per policy).
    Result {
        kind: ProbeKind,
        result: ProbeResult,
        kill: bool,
    },
    /// A probe run failed or errored: event `Unhealthy` (Warning) with this message.
    Unhealthy { kind: ProbeKind, message: String },
    /// A probe succeeded with a warning (redirect to another host): event `ProbeWarning`.
    Warning { kind: ProbeKind, message: String },
    /// A hook finished: Ok, or Err with the reason.
    Hook {
        kind: HookKind,
        result: Result<(), String>,
    },
}

/// The last run of a probe, for `describe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastRun {
    pub at: Instant,
    pub success: bool,
    pub message: String,
    /// Wall-clock time since which runs have had this outcome and message.
    pub since: std::time::SystemTime,
}

/// A probe's state for `describe` (`<pod_dir>/probes.json`, keyed by
/// container then `liveness`/`readiness`/`startup`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProbeReport {
    /// Published result: Success, Failure or Unknown.
    pub result: String,
    /// The last run's outcome, if any run finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Unix seconds since which runs have had this outcome and message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
}

/// The file the supervisor keeps probe reports in, under the pod dir.
pub const PROBES_FILE: &str = "probes.json";

/// Container name → probe name → report.
pub type ProbeReports =
    std::collections::BTreeMap<String, std::collections::BTreeMap<String, ProbeReport>>;

/// Reads `<pod_dir>/probes.json` (empty if missing or unreadable).
pub fn read_probe_reports(pod_dir: &std::path::Path) -> ProbeReports {
    std::fs::read(pod_dir.join(PROBES_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Writes `<pod_dir>/probes.json` atomically.
pub fn write_probe_reports(pod_dir: &std::path::Path, r: &ProbeReports) -> std::io::Result<()> {
    let tmp = pod_dir.join("probes.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(r).expect("json"))?;
    std::fs::rename(&tmp, pod_dir.join(PROBES_FILE))
}

struct ProbeSlot {
    worker: ProbeWorker,
    handler: Result<Handler, HealthError>,
    grace: Option<Duration>,
    inflight: Option<Inflight>,
    last: Option<LastRun>,
}

struct HookSlot {
    kind: HookKind,
    /// Running, or finished at once (reported by the next step).
    state: Result<Inflight, Outcome>,
}

/// Where a container's probes and hooks run.
#[derive(Debug, Clone)]
pub struct HealthTarget {
    /// The engine's state root and the container id, for exec.
    pub state_root: PathBuf,
    pub container_id: String,
    /// The pod's net namespace pin; None with hostNetwork.
    pub netns: Option<PathBuf>,
    /// Default host for tcpSocket/httpGet: the pod IP.
    pub pod_ip: String,
}

/// Probes and hooks of one container.
pub struct ContainerHealth {
    container: Container,
    target: HealthTarget,
    exec: ExecTarget,
    net: NetNs,
    /// Origin of the `Duration`s given to the probe workers.
    t0: Instant,
    /// Container start; None while probes are off (not running, or postStart running).
    started_at: Option<Instant>,
    probes: Vec<ProbeSlot>,
    hook: Option<HookSlot>,
    /// Bumped when a report changes (a published result, or a run's outcome/message).
    changes: u64,
}

impl std::fmt::Debug for ContainerHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerHealth")
            .field("container", &self.container.name)
            .field("started_at", &self.started_at)
            .field("probes", &self.probes.len())
            .finish()
    }
}

impl ContainerHealth {
    /// Probes of `c` (none run until [`ContainerHealth::container_started`]).
    /// Opens the pod's network namespace pin.
    pub fn new(target: HealthTarget, c: &Container) -> std::io::Result<ContainerHealth> {
        let net = NetNs::open(target.netns.as_deref())?;
        let mut probes = Vec::new();
        for (kind, p, what) in [
            (ProbeKind::Startup, &c.startup_probe, "startupProbe"),
            (ProbeKind::Liveness, &c.liveness_probe, "livenessProbe"),
            (ProbeKind::Readiness, &c.readiness_probe, "readinessProbe"),
        ] {
            let Some(p) = p else { continue };
            probes.push(ProbeSlot {
                worker: ProbeWorker::new(kind, ProbeSettings::from_probe(p)),
                handler: probe_handler(p, c, &target.pod_ip, what),
                grace: p
                    .termination_grace_period_seconds
                    .map(|s| Duration::from_secs(s.max(0) as u64)),
                inflight: None,
                last: None,
            });
        }
        Ok(ContainerHealth {
            container: c.clone(),
            exec: ExecTarget {
                state_root: target.state_root.clone(),
                container_id: target.container_id.clone(),
            },
            target,
            net,
            t0: Instant::now(),
            started_at: None,
            probes,
            hook: None,
            changes: 0,
        })
    }

    /// The target (container id, netns, pod IP).
    pub fn target(&self) -> &HealthTarget {
        &self.target
    }

    /// A (new) container instance is running (after postStart): probes start
    /// from their initial results, timed from `started_at`.
    pub fn container_started(&mut self, started_at: Instant) {
        for p in &mut self.probes {
            if let Some(r) = p.inflight.take() {
                r.cancel();
            }
            p.worker.new_container();
        }
        self.changes += 1;
        self.started_at = Some(started_at);
    }

    /// The container stopped (or is being stopped): probe runs are cancelled
    /// and no more start. Results go back to their initial values.
    pub fn container_stopped(&mut self) {
        for p in &mut self.probes {
            if let Some(r) = p.inflight.take() {
                r.cancel();
            }
            p.worker.new_container();
        }
        self.changes += 1;
        self.started_at = None;
    }

    /// Does the container have this hook?
    pub fn has_hook(&self, kind: HookKind) -> bool {
        let l = self.container.lifecycle.as_ref();
        match kind {
            HookKind::PostStart => l.and_then(|l| l.post_start.as_ref()).is_some(),
            HookKind::PreStop => l.and_then(|l| l.pre_stop.as_ref()).is_some(),
        }
    }

    /// Starts hook `kind` (cancelling a running one). `budget`: how long it may
    /// take (preStop: the grace period); None: no limit. Returns false if the
    /// container has no such hook. Failures that happen at once are reported
    /// by the next [`ContainerHealth::step`].
    pub fn start_hook(&mut self, kind: HookKind, now: Instant, budget: Option<Duration>) -> bool {
        self.cancel_hook();
        let l = self.container.lifecycle.as_ref();
        let h = match kind {
            HookKind::PostStart => l.and_then(|l| l.post_start.as_ref()),
            HookKind::PreStop => l.and_then(|l| l.pre_stop.as_ref()),
        };
        let Some(h) = h else { return false };
        let handler = hook_handler(h, &self.container, &self.target.pod_ip, kind.field());
        let state = match handler {
            Ok(h) => Inflight::start(&h, &self.net, &self.exec, now, budget),
            Err(e) => Err(Outcome::Error(e.to_string())),
        };
        self.hook = Some(HookSlot { kind, state });
        true
    }

    /// Is a hook running?
    pub fn hook_running(&self) -> Option<HookKind> {
        self.hook.as_ref().map(|h| h.kind)
    }

    /// Abandons a running hook (its exec process group is killed).
    pub fn cancel_hook(&mut self) {
        if let Some(HookSlot { state: Ok(r), .. }) = self.hook.take() {
            r.cancel();
        }
    }

    fn worker(&self, kind: ProbeKind) -> Option<&ProbeWorker> {
        self.probes
            .iter()
            .find(|p| p.worker.kind == kind)
            .map(|p| &p.worker)
    }

    /// Has the probe `kind`?
    pub fn has_probe(&self, kind: ProbeKind) -> bool {
        self.worker(kind).is_some()
    }

    /// The published result of probe `kind` (None: no such probe).
    pub fn result(&self, kind: ProbeKind) -> Option<ProbeResult> {
        self.worker(kind).map(|w| w.result())
    }

    /// Container `started` (running, and startup succeeded or there is no startup probe).
    pub fn started(&self) -> bool {
        crate::probe::container_started(self.started_at.is_some(), self.worker(ProbeKind::Startup))
    }

    /// Container `ready`.
    pub fn ready(&self) -> bool {
        crate::probe::container_ready(
            self.started_at.is_some(),
            self.started(),
            self.worker(ProbeKind::Readiness),
        )
    }

    /// The probe's own `terminationGracePeriodSeconds`, if set.
    pub fn probe_grace(&self, kind: ProbeKind) -> Option<Duration> {
        self.probes
            .iter()
            .find(|p| p.worker.kind == kind)
            .and_then(|p| p.grace)
    }

    /// The last run of probe `kind`.
    pub fn last_run(&self, kind: ProbeKind) -> Option<&LastRun> {
        self.probes
            .iter()
            .find(|p| p.worker.kind == kind)
            .and_then(|p| p.last.as_ref())
    }

    /// Descriptors to poll (fd, events) for the runs in flight.
    pub fn poll_fds(&self) -> Vec<(RawFd, i16)> {
        let mut v = Vec::new();
        for p in &self.probes {
            if let Some(r) = &p.inflight {
                v.extend(r.poll_fds());
            }
        }
        if let Some(HookSlot { state: Ok(r), .. }) = &self.hook {
            v.extend(r.poll_fds());
        }
        v
    }

    /// The earliest time [`ContainerHealth::step`] has something to do
    /// without fd activity: a probe due, a timeout, a sleep ending.
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut best: Option<Instant> = None;
        let mut take = |t: Option<Instant>| {
            if let Some(t) = t {
                best = Some(best.map_or(t, |b| b.min(t)));
            }
        };
        if let Some(h) = &self.hook {
            match &h.state {
                Ok(r) => take(r.next_deadline()),
                Err(_) => take(Some(self.t0)),
            }
        }
        let started = self.started();
        for p in &self.probes {
            match (&p.inflight, self.started_at) {
                (Some(r), _) => take(r.next_deadline()),
                (None, Some(at)) => take(
                    p.worker
                        .next_due(at.saturating_duration_since(self.t0), started)
                        .map(|d| self.t0 + d),
                ),
                (None, None) => {}
            }
        }
        best
    }

    /// Advances runs in flight, starts due probes, and reports what happened.
    pub fn step(&mut self, now: Instant) -> Vec<HealthEvent> {
        let mut ev = Vec::new();
        // The hook.
        if let Some(h) = &mut self.hook {
            let out = match &mut h.state {
                Ok(r) => r.advance(&self.net, now),
                Err(o) => Some(o.clone()),
            };
            if let Some(o) = out {
                let kind = h.kind;
                self.hook = None;
                ev.push(HealthEvent::Hook {
                    kind,
                    result: match o {
                        Outcome::Success { .. } => Ok(()),
                        Outcome::Failure(m) | Outcome::Error(m) => Err(m),
                    },
                });
            }
        }
        let Some(started_at) = self.started_at else {
            return ev;
        };
        let rel = |t: Instant| t.saturating_duration_since(self.t0);
        let start_rel = rel(started_at);
        // Probe runs in flight, then due ones (startup first: its success
        // ungates liveness and readiness in the same step).
        for i in 0..self.probes.len() {
            let started = self.started();
            let p = &mut self.probes[i];
            let outcome = match &mut p.inflight {
                Some(r) => match r.advance(&self.net, now) {
                    Some(o) => {
                        p.inflight = None;
                        Some(o)
                    }
                    None => None,
                },
                None if p.worker.is_due(start_rel, started, rel(now)) => {
                    let h = match &p.handler {
                        Ok(h) => Ok(h.clone()),
                        Err(e) => Err(Outcome::Error(e.to_string())),
                    };
                    let started_run = h.and_then(|h| {
                        Inflight::start(
                            &h,
                            &self.net,
                            &self.exec,
                            now,
                            Some(p.worker.settings.timeout),
                        )
                    });
                    match started_run {
                        Ok(mut r) => match r.advance(&self.net, now) {
                            Some(o) => Some(o),
                            None => {
                                p.inflight = Some(r);
                                None
                            }
                        },
                        Err(o) => Some(o),
                    }
                }
                None => None,
            };
            let Some(o) = outcome else { continue };
            let kind = p.worker.kind;
            let name = probe_name(kind);
            let raw = match &o {
                Outcome::Success { message, warning } => {
                    if let Some(w) = warning {
                        ev.push(HealthEvent::Warning {
                            kind,
                            message: format!("{name} probe warning: {w}"),
                        });
                    }
                    set_last(p, &mut self.changes, now, true, message.clone());
                    ProbeResult::Success
                }
                Outcome::Failure(m) => {
                    ev.push(HealthEvent::Unhealthy {
                        kind,
                        message: format!("{name} probe failed: {m}"),
                    });
                    set_last(p, &mut self.changes, now, false, m.clone());
                    ProbeResult::Failure
                }
                Outcome::Error(m) => {
                    // kubelet: a prober error is not a result (the time still counts as a run).
                    ev.push(HealthEvent::Unhealthy {
                        kind,
                        message: format!("{name} probe errored: {m}"),
                    });
                    set_last(p, &mut self.changes, now, false, m.clone());
                    ProbeResult::Unknown
                }
            };
            if raw == ProbeResult::Unknown {
                p.worker.ran_without_result(rel(now));
                continue;
            }
            if let Some((result, action)) = p.worker.record(raw, rel(now)) {
                self.changes += 1;
                ev.push(HealthEvent::Result {
                    kind,
                    result,
                    kill: action == ProbeAction::KillContainer,
                });
            }
        }
        ev
    }
}

fn set_last(p: &mut ProbeSlot, changes: &mut u64, now: Instant, success: bool, message: String) {
    let same = p
        .last
        .as_ref()
        .is_some_and(|l| l.success == success && l.message == message);
    let since = match &p.last {
        Some(l) if same => l.since,
        _ => {
            *changes += 1;
            std::time::SystemTime::now()
        }
    };
    p.last = Some(LastRun {
        at: now,
        success,
        message,
        since,
    });
}

impl ContainerHealth {
    /// A counter bumped whenever [`ContainerHealth::reports`] would change.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Reports of every probe, keyed `liveness`/`readiness`/`startup`.
    pub fn reports(&self) -> std::collections::BTreeMap<String, ProbeReport> {
        self.probes
            .iter()
            .map(|p| {
                let key = match p.worker.kind {
                    ProbeKind::Liveness => "liveness",
                    ProbeKind::Readiness => "readiness",
                    ProbeKind::Startup => "startup",
                };
                (
                    key.to_string(),
                    ProbeReport {
                        result: format!("{:?}", p.worker.result()),
                        last_success: p.last.as_ref().map(|l| l.success),
                        message: p.last.as_ref().map(|l| l.message.clone()),
                        since: p.last.as_ref().and_then(|l| {
                            l.since
                                .duration_since(std::time::UNIX_EPOCH)
                                .ok()
                                .map(|d| d.as_secs() as i64)
                        }),
                    },
                )
            })
            .collect()
    }
}

impl Drop for ContainerHealth {
    fn drop(&mut self) {
        self.cancel_hook();
        for p in &mut self.probes {
            if let Some(r) = p.inflight.take() {
                r.cancel();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn container(v: serde_json::Value) -> Container {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn named_and_numeric_ports() {
        let c = container(serde_json::json!({"name": "web", "ports": [
            {"name": "http", "containerPort": 8080}, {"containerPort": 9000}]}));
        let p = |v: IntOrString| resolve_port(&v, &c, "livenessProbe");
        assert_eq!(p(IntOrString::Int(81)), Ok(81));
        assert_eq!(p(IntOrString::String("http".into())), Ok(8080));
        assert_eq!(p(IntOrString::String("8081".into())), Ok(8081));
        let e = p(IntOrString::String("metrics".into()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"metrics\"") && e.contains("\"web\"") && e.contains("livenessProbe"),
            "{e}"
        );
        assert!(p(IntOrString::Int(0)).is_err() && p(IntOrString::Int(70000)).is_err());
    }

    #[test]
    fn handlers_from_manifest() {
        let c = container(
            serde_json::json!({"name": "c", "ports": [{"name": "h", "containerPort": 80}],
            "livenessProbe": {"httpGet": {"path": "healthz", "port": "h", "scheme": "HTTPS",
                "httpHeaders": [{"name": "X-A", "value": "1"}]}},
            "readinessProbe": {"tcpSocket": {"port": 5432, "host": "10.0.0.2"}},
            "startupProbe": {"exec": {"command": ["cat", "/tmp/ok"]}},
            "lifecycle": {"preStop": {"sleep": {"seconds": 3}}, "postStart": {}}}),
        );
        let h = probe_handler(
            c.liveness_probe.as_ref().unwrap(),
            &c,
            "127.0.0.1",
            "livenessProbe",
        );
        assert_eq!(
            h,
            Ok(Handler::Http(HttpSpec {
                scheme: http::Scheme::Https,
                host: "127.0.0.1".into(),
                port: 80,
                path: "healthz".into(),
                headers: vec![("X-A".into(), "1".into())],
            }))
        );
        assert_eq!(
            probe_handler(c.readiness_probe.as_ref().unwrap(), &c, "127.0.0.1", "r"),
            Ok(Handler::Tcp {
                host: "10.0.0.2".into(),
                port: 5432
            })
        );
        assert_eq!(
            probe_handler(c.startup_probe.as_ref().unwrap(), &c, "127.0.0.1", "s"),
            Ok(Handler::Exec(vec!["cat".into(), "/tmp/ok".into()]))
        );
        let l = c.lifecycle.as_ref().unwrap();
        assert_eq!(
            hook_handler(l.pre_stop.as_ref().unwrap(), &c, "127.0.0.1", "preStop"),
            Ok(Handler::Sleep(Duration::from_secs(3)))
        );
        assert!(
            hook_handler(l.post_start.as_ref().unwrap(), &c, "127.0.0.1", "postStart")
                .unwrap_err()
                .to_string()
                .contains("postStart: no handler")
        );
        let g = container(
            serde_json::json!({"name": "g", "livenessProbe": {"grpc": {"port": 9090, "service": "s"}}}),
        );
        assert_eq!(
            probe_handler(g.liveness_probe.as_ref().unwrap(), &g, "127.0.0.1", "l"),
            Ok(Handler::Grpc {
                host: "127.0.0.1".into(),
                port: 9090,
                service: "s".into()
            })
        );
    }

    fn host_target() -> HealthTarget {
        HealthTarget {
            state_root: PathBuf::from("/nonexistent"),
            container_id: "none".into(),
            netns: None,
            pod_ip: "127.0.0.1".into(),
        }
    }

    /// Runs `h.step` in a poll loop until `pred` on the events or `limit`.
    fn drive(
        h: &mut ContainerHealth,
        limit: Duration,
        mut pred: impl FnMut(&HealthEvent) -> bool,
        mut serve: impl FnMut(),
    ) -> Vec<HealthEvent> {
        let end = Instant::now() + limit;
        let mut all = Vec::new();
        while Instant::now() < end {
            serve();
            let mut fds: Vec<libc::pollfd> = h
                .poll_fds()
                .into_iter()
                .map(|(fd, events)| libc::pollfd {
                    fd,
                    events,
                    revents: 0,
                })
                .collect();
            let wait = h
                .next_deadline()
                .map(|d| d.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_millis(50))
                .min(Duration::from_millis(50));
            // SAFETY: valid pollfd array.
            unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as _, wait.as_millis() as i32) };
            let ev = h.step(Instant::now());
            let hit = ev.iter().any(&mut pred);
            all.extend(ev);
            if hit {
                break;
            }
        }
        all
    }

    #[test]
    fn host_network_tcp_and_http_probes_drive_results() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let c = container(serde_json::json!({"name": "c",
            "readinessProbe": {"httpGet": {"path": "/ready", "port": port,
                "httpHeaders": [{"name": "X-Probe", "value": "yes"}]}, "periodSeconds": 1},
            "livenessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1}}));
        let mut h = ContainerHealth::new(host_target(), &c).unwrap();
        assert!(!h.ready() && !h.started());
        assert!(
            h.step(Instant::now()).is_empty(),
            "no probes before the container runs"
        );
        h.container_started(Instant::now());
        assert!(h.started() && !h.ready());
        let mut seen_req = String::new();
        let ev = drive(
            &mut h,
            Duration::from_secs(5),
            |e| {
                matches!(
                    e,
                    HealthEvent::Result {
                        kind: ProbeKind::Readiness,
                        ..
                    }
                )
            },
            || {
                if let Ok((mut s, _)) = l.accept() {
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_millis(200)))
                        .unwrap();
                    let mut b = [0u8; 2048];
                    if let Ok(n) = s.read(&mut b) {
                        if n > 0 {
                            seen_req = String::from_utf8_lossy(&b[..n]).into_owned();
                            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                        }
                    }
                }
            },
        );
        assert!(
            ev.contains(&HealthEvent::Result {
                kind: ProbeKind::Readiness,
                result: ProbeResult::Success,
                kill: false
            }),
            "{ev:?}"
        );
        assert!(h.ready());
        assert!(
            seen_req.starts_with("GET /ready HTTP/1.1\r\n"),
            "{seen_req}"
        );
        assert!(
            seen_req.contains("X-Probe: yes\r\n") && seen_req.contains("User-Agent: kube-probe/")
        );
        // Close the port: liveness fails 3 times in a row, then kill.
        drop(l);
        let ev = drive(
            &mut h,
            Duration::from_secs(10),
            |e| {
                matches!(
                    e,
                    HealthEvent::Result {
                        kind: ProbeKind::Liveness,
                        ..
                    }
                )
            },
            || {},
        );
        assert!(
            ev.contains(&HealthEvent::Result {
                kind: ProbeKind::Liveness,
                result: ProbeResult::Failure,
                kill: true
            }),
            "{ev:?}"
        );
        let unhealthy = ev
            .iter()
            .filter(|e| matches!(e, HealthEvent::Unhealthy { kind: ProbeKind::Liveness, message } if message.contains("connection refused")))
            .count();
        assert_eq!(unhealthy, 3, "{ev:?}");
        assert!(h.last_run(ProbeKind::Liveness).is_some_and(|r| !r.success));
    }

    #[test]
    fn sleep_hook_and_budget() {
        let c = container(serde_json::json!({"name": "c",
            "lifecycle": {"preStop": {"sleep": {"seconds": 5}}}}));
        let mut h = ContainerHealth::new(host_target(), &c).unwrap();
        assert!(!h.has_hook(HookKind::PostStart) && h.has_hook(HookKind::PreStop));
        assert!(!h.start_hook(HookKind::PostStart, Instant::now(), None));
        let t = Instant::now();
        assert!(h.start_hook(HookKind::PreStop, t, Some(Duration::from_millis(200))));
        assert_eq!(h.hook_running(), Some(HookKind::PreStop));
        assert_eq!(h.next_deadline(), Some(t + Duration::from_millis(200)));
        assert!(h.step(t + Duration::from_millis(100)).is_empty());
        let ev = h.step(t + Duration::from_millis(200));
        assert!(
            matches!(&ev[..], [HealthEvent::Hook { kind: HookKind::PreStop, result: Err(m) }] if m.contains("grace")),
            "{ev:?}"
        );
        assert!(h.start_hook(HookKind::PreStop, t, None));
        assert_eq!(
            h.step(t + Duration::from_secs(5)),
            vec![HealthEvent::Hook {
                kind: HookKind::PreStop,
                result: Ok(())
            }]
        );
        assert_eq!(h.hook_running(), None);
    }
}
