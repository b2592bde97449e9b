//! Root tests of the pod sandbox (pause + pinned namespaces).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;

use podrun_pod::sandbox::{NsKind, Sandbox, SandboxConfig};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn setns_path(p: &Path, flag: libc::c_int) {
    let f = std::fs::File::open(p).expect("open ns pin");
    // SAFETY: valid fd to an nsfs file; affects only the calling thread for net.
    let rc = unsafe { libc::setns(f.as_raw_fd(), flag) };
    assert_eq!(
        rc,
        0,
        "setns {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

fn mounted_under(dir: &Path) -> Vec<String> {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let d = dir.to_string_lossy().to_string();
    mi.lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&d)))
        .map(String::from)
        .collect()
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn sandbox_netns_shared_lo_and_hostname() {
    if !is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let ns_dir = tmp.path().join("pod/ns");
    let sb = Sandbox::start(&SandboxConfig {
        hostname: "sbx-test-host".into(),
        host_network: false,
        host_ipc: false,
        share_pid: false,
        ns_dir: ns_dir.clone(),
    })
    .expect("start sandbox");
    let pid = sb.pid();
    assert!(alive(pid));
    let net = sb.ns_path(NsKind::Net).expect("net pinned").to_path_buf();
    let uts = sb.ns_path(NsKind::Uts).expect("uts pinned").to_path_buf();
    assert!(sb.ns_path(NsKind::Ipc).is_some());
    assert!(sb.ns_path(NsKind::Pid).is_none());
    assert_eq!(mounted_under(tmp.path()).len(), 3);

    // The pinned netns is not ours.
    let host_net = std::fs::metadata("/proc/self/ns/net").unwrap();
    let pinned = std::fs::metadata(&net).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_ne!(host_net.ino(), pinned.ino());

    // Thread A listens inside the pod netns on an ephemeral port.
    let (tx, rx) = std::sync::mpsc::channel();
    let net_a = net.clone();
    let server = std::thread::spawn(move || {
        setns_path(&net_a, libc::CLONE_NEWNET);
        let l = TcpListener::bind("127.0.0.1:0").expect("bind in pod netns");
        tx.send(l.local_addr().unwrap().port()).unwrap();
        let (mut s, _) = l.accept().unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).unwrap();
        s.write_all(b"pong").unwrap();
        buf
    });
    let port = rx.recv().unwrap();

    // Thread B joins the same netns and talks to A over 127.0.0.1.
    let net_b = net.clone();
    let client = std::thread::spawn(move || {
        setns_path(&net_b, libc::CLONE_NEWNET);
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect in pod netns");
        s.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).unwrap();
        buf
    });
    assert_eq!(&client.join().unwrap(), b"pong");
    assert_eq!(&server.join().unwrap(), b"ping");

    // A process joined to the uts namespace sees the pod hostname.
    let uts_c = uts.clone();
    let mut cmd = Command::new("/bin/busybox");
    cmd.arg("hostname");
    // SAFETY: pre_exec runs in the forked child; setns is async-signal-safe.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            let f = std::fs::File::open(&uts_c)?;
            if libc::setns(f.as_raw_fd(), libc::CLONE_NEWUTS) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("busybox hostname");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "sbx-test-host");

    sb.teardown().expect("teardown");
    assert!(!alive(pid) || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_err());
    assert!(mounted_under(tmp.path()).is_empty(), "pins left mounted");
    assert!(!ns_dir.exists(), "ns dir left behind");
}

#[test]
fn sandbox_shared_pid_and_host_network() {
    if !is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let ns_dir = tmp.path().join("ns");
    let sb = Sandbox::start(&SandboxConfig {
        hostname: "ignored".into(),
        host_network: true,
        host_ipc: false,
        share_pid: true,
        ns_dir: ns_dir.clone(),
    })
    .expect("start sandbox");
    assert!(sb.ns_path(NsKind::Net).is_none());
    assert!(sb.ns_path(NsKind::Uts).is_none());
    let pidns = sb.ns_path(NsKind::Pid).expect("pid pinned").to_path_buf();
    // pause is PID 1 of the new pid namespace.
    let status = std::fs::read_to_string(format!("/proc/{}/status", sb.pid())).unwrap();
    let nspid = status
        .lines()
        .find(|l| l.starts_with("NSpid:"))
        .unwrap()
        .split_whitespace()
        .last()
        .unwrap()
        .to_string();
    assert_eq!(nspid, "1");
    assert!(pidns.exists());
    let pid = sb.pid();
    drop(sb); // drop tears down too
    assert!(std::fs::read_to_string(format!("/proc/{pid}/stat")).is_err());
    assert!(mounted_under(tmp.path()).is_empty());
}

#[test]
fn sandbox_bad_hostname_is_rejected_without_leaks() {
    let tmp = tempfile::tempdir().unwrap();
    let ns_dir = tmp.path().join("ns");
    let err = Sandbox::start(&SandboxConfig {
        hostname: String::new(),
        host_network: false,
        host_ipc: false,
        share_pid: false,
        ns_dir: ns_dir.clone(),
    })
    .unwrap_err();
    assert!(err.to_string().contains("hostname"), "{err}");
    assert!(!ns_dir.exists());
}
