//! Errors of the container engine. Every variant names the thing that failed
//! (the file, the field, the path) so the CLI can print one clear line.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("container \"{0}\" does not exist")]
    NotFound(String),
    #[error("container \"{0}\" already exists")]
    AlreadyExists(String),
    #[error("invalid container id \"{0}\": {1}")]
    InvalidId(String, &'static str),
    #[error("{path}: {msg}")]
    Config { path: PathBuf, msg: String },
    #[error("{field}: {msg}")]
    InvalidSpec { field: String, msg: String },
    #[error("container \"{id}\" is {status}: {msg}")]
    WrongState {
        id: String,
        status: String,
        msg: String,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Sys {
        what: String,
        #[source]
        source: nix::Error,
    },
    #[error("{0}")]
    Cgroup(#[from] podrun_cgroups::Error),
    #[error("{kind} hook {path} failed: {msg}")]
    Hook {
        kind: &'static str,
        path: String,
        msg: String,
    },
    #[error("{0}")]
    Other(String),
    /// The other end of the runtime/init channel is gone (it reports its own error).
    #[error("the runtime went away during {0}")]
    RuntimeGone(&'static str),
    /// The container's init could not switch to the sealed view of the binary (create.rs
    /// then seals the runtime itself and starts over).
    #[error("the container's init could not seal itself (CVE-2019-5736): {0}")]
    InitSeal(String),
    /// This process could not switch its executable to the sealed view of the binary in
    /// place (selfexe.rs, CVE-2019-5736): the command starts again from the view, which
    /// this descriptor holds (lifecycle.rs).
    #[error("podrun has to re-execute itself from its sealed binary")]
    Reexec(std::os::fd::OwnedFd),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An `Io` error for `what` on `path`.
    pub fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            what,
            path: path.into(),
            source,
        }
    }
    /// A syscall error, with a description of what was attempted.
    pub fn sys(what: impl Into<String>, source: nix::Error) -> Self {
        Error::Sys {
            what: what.into(),
            source,
        }
    }
    pub fn spec(field: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::InvalidSpec {
            field: field.into(),
            msg: msg.into(),
        }
    }
}

/// Shorthand: `.ctx("mount /proc")?` turns a `nix::Result` into our error.
pub trait SysContext<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> SysContext<T> for nix::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::sys(what(), e))
    }
}
