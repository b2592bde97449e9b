//! `linux.seccomp` -> a classic BPF program. Compiled with libseccomp while
//! the process is still privileged (allocations, name lookups), loaded later
//! with a bare seccomp(2) call. Semantics follow runc's
//! libcontainer/seccomp: unknown syscall names are skipped, rules with the
//! default action are dropped, several conditions on the same argument
//! become separate rules (OR), errno defaults to EPERM.

use std::io::{IoSlice, Read, Seek};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

use crate::error::{Error, Result};

mod enosys;

const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
const SECCOMP_FILTER_FLAG_TSYNC: libc::c_uint = 1;
const SECCOMP_FILTER_FLAG_LOG: libc::c_uint = 2;
const SECCOMP_FILTER_FLAG_SPEC_ALLOW: libc::c_uint = 4;
const SECCOMP_FILTER_FLAG_NEW_LISTENER: libc::c_uint = 8;
const SECCOMP_FILTER_FLAG_TSYNC_ESRCH: libc::c_uint = 16;

/// A compiled filter, ready for [`load`].
#[derive(Debug, Clone)]
pub struct SeccompProgram {
    filter: Vec<libc::sock_filter>,
    flags: libc::c_uint,
    notify: bool,
}

impl SeccompProgram {
    /// Number of BPF instructions.
    pub fn len(&self) -> usize {
        self.filter.len()
    }
    pub fn is_empty(&self) -> bool {
        self.filter.is_empty()
    }
    /// Does the filter use SCMP_ACT_NOTIFY (so [`load`] returns a listener fd)?
    pub fn uses_notify(&self) -> bool {
        self.notify
    }
}

fn field_err(field: impl Into<String>, msg: impl Into<String>) -> Error {
    Error::spec(field, msg)
}

/// OCI action -> libseccomp action (errno/trace default to EPERM).
pub fn action(a: LinuxSeccompAction, errno_ret: Option<u32>) -> ScmpAction {
    let errno = errno_ret.map(|e| e as i32).unwrap_or(libc::EPERM);
    match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno),
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(errno as u16),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
    }
}

/// OCI architecture -> libseccomp's.
pub fn arch(a: Arch) -> ScmpArch {
    match a {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
    }
}

fn compare_op(op: LinuxSeccompOperator, value: u64) -> ScmpCompareOp {
    match op {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(value),
    }
}

/// Does this seccomp config use SCMP_ACT_NOTIFY anywhere?
pub fn uses_notify(s: &LinuxSeccomp) -> bool {
    s.default_action() == LinuxSeccompAction::ScmpActNotify
        || s.syscalls()
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .any(|c| c.action() == LinuxSeccompAction::ScmpActNotify)
}

/// Unknown (newer) syscalls should see ENOSYS rather than a deny-by-default
/// action; with allow/log defaults they are allowed anyway.
fn needs_enosys_stub(default: LinuxSeccompAction) -> bool {
    !matches!(
        default,
        LinuxSeccompAction::ScmpActAllow
            | LinuxSeccompAction::ScmpActLog
            | LinuxSeccompAction::ScmpActNotify
    )
}

/// The highest native syscall number the profile names (unknown names and
/// libseccomp's negative pseudo numbers are ignored).
fn highest_syscall(s: &LinuxSeccomp) -> Option<u32> {
    s.syscalls()
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .flat_map(|c| c.names().iter())
        .filter_map(|n| ScmpSyscall::from_name(n).ok())
        .map(|sc| sc.as_raw_syscall())
        .filter(|nr| *nr >= 0)
        .max()
        .map(|nr| nr as u32)
}

/// Build the BPF program for `s`.
pub fn compile(s: &LinuxSeccomp) -> Result<SeccompProgram> {
    let lib = |what: &str, e: libseccomp::error::SeccompError| {
        Error::Other(format!("linux.seccomp: {what}: {e}"))
    };
    let default = action(s.default_action(), s.default_errno_ret());
    let mut ctx = ScmpFilterContext::new(default).map_err(|e| lib("create filter", e))?;
    // The caller decides about no_new_privs; the raw load does not need it
    // as long as we still hold CAP_SYS_ADMIN.
    ctx.set_ctl_nnp(false).map_err(|e| lib("disable NNP", e))?;

    for a in s.architectures().as_deref().unwrap_or(&[]) {
        let sa = arch(*a);
        if ctx.is_arch_present(sa).unwrap_or(false) {
            continue;
        }
        ctx.add_arch(sa)
            .map_err(|e| field_err("linux.seccomp.architectures", format!("{a}: {e}")))?;
    }

    let mut flags = 0;
    for f in s.flags().as_deref().unwrap_or(&[]) {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => SECCOMP_FILTER_FLAG_SPEC_ALLOW,
        };
    }

    for (i, call) in s.syscalls().as_deref().unwrap_or(&[]).iter().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        let act = action(call.action(), call.errno_ret());
        if act == default {
            continue; // libseccomp refuses rules that repeat the default action
        }
        let args = call.args().as_deref().unwrap_or(&[]);
        let mut conds = Vec::with_capacity(args.len());
        let mut counts = [0usize; 6];
        for a in args {
            if a.index() >= 6 {
                return Err(field_err(
                    format!("{field}.args"),
                    format!("index {} is out of range (0-5)", a.index()),
                ));
            }
            counts[a.index()] += 1;
            let (op, datum) = match a.op() {
                LinuxSeccompOperator::ScmpCmpMaskedEq => {
                    (compare_op(a.op(), a.value()), a.value_two().unwrap_or(0))
                }
                o => (compare_op(o, 0), a.value()),
            };
            conds.push(ScmpArgCompare::new(a.index() as u32, op, datum));
        }
        let separate = counts.iter().any(|c| *c > 1);
        for name in call.names() {
            let sc = match ScmpSyscall::from_name(name) {
                Ok(sc) => sc,
                Err(_) => {
                    tracing::debug!(syscall = %name, "unknown syscall in seccomp profile; skipped");
                    continue;
                }
            };
            let add = |ctx: &mut ScmpFilterContext, c: &[ScmpArgCompare]| {
                if c.is_empty() {
                    ctx.add_rule(act, sc).map(|_| ())
                } else {
                    ctx.add_rule_conditional(act, sc, c).map(|_| ())
                }
            };
            let r = if separate {
                conds
                    .iter()
                    .try_for_each(|c| add(&mut ctx, std::slice::from_ref(c)))
            } else {
                add(&mut ctx, &conds)
            };
            r.map_err(|e| field_err(field.clone(), format!("add rule for {name}: {e}")))?;
        }
    }

    let notify = uses_notify(s);
    if notify {
        flags |= SECCOMP_FILTER_FLAG_NEW_LISTENER;
        if flags & SECCOMP_FILTER_FLAG_TSYNC != 0 {
            flags |= SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
        }
    }
    let mut filter = export(&ctx)?;
    if needs_enosys_stub(s.default_action()) {
        if let (Some(arch), Some(max)) = (enosys::native_audit_arch(), highest_syscall(s)) {
            let mut v = enosys::stub(arch, max);
            v.extend(filter);
            filter = v;
        }
    }
    if filter.len() > u16::MAX as usize {
        return Err(Error::Other(format!(
            "linux.seccomp: the filter has {} instructions, more than the kernel accepts",
            filter.len()
        )));
    }
    Ok(SeccompProgram {
        filter,
        flags,
        notify,
    })
}

/// Export the libseccomp filter as raw BPF through a memfd.
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>> {
    let name = c"podrun-seccomp";
    // SAFETY: memfd_create with a valid C string; the fd is owned right away.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(Error::sys(
            "memfd_create for seccomp export",
            nix::Error::last(),
        ));
    }
    // SAFETY: fd is a fresh descriptor we own.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    ctx.export_bpf(&file)
        .map_err(|e| Error::Other(format!("linux.seccomp: export BPF: {e}")))?;
    let mut bytes = Vec::new();
    file.rewind()
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(|e| Error::io("read", "seccomp memfd", e))?;
    let n = std::mem::size_of::<libc::sock_filter>();
    if bytes.is_empty() || bytes.len() % n != 0 {
        return Err(Error::Other(format!(
            "linux.seccomp: exported filter has a bad size ({} bytes)",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(n)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

/// Install the filter on the calling thread (seccomp(2), no allocation).
/// Needs no_new_privs or CAP_SYS_ADMIN. Returns the notify listener fd
/// when the filter uses SCMP_ACT_NOTIFY.
pub fn load(p: &SeccompProgram) -> Result<Option<OwnedFd>> {
    let prog = libc::sock_fprog {
        len: p.filter.len() as u16,
        filter: p.filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points at our filter, alive for the whole call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            p.flags,
            &prog as *const libc::sock_fprog,
        )
    };
    if r < 0 {
        return Err(Error::sys("load seccomp filter", nix::Error::last()));
    }
    if p.notify {
        // SAFETY: with NEW_LISTENER the return value is a new fd we own.
        Ok(Some(unsafe { OwnedFd::from_raw_fd(r as RawFd) }))
    } else {
        Ok(None)
    }
}

/// Hand the notify fd to the agent at `linux.seccomp.listenerPath`, as runc
/// does: a JSON ContainerProcessState with `fds: ["seccompFd"]` plus the fd
/// over SCM_RIGHTS. Runs in the runtime process. `state` is the OCI state.
pub fn send_to_listener(
    path: &Path,
    notify_fd: RawFd,
    pid: i32,
    metadata: Option<&str>,
    state: &serde_json::Value,
) -> Result<()> {
    use nix::sys::socket::{
        connect, sendmsg, socket, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType,
        UnixAddr,
    };
    let msg = serde_json::json!({
        "ociVersion": state.get("ociVersion").cloned().unwrap_or(serde_json::json!("1.0.2")),
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": metadata.unwrap_or(""),
        "state": state,
    });
    let bytes =
        serde_json::to_vec(&msg).map_err(|e| Error::Other(format!("encode seccomp state: {e}")))?;
    let sock = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| Error::sys("socket for seccomp listener", e))?;
    let addr = UnixAddr::new(path)
        .map_err(|e| Error::sys(format!("linux.seccomp.listenerPath {}", path.display()), e))?;
    connect(sock.as_raw_fd(), &addr).map_err(|e| {
        Error::sys(
            format!("linux.seccomp.listenerPath: connect {}", path.display()),
            e,
        )
    })?;
    let fds = [notify_fd];
    sendmsg::<()>(
        sock.as_raw_fd(),
        &[IoSlice::new(&bytes)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(|e| Error::sys(format!("send seccomp fd to {}", path.display()), e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn compile_small_profile() {
        let s = spec(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
                "syscalls":[
                  {"names":["getppid"],"action":"SCMP_ACT_ERRNO","errnoRet":42},
                  {"names":["no_such_syscall_xyz","mkdir"],"action":"SCMP_ACT_ERRNO"},
                  {"names":["personality"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"},{"index":0,"value":255,"valueTwo":4,"op":"SCMP_CMP_MASKED_EQ"}]},
                  {"names":["getpid"],"action":"SCMP_ACT_ALLOW"}
                ]}"#,
        );
        let p = compile(&s).unwrap();
        assert!(p.len() > 5);
        assert!(!p.uses_notify());
    }

    #[test]
    fn notify_and_flags() {
        let s = spec(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_LOG"],
                "syscalls":[{"names":["mknod"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        );
        let p = compile(&s).unwrap();
        assert!(p.uses_notify());
        assert_eq!(
            p.flags,
            SECCOMP_FILTER_FLAG_LOG | SECCOMP_FILTER_FLAG_NEW_LISTENER
        );
    }

    #[test]
    fn bad_arg_index_is_named() {
        let s = spec(
            r#"{"defaultAction":"SCMP_ACT_ALLOW",
                "syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":7,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
        );
        let e = compile(&s).unwrap_err().to_string();
        assert!(
            e.contains("linux.seccomp.syscalls[0]") && e.contains("index 7"),
            "{e}"
        );
    }

    #[test]
    fn unknown_action_is_a_parse_error() {
        let r: std::result::Result<LinuxSeccomp, _> =
            serde_json::from_str(r#"{"defaultAction":"SCMP_ACT_BOGUS"}"#);
        assert!(r.is_err());
    }

    #[test]
    fn listener_gets_state_and_fd() {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
        use std::os::unix::net::UnixListener;
        let dir = std::env::temp_dir().join(format!("podrun-seccomp-l-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("agent.sock");
        let l = UnixListener::bind(&path).unwrap();
        let null = std::fs::File::open("/dev/null").unwrap();
        let state =
            serde_json::json!({"ociVersion": "1.2.0", "id": "c1", "status": "creating", "pid": 7});
        send_to_listener(&path, null.as_raw_fd(), 7, Some("meta"), &state).unwrap();
        let (conn, _) = l.accept().unwrap();
        let mut buf = vec![0u8; 4096];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut cmsg = nix::cmsg_space!([RawFd; 1]);
        let msg = recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        )
        .unwrap();
        let mut fd = None;
        for c in msg.cmsgs().unwrap() {
            if let ControlMessageOwned::ScmRights(f) = c {
                fd = f.first().copied();
            }
        }
        let n = msg.bytes;
        let v: serde_json::Value = serde_json::from_slice(&buf[..n]).unwrap();
        assert_eq!(v["fds"], serde_json::json!(["seccompFd"]));
        assert_eq!(
            (v["pid"].as_i64(), v["metadata"].as_str()),
            (Some(7), Some("meta"))
        );
        assert_eq!(v["state"]["id"], "c1");
        assert_eq!(v["ociVersion"], "1.2.0");
        let fd = fd.expect("an fd");
        let st = nix::sys::stat::fstat(fd).unwrap();
        assert_eq!(st.st_mode & libc::S_IFMT, libc::S_IFCHR);
        // SAFETY: closing the received descriptor.
        unsafe { libc::close(fd) };
        let e = send_to_listener(&dir.join("missing.sock"), 0, 1, None, &state).unwrap_err();
        assert!(e.to_string().contains("listenerPath"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn newer_syscalls_get_enosys_under_a_deny_default() {
        // An allowlist that stops at getppid (110 on x86_64): anything above
        // it answers ENOSYS, anything below that is not listed answers EPERM.
        let s = spec(
            r#"{"defaultAction":"SCMP_ACT_ERRNO",
                "syscalls":[{"names":["exit","exit_group","getpid","getppid","write"],"action":"SCMP_ACT_ALLOW"}]}"#,
        );
        let p = compile(&s).unwrap();
        if enosys::native_audit_arch().is_none() {
            return;
        }
        let max = highest_syscall(&s).unwrap() as libc::c_long;
        assert!(max >= libc::SYS_getppid);
        // SAFETY: the child makes raw syscalls only and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: raw syscalls and _exit in the forked child.
            unsafe {
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                if load(&p).is_err() {
                    libc::_exit(10);
                }
                if libc::syscall(libc::SYS_getppid) <= 0 {
                    libc::_exit(11);
                }
                // Below the highest listed, not allowed: the default (EPERM).
                let r = libc::syscall(libc::SYS_getuid);
                if r != -1 || *libc::__errno_location() != libc::EPERM {
                    libc::_exit(12);
                }
                // Above it: ENOSYS.
                let r = libc::syscall(max + 1);
                if r != -1 || *libc::__errno_location() != libc::ENOSYS {
                    libc::_exit(13);
                }
                let r = libc::syscall(libc::SYS_close_range, 1000, 1001, 0);
                if r != -1 || *libc::__errno_location() != libc::ENOSYS {
                    libc::_exit(14);
                }
                libc::_exit(0);
            }
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status), "status {status}");
        assert_eq!(libc::WEXITSTATUS(status), 0);
    }

    #[test]
    fn load_in_child_applies_errno() {
        let s = spec(
            r#"{"defaultAction":"SCMP_ACT_ALLOW",
                "syscalls":[{"names":["getppid"],"action":"SCMP_ACT_ERRNO","errnoRet":42},
                            {"names":["getpgid"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":777,"op":"SCMP_CMP_EQ"}]}]}"#,
        );
        let p = compile(&s).unwrap();
        // SAFETY: the child only makes raw syscalls (the program is already
        // compiled, load does not allocate) and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: raw syscalls and _exit in the forked child.
            unsafe {
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                if load(&p).is_err() {
                    libc::_exit(10);
                }
                let r = libc::syscall(libc::SYS_getppid);
                if r != -1 || *libc::__errno_location() != 42 {
                    libc::_exit(11);
                }
                let r = libc::syscall(libc::SYS_getpgid, 777);
                if r != -1 || *libc::__errno_location() != libc::EPERM {
                    libc::_exit(12);
                }
                if libc::syscall(libc::SYS_getpgid, 0) < 0 {
                    libc::_exit(13);
                }
                libc::_exit(0);
            }
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status), "status {status}");
        assert_eq!(libc::WEXITSTATUS(status), 0);
    }
}
