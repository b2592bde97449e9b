//! Sockets created inside the pod's network namespace, from a single-threaded
//! supervisor: `setns(pod net)` → `socket()` → `setns(own net)`. A socket
//! keeps the namespace it was created in, so connecting and I/O then happen
//! from the supervisor's own namespace. With hostNetwork there is no pin and
//! sockets are created directly.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// The pod's network namespace (or the host's) for probe sockets.
#[derive(Debug)]
pub struct NetNs {
    /// (pod netns, our own netns); None with hostNetwork.
    fds: Option<(OwnedFd, OwnedFd)>,
}

fn open_ro(p: &Path) -> io::Result<OwnedFd> {
    Ok(OwnedFd::from(std::fs::File::open(p)?))
}

impl NetNs {
    /// `pin`: the pod's net namespace pin (`<pod_dir>/ns/net`), None for hostNetwork.
    /// Opens the pin and our own `/proc/self/ns/net` once.
    pub fn open(pin: Option<&Path>) -> io::Result<NetNs> {
        Ok(NetNs {
            fds: match pin {
                Some(p) => Some((open_ro(p)?, open_ro(Path::new("/proc/self/ns/net"))?)),
                None => None,
            },
        })
    }

    /// The host's network namespace.
    pub fn host() -> NetNs {
        NetNs { fds: None }
    }

    /// A non-blocking, close-on-exec TCP socket in the pod's namespace.
    pub fn tcp_socket(&self, v6: bool) -> io::Result<OwnedFd> {
        let domain = if v6 { libc::AF_INET6 } else { libc::AF_INET };
        let mk = || {
            // SAFETY: socket(2) with constant arguments; the fd is owned below.
            let fd = unsafe {
                libc::socket(
                    domain,
                    libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                    0,
                )
            };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: socket just returned this fresh descriptor.
            Ok(unsafe { OwnedFd::from_raw_fd(fd) })
        };
        let Some((pod, own)) = &self.fds else {
            return mk();
        };
        // SAFETY: setns on a namespace fd we own; the process is single-threaded
        // (the supervisor), so no other thread observes the switch.
        if unsafe { libc::setns(pod.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let r = mk();
        // SAFETY: as above, back to our own namespace.
        if unsafe { libc::setns(own.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            // Staying in the pod's namespace would be wrong for everything else we do.
            let e = io::Error::last_os_error();
            tracing::error!(error = %e, "cannot return to the supervisor's network namespace");
            return Err(e);
        }
        r
    }
}

/// Resolves a probe host: an IP literal, or `localhost`. Names are not
/// resolved (no blocking DNS in the supervisor's loop).
pub fn resolve_host(host: &str) -> Result<IpAddr, String> {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if h.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    h.parse::<IpAddr>().map_err(|_| {
        format!("host {host:?} is not an IP address (podrun probes do not resolve names)")
    })
}

fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in, sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in6, sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

/// Starts a non-blocking connect. Ok(true): connected at once; Ok(false): in progress.
pub fn start_connect(fd: &OwnedFd, addr: SocketAddr) -> io::Result<bool> {
    let (ss, len) = sockaddr(addr);
    // SAFETY: ss/len describe a valid socket address for this fd's family.
    let r = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            &ss as *const _ as *const libc::sockaddr,
            len,
        )
    };
    if r == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EINPROGRESS) | Some(libc::EINTR) => Ok(false),
        _ => Err(e),
    }
}

/// The pending error of a socket (`SO_ERROR`): Ok(()) when connected.
pub fn socket_error(fd: RawFd) -> io::Result<()> {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `err`.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            &mut err as *mut _ as *mut libc::c_void,
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    if err != 0 {
        return Err(io::Error::from_raw_os_error(err));
    }
    Ok(())
}

/// The `revents` of `fd` for `events` right now (zero-timeout poll).
pub fn ready(fd: RawFd, events: i16) -> i16 {
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let r = unsafe { libc::poll(&mut p, 1, 0) };
    if r <= 0 {
        0
    } else {
        p.revents
    }
}

/// The error text kubelet's Go dialer would show: `dial tcp 1.2.3.4:80: connect: connection refused`.
pub fn dial_error(addr: SocketAddr, e: &io::Error) -> String {
    let msg = match e.raw_os_error() {
        Some(n) => {
            // strerror text, lower-cased like Go's syscall errors.
            let s = io::Error::from_raw_os_error(n).to_string();
            let s = s.split(" (os error").next().unwrap_or(&s).to_string();
            s.to_lowercase()
        }
        None => e.to_string(),
    };
    format!("dial tcp {addr}: connect: {msg}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_resolve_only_literals() {
        assert_eq!(resolve_host("localhost").unwrap().to_string(), "127.0.0.1");
        assert_eq!(resolve_host("10.1.2.3").unwrap().to_string(), "10.1.2.3");
        assert_eq!(resolve_host("[::1]").unwrap().to_string(), "::1");
        assert!(resolve_host("example.com")
            .unwrap_err()
            .contains("example.com"));
    }

    #[test]
    fn dial_error_text() {
        let a: SocketAddr = "127.0.0.1:81".parse().unwrap();
        let e = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(
            dial_error(a, &e),
            "dial tcp 127.0.0.1:81: connect: connection refused"
        );
    }

    #[test]
    fn host_socket_connects_to_a_local_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let fd = NetNs::host().tcp_socket(false).unwrap();
        let now = start_connect(&fd, addr).unwrap();
        if !now {
            let mut p = libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut p, 1, 5000) };
        }
        socket_error(fd.as_raw_fd()).unwrap();
        l.accept().unwrap();
    }
}
