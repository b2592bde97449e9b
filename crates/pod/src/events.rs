//! Pod events, as kubelet records them (pkg/kubelet/events/event.go reasons):
//! `Scheduled`, `Pulling`, `Pulled`, `Created`, `Started`, `Killing`,
//! `BackOff`, `Failed`, `OOMKilling`, `Unhealthy`, ...
//!
//! Like the API server's event correlator, a repeat of the same
//! (type, reason, object, message) is folded into the existing event: its
//! `count` rises and `last` moves. The log is a plain value written to
//! `<pod_dir>/events.json` by whoever records (the CLI before the supervisor
//! starts, then the supervisor); `describe` reads it. Pure: callers pass times.

use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Normal or Warning, as Kubernetes events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    Normal,
    Warning,
}

/// One (possibly folded) event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub type_: EventType,
    pub reason: String,
    /// `spec.containers{web}` style field path, or empty for the pod itself.
    pub object: String,
    pub message: String,
    pub count: u32,
    /// Seconds since the epoch (first and last occurrence).
    pub first: i64,
    pub last: i64,
}

/// Keeps at most this many distinct events (oldest dropped first).
pub const MAX_EVENTS: usize = 256;

/// The pod's events, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventLog {
    pub events: Vec<Event>,
}

impl EventLog {
    /// Records an event at `now`; a repeat of the latest identical event folds into it.
    pub fn record(
        &mut self,
        type_: EventType,
        reason: &str,
        object: &str,
        message: impl Into<String>,
        now: Timestamp,
    ) {
        let message = message.into();
        let t = now.as_second();
        if let Some(e) = self.events.iter_mut().rev().find(|e| {
            e.type_ == type_ && e.reason == reason && e.object == object && e.message == message
        }) {
            e.count += 1;
            e.last = t;
            return;
        }
        if self.events.len() >= MAX_EVENTS {
            self.events.remove(0);
        }
        self.events.push(Event {
            type_,
            reason: reason.into(),
            object: object.into(),
            message,
            count: 1,
            first: t,
            last: t,
        });
    }

    pub fn normal(&mut self, reason: &str, object: &str, message: impl Into<String>) {
        self.record(EventType::Normal, reason, object, message, now());
    }

    pub fn warning(&mut self, reason: &str, object: &str, message: impl Into<String>) {
        self.record(EventType::Warning, reason, object, message, now());
    }

    /// Events ordered by last occurrence (as `kubectl describe` shows them).
    pub fn by_last_seen(&self) -> Vec<&Event> {
        let mut v: Vec<&Event> = self.events.iter().collect();
        v.sort_by_key(|e| e.last);
        v
    }

    /// Reads `<pod_dir>/events.json` (empty if missing or unreadable).
    pub fn load(pod_dir: &Path) -> EventLog {
        std::fs::read(pod_dir.join(EVENTS_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Writes `<pod_dir>/events.json` atomically.
    pub fn save(&self, pod_dir: &Path) -> std::io::Result<()> {
        let tmp = pod_dir.join(".events.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(self).expect("events serialize"))?;
        std::fs::rename(&tmp, pod_dir.join(EVENTS_FILE))
    }
}

use crate::crilog::now;

/// File name of the event log in a pod's state dir.
pub const EVENTS_FILE: &str = "events.json";

/// The field path kubectl shows as an event's object for a container.
pub fn container_object(init: bool, name: &str) -> String {
    if init {
        format!("spec.initContainers{{{name}}}")
    } else {
        format!("spec.containers{{{name}}}")
    }
}

/// kubectl's age format: `5s`, `3m2s`, `4m`, `2h3m`, `5d`...
pub fn human_age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=119 => format!("{s}s"),
        120..=599 => {
            let (m, r) = (s / 60, s % 60);
            if r == 0 {
                format!("{m}m")
            } else {
                format!("{m}m{r}s")
            }
        }
        600..=10799 => format!("{}m", s / 60),
        10800..=86399 => {
            let (h, m) = (s / 3600, (s % 3600) / 60);
            if m == 0 {
                format!("{h}h")
            } else {
                format!("{h}h{m}m")
            }
        }
        _ => {
            let (d, h) = (s / 86400, (s % 86400) / 3600);
            if h == 0 || d >= 8 {
                format!("{d}d")
            } else {
                format!("{d}d{h}h")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn repeats_fold_with_count_and_times() {
        let mut l = EventLog::default();
        l.record(
            EventType::Warning,
            "BackOff",
            "spec.containers{c}",
            "back-off",
            ts(10),
        );
        l.record(
            EventType::Normal,
            "Started",
            "spec.containers{c}",
            "Started",
            ts(11),
        );
        l.record(
            EventType::Warning,
            "BackOff",
            "spec.containers{c}",
            "back-off",
            ts(30),
        );
        assert_eq!(l.events.len(), 2);
        assert_eq!(l.events[0].count, 2);
        assert_eq!((l.events[0].first, l.events[0].last), (10, 30));
        let order: Vec<&str> = l.by_last_seen().iter().map(|e| e.reason.as_str()).collect();
        assert_eq!(order, ["Started", "BackOff"]);
    }

    #[test]
    fn different_object_or_message_is_a_new_event() {
        let mut l = EventLog::default();
        l.record(EventType::Normal, "Started", "a", "m", ts(1));
        l.record(EventType::Normal, "Started", "b", "m", ts(1));
        l.record(EventType::Normal, "Started", "b", "n", ts(1));
        assert_eq!(l.events.len(), 3);
    }

    #[test]
    fn bounded() {
        let mut l = EventLog::default();
        for i in 0..(MAX_EVENTS + 5) {
            l.record(EventType::Normal, "X", "", i.to_string(), ts(i as i64));
        }
        assert_eq!(l.events.len(), MAX_EVENTS);
        assert_eq!(l.events[0].message, "5");
    }

    #[test]
    fn ages_like_kubectl() {
        assert_eq!(human_age(5), "5s");
        assert_eq!(human_age(119), "119s");
        assert_eq!(human_age(185), "3m5s");
        assert_eq!(human_age(240), "4m");
        assert_eq!(human_age(3000), "50m");
        assert_eq!(human_age(3 * 3600 + 120), "3h2m");
        assert_eq!(human_age(86400 + 3600), "1d1h");
        assert_eq!(human_age(10 * 86400 + 3600), "10d");
    }

    #[test]
    fn object_paths() {
        assert_eq!(container_object(false, "web"), "spec.containers{web}");
        assert_eq!(container_object(true, "init"), "spec.initContainers{init}");
    }

    #[test]
    fn save_and_load_roundtrip() {
        let d = tempfile::tempdir().unwrap();
        let mut l = EventLog::default();
        l.normal("Scheduled", "", "Successfully assigned default/p to host");
        l.save(d.path()).unwrap();
        assert_eq!(EventLog::load(d.path()), l);
        assert_eq!(EventLog::load(&d.path().join("nope")), EventLog::default());
    }
}
