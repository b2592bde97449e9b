//! `exec`: run a new process in a running container. The runtime enters the container's
//! pid namespace for its children, forks once (into the container's cgroup), and the child
//! joins the other namespaces in one `setns(pidfd, flags)` call, takes the process
//! identity, and execs.

use crate::channel::{self, Channel, Msg};
use crate::clone::{clone3, Forked};
use crate::error::{Error, Result, SysContext};
use crate::namespaces;
use crate::state::Status;
use crate::{console, util, wait, ExecOptions, Runtime};
use nix::sched::CloneFlags;
use oci_spec::runtime::{Capability, LinuxCapabilities, Process, Spec};
use std::collections::HashSet;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

impl Runtime {
    pub fn exec(&self, id: &str, o: ExecOptions) -> Result<i32> {
        self.ensure_sealed()?;
        let (dir, rec) = self.load(id)?;
        match rec.status(&dir) {
            Status::Running | Status::Created => {}
            Status::Paused if o.ignore_paused => {}
            st => {
                return Err(Error::WrongState {
                    id: id.into(),
                    status: st.to_string(),
                    msg: "cannot exec in a container that is not running".into(),
                })
            }
        }
        let spec = rec.spec.full()?;
        let proc_ = build_process(&spec, &o)?;
        let args = proc_.args().clone().unwrap_or_default();
        if args.is_empty() {
            return Err(Error::spec("process.args", "no command given to exec"));
        }
        let tty = proc_.terminal().unwrap_or(false);
        let mut proxy = None;
        let console = match (&o.console_socket, tty) {
            (Some(p), true) => Some(
                UnixStream::connect(p).map_err(|e| Error::io("connect console socket", p, e))?,
            ),
            (None, true) if !o.detach => {
                let (p, s) = crate::tty::pair()?;
                proxy = Some(p);
                Some(s)
            }
            (None, true) => {
                return Err(Error::Other(
                    "--tty with --detach needs --console-socket".into(),
                ))
            }
            _ => None,
        };

        let pidfd = match util::pidfd_open(rec.pid) {
            Some(fd) if util::process_alive(rec.pid, rec.start_time) => fd,
            _ => {
                return Err(Error::WrongState {
                    id: id.into(),
                    status: "stopped".into(),
                    msg: "cannot exec in a container that is not running".into(),
                })
            }
        };
        let mut flags = CloneFlags::empty();
        for ns in spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_ref())
            .into_iter()
            .flatten()
        {
            let name = namespaces::proc_name(ns.typ());
            // Join only what differs from ours (setns into one's own user namespace fails).
            if !same_ns(rec.pid, name) {
                flags |= namespaces::flag(ns.typ());
            }
        }
        let fwd = if o.detach {
            None
        } else {
            Some(wait::Forwarder::new()?)
        };
        let (parent, child) = channel::pair()?;
        // Children of ours are born in the container's pid namespace.
        let restore = if flags.contains(CloneFlags::CLONE_NEWPID) {
            let own = std::fs::File::open("/proc/self/ns/pid_for_children")
                .map_err(|e| Error::io("open", "/proc/self/ns/pid_for_children", e))?;
            nix::sched::setns(&pidfd, CloneFlags::CLONE_NEWPID)
                .ctx(|| "join the container's pid namespace".into())?;
            Some(own)
        } else {
            None
        };
        let cgroup = rec.cgroup.as_ref();
        // Enter the container's cgroup without a grace-period wait (see
        // podrun_cgroups::Cgroup::self_attach).
        let attach = cgroup.map(|c| c.self_attach()).transpose()?;
        let signals_to_reset = crate::util::signals_to_reset();
        let forked = clone3(
            0,
            attach
                .as_ref()
                .and_then(|a| a.into.as_ref())
                .map(|f| f.as_raw_fd()),
        );
        if let Some(own) = restore {
            let _ = nix::sched::setns(&own, CloneFlags::CLONE_NEWPID);
        }
        let pid = match forked? {
            Forked::Child => {
                drop(parent);
                if let Some(Err(e)) = attach.as_ref().map(|a| a.attach_current()) {
                    let _ = child.send(&Msg::Error(e.to_string()));
                    // SAFETY: leave the forked copy without running the parent's destructors.
                    unsafe { libc::_exit(127) }
                }
                let err = match exec_child(
                    &child,
                    &pidfd,
                    flags - CloneFlags::CLONE_NEWPID,
                    &spec,
                    &proc_,
                    console.as_ref().map(|c| c.as_raw_fd()),
                    o.preserve_fds,
                    signals_to_reset,
                ) {
                    Ok(never) => match never {},
                    Err(e) => e,
                };
                if !matches!(err, Error::RuntimeGone(_)) {
                    let _ = child.send(&Msg::Error(err.to_string()));
                }
                // SAFETY: leave the forked copy without running the parent's destructors.
                unsafe { libc::_exit(127) }
            }
            Forked::Parent { pid, .. } => pid,
        };
        drop(child);
        drop(console);
        drop(attach);
        parent.send(&Msg::Go)?;
        match parent.recv()? {
            None => {}
            Some(Msg::Error(e)) => {
                let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
                return Err(Error::Other(e));
            }
            Some(m) => {
                return Err(Error::Other(format!(
                    "protocol: unexpected {m:?} from exec"
                )))
            }
        }
        if let Some(p) = &o.pid_file {
            util::write_atomic(p, pid.to_string().as_bytes())?;
        }
        let running = match proxy {
            Some(p) => Some(p.start()?),
            None => None,
        };
        let code = match fwd {
            None => 0,
            Some(f) => f.wait(pid, None)?,
        };
        if let Some(r) = running {
            r.finish();
        }
        Ok(code)
    }
}

fn same_ns(pid: i32, name: &str) -> bool {
    let a = std::fs::metadata(format!("/proc/{pid}/ns/{name}"));
    let b = std::fs::metadata(format!("/proc/self/ns/{name}"));
    use std::os::unix::fs::MetadataExt;
    matches!((a, b), (Ok(a), Ok(b)) if a.ino() == b.ino() && a.dev() == b.dev())
}

use crate::privileges::{self, Never};

#[allow(clippy::too_many_arguments)] // the clone3 child's inputs, each used once
fn exec_child(
    chan: &Channel,
    pidfd: &OwnedFd,
    flags: CloneFlags,
    spec: &Spec,
    p: &Process,
    console_sock: Option<RawFd>,
    preserve_fds: u32,
    signals_to_reset: u64,
) -> Result<Never> {
    crate::util::reset_signal_dispositions(signals_to_reset);
    if !flags.contains(CloneFlags::CLONE_NEWUSER) {
        // Born in the container's pid namespace with the runtime's descriptors and cwd: see
        // process::set_non_dumpable (in a user namespace, from privileges::prepare on).
        crate::process::set_non_dumpable()?;
    }
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    );
    match chan.recv()? {
        Some(Msg::Go) => {}
        _ => return Err(Error::RuntimeGone("exec")),
    }
    if !flags.is_empty() {
        nix::sched::setns(pidfd, flags)
            .ctx(|| format!("join the container's namespaces ({flags:?})"))?;
    }
    if flags.contains(CloneFlags::CLONE_NEWUSER) {
        privileges::become_userns_root();
    }
    if let Some(sock) = console_sock {
        let size = p
            .console_size()
            .map(|b| (b.height() as u16, b.width() as u16));
        console::setup_console(sock, size, false)?;
    }
    privileges::prepare(spec, p, preserve_fds, false)?.exec()
}

/// The process to exec: `--process` JSON as given, or the container's process with the
/// command line's overrides (runc's rules).
pub fn build_process(spec: &Spec, o: &ExecOptions) -> Result<Process> {
    if let Some(path) = &o.process_json {
        let data = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
        let p: Process = serde_json::from_slice(&data).map_err(|e| Error::Config {
            path: path.clone(),
            msg: e.to_string(),
        })?;
        return Ok(p);
    }
    let mut p = spec
        .process()
        .clone()
        .ok_or_else(|| Error::spec("process", "container has no process"))?;
    p.set_args(Some(o.args.clone()));
    p.set_terminal(Some(o.tty));
    p.set_console_size(None);
    let mut env = p.env().clone().unwrap_or_default();
    for e in &o.env {
        let key = e.split('=').next().unwrap_or("");
        env.retain(|x| x.split('=').next() != Some(key));
        env.push(e.clone());
    }
    p.set_env(Some(env));
    if let Some(cwd) = &o.cwd {
        p.set_cwd(cwd.into());
    }
    if let Some(u) = &o.user {
        let (uid, gid) = parse_user(u)?;
        let mut user = p.user().clone();
        user.set_uid(uid);
        user.set_gid(gid.unwrap_or(0));
        p.set_user(user);
    }
    if !o.additional_gids.is_empty() {
        let mut user = p.user().clone();
        user.set_additional_gids(Some(o.additional_gids.clone()));
        p.set_user(user);
    }
    if o.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if !o.caps.is_empty() {
        let mut caps: LinuxCapabilities = p.capabilities().clone().unwrap_or_default();
        let add: Vec<Capability> = o
            .caps
            .iter()
            .map(|c| {
                crate::capabilities::parse_oci_capability(c)
                    .map_err(|e| Error::Other(format!("--cap: {e}")))
            })
            .collect::<Result<_>>()?;
        let extend = |s: &Option<HashSet<Capability>>| -> Option<HashSet<Capability>> {
            let mut s = s.clone().unwrap_or_default();
            s.extend(add.iter().copied());
            Some(s)
        };
        // Not into the inheritable set (runc since 1.1.2, CVE-2022-29162); into the ambient
        // set only where the spec has inheritable ones (ambient needs them, runc too).
        caps.set_bounding(extend(caps.bounding()));
        caps.set_effective(extend(caps.effective()));
        caps.set_permitted(extend(caps.permitted()));
        if caps.inheritable().is_some() {
            caps.set_ambient(extend(caps.ambient()));
        }
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}

/// "UID" or "UID:GID".
pub fn parse_user(s: &str) -> Result<(u32, Option<u32>)> {
    let bad = || Error::Other(format!("--user {s:?}: expected UID[:GID] (numbers)"));
    let mut it = s.splitn(2, ':');
    let uid = it.next().unwrap_or("").parse().map_err(|_| bad())?;
    let gid = match it.next() {
        Some(g) => Some(g.parse().map_err(|_| bad())?),
        None => None,
    };
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn users() {
        assert_eq!(parse_user("1000").unwrap(), (1000, None));
        assert_eq!(parse_user("1000:2000").unwrap(), (1000, Some(2000)));
        assert!(parse_user("bob").is_err());
    }

    #[test]
    fn overrides_apply() {
        let spec = crate::spec::default_spec(false);
        let o = ExecOptions {
            args: vec!["ls".into()],
            env: vec!["TERM=dumb".into(), "A=1".into()],
            cwd: Some("/tmp".into()),
            user: Some("5:6".into()),
            caps: vec!["CAP_SYS_ADMIN".into()],
            ..Default::default()
        };
        let p = build_process(&spec, &o).unwrap();
        assert_eq!(p.args().as_ref().unwrap(), &vec!["ls".to_string()]);
        let env = p.env().as_ref().unwrap();
        assert!(env.contains(&"TERM=dumb".to_string()) && env.contains(&"A=1".to_string()));
        assert_eq!(env.iter().filter(|e| e.starts_with("TERM=")).count(), 1);
        assert_eq!(p.user().uid(), 5);
        assert_eq!(p.user().gid(), 6);
        assert!(p
            .capabilities()
            .as_ref()
            .unwrap()
            .effective()
            .as_ref()
            .unwrap()
            .contains(&Capability::SysAdmin));
    }
}
