//! Small helpers: time stamps, atomic writes, process identity from /proc.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// RFC 3339 UTC timestamp with nanoseconds (the form runc's `created` uses).
pub fn rfc3339_now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Write `data` to `path` atomically: a temporary file in the same directory, fsync-free
/// (state lives on tmpfs), then put in place (see [`PendingWrite::commit`]).
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    PendingWrite::new(path, data)?.commit()
}

/// A file's new content written beside it, to be put in place by [`PendingWrite::commit`]
/// (one rename) — so the writing can be done ahead, while waiting for something else.
/// Dropped uncommitted, the temporary file is removed.
pub struct PendingWrite {
    tmp: PathBuf,
    path: PathBuf,
}

impl PendingWrite {
    pub fn new(path: &Path, data: &[u8]) -> Result<Self> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let tmp = dir.join(format!(
            ".{}.tmp{}",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("state"),
            std::process::id()
        ));
        let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
        let w = PendingWrite {
            tmp,
            path: path.to_path_buf(),
        };
        f.write_all(data)
            .map_err(|e| Error::io("write", &w.tmp, e))?;
        Ok(w)
    }

    /// Put the new content in place, atomically for readers (they see the old file or the
    /// new one, never none). Over an existing file this exchanges the two names and removes
    /// the old file, instead of renaming over it: ext4 (`auto_da_alloc`, the default) starts
    /// writing back a file renamed over another one inside the rename, 70-160 µs here for a
    /// pid file a caller reuses (docs/benchmarks.md), while the exchange and the unlink take
    /// ~20 µs. A plain rename where there is no file yet, or where the filesystem cannot
    /// exchange.
    pub fn commit(self) -> Result<()> {
        let r = match exchange(&self.tmp, &self.path) {
            Ok(()) => {
                // `tmp` now names the old content.
                let _ = std::fs::remove_file(&self.tmp);
                Ok(())
            }
            Err(_) => std::fs::rename(&self.tmp, &self.path)
                .map_err(|e| Error::io("rename into place", &self.path, e)),
        };
        if r.is_ok() {
            std::mem::forget(self);
        }
        r
    }
}

/// renameat2(RENAME_EXCHANGE): swap two existing names atomically. (The system call:
/// nix and musl wrap it only for glibc.)
fn exchange(a: &Path, b: &Path) -> nix::Result<()> {
    use nix::NixPath;
    const RENAME_EXCHANGE: libc::c_uint = 1 << 1;
    let r = a.with_nix_path(|a| {
        b.with_nix_path(|b| {
            // SAFETY: two NUL-terminated paths that outlive the call; AT_FDCWD for both.
            unsafe {
                libc::syscall(
                    libc::SYS_renameat2,
                    libc::AT_FDCWD,
                    a.as_ptr(),
                    libc::AT_FDCWD,
                    b.as_ptr(),
                    RENAME_EXCHANGE,
                )
            }
        })
    })??;
    nix::errno::Errno::result(r).map(drop)
}

impl Drop for PendingWrite {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// The signals whose disposition is not the default in this thread: ignored (SIG_IGN) or
/// caught (a handler), as the kernel's mask: bit n-1 for signal n (/proc/thread-self/status,
/// `SigIgn` | `SigCgt`). Every signal when that cannot be read.
pub fn signals_to_reset() -> u64 {
    std::fs::read_to_string("/proc/thread-self/status")
        .ok()
        .and_then(|s| Some(parse_sig_mask(&s, "SigIgn:")? | parse_sig_mask(&s, "SigCgt:")?))
        .unwrap_or(u64::MAX)
}

/// Pure: the mask on the `field` line (`SigIgn:`, `SigCgt:`) of a /proc/<pid>/status text.
pub fn parse_sig_mask(status: &str, field: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix(field))?.trim();
    u64::from_str_radix(hex, 16).ok()
}

/// Resets to SIG_DFL the disposition of each signal in `mask` (a [`signals_to_reset`]
/// mask, read by the runtime before it forked this process). An ignored signal survives
/// execve, so whatever the runtime (or its caller, e.g. a supervisor that ignores SIGPIPE,
/// or a shell's `trap '' INT`) ignores would otherwise be ignored by the container's
/// processes too; and a handler of the runtime's would run in the init, not end it, on a
/// signal sent to a created container before its execve (runtime-tools' `killsig`). Only
/// those signals are touched (a call each; all 62 cost ~50 µs on a container's start). The
/// container starts from the defaults, as runc's do.
pub fn reset_signal_dispositions(mask: u64) {
    // The kernel's struct sigaction for rt_sigaction(2) on x86-64/aarch64:
    // handler, flags, restorer, mask.
    #[repr(C)]
    struct KSigaction {
        handler: usize,
        flags: u64,
        restorer: usize,
        mask: u64,
    }
    let dfl = KSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP || mask & (1u64 << (sig - 1)) == 0 {
            continue;
        }
        // SAFETY: rt_sigaction with a valid new action and no old-action
        // pointer; the raw syscall also reaches the signals glibc reserves
        // (32, 33), which libc::signal refuses.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &dfl as *const KSigaction,
                std::ptr::null_mut::<KSigaction>(),
                8usize,
            )
        };
    }
}

/// What /proc/<pid>/stat says about a process: its state letter and start time (in clock
/// ticks since boot). The start time tells a live container init from a recycled pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub state: char,
    pub start_time: u64,
}

pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_proc_stat(&s)
}

/// One mapping (header) line of /proc/<pid>/maps or smaps:
/// `start-end perms offset dev inode [path]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapsLine<'a> {
    pub start: usize,
    pub end: usize,
    /// e.g. "r-xp".
    pub perms: &'a str,
    pub offset: u64,
    /// 0 for anonymous mappings.
    pub inode: u64,
    /// The file, `[heap]`, `[stack]`..., or "" (may contain spaces).
    pub path: &'a str,
}

impl<'a> MapsLine<'a> {
    /// None for anything else (smaps' `Key: value` lines included).
    pub fn parse(line: &'a str) -> Option<Self> {
        let mut rest = line;
        let mut next = || {
            rest = rest.trim_start();
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let (f, r) = rest.split_at(end);
            rest = r;
            Some(f).filter(|f| !f.is_empty())
        };
        let (range, perms, offset, _dev, inode) = (next()?, next()?, next()?, next()?, next()?);
        let (a, b) = range.split_once('-')?;
        Some(MapsLine {
            start: usize::from_str_radix(a, 16).ok()?,
            end: usize::from_str_radix(b, 16).ok()?,
            perms,
            offset: u64::from_str_radix(offset, 16).ok()?,
            inode: inode.parse().ok()?,
            path: rest.trim(),
        })
    }
}

/// Field `n` (1-based, as in proc(5)) of a /proc/<pid>/stat text, for n >= 3. The command
/// name (field 2) may contain spaces and parentheses, so fields are counted from the last ')'.
pub fn proc_stat_field(s: &str, n: usize) -> Option<&str> {
    let rest = &s[s.rfind(')')? + 1..];
    rest.split_ascii_whitespace().nth(n.checked_sub(3)?)
}

/// Parse /proc/<pid>/stat: state (field 3) and start time (field 22).
pub fn parse_proc_stat(s: &str) -> Option<ProcStat> {
    let state = proc_stat_field(s, 3)?.chars().next()?;
    let start_time = proc_stat_field(s, 22)?.parse().ok()?;
    Some(ProcStat { state, start_time })
}

/// Is `pid` the same live (non-zombie) process that had `start_time`?
pub fn process_alive(pid: i32, start_time: u64) -> bool {
    match proc_stat(pid) {
        Some(st) => st.start_time == start_time && st.state != 'Z' && st.state != 'X',
        None => false,
    }
}

/// The command line as the C `main` received it (see [`set_args`]).
static ARGS: std::sync::OnceLock<Vec<std::ffi::OsString>> = std::sync::OnceLock::new();

/// Record the command line from the C `main`'s `argv`. podrun has its own C `main`
/// (src/main.rs), so std's runtime start never runs: glibc hands the arguments to std
/// anyway (through `.init_array`), musl does not, and `std::env::args` would be empty.
///
/// # Safety
/// `argv` holds `argc` pointers to NUL-terminated strings that live for the process.
pub unsafe fn set_args(argc: libc::c_int, argv: *const *const libc::c_char) {
    use std::os::unix::ffi::OsStrExt;
    let n = usize::try_from(argc).unwrap_or(0);
    let v = (0..n)
        .map(|i| {
            // SAFETY: i < argc, and each argv[i] is a C string (the caller's promise).
            let p = unsafe { *argv.add(i) };
            if p.is_null() {
                return std::ffi::OsString::new();
            }
            // SAFETY: as above.
            let c = unsafe { std::ffi::CStr::from_ptr(p) };
            std::ffi::OsStr::from_bytes(c.to_bytes()).to_os_string()
        })
        .collect();
    let _ = ARGS.set(v);
}

/// The command line, argv[0] first: what [`set_args`] recorded, else std's.
pub fn args_os() -> Vec<std::ffi::OsString> {
    match ARGS.get() {
        Some(a) => a.clone(),
        None => std::env::args_os().collect(),
    }
}

/// [`args_os`] as strings (a non-UTF-8 argument is converted lossily).
pub fn args() -> Vec<String> {
    args_os()
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

/// `PODRUN_TRACE_TIMING=1`: print "<µs since boot> <tid> <stage>" lines to stderr, to find
/// where a container start spends its time (see docs/benchmarks.md).
pub fn trace(stage: &str) {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("PODRUN_TRACE_TIMING").is_some()) {
        let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .map(|t| t.tv_sec() * 1_000_000 + t.tv_nsec() / 1000)
            .unwrap_or(0);
        // One write per line: the runtime and its init trace at the same time.
        // The system call, not musl's gettid(), which returns the thread id it cached at
        // thread creation (a raw clone3 child would show its parent's).
        // SAFETY: gettid takes no arguments.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) };
        let line = format!("{t} {tid} {stage}\n");
        let _ = nix::unistd::write(std::io::stderr(), line.as_bytes());
    }
}

/// pidfd_open(2): a descriptor that names `pid` for as long as it lives (no pid reuse races).
pub fn pidfd_open(pid: i32) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags; the result is checked.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: a fresh descriptor we own.
    Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// pidfd_send_signal(2).
pub fn pidfd_signal(fd: &std::os::fd::OwnedFd, sig: i32) -> nix::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: a pidfd we own, a signal number and no siginfo.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig,
            std::ptr::null::<()>(),
            0,
        )
    };
    if r < 0 {
        Err(nix::errno::Errno::last())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sig_masks_are_read_from_status() {
        let status = "Name:\tsh\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000384004\nSigCgt:\t0000000008013003\n";
        let m = parse_sig_mask(status, "SigIgn:").unwrap();
        assert_eq!(m, 0x384004);
        assert_ne!(m & (1 << (libc::SIGQUIT - 1)), 0, "SIGQUIT (3) is bit 2");
        assert_eq!(parse_sig_mask(status, "SigCgt:"), Some(0x8013003));
        assert_eq!(parse_sig_mask("Name:\tsh\n", "SigIgn:"), None);
        assert_ne!(
            signals_to_reset(),
            u64::MAX,
            "this thread's status is readable"
        );
    }

    #[test]
    fn args_come_from_the_c_argv() {
        use std::os::unix::ffi::OsStrExt;
        let raw: [&[u8]; 3] = [b"podrun\0", b"run\0", b"caf\xe9\0"];
        let argv: Vec<*const libc::c_char> = raw.iter().map(|a| a.as_ptr().cast()).collect();
        // SAFETY: three NUL-terminated strings that outlive the process's use of them
        // (static byte strings).
        unsafe { set_args(3, argv.as_ptr()) };
        let a = args_os();
        assert_eq!(a.len(), 3);
        assert_eq!(a[1], "run");
        assert_eq!(a[2].as_bytes(), b"caf\xe9", "not UTF-8, kept as it is");
        assert_eq!(args()[2], "caf\u{fffd}");
    }

    #[test]
    fn parses_maps_lines() {
        let l = "55d0a028b000-55d0a0c03000 r-xp 0028a000 fe:00 1234         /usr/bin/pod run\n";
        let m = MapsLine::parse(l).unwrap();
        assert_eq!((m.start, m.end), (0x55d0a028b000, 0x55d0a0c03000));
        assert_eq!(
            (m.perms, m.offset, m.inode, m.path),
            ("r-xp", 0x28a000, 1234, "/usr/bin/pod run")
        );
        let anon = MapsLine::parse("7f00-7f10 rw-p 00000000 00:00 0 ").unwrap();
        assert_eq!((anon.inode, anon.path), (0, ""));
        assert_eq!(MapsLine::parse("Anonymous:        0 kB"), None);
        assert_eq!(MapsLine::parse("VmFlags: rd ex mr mw me dw"), None);
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(951782400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(rfc3339(1795436400, 0), "2026-11-23T12:20:00.000000000Z");
    }

    #[test]
    fn parses_stat_with_odd_comm() {
        let s = "1234 (a) b (c) S 1 1234 1234 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 98765 1000 10 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        let st = parse_proc_stat(s).unwrap();
        assert_eq!(st.state, 'S');
        assert_eq!(st.start_time, 98765);
    }

    #[test]
    fn own_process_is_alive_and_other_start_time_is_not() {
        let me = std::process::id() as i32;
        let st = proc_stat(me).unwrap();
        assert!(process_alive(me, st.start_time));
        assert!(!process_alive(me, st.start_time + 1));
    }

    /// A reader never finds the file missing while it is replaced (the exchange), and no
    /// temporary file is left either way.
    #[test]
    fn atomic_write_never_leaves_the_file_missing() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("pid");
        write_atomic(&p, b"0").unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (p, stop) = (p.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut reads = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let got = std::fs::read(&p).expect("the file is always there");
                    assert!(!got.is_empty(), "never an empty file");
                    reads += 1;
                }
                reads
            })
        };
        for i in 1..2000 {
            write_atomic(&p, i.to_string().as_bytes()).unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
        assert_eq!(std::fs::read(&p).unwrap(), b"1999");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn atomic_write_replaces() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn pending_write_shows_only_on_commit_and_leaves_nothing_when_dropped() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.json");
        write_atomic(&p, b"old").unwrap();
        let w = PendingWrite::new(&p, b"new").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"old", "not before commit");
        w.commit().unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        drop(PendingWrite::new(&p, b"lost").unwrap());
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert_eq!(
            std::fs::read_dir(d.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
    }
}
