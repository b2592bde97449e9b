//! podrun-container: an OCI runtime engine. `config.json` in, a running container out:
//! namespaces, rootfs, process, hooks, seccomp, console, exec, and the state the OCI
//! command line reports. Knows nothing of pods.
//!
//! Process model: the runtime process forks the container's init with one `clone3`
//! (all new namespaces at once, straight into a cgroup v2 leaf where possible); the init
//! runs in-process from the fork (no re-exec) and talks to the runtime over a typed
//! channel (`channel.rs`) until it is ready, then waits for `start` on `exec.fifo`.

pub mod channel;
pub mod clone;
mod cpu_helper;
pub mod error;
pub mod features;
mod fork_gate;
pub mod namespaces;
mod netns_ahead;
pub mod selfexe;
pub mod signal;
pub mod spec;
pub mod util;
pub mod wait;
// In-container setup modules (rootfs, devices, process identity, seccomp, hooks, console, fds):
pub mod capabilities;
pub mod console;
pub mod devices;
pub mod fds;
pub mod hooks;
pub mod mounts;
pub mod passwd;
pub mod process;
pub mod rlimits;
pub mod rootfs;
pub mod seccomp;
// The engine proper:
pub mod create;
pub mod exec;
pub mod init;
pub mod lifecycle;
pub mod privileges;
pub mod resources;
pub mod state;
pub mod tty;
pub mod update;

pub use error::{Error, Result};
pub use state::{ListEntry, State};

use std::path::{Path, PathBuf};

/// A runtime rooted at a state directory (`--root`).
pub struct Runtime {
    pub root: PathBuf,
    /// Re-execute from a sealed view of the binary before touching a container (see
    /// selfexe.rs). The CLI seals; a library caller (the pod supervisor, forked from an
    /// already sealed podrun) turns it off with [`Runtime::in_process`].
    pub seal: bool,
}

#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub id: String,
    pub bundle: PathBuf,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// Library use (the pod supervisor): descriptors to become the container's stdin,
    /// stdout and stderr instead of the runtime's own.
    pub stdio: Option<[std::os::fd::RawFd; 3]>,
}

#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub process_json: Option<PathBuf>,
    pub args: Vec<String>,
    pub tty: bool,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub env: Vec<String>,
    pub cwd: Option<String>,
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub preserve_fds: u32,
    pub ignore_paused: bool,
}

impl Runtime {
    pub fn new(root: &Path) -> Self {
        Runtime {
            root: root.to_path_buf(),
            seal: true,
        }
    }

    /// A runtime for a process that is already running from a sealed binary (or a test):
    /// never re-executes itself.
    pub fn in_process(root: &Path) -> Self {
        Runtime {
            root: root.to_path_buf(),
            seal: false,
        }
    }

    pub(crate) fn ensure_sealed(&self) -> Result<()> {
        if self.seal {
            selfexe::ensure_sealed(&self.root)?;
        }
        Ok(())
    }
}

/// dlmalloc behind one lock, which a clone3 holds across the system call (fork_gate.rs): a
/// container's init never finds it held by another thread of its parent.
#[global_allocator]
static ALLOCATOR: fork_gate::GatedAlloc = fork_gate::GatedAlloc;
