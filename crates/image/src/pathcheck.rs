//! Pure path rules for layer entries: nothing may name a place outside the layer directory.

use crate::error::{Error, Result};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Normalise a tar member name (or hard link target) to a path relative to the layer root.
/// Leading `/` and `./` are dropped, `.` and empty components skipped; `..` anywhere is refused.
/// An empty result means the layer root itself.
pub fn normalize_member(name: &[u8]) -> Result<PathBuf> {
    let shown = || String::from_utf8_lossy(name).into_owned();
    if name.contains(&0) {
        return Err(Error::unsafe_entry(shown(), "NUL byte in name"));
    }
    let mut out = PathBuf::new();
    for comp in name.split(|b| *b == b'/') {
        match comp {
            b"" | b"." => continue,
            b".." => {
                return Err(Error::unsafe_entry(
                    shown(),
                    "path contains '..' (would escape the layer directory)",
                ))
            }
            c => out.push(OsStr::from_bytes(c)),
        }
    }
    Ok(out)
}

/// Does a symlink at `link` (relative to the layer root) with this target point above the root?
/// Absolute targets are resolved against the container's root at run time, so they stay inside.
pub fn symlink_escapes(link: &Path, target: &[u8]) -> bool {
    if target.first() == Some(&b'/') {
        return false;
    }
    let mut depth: i64 = link
        .parent()
        .map(|p| p.components().count() as i64)
        .unwrap_or(0);
    for comp in target.split(|b| *b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

/// What a `.wh.` entry means.
#[derive(Debug, PartialEq, Eq)]
pub enum Whiteout<'a> {
    /// Not a whiteout.
    None,
    /// `.wh..wh..opq`: the parent directory hides everything below it.
    Opaque,
    /// `.wh.NAME`: NAME is deleted.
    Remove(&'a OsStr),
    /// Other `.wh..wh.` aufs bookkeeping files: ignored.
    Meta,
}

pub fn whiteout(file_name: &OsStr) -> Whiteout<'_> {
    let b = file_name.as_bytes();
    if b == b".wh..wh..opq" {
        Whiteout::Opaque
    } else if b.starts_with(b".wh..wh.") {
        Whiteout::Meta
    } else if let Some(rest) = b.strip_prefix(b".wh.") {
        Whiteout::Remove(OsStr::from_bytes(rest))
    } else {
        Whiteout::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        assert_eq!(normalize_member(b"./a/b").unwrap(), PathBuf::from("a/b"));
        assert_eq!(
            normalize_member(b"/etc//passwd").unwrap(),
            PathBuf::from("etc/passwd")
        );
        assert_eq!(normalize_member(b"./").unwrap(), PathBuf::new());
        assert_eq!(normalize_member(b"a/./b/").unwrap(), PathBuf::from("a/b"));
        assert!(normalize_member(b"../etc/passwd").is_err());
        assert!(normalize_member(b"a/../../b").is_err());
        assert!(normalize_member(b"a/..").is_err());
        assert!(normalize_member(b"a\0b").is_err());
    }

    #[test]
    fn symlink_escape_rules() {
        assert!(!symlink_escapes(Path::new("bin/sh"), b"busybox"));
        assert!(!symlink_escapes(Path::new("bin/sh"), b"/bin/busybox"));
        assert!(!symlink_escapes(Path::new("usr/lib/x"), b"../../etc/x"));
        assert!(symlink_escapes(Path::new("usr/lib/x"), b"../../../etc/x"));
        assert!(symlink_escapes(Path::new("evil"), b"../etc"));
        assert!(symlink_escapes(Path::new("a/b"), b"c/../../../x"));
        assert!(!symlink_escapes(Path::new("a/b"), b"c/../../x"));
    }

    #[test]
    fn whiteouts() {
        assert_eq!(whiteout(OsStr::new(".wh..wh..opq")), Whiteout::Opaque);
        assert_eq!(whiteout(OsStr::new(".wh..wh.plnk")), Whiteout::Meta);
        assert_eq!(
            whiteout(OsStr::new(".wh.foo")),
            Whiteout::Remove(OsStr::new("foo"))
        );
        assert_eq!(whiteout(OsStr::new("foo")), Whiteout::None);
    }
}
