//! `process.terminal`: inside the container (devpts mounted, after the
//! pivot) open a pty pair, send the master to the caller's console socket
//! (runc's wire format: SCM_RIGHTS with the pty name as the message), make
//! the peer our controlling terminal and stdio, and optionally bind it over
//! /dev/console.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::mount::{mount, MsFlags};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use nix::sys::stat::Mode;

use crate::error::{Error, Result, SysContext};

/// Open a new pty master: /dev/ptmx, or /dev/pts/ptmx when /dev has none.
fn open_master() -> Result<OwnedFd> {
    let flags = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    let fd = match open("/dev/ptmx", flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(_) => open("/dev/pts/ptmx", flags, Mode::empty()).ctx(|| "open /dev/ptmx".into())?,
    };
    // SAFETY: `open` returned a fresh descriptor we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Unlock the master and return the peer's name ("/dev/pts/N").
fn unlock_and_name(master: RawFd) -> Result<String> {
    let mut unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK takes a pointer to an int.
    if unsafe { libc::ioctl(master, libc::TIOCSPTLCK, &mut unlock) } < 0 {
        return Err(Error::sys("unlockpt", nix::Error::last()));
    }
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes the pty number into an unsigned int.
    if unsafe { libc::ioctl(master, libc::TIOCGPTN, &mut n) } < 0 {
        return Err(Error::sys("ptsname", nix::Error::last()));
    }
    Ok(format!("/dev/pts/{n}"))
}

/// Set the window size (rows = height, columns = width) of a pty.
pub fn set_window_size(fd: RawFd, height: u16, width: u16) -> Result<()> {
    let ws = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize struct we own.
    if unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) } < 0 {
        return Err(Error::sys("set console size", nix::Error::last()));
    }
    Ok(())
}

/// Send `fd` over the connected unix socket `sock` with `name` as data.
pub fn send_fd(sock: RawFd, name: &str, fd: RawFd) -> Result<()> {
    let fds = [fd];
    sendmsg::<()>(
        sock,
        &[IoSlice::new(name.as_bytes())],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .ctx(|| "send the console master over --console-socket".into())?;
    Ok(())
}

/// See the module documentation. `console_size` is (height, width).
pub fn setup_console(
    sock: RawFd,
    console_size: Option<(u16, u16)>,
    mount_console: bool,
) -> Result<()> {
    let master = open_master()?;
    let peer = unlock_and_name(master.as_raw_fd())?;
    if let Some((h, w)) = console_size {
        if h != 0 && w != 0 {
            set_window_size(master.as_raw_fd(), h, w)?;
        }
    }
    if mount_console {
        mount_dev_console(Path::new(&peer))?;
    }
    send_fd(sock, &peer, master.as_raw_fd())?;
    drop(master);

    // A new session so the peer can become our controlling terminal; the
    // caller may already be a session leader (EPERM), which is fine.
    match nix::unistd::setsid() {
        Ok(_) | Err(nix::Error::EPERM) => {}
        Err(e) => return Err(Error::sys("setsid", e)),
    }
    let slave = open(Path::new(&peer), OFlag::O_RDWR, Mode::empty())
        .ctx(|| format!("open console {peer}"))?;
    // SAFETY: TIOCSCTTY with argument 0 on a terminal descriptor.
    if unsafe { libc::ioctl(slave, libc::TIOCSCTTY, 0) } < 0 {
        let e = nix::Error::last();
        let _ = nix::unistd::close(slave);
        return Err(Error::sys(
            format!("make {peer} the controlling terminal"),
            e,
        ));
    }
    for fd in 0..3 {
        // SAFETY: dup3 between valid descriptor numbers.
        if unsafe { libc::dup3(slave, fd, 0) } < 0 {
            let e = nix::Error::last();
            let _ = nix::unistd::close(slave);
            return Err(Error::sys(format!("dup console to fd {fd}"), e));
        }
    }
    if slave > 2 {
        let _ = nix::unistd::close(slave);
    }
    Ok(())
}

/// Bind the pty peer over /dev/console (creating the file if needed).
fn mount_dev_console(peer: &Path) -> Result<()> {
    let console = Path::new("/dev/console");
    if std::fs::symlink_metadata(console).is_err() {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(console)
            .map_err(|e| Error::io("create", console, e))?;
    }
    mount(
        Some(peer),
        console,
        Some("bind"),
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .ctx(|| format!("bind-mount {} on /dev/console", peer.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{
        recvmsg, socketpair, AddressFamily, ControlMessageOwned, SockFlag, SockType,
    };
    use std::io::IoSliceMut;

    #[test]
    fn master_is_sent_with_its_name() {
        // Exercise open/unlock/size/send without touching our own stdio.
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let master = open_master().unwrap();
        let name = unlock_and_name(master.as_raw_fd()).unwrap();
        assert!(name.starts_with("/dev/pts/"), "{name}");
        set_window_size(master.as_raw_fd(), 40, 120).unwrap();
        send_fd(a.as_raw_fd(), &name, master.as_raw_fd()).unwrap();

        let mut buf = [0u8; 64];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut cmsg = nix::cmsg_space!([RawFd; 1]);
        let msg =
            recvmsg::<()>(b.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::empty()).unwrap();
        let mut got = None;
        for c in msg.cmsgs().unwrap() {
            if let ControlMessageOwned::ScmRights(fds) = c {
                got = fds.first().copied();
            }
        }
        let n = msg.bytes;
        assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), name);
        let fd = got.expect("an fd");
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: TIOCGWINSZ writes into our winsize.
        assert_eq!(unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) }, 0);
        assert_eq!((ws.ws_row, ws.ws_col), (40, 120));
        // SAFETY: closing the fd we received.
        unsafe { libc::close(fd) };
    }
}
