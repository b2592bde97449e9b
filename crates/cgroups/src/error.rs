//! Error type: every variant names the cgroup file (or field) involved and what was attempted.

use std::io;
use std::path::PathBuf;

/// `Result` alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors from cgroup operations. The Display text always names the file or field.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing a cgroup file failed, e.g.
    /// `cgroup /sys/fs/cgroup/memory/x/memory.limit_in_bytes: write "100": Device or resource busy`.
    #[error("cgroup {}: write {value:?}: {}{hint}", path.display(), errno_text(source))]
    Write {
        path: PathBuf,
        value: String,
        source: io::Error,
        /// Extra explanation (starts with "; ") or empty.
        hint: String,
    },
    /// Reading a cgroup file failed.
    #[error("cgroup {}: read: {}", path.display(), errno_text(source))]
    Read { path: PathBuf, source: io::Error },
    /// A directory operation (mkdir, rmdir, open, readdir) failed.
    #[error("cgroup {}: {op}: {}", path.display(), errno_text(source))]
    Dir {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    /// A cgroup file had content we could not parse.
    #[error("cgroup {}: cannot parse {content:?}: {reason}", path.display())]
    Parse {
        path: PathBuf,
        content: String,
        reason: String,
    },
    /// `linux.cgroupsPath` is malformed.
    #[error("linux.cgroupsPath {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },
    /// A resource field has an invalid value.
    #[error("linux.resources.{field}: invalid value {value:?}: {reason}")]
    InvalidValue {
        field: &'static str,
        value: String,
        reason: String,
    },
    /// A resource was requested but its controller is not available on this host.
    #[error("linux.resources.{field}: cgroup controller {controller:?} is not available{hint}")]
    ControllerMissing {
        controller: String,
        field: &'static str,
        /// Extra explanation (starts with "; ") or empty.
        hint: String,
    },
    /// The host cgroup layout could not be determined.
    #[error("cgroup layout ({}): {reason}", source_file.display())]
    Layout {
        source_file: PathBuf,
        reason: String,
    },
    /// An operation needs a hierarchy this cgroup does not have.
    #[error("cgroup: {what} is not supported here: {reason}")]
    Unsupported { what: &'static str, reason: String },
    /// Waiting for the kernel to reach a state took too long.
    #[error("cgroup {}: timed out waiting for {what}", path.display())]
    Timeout { path: PathBuf, what: String },
    /// cgroup v2: the cgroup we nest under holds processes, so it cannot enable controllers
    /// for its children, and moving those processes to a leaf failed.
    #[error(
        "cgroup {dir}: it holds processes ({pids}), so controllers cannot be enabled for child \
         cgroups (cgroup v2 \"no internal processes\" rule); moving them to {dir}/{leaf} failed: \
         {reason}. Move them to a leaf cgroup yourself (mkdir {dir}/{leaf}; for p in $(cat \
         {dir}/cgroup.procs); do echo $p > {dir}/{leaf}/cgroup.procs; done; echo +memory +cpu \
         +pids > {dir}/cgroup.subtree_control), or give an absolute linux.cgroupsPath in a cgroup \
         without processes",
        dir = dir.display()
    )]
    Delegation {
        dir: PathBuf,
        leaf: &'static str,
        pids: String,
        reason: String,
    },
    /// A system call outside the cgroup filesystem failed (eventfd, inotify, kill...).
    #[error("cgroup: {call}: {}", errno_text(source))]
    Sys { call: String, source: io::Error },
}

/// The OS error text without Rust's " (os error N)" suffix: "Device or resource busy".
pub(crate) fn errno_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None => e.to_string(),
    }
}

impl Error {
    /// The underlying errno, if any.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Write { source, .. }
            | Error::Read { source, .. }
            | Error::Dir { source, .. }
            | Error::Sys { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_error_names_file_value_and_errno() {
        let e = Error::Write {
            path: "/sys/fs/cgroup/memory/x/memory.limit_in_bytes".into(),
            value: "100".into(),
            source: io::Error::from_raw_os_error(libc::EBUSY),
            hint: String::new(),
        };
        assert_eq!(
            e.to_string(),
            "cgroup /sys/fs/cgroup/memory/x/memory.limit_in_bytes: write \"100\": Device or resource busy"
        );
        assert_eq!(e.raw_os_error(), Some(libc::EBUSY));
    }

    #[test]
    fn controller_missing_names_field_and_controller() {
        let e = Error::ControllerMissing {
            controller: "hugetlb".into(),
            field: "hugepageLimits",
            hint: String::new(),
        };
        assert!(e.to_string().contains("hugepageLimits"));
        assert!(e.to_string().contains("\"hugetlb\""));
    }
}
