//! Logging: `tracing` events to stderr (text) or to `--log FILE` as runc does
//! (`--log-format json` gives one JSON object a line with `level`, `msg`, `time`,
//! which is what containerd's shim reads back on failure).

use crate::GlobalOpts;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::{field::Field, Event, Level, Metadata, Subscriber};

struct Sink {
    file: Option<Mutex<File>>,
    json: bool,
    max: Level,
}

pub struct Guard;

static SINK: std::sync::OnceLock<Sink> = std::sync::OnceLock::new();

pub fn init(g: &GlobalOpts) -> anyhow::Result<Guard> {
    let file = match &g.log {
        Some(p) => Some(Mutex::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| anyhow::anyhow!("--log {}: {e}", p.display()))?,
        )),
        None => None,
    };
    let max = if g.debug { Level::DEBUG } else { Level::WARN };
    let _ = SINK.set(Sink {
        file,
        json: g.log_format == "json",
        max,
    });
    let _ = tracing::subscriber::set_global_default(LineSubscriber);
    Ok(Guard)
}

/// Print a failed command's error: one line on stderr, and the same into the log file.
pub fn report_error(e: &anyhow::Error) {
    let msg = one_line(e);
    if let Some(s) = SINK.get() {
        if s.file.is_some() {
            s.write(Level::ERROR, &msg);
        }
    }
    eprintln!("podrun: {msg}");
}

/// The error and its causes on one line, skipping a cause whose text the message already
/// carries (library errors print their source themselves).
pub fn one_line(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let c = cause.to_string();
        if msg.contains(&c) {
            continue;
        }
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&c);
    }
    msg
}

impl Sink {
    fn write(&self, level: Level, msg: &str) {
        let line = if self.json {
            let lvl = level.as_str().to_ascii_lowercase();
            let v = serde_json::json!({"level": lvl, "msg": msg, "time": rfc3339_now()});
            format!("{v}\n")
        } else {
            format!(
                "time=\"{}\" level={} msg={:?}\n",
                rfc3339_now(),
                level.as_str().to_ascii_lowercase(),
                msg
            )
        };
        match &self.file {
            Some(f) => {
                if let Ok(mut f) = f.lock() {
                    let _ = f.write_all(line.as_bytes());
                }
            }
            None => {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
        }
    }
}

struct LineSubscriber;

struct MsgVisitor(String);
impl tracing::field::Visit for MsgVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

impl Subscriber for LineSubscriber {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        SINK.get().is_some_and(|s| *m.level() <= s.max)
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, e: &Event<'_>) {
        let mut v = MsgVisitor(String::new());
        e.record(&mut v);
        if let Some(s) = SINK.get() {
            s.write(*e.metadata().level(), &v.0);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// RFC 3339 UTC timestamp with nanoseconds, without a date crate.
pub fn rfc3339_now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(951782400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(rfc3339(1795436400, 0), "2026-11-23T09:00:00.000000000Z");
    }
}
