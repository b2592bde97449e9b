//! Logging: `tracing` events to stderr (text) or to `--log FILE` as runc does
//! (`--log-format json` gives one JSON object a line with `level`, `msg`, `time`,
//! which is what containerd's shim reads back on failure).

use crate::GlobalOpts;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Mutex;
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
            let v = serde_json::json!({"level": lvl, "msg": msg, "time": podrun_container::util::rfc3339_now()});
            format!("{v}\n")
        } else {
            format!(
                "time=\"{}\" level={} msg={:?}\n",
                podrun_container::util::rfc3339_now(),
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
