//! The typed channel between the runtime process and the container's init: a
//! SOCK_SEQPACKET socketpair carrying one JSON message per packet, so each side reads
//! whole messages and a closed peer shows as end-of-file.

use crate::error::{Error, Result};
use nix::sys::socket::{
    self, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType,
    UnixCredentials,
};
use serde::{Deserialize, Serialize};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A received message, the sender's pid (SCM_CREDENTIALS) and the descriptors sent with it.
type Received = (Msg, Option<i32>, Vec<OwnedFd>);

/// The most descriptors one message carries.
pub const MAX_FDS: usize = 32;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum Msg {
    /// runtime -> init (single clone into a new user namespace; `exec`'s child): your id maps
    /// are written (you may join the container): go on.
    Go,
    /// runtime -> init: your v1 cgroups are made and limited: enter them.
    CgroupReady,
    /// init -> runtime: I unshared a user namespace, write my id maps.
    NeedMaps,
    /// runtime -> init: the maps are written.
    MapsWritten,
    /// init -> runtime: I unshared a time namespace, write its offsets.
    NeedTimeOffsets,
    /// runtime -> init: the offsets are written.
    TimeOffsetsWritten,
    /// init (stage 2) -> runtime: this packet carries my pid as credentials.
    Pid,
    /// init -> runtime: namespaces and mounts are ready, run prestart/createRuntime hooks.
    HooksReady,
    /// runtime -> init: hooks done; the state JSON for createContainer/startContainer hooks.
    HooksDone(String),
    /// init -> runtime: the container is created and waits.
    Ready,
    /// runtime -> init: exec the user process now (`run`).
    Start,
    /// runtime -> init: wait on exec.fifo for `podrun start` (`create`); the runtime exits.
    WaitFifo,
    /// init -> runtime: a step failed.
    Error(String),
    /// init -> runtime: switching to the sealed view of the binary failed (the runtime
    /// starts over, sealing itself before the clone).
    SealFailed(String),
}

pub struct Channel {
    fd: OwnedFd,
}

pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socket::socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| Error::sys("socketpair", e))?;
    socket::setsockopt(&a, socket::sockopt::PassCred, &true)
        .map_err(|e| Error::sys("SO_PASSCRED", e))?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl Channel {
    pub fn send(&self, m: &Msg) -> Result<()> {
        let data = serde_json::to_vec(m).map_err(|e| Error::Other(e.to_string()))?;
        socket::send(self.fd.as_raw_fd(), &data, MsgFlags::MSG_NOSIGNAL)
            .map_err(|e| Error::sys("send to peer", e))?;
        Ok(())
    }

    /// Send a message with SCM_CREDENTIALS carrying our own pid: the kernel translates it into
    /// the receiver's pid namespace, which is how the runtime learns the host pid of an init
    /// that was forked inside a joined or new pid namespace.
    pub fn send_with_creds(&self, m: &Msg) -> Result<()> {
        let creds = UnixCredentials::new();
        self.send_cmsg(m, &[ControlMessage::ScmCredentials(&creds)], "credentials")
    }

    /// Send a message with descriptors (SCM_RIGHTS; at most [`MAX_FDS`]).
    pub fn send_fds(&self, m: &Msg, fds: &[RawFd]) -> Result<()> {
        if fds.len() > MAX_FDS {
            return Err(Error::Other(format!(
                "{} descriptors in one message (at most {MAX_FDS})",
                fds.len()
            )));
        }
        self.send_cmsg(m, &[ControlMessage::ScmRights(fds)], "descriptors")
    }

    /// One message with ancillary data (`what` names it for the error).
    fn send_cmsg(&self, m: &Msg, cmsg: &[ControlMessage], what: &str) -> Result<()> {
        let data = serde_json::to_vec(m).map_err(|e| Error::Other(e.to_string()))?;
        let iov = [IoSlice::new(&data)];
        socket::sendmsg::<()>(
            self.fd.as_raw_fd(),
            &iov,
            cmsg,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map_err(|e| Error::sys(format!("sendmsg {what}"), e))?;
        Ok(())
    }

    /// Receive one message; `None` when the peer closed its end.
    pub fn recv(&self) -> Result<Option<Msg>> {
        Ok(self.recv_full()?.map(|(m, _, _)| m))
    }

    pub fn recv_with_creds(&self) -> Result<Option<(Msg, Option<i32>)>> {
        Ok(self.recv_full()?.map(|(m, pid, _)| (m, pid)))
    }

    /// After reporting a failure: read (and drop) whatever the runtime still sends until it
    /// closes its end or goes away. A socket closed with unread data resets the peer's next
    /// receive (ECONNRESET) before it reads our last message; the runtime ends this process
    /// once it has read it.
    pub fn drain_until_closed(&self) {
        while let Ok(Some(_)) = self.recv_fds() {}
    }

    /// Receive one message and the descriptors sent with it (close-on-exec).
    pub fn recv_fds(&self) -> Result<Option<(Msg, Vec<OwnedFd>)>> {
        Ok(self.recv_full()?.map(|(m, _, fds)| (m, fds)))
    }

    /// The length of the next message, without taking it (0: the peer closed its end). Waits
    /// for one.
    fn next_len(&self) -> Result<usize> {
        // MSG_PEEK takes nothing off the socket, and MSG_TRUNC makes recv return the packet's
        // whole length. Descriptors sent with the packet stay queued (no control buffer).
        loop {
            match socket::recv(
                self.fd.as_raw_fd(),
                &mut [],
                MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC,
            ) {
                Err(nix::errno::Errno::EINTR) => continue,
                r => return r.map_err(|e| Error::sys("recv from peer", e)),
            }
        }
    }

    fn recv_full(&self) -> Result<Option<Received>> {
        // A buffer of the message's own size (not a fixed large one): in a freshly forked
        // init every page written is a copy-on-write fault.
        let len = self.next_len()?;
        if len == 0 {
            return Ok(None);
        }
        let mut buf = vec![0u8; len];
        let mut cbuf = nix::cmsg_space!(UnixCredentials, [RawFd; MAX_FDS]);
        let mut fds = Vec::new();
        let (n, pid) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match socket::recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut cbuf),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(r) => {
                    let mut pid = None;
                    if let Ok(cmsgs) = r.cmsgs() {
                        for c in cmsgs {
                            match c {
                                ControlMessageOwned::ScmCredentials(cr) => pid = Some(cr.pid()),
                                ControlMessageOwned::ScmRights(raw) => {
                                    // SAFETY: descriptors the kernel just installed for us.
                                    fds.extend(
                                        raw.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) }),
                                    )
                                }
                                _ => {}
                            }
                        }
                    }
                    break (r.bytes, pid);
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("recv from peer", e)),
            }
        };
        if n == 0 {
            return Ok(None);
        }
        let m = serde_json::from_slice(&buf[..n])
            .map_err(|e| Error::Other(format!("bad message from peer: {e}")))?;
        Ok(Some((m, pid, fds)))
    }

    pub fn raw(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn round_trip_and_eof() {
        let (a, b) = pair().unwrap();
        b.send(&Msg::HooksDone("{}".into())).unwrap();
        assert_eq!(a.recv().unwrap(), Some(Msg::HooksDone("{}".into())));
        b.send_with_creds(&Msg::Pid).unwrap();
        let (m, pid) = a.recv_with_creds().unwrap().unwrap();
        assert_eq!(m, Msg::Pid);
        assert_eq!(pid, Some(std::process::id() as i32));
        drop(b);
        assert_eq!(a.recv().unwrap(), None);
    }

    #[test]
    fn passes_descriptors_with_a_message() {
        use std::io::{Read, Write};
        let (a, b) = pair().unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        b.send_fds(&Msg::CgroupReady, &[w.as_raw_fd()]).unwrap();
        drop(w);
        let (m, fds) = a.recv_fds().unwrap().unwrap();
        assert_eq!(m, Msg::CgroupReady);
        assert_eq!(fds.len(), 1);
        // The received descriptor is the pipe's write end: what goes in comes out of `r`.
        std::fs::File::from(fds.into_iter().next().unwrap())
            .write_all(b"ok")
            .unwrap();
        let mut got = [0u8; 2];
        std::fs::File::from(r).read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ok");
        // A message without descriptors, and too many refused before sending.
        b.send(&Msg::Go).unwrap();
        let (m, fds) = a.recv_fds().unwrap().unwrap();
        assert_eq!((m, fds.len()), (Msg::Go, 0));
        let many = vec![0; MAX_FDS + 1];
        assert!(b.send_fds(&Msg::Go, &many).is_err());
    }
}
