//! A terminal for a foreground `run`/`exec` with `process.terminal` and no
//! `--console-socket`: podrun plays the console socket itself, receives the pty master, and
//! copies between it and its own stdin/stdout (raw mode when stdin is a terminal).

use crate::error::{Error, Result};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use nix::sys::termios::{self, SetArg, Termios};
use std::io::{IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

pub struct Proxy {
    ours: UnixStream,
}

/// Returns the proxy and the socket end to hand to the container as its console socket.
pub fn pair() -> Result<(Proxy, UnixStream)> {
    let (a, b) = UnixStream::pair().map_err(|e| Error::io("socketpair", "console", e))?;
    Ok((Proxy { ours: a }, b))
}

/// Receive a pty master sent with SCM_RIGHTS (runc's console-socket protocol).
pub fn recv_master(sock: &UnixStream) -> Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    let mut cbuf = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cbuf),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| Error::sys("receive pty master", e))?;
    for c in msg
        .cmsgs()
        .map_err(|e| Error::sys("receive pty master", e))?
    {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel installed this descriptor for us with SCM_RIGHTS.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err(Error::Other(
        "console socket: no pty master received".into(),
    ))
}

pub struct Running {
    out: std::thread::JoinHandle<()>,
    saved: Option<Termios>,
}

impl Proxy {
    /// Receive the master and start copying in both directions.
    pub fn start(self) -> Result<Running> {
        let master = recv_master(&self.ours)?;
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).ok();
        if let Some(t) = &saved {
            let mut raw = t.clone();
            termios::cfmakeraw(&mut raw);
            let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
            copy_winsize(&stdin, &master);
        }
        let m_in = master
            .try_clone()
            .map_err(|e| Error::io("dup", "pty master", e))?;
        std::thread::spawn(move || {
            let mut w = std::fs::File::from(m_in);
            let mut buf = [0u8; 8192];
            let mut i = std::io::stdin();
            while let Ok(n) = i.read(&mut buf) {
                if n == 0 || w.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
        let out = std::thread::spawn(move || {
            let mut r = std::fs::File::from(master);
            let mut buf = [0u8; 8192];
            let mut o = std::io::stdout();
            // Ends with EIO once every peer descriptor is closed.
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 || o.write_all(&buf[..n]).is_err() {
                    break;
                }
                let _ = o.flush();
            }
        });
        Ok(Running { out, saved })
    }
}

impl Running {
    /// After the container exited: drain its output and restore the terminal.
    pub fn finish(self) {
        let _ = self.out.join();
        if let Some(t) = self.saved {
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &t);
        }
    }
}

fn copy_winsize(from: &impl AsRawFd, to: &impl AsRawFd) {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ read/write a winsize struct we own.
    unsafe {
        if libc::ioctl(from.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to.as_raw_fd(), libc::TIOCSWINSZ, &ws);
        }
    }
}
