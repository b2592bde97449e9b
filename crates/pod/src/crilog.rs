//! CRI container log files, as kubelet reads them (pkg/kubelet/kuberuntime/logs/logs.go)
//! and containerd writes them (cio redirectLogs):
//!
//! `<RFC3339Nano timestamp> <stdout|stderr> <P|F> <content>\n`
//!
//! A line longer than the maximum (16 KiB by default, containerd's
//! `max_container_log_line_size`) is cut into `P` (partial) records of exactly
//! the maximum, the last piece being `F` (full). A final line without a
//! newline at end of stream is written as `P`, as containerd does. `\n` and a
//! `\r\n` line end are dropped from the content.
//!
//! Layout: `<root>/<namespace>_<name>_<uid>/<container>/<restart>.log`, root
//! `/var/log/podrun/pods` by default.

use k8s_openapi::jiff::Timestamp;
use std::path::{Path, PathBuf};

/// Default log root.
pub const DEFAULT_LOG_ROOT: &str = "/var/log/podrun/pods";
/// Default maximum content per record.
pub const DEFAULT_MAX_LINE: usize = 16 * 1024;

/// Output stream of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(&self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub timestamp: Timestamp,
    pub stream: Stream,
    pub partial: bool,
    pub content: Vec<u8>,
}

/// A line that is not a CRI log record (messages as in logs.go).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CriLogError {
    #[error("timestamp is not found")]
    NoTimestamp,
    #[error("unexpected timestamp format \"RFC3339Nano\": {0}")]
    BadTimestamp(String),
    #[error("stream type is not found")]
    NoStream,
    #[error("unexpected stream type {0:?}")]
    BadStream(String),
    #[error("log tag is not found")]
    NoTag,
}

/// Go's `time.RFC3339Nano` in UTC: fraction with trailing zeros trimmed,
/// none at all on a whole second (`2016-10-06T00:17:09.669794202Z`).
pub fn format_rfc3339_nano(ts: Timestamp) -> String {
    let secs = ts.as_second();
    let nanos = ts.subsec_nanosecond();
    let whole = Timestamp::from_second(secs).unwrap_or(ts);
    let base = whole.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    if nanos == 0 {
        format!("{base}Z")
    } else {
        let frac = format!("{nanos:09}");
        format!("{base}.{}Z", frac.trim_end_matches('0'))
    }
}

/// Appends one record (with its trailing newline) to `out`.
pub fn encode_record(
    ts: Timestamp,
    stream: Stream,
    partial: bool,
    content: &[u8],
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(format_rfc3339_nano(ts).as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_str().as_bytes());
    out.push(b' ');
    out.push(if partial { b'P' } else { b'F' });
    out.push(b' ');
    out.extend_from_slice(content);
    out.push(b'\n');
}

/// Turns a byte stream (one container stream) into CRI records.
#[derive(Debug, Clone)]
pub struct LogEncoder {
    stream: Stream,
    max_line: usize,
    buf: Vec<u8>,
}

impl LogEncoder {
    /// `max_line` of 0 means unlimited.
    pub fn new(stream: Stream, max_line: usize) -> Self {
        LogEncoder {
            stream,
            max_line,
            buf: Vec::new(),
        }
    }

    fn emit_partials(&mut self, ts: Timestamp, out: &mut Vec<u8>) {
        if self.max_line == 0 {
            return;
        }
        // Only cut when the pending content *exceeds* the maximum.
        while self.buf.len() > self.max_line {
            let rest = self.buf.split_off(self.max_line);
            encode_record(ts, self.stream, true, &self.buf, out);
            self.buf = rest;
        }
    }

    /// Feeds bytes read at `ts`; appends finished records to `out`.
    pub fn push(&mut self, data: &[u8], ts: Timestamp, out: &mut Vec<u8>) {
        let mut rest = data;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            self.buf.extend_from_slice(&rest[..nl]);
            rest = &rest[nl + 1..];
            if self.buf.last() == Some(&b'\r') {
                self.buf.pop();
            }
            self.emit_partials(ts, out);
            encode_record(ts, self.stream, false, &self.buf, out);
            self.buf.clear();
        }
        self.buf.extend_from_slice(rest);
        self.emit_partials(ts, out);
    }

    /// End of stream: an unterminated last line is written as partial.
    pub fn finish(&mut self, ts: Timestamp, out: &mut Vec<u8>) {
        if !self.buf.is_empty() {
            encode_record(ts, self.stream, true, &self.buf, out);
            self.buf.clear();
        }
    }
}

fn split_field(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let idx = line.iter().position(|&b| b == b' ')?;
    Some((&line[..idx], &line[idx + 1..]))
}

/// parseCRILog: decodes one line (with or without its trailing newline).
pub fn parse_line(line: &[u8]) -> Result<LogRecord, CriLogError> {
    let (ts, rest) = split_field(line).ok_or(CriLogError::NoTimestamp)?;
    let ts_str = String::from_utf8_lossy(ts);
    let timestamp: Timestamp = ts_str.parse().map_err(|e: k8s_openapi::jiff::Error| {
        CriLogError::BadTimestamp(format!("{ts_str:?}: {e}"))
    })?;
    let (stream, rest) = split_field(rest).ok_or(CriLogError::NoStream)?;
    let stream = match stream {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        other => {
            return Err(CriLogError::BadStream(
                String::from_utf8_lossy(other).into(),
            ))
        }
    };
    let (tag, content) = split_field(rest).ok_or(CriLogError::NoTag)?;
    // Tags are ':'-separated for forward compatibility; the first says P/F.
    let partial = tag.split(|&b| b == b':').next() == Some(b"P");
    let content = content.strip_suffix(b"\n").unwrap_or(content);
    Ok(LogRecord {
        timestamp,
        stream,
        partial,
        content: content.to_vec(),
    })
}

/// Joins partial records back into whole lines, per stream.
#[derive(Debug, Default)]
pub struct Reassembler {
    pending_out: Vec<u8>,
    pending_err: Vec<u8>,
}

impl Reassembler {
    /// Adds a record; returns the whole line (without newline) once complete.
    pub fn push(&mut self, rec: LogRecord) -> Option<(Timestamp, Stream, Vec<u8>)> {
        let pending = match rec.stream {
            Stream::Stdout => &mut self.pending_out,
            Stream::Stderr => &mut self.pending_err,
        };
        pending.extend_from_slice(&rec.content);
        if rec.partial {
            return None;
        }
        Some((rec.timestamp, rec.stream, std::mem::take(pending)))
    }
}

/// The current time, with nanoseconds.
pub fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::new(d.as_secs() as i64, d.subsec_nanos() as i32).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// `<root>/<namespace>_<name>_<uid>` (kubelet's BuildPodLogsDirectory).
pub fn pod_log_dir(root: &Path, namespace: &str, name: &str, uid: &str) -> PathBuf {
    root.join(format!("{namespace}_{name}_{uid}"))
}

/// `<pod dir>/<container>/<restart>.log` (kubelet's BuildContainerLogsDirectory + restartCount).
pub fn container_log_path(
    root: &Path,
    namespace: &str,
    name: &str,
    uid: &str,
    container: &str,
    restart: u32,
) -> PathBuf {
    pod_log_dir(root, namespace, name, uid)
        .join(container)
        .join(format!("{restart}.log"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn timestamp_format_is_go_rfc3339nano() {
        assert_eq!(
            format_rfc3339_nano(ts("2016-10-06T00:17:09.669794202Z")),
            "2016-10-06T00:17:09.669794202Z"
        );
        assert_eq!(
            format_rfc3339_nano(ts("2016-10-06T00:17:09.5Z")),
            "2016-10-06T00:17:09.5Z"
        );
        assert_eq!(
            format_rfc3339_nano(ts("2016-10-06T00:17:09Z")),
            "2016-10-06T00:17:09Z"
        );
        assert_eq!(
            format_rfc3339_nano(ts("2016-10-06T02:17:09.000001+02:00")),
            "2016-10-06T00:17:09.000001Z"
        );
    }

    #[test]
    fn encode_full_lines() {
        let t = ts("2024-01-02T03:04:05.1Z");
        let mut enc = LogEncoder::new(Stream::Stdout, DEFAULT_MAX_LINE);
        let mut out = vec![];
        enc.push(b"hello\nwor", t, &mut out);
        enc.push(b"ld\r\n\n", t, &mut out);
        enc.finish(t, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2024-01-02T03:04:05.1Z stdout F hello\n2024-01-02T03:04:05.1Z stdout F world\n2024-01-02T03:04:05.1Z stdout F \n"
        );
    }

    #[test]
    fn long_lines_are_split_into_partials() {
        let t = ts("2024-01-02T03:04:05Z");
        let mut enc = LogEncoder::new(Stream::Stderr, 4);
        let mut out = vec![];
        enc.push(b"abcd\nabcdefghij\nxyz", t, &mut out);
        enc.finish(t, &mut out);
        let s = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = s
            .lines()
            .map(|l| &l["2024-01-02T03:04:05Z stderr ".len()..])
            .collect();
        // Exactly max is not split; the unterminated tail is partial.
        assert_eq!(lines, vec!["F abcd", "P abcd", "P efgh", "F ij", "P xyz"]);
    }

    #[test]
    fn partials_emitted_before_newline_arrives() {
        let t = ts("2024-01-02T03:04:05Z");
        let mut enc = LogEncoder::new(Stream::Stdout, 3);
        let mut out = vec![];
        enc.push(b"abcdefg", t, &mut out);
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 2); // abc, def
        enc.push(b"\n", t, &mut out);
        let recs: Vec<LogRecord> = out
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| parse_line(l).unwrap())
            .collect();
        let mut r = Reassembler::default();
        let whole: Vec<_> = recs.into_iter().filter_map(|x| r.push(x)).collect();
        assert_eq!(whole.len(), 1);
        assert_eq!(whole[0].2, b"abcdefg");
    }

    #[test]
    fn parse_examples() {
        let r = parse_line(b"2016-10-06T00:17:09.669794202Z stdout F log content 1\n").unwrap();
        assert_eq!(r.stream, Stream::Stdout);
        assert!(!r.partial);
        assert_eq!(r.content, b"log content 1");
        assert_eq!(r.timestamp, ts("2016-10-06T00:17:09.669794202Z"));
        let r = parse_line(b"2016-10-06T00:17:10.113242941Z stderr P:x log content 2").unwrap();
        assert!(r.partial);
        assert_eq!(r.stream, Stream::Stderr);
        let r = parse_line(b"2016-10-06T00:17:10Z stdout F ").unwrap();
        assert_eq!(r.content, b"");
    }

    #[test]
    fn parse_errors() {
        assert_eq!(parse_line(b"nospace"), Err(CriLogError::NoTimestamp));
        assert!(matches!(
            parse_line(b"yesterday stdout F x"),
            Err(CriLogError::BadTimestamp(_))
        ));
        assert_eq!(
            parse_line(b"2016-10-06T00:17:10Z stdout"),
            Err(CriLogError::NoStream)
        );
        assert_eq!(
            parse_line(b"2016-10-06T00:17:10Z stdin F x"),
            Err(CriLogError::BadStream("stdin".into()))
        );
        assert_eq!(
            parse_line(b"2016-10-06T00:17:10Z stdout F"),
            Err(CriLogError::NoTag)
        );
    }

    #[test]
    fn roundtrip_interleaved_streams() {
        let t = ts("2024-05-06T07:08:09.123456789Z");
        let mut o = LogEncoder::new(Stream::Stdout, 5);
        let mut e = LogEncoder::new(Stream::Stderr, 5);
        let mut out = vec![];
        o.push(b"0123456", t, &mut out);
        e.push(b"err line\n", t, &mut out);
        o.push(b"789\n", t, &mut out);
        let mut r = Reassembler::default();
        let lines: Vec<_> = out
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .filter_map(|l| r.push(parse_line(l).unwrap()))
            .map(|(ts0, s, c)| (ts0, s, String::from_utf8(c).unwrap()))
            .collect();
        assert_eq!(
            lines,
            vec![
                (t, Stream::Stderr, "err line".into()),
                (t, Stream::Stdout, "0123456789".into())
            ]
        );
    }

    #[test]
    fn paths() {
        let p = container_log_path(
            Path::new(DEFAULT_LOG_ROOT),
            "default",
            "web",
            "1a2b",
            "nginx",
            3,
        );
        assert_eq!(
            p,
            PathBuf::from("/var/log/podrun/pods/default_web_1a2b/nginx/3.log")
        );
    }
}
