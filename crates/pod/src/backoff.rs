//! kubelet's container restart back-off (CrashLoopBackOff).
//!
//! Mirrors client-go `util/flowcontrol/backoff.go` as kubelet uses it in
//! `doBackOff` (kuberuntime_manager.go): initial 10 s, doubling, capped at
//! 300 s; an entry expires (back-off resets) when the next event comes more
//! than 2 × max = 10 min after the last restart. Without jitter, as kubelet.
//!
//! Usage per container: when it has exited and should restart, call
//! [`RestartBackoff::check`] with the exit time (`finished_at`) and now. `Wait(d)`
//! means CrashLoopBackOff for `d` more; `Restart` means restart now (the entry
//! has already advanced, as `backOff.Next` does).
//!
//! Times are plain `Duration`s since any fixed origin (e.g. CLOCK_MONOTONIC
//! or the Unix epoch); nothing here reads a clock.
//!
//! `scale` multiplies every duration (initial, cap, reset window). It is the
//! knob tests use to make back-off fast (PODRUN_BACKOFF_SCALE, e.g. 0.01 turns
//! 10 s into 100 ms); 1.0 is kubelet's behaviour.

use std::time::Duration;

pub const INITIAL: Duration = Duration::from_secs(10);
pub const MAX: Duration = Duration::from_secs(300);

/// The decision for one restart attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackoffDecision {
    /// Restart now.
    Restart,
    /// Still backing off: try again after this much more time.
    Wait(Duration),
}

/// Back-off state of one container.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RestartBackoff {
    initial: Duration,
    max: Duration,
    /// Current back-off and when it was last advanced.
    entry: Option<(Duration, Duration)>,
}

impl Default for RestartBackoff {
    fn default() -> Self {
        Self::new(1.0)
    }
}

impl RestartBackoff {
    /// kubelet's back-off, every duration multiplied by `scale` (> 0; values
    /// that are not finite and positive are treated as 1.0).
    pub fn new(scale: f64) -> Self {
        let scale = if scale.is_finite() && scale > 0.0 {
            scale
        } else {
            1.0
        };
        RestartBackoff {
            initial: INITIAL.mul_f64(scale),
            max: MAX.mul_f64(scale),
            entry: None,
        }
    }

    /// Current back-off (the delay a crash now would impose), if any.
    pub fn current(&self) -> Option<Duration> {
        self.entry.map(|(b, _)| b)
    }

    fn expired(&self, event: Duration, last_update: Duration) -> bool {
        event.saturating_sub(last_update) > self.max * 2
    }

    /// IsInBackOffSince: time left before `finished_at + backoff`, if any.
    pub fn remaining(&self, finished_at: Duration, now: Duration) -> Option<Duration> {
        let (backoff, last) = self.entry?;
        if self.expired(finished_at, last) {
            return None;
        }
        let since = now.saturating_sub(finished_at);
        (since < backoff).then(|| backoff - since)
    }

    /// Next: advance the back-off for an event (a restart) at `event`,
    /// recorded as happening at `now`.
    pub fn next(&mut self, event: Duration, now: Duration) {
        let backoff = match self.entry {
            Some((b, last)) if !self.expired(event, last) => (b * 2).min(self.max),
            _ => self.initial,
        };
        self.entry = Some((backoff, now));
    }

    /// doBackOff: decide whether a container that exited at `finished_at`
    /// may restart at `now`; advances the state when it may.
    pub fn check(&mut self, finished_at: Duration, now: Duration) -> BackoffDecision {
        if let Some(left) = self.remaining(finished_at, now) {
            return BackoffDecision::Wait(left);
        }
        self.next(finished_at, now);
        BackoffDecision::Restart
    }

    /// Forget the history (the container is gone, e.g. pod restart).
    pub fn reset(&mut self) {
        self.entry = None;
    }
}

/// Parses a `PODRUN_BACKOFF_SCALE` value; None (use 1.0) when unset/invalid.
pub fn parse_scale(s: &str) -> Option<f64> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: u64) -> Duration {
        Duration::from_secs(x)
    }

    /// Simulates a container that crashes `run` seconds after every start.
    fn delays(b: &mut RestartBackoff, n: usize, run: u64) -> Vec<u64> {
        // Continue from the last restart recorded (or t=1000 s).
        let mut now = b.entry.map(|(_, last)| last).unwrap_or(s(1000));
        let mut out = vec![];
        for _ in 0..n {
            now += s(run); // it ran and exited
            let finished = now;
            let mut waited = 0;
            loop {
                match b.check(finished, now) {
                    BackoffDecision::Restart => break,
                    BackoffDecision::Wait(d) => {
                        waited += d.as_secs();
                        now += d;
                    }
                }
            }
            out.push(waited);
        }
        out
    }

    #[test]
    fn doubles_to_cap() {
        let mut b = RestartBackoff::default();
        assert_eq!(
            delays(&mut b, 9, 1),
            vec![0, 10, 20, 40, 80, 160, 300, 300, 300]
        );
        assert_eq!(b.current(), Some(s(300)));
    }

    #[test]
    fn resets_after_ten_minutes_of_running() {
        let mut b = RestartBackoff::default();
        delays(&mut b, 5, 1);
        assert_eq!(b.current(), Some(s(160)));
        // Runs 601 s after the last restart: the entry has expired.
        assert_eq!(delays(&mut b, 3, 601), vec![0, 0, 0]);
        assert_eq!(b.current(), Some(s(10)));
        // Exactly 600 s is not enough (kubelet uses a strict >).
        let mut b = RestartBackoff::default();
        delays(&mut b, 3, 1);
        assert_eq!(delays(&mut b, 1, 600), vec![40]);
        assert_eq!(b.current(), Some(s(80)));
    }

    #[test]
    fn time_already_elapsed_counts() {
        let mut b = RestartBackoff::default();
        assert_eq!(b.check(s(100), s(100)), BackoffDecision::Restart);
        // Crashed at 105, supervisor looks at 112: 3 s left of the 10 s.
        assert_eq!(b.check(s(105), s(112)), BackoffDecision::Wait(s(3)));
        assert_eq!(b.check(s(105), s(115)), BackoffDecision::Restart);
        assert_eq!(b.current(), Some(s(20)));
    }

    #[test]
    fn scale_shrinks_everything() {
        let mut b = RestartBackoff::new(0.01);
        assert_eq!(b.check(s(0), s(0)), BackoffDecision::Restart);
        assert_eq!(
            b.check(s(1), s(1)),
            BackoffDecision::Wait(Duration::from_millis(100))
        );
        let mut b = RestartBackoff::new(0.01);
        for _ in 0..20 {
            b.next(s(0), s(0));
        }
        assert_eq!(b.current(), Some(Duration::from_secs(3)));
        // The reset window scales too: 6 s instead of 600 s.
        assert_eq!(b.check(s(7), s(7)), BackoffDecision::Restart);
        assert_eq!(b.current(), Some(Duration::from_millis(100)));
        assert_eq!(RestartBackoff::new(-1.0), RestartBackoff::new(1.0));
        assert_eq!(RestartBackoff::new(f64::NAN), RestartBackoff::default());
    }

    #[test]
    fn reset_and_parse_scale() {
        let mut b = RestartBackoff::default();
        b.next(s(0), s(0));
        b.reset();
        assert_eq!(b.current(), None);
        assert_eq!(parse_scale("0.05"), Some(0.05));
        assert_eq!(parse_scale(" 2 "), Some(2.0));
        assert_eq!(parse_scale("0"), None);
        assert_eq!(parse_scale("fast"), None);
    }
}
