//! Small, allocation-light helpers for cgroupfs file I/O with errors that name the file.

use crate::error::{Error, Result};
use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Write `value` to an existing cgroup file (never creates it), in one write(2).
pub(crate) fn write(path: &Path, value: &str) -> Result<()> {
    write_raw(path, value).map_err(|source| Error::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
        hint: String::new(),
    })
}

/// Like [`write`] but returns the raw io::Error so callers can add a hint.
pub(crate) fn write_raw(path: &Path, value: &str) -> io::Result<()> {
    open_for_write(path)?.write_all(value.as_bytes())
}

/// A cgroup file opened for writing (each write(2) on it is one value or rule).
pub(crate) fn open_for_write(path: &Path) -> io::Result<std::fs::File> {
    OpenOptions::new().write(true).open(path)
}

/// Read a cgroup file to a string.
pub(crate) fn read(path: &Path) -> Result<String> {
    read_raw(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// open + read until EOF + close: no fstat/lseek for a size hint as `read_to_string` makes
/// (cgroupfs and procfs files report size 0 or 4096 anyway), and a first buffer large
/// enough for every cgroup file and a typical /proc/self/mountinfo.
pub(crate) fn read_raw(path: &Path) -> io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 8192];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match f.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    String::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

pub(crate) fn parse_u64(path: &Path, s: &str) -> Result<u64> {
    s.trim().parse::<u64>().map_err(|e| Error::Parse {
        path: path.to_path_buf(),
        content: s.trim().to_string(),
        reason: e.to_string(),
    })
}

/// Find `key value` in a flat-keyed file (memory.events, cpu.stat, memory.oom_control...).
pub(crate) fn keyed_value(path: &Path, content: &str, key: &str) -> Result<Option<u64>> {
    for line in content.lines() {
        let mut it = line.split_ascii_whitespace();
        if it.next() == Some(key) {
            let v = it.next().unwrap_or("");
            return parse_u64(path, v).map(Some);
        }
    }
    Ok(None)
}

/// Parse a cgroup.procs / tasks listing.
pub(crate) fn parse_pids(path: &Path, content: &str) -> Result<Vec<i32>> {
    content
        .split_ascii_whitespace()
        .map(|t| {
            t.parse::<i32>().map_err(|e| Error::Parse {
                path: path.to_path_buf(),
                content: t.to_string(),
                reason: e.to_string(),
            })
        })
        .collect()
}

pub(crate) fn dir_err(path: &Path, op: &'static str, source: io::Error) -> Error {
    Error::Dir {
        path: path.to_path_buf(),
        op,
        source,
    }
}

/// Sub-directories (child cgroups) of a cgroup directory. Missing dir = empty list.
/// cgroupfs (kernfs) keeps a directory's link count at 2 + number of subdirectories, so one
/// stat(2) answers the common "no children" case without a readdir.
pub(crate) fn child_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.nlink() <= 2 => return Ok(Vec::new()),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(dir_err(dir, "stat", e)),
    }
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(dir_err(dir, "readdir", e)),
    };
    let mut out = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| dir_err(dir, "readdir", e))?;
        if ent.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            out.push(ent.path());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_raw_reads_whole_files_of_any_size() {
        let d = std::env::temp_dir().join(format!("podrun-fsio-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        for n in [0usize, 1, 8191, 8192, 8193, 40000] {
            let f = d.join(format!("f{n}"));
            let text: String = (0..n).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            std::fs::write(&f, &text).unwrap();
            assert_eq!(read_raw(&f).unwrap(), text, "size {n}");
        }
        std::fs::remove_dir_all(&d).unwrap();
        let mi = read_raw(Path::new("/proc/self/mountinfo")).unwrap();
        assert!(mi.ends_with('\n') && mi.lines().count() > 3);
    }

    #[test]
    fn keyed_values() {
        let p = Path::new("memory.events");
        let c = "low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(keyed_value(p, c, "oom_kill").unwrap(), Some(2));
        assert_eq!(keyed_value(p, c, "oom").unwrap(), Some(1));
        assert_eq!(keyed_value(p, c, "nope").unwrap(), None);
        assert!(keyed_value(p, "oom_kill x\n", "oom_kill").is_err());
    }

    #[test]
    fn pids_parse() {
        let p = Path::new("cgroup.procs");
        assert_eq!(parse_pids(p, "1\n22\n333\n").unwrap(), vec![1, 22, 333]);
        assert_eq!(parse_pids(p, "").unwrap(), Vec::<i32>::new());
        assert!(parse_pids(p, "1\nabc\n").is_err());
    }
}
