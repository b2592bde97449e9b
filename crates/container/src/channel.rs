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
use std::os::fd::{AsRawFd, OwnedFd};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum Msg {
    /// runtime -> init: you are in your cgroup (and your id maps are written): go on.
    Go,
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
        let data = serde_json::to_vec(m).map_err(|e| Error::Other(e.to_string()))?;
        let creds = UnixCredentials::new();
        let iov = [IoSlice::new(&data)];
        let cmsg = [ControlMessage::ScmCredentials(&creds)];
        socket::sendmsg::<()>(
            self.fd.as_raw_fd(),
            &iov,
            &cmsg,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map_err(|e| Error::sys("sendmsg credentials", e))?;
        Ok(())
    }

    /// Receive one message; `None` when the peer closed its end.
    pub fn recv(&self) -> Result<Option<Msg>> {
        Ok(self.recv_with_creds()?.map(|(m, _)| m))
    }

    pub fn recv_with_creds(&self) -> Result<Option<(Msg, Option<i32>)>> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut cbuf = nix::cmsg_space!(UnixCredentials);
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
                            if let ControlMessageOwned::ScmCredentials(cr) = c {
                                pid = Some(cr.pid());
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
        Ok(Some((m, pid)))
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
}
