//! The last steps before a container process execs, shared by a container's init and
//! `exec`: rlimits, resolving args[0], descriptor hygiene, the cwd check, seccomp (before
//! the identity change when it needs CAP_SYS_ADMIN, after it with no_new_privs), the
//! identity itself, and the execve.

use crate::error::{Error, Result};
use crate::{fds, init, process, seccomp};
use oci_spec::runtime::{Process, Spec};
use std::ffi::CString;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

/// In a user namespace just entered: become its root (when 0 is mapped), as runc does.
/// Failure is fine: an unmapped 0 leaves the ids as they are.
pub fn become_userns_root() {
    let _ = nix::unistd::setresgid(0.into(), 0.into(), 0.into());
    let _ = nix::unistd::setresuid(0.into(), 0.into(), 0.into());
}

/// A type with no values: what a successful exec returns.
pub enum Never {}

/// A process ready to exec: identity applied; what remains is a filter that had to wait for
/// no_new_privs.
pub struct Prepared {
    exe: PathBuf,
    args: Vec<String>,
    env: Vec<String>,
    late_filter: Option<seccomp::SeccompProgram>,
}

/// `create_cwd`: the init creates a missing process.cwd (runc does); `exec` does not.
pub fn prepare(spec: &Spec, p: &Process, preserve_fds: u32, create_cwd: bool) -> Result<Prepared> {
    // Before the process takes the container's user and capabilities (in a user namespace
    // this is the first moment: the init still wrote /proc/self files, which a non-dumpable
    // process no longer owns there).
    process::set_non_dumpable()?;
    if let Some(r) = p.rlimits() {
        process::set_rlimits(r)?;
    }
    let mut env = p.env().clone().unwrap_or_default();
    // runc's rule: without HOME in process.env, the user's home from the container's
    // /etc/passwd, else "/".
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let home = crate::passwd::home_of(&passwd, p.user().uid()).unwrap_or("/");
        env.push(format!("HOME={home}"));
    }
    let args = p.args().clone().unwrap_or_default();
    let exe = init::find_executable(
        args.first().map(String::as_str).unwrap_or(""),
        &env,
        p.cwd(),
    )?;
    // Before a seccomp filter could refuse the probe (capabilities.rs).
    let last_cap = crate::capabilities::last_cap();
    let filter = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(s) => Some(seccomp::compile(s)?),
        None => None,
    };
    // CVE-2024-21626: nothing of the runtime's leaks into the container. Done before a
    // seccomp filter could forbid close_range.
    fds::cloexec_from(3 + preserve_fds as RawFd, &[])?;
    // Resolve and verify the cwd (CVE-2024-21626) before a filter could forbid getcwd.
    if create_cwd && !p.cwd().exists() {
        std::fs::create_dir_all(p.cwd())
            .map_err(|e| Error::io("create process.cwd", p.cwd(), e))?;
    }
    process::change_dir(p.cwd())?;
    process::verify_cwd()?;
    let nnp = p.no_new_privileges().unwrap_or(false);
    let late_filter = match (filter, nnp) {
        (Some(f), false) => {
            seccomp::load(&f)?;
            None
        }
        (f, _) => f,
    };
    process::apply_identity(p, last_cap)?;
    // Again as the container user, so directory permissions are checked for it.
    process::change_dir(p.cwd())?;
    if nnp {
        process::set_no_new_privs()?;
    }
    Ok(Prepared {
        exe,
        args,
        env,
        late_filter,
    })
}

impl Prepared {
    /// Load a filter that waited for no_new_privs, then execve. Returns only on failure.
    pub fn exec(self) -> Result<Never> {
        if let Some(f) = &self.late_filter {
            seccomp::load(f)?;
        }
        crate::util::trace("init: exec");
        execve(&self.exe, &self.args, &self.env)
    }
}

fn execve(exe: &Path, args: &[String], env: &[String]) -> Result<Never> {
    let c = |s: &str| {
        CString::new(s).map_err(|_| Error::spec("process.args", format!("NUL byte in {s:?}")))
    };
    let path = CString::new(exe.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::spec("process.args[0]", "NUL byte"))?;
    let argv = args.iter().map(|s| c(s)).collect::<Result<Vec<_>>>()?;
    let envp = env.iter().map(|s| c(s)).collect::<Result<Vec<_>>>()?;
    let e = nix::unistd::execve(&path, &argv, &envp).unwrap_err();
    Err(Error::sys(format!("exec {}", exe.display()), e))
}
