//! One probe or hook run in flight: tcpSocket connect, httpGet (plain or TLS),
//! exec, or sleep. Every run exposes descriptors to poll and a deadline and is
//! advanced by non-blocking [`Inflight::advance`] calls from the supervisor's loop.

use super::exec::{ExecEnd, ExecRun};
use super::http::{self, Parsed, Redirect, Response, Scheme, Url};
use super::net::{dial_error, ready, resolve_host, socket_error, start_connect, NetNs};
use super::tls;
use super::Handler;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What a run came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Success; `warning` for an httpGet redirect to another host.
    Success {
        message: String,
        warning: Option<String>,
    },
    /// A probe failure (non-zero exit, bad status, refused connect, timeout).
    Failure(String),
    /// The check could not be run at all (kubelet: "probe errored"; not a result).
    Error(String),
}

impl Outcome {
    fn ok(m: impl Into<String>) -> Outcome {
        Outcome::Success {
            message: m.into(),
            warning: None,
        }
    }
}

/// Where exec runs and sockets go.
#[derive(Debug, Clone)]
pub struct ExecTarget {
    pub state_root: PathBuf,
    pub container_id: String,
}

/// A run in flight.
#[derive(Debug)]
pub struct Inflight {
    what: What,
    /// Timeout (probes) or remaining grace (preStop); None: none.
    deadline: Option<Instant>,
    timeout: Option<Duration>,
}

#[derive(Debug)]
enum What {
    Tcp { sock: TcpStream, addr: SocketAddr },
    Http(Box<HttpCheck>),
    Grpc(Box<GrpcCheck>),
    Exec { run: ExecRun, argv: Vec<String> },
    Sleep { until: Instant },
}

fn addr_for(host: &str, port: u16) -> Result<SocketAddr, String> {
    Ok(SocketAddr::new(resolve_host(host)?, port))
}

/// Opens a socket in the pod's namespace and starts connecting.
fn connect(net: &NetNs, addr: SocketAddr) -> Result<(TcpStream, bool), Outcome> {
    let fd = net
        .tcp_socket(addr.is_ipv6())
        .map_err(|e| Outcome::Error(format!("socket in the pod's network namespace: {e}")))?;
    let now = start_connect(&fd, addr).map_err(|e| Outcome::Failure(dial_error(addr, &e)))?;
    Ok((TcpStream::from(fd), now))
}

impl Inflight {
    /// Starts `h`. An immediate result (a refused connect, a bad host) comes back as Err.
    pub fn start(
        h: &Handler,
        net: &NetNs,
        exec: &ExecTarget,
        now: Instant,
        timeout: Option<Duration>,
    ) -> Result<Inflight, Outcome> {
        let what = match h {
            Handler::Tcp { host, port } => {
                let addr = addr_for(host, *port).map_err(Outcome::Error)?;
                let (sock, done) = connect(net, addr)?;
                if done {
                    return Err(Outcome::ok(""));
                }
                What::Tcp { sock, addr }
            }
            Handler::Http(spec) => {
                let url = http::probe_url(spec.scheme, &spec.host, spec.port, &spec.path);
                let conn = Conn::open(net, &url, &spec.headers)?;
                What::Http(Box::new(HttpCheck {
                    original: url.clone(),
                    current: url,
                    custom: spec.headers.clone(),
                    redirects: 0,
                    conn,
                }))
            }
            Handler::Grpc {
                host,
                port,
                service,
            } => {
                let addr = addr_for(host, *port).map_err(Outcome::Error)?;
                let (sock, connected) = connect(net, addr).map_err(|o| match o {
                    Outcome::Failure(m) => Outcome::Failure(format!(
                        "timeout: failed to connect service \"{addr}\": {m}"
                    )),
                    o => o,
                })?;
                What::Grpc(Box::new(GrpcCheck {
                    sock,
                    addr,
                    connected,
                    out: super::grpc::client_bytes(
                        &addr.to_string(),
                        service,
                        &format!("kube-probe/{}", http::KUBE_VERSION),
                    ),
                    sent: 0,
                    reader: super::grpc::Reader::default(),
                    eof: false,
                }))
            }
            Handler::Exec(argv) => {
                let run = ExecRun::spawn(&exec.state_root, &exec.container_id, argv)
                    .map_err(|e| Outcome::Error(format!("start exec helper: {e}")))?;
                What::Exec {
                    run,
                    argv: argv.clone(),
                }
            }
            Handler::Sleep(d) => What::Sleep { until: now + *d },
        };
        Ok(Inflight {
            what,
            deadline: timeout.map(|t| now + t),
            timeout,
        })
    }

    /// Descriptors and poll events.
    pub fn poll_fds(&self) -> Vec<(RawFd, i16)> {
        match &self.what {
            What::Tcp { sock, .. } => vec![(sock.as_raw_fd(), libc::POLLOUT)],
            What::Http(h) => vec![(h.conn.sock.as_raw_fd(), h.conn.events())],
            What::Grpc(g) => vec![(g.sock.as_raw_fd(), g.events())],
            What::Exec { run, .. } => run
                .poll_fds()
                .into_iter()
                .map(|f| (f, libc::POLLIN))
                .collect(),
            What::Sleep { .. } => vec![],
        }
    }

    /// The earliest time this run needs attention without any fd activity.
    pub fn next_deadline(&self) -> Option<Instant> {
        let own = match &self.what {
            What::Sleep { until } => Some(*until),
            _ => None,
        };
        match (own, self.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Non-blocking progress: Some(outcome) when finished.
    pub fn advance(&mut self, net: &NetNs, now: Instant) -> Option<Outcome> {
        let r = match &mut self.what {
            What::Tcp { sock, addr } => {
                if ready(sock.as_raw_fd(), libc::POLLOUT) != 0 {
                    Some(match socket_error(sock.as_raw_fd()) {
                        Ok(()) => Outcome::ok(""),
                        Err(e) => Outcome::Failure(dial_error(*addr, &e)),
                    })
                } else {
                    None
                }
            }
            What::Http(h) => h.advance(net),
            What::Grpc(g) => g.advance(),
            What::Exec { run, argv } => run.poll().map(|end| exec_outcome(end, argv, run)),
            What::Sleep { until } => (now >= *until).then(|| Outcome::ok("")),
        };
        if r.is_some() {
            return r;
        }
        if self.deadline.is_some_and(|d| now >= d) {
            let t = self.timeout.unwrap_or_default();
            return Some(match &mut self.what {
                What::Tcp { addr, .. } => {
                    Outcome::Failure(format!("dial tcp {addr}: i/o timeout"))
                }
                What::Http(h) => Outcome::Failure(format!(
                    "Get \"{}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
                    h.current
                )),
                What::Grpc(_) => Outcome::Failure(format!(
                    "timeout: health rpc did not complete within {}s",
                    t.as_secs_f64()
                )),
                What::Exec { run, argv } => {
                    run.kill();
                    let out = run.output();
                    Outcome::Failure(format!(
                        "command {:?} timed out after {}s{}",
                        argv.join(" "),
                        t.as_secs_f64(),
                        if out.is_empty() {
                            String::new()
                        } else {
                            format!(": {out}")
                        }
                    ))
                }
                What::Sleep { .. } => Outcome::Failure(format!(
                    "sleep abandoned after {}s: the grace period ran out",
                    t.as_secs_f64()
                )),
            });
        }
        None
    }

    /// Stops the run (kills an exec's process group; closes sockets).
    pub fn cancel(mut self) {
        if let What::Exec { run, .. } = &mut self.what {
            run.kill();
        }
    }
}

fn exec_outcome(end: ExecEnd, argv: &[String], run: &ExecRun) -> Outcome {
    let out = run.output();
    match end {
        ExecEnd::Exited(0) => Outcome::ok(out),
        ExecEnd::Exited(c) => Outcome::Failure(if out.is_empty() {
            format!("command {:?} exited with {c}", argv.join(" "))
        } else {
            format!("command {:?} exited with {c}: {out}", argv.join(" "))
        }),
        ExecEnd::Error(e) => Outcome::Error(format!("exec {:?}: {e}", argv.join(" "))),
        ExecEnd::Lost => Outcome::Error(format!(
            "exec {:?}: the exec helper died without a report",
            argv.join(" ")
        )),
    }
}

/// One `grpc.health.v1.Health/Check` call over plaintext HTTP/2.
#[derive(Debug)]
struct GrpcCheck {
    sock: TcpStream,
    addr: SocketAddr,
    connected: bool,
    out: Vec<u8>,
    sent: usize,
    reader: super::grpc::Reader,
    eof: bool,
}

impl GrpcCheck {
    fn events(&self) -> i16 {
        if !self.connected || self.sent < self.out.len() {
            libc::POLLOUT | libc::POLLIN
        } else {
            libc::POLLIN
        }
    }

    fn advance(&mut self) -> Option<Outcome> {
        use super::grpc::{response_status, status_name};
        match finish_connect(&self.sock, self.addr, &mut self.connected) {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => {
                return Some(Outcome::Failure(format!(
                    "timeout: failed to connect service \"{}\": {e}",
                    self.addr
                )))
            }
        }
        let mut buf = [0u8; 4096];
        loop {
            if let Err(e) = write_pending(&mut self.sock, &self.out, &mut self.sent) {
                return Some(Outcome::Failure(format!("rpc error: {e}")));
            }
            if self.eof {
                break;
            }
            match self.sock.read(&mut buf) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    let reply = self.reader.feed(&buf[..n]);
                    self.out.extend_from_slice(&reply);
                    if self.reader.ended || self.reader.error.is_some() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.eof = true;
                    if self.reader.data.is_empty() {
                        return Some(Outcome::Failure(format!("rpc error: read: {e}")));
                    }
                }
            }
        }
        if let Some(e) = &self.reader.error {
            if !self.reader.ended {
                return Some(Outcome::Failure(format!("rpc error: {e}")));
            }
        }
        if !(self.reader.ended || self.eof) {
            return None;
        }
        Some(match response_status(&self.reader.data) {
            Some(1) => Outcome::ok("service healthy"),
            Some(s) => Outcome::Failure(format!(
                "service unhealthy (responded with \"{}\")",
                status_name(s)
            )),
            None => Outcome::Failure(
                "rpc error: the call ended without a response message (see the server's grpc-status)"
                    .into(),
            ),
        })
    }
}

/// An HTTP(S) GET with its redirects.
#[derive(Debug)]
struct HttpCheck {
    original: Url,
    current: Url,
    custom: Vec<(String, String)>,
    redirects: usize,
    conn: Conn,
}

impl HttpCheck {
    fn advance(&mut self, net: &NetNs) -> Option<Outcome> {
        let resp = match self.conn.drive() {
            Ok(None) => return None,
            Ok(Some(r)) => r,
            Err(e) => return Some(Outcome::Failure(format!("Get \"{}\": {e}", self.current))),
        };
        match http::redirect(&self.original, &self.current, &resp) {
            Redirect::Follow(u) => {
                self.redirects += 1;
                if self.redirects >= http::MAX_REDIRECTS {
                    return Some(Outcome::Failure(format!(
                        "Get \"{u}\": stopped after {} redirects",
                        http::MAX_REDIRECTS
                    )));
                }
                match Conn::open(net, &u, &self.custom) {
                    Ok(c) => {
                        self.conn = c;
                        self.current = u;
                        // Progress may be possible at once (a fast local connect).
                        self.advance(net)
                    }
                    Err(o) => Some(o),
                }
            }
            Redirect::OtherHost(loc) => Some(Outcome::Success {
                message: status_message(&resp),
                warning: Some(format!(
                    "Probe terminated redirects to {loc}, Response body: {}",
                    short(&resp.body_text())
                )),
            }),
            Redirect::None if http::is_success(resp.status) => {
                Some(Outcome::ok(status_message(&resp)))
            }
            Redirect::None => Some(Outcome::Failure(format!(
                "HTTP probe failed with statuscode: {}{}",
                resp.status,
                if resp.body.is_empty() {
                    String::new()
                } else {
                    format!(", body: {}", short(&resp.body_text()))
                }
            ))),
        }
    }
}

fn status_message(r: &Response) -> String {
    format!("HTTP probe succeeded with statuscode: {}", r.status)
}

/// Event messages stay short (kubelet caps event messages at 1 KiB).
fn short(s: &str) -> String {
    let s = s.trim();
    if s.len() <= 512 {
        return s.to_string();
    }
    let mut end = 512;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// A non-blocking connect: Ok(true) once it is established (at once if it
/// already was), Ok(false) while it is still in progress, Err with the dial
/// error kubelet would report.
fn finish_connect(
    sock: &TcpStream,
    addr: SocketAddr,
    connected: &mut bool,
) -> Result<bool, String> {
    if !*connected {
        if ready(sock.as_raw_fd(), libc::POLLOUT) == 0 {
            return Ok(false);
        }
        socket_error(sock.as_raw_fd()).map_err(|e| dial_error(addr, &e))?;
        *connected = true;
    }
    Ok(true)
}

/// Writes `out[*sent..]` until done or the socket would block.
fn write_pending(sock: &mut TcpStream, out: &[u8], sent: &mut usize) -> Result<(), String> {
    while *sent < out.len() {
        match sock.write(&out[*sent..]) {
            Ok(n) => *sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("write: {e}")),
        }
    }
    Ok(())
}

/// One HTTP connection.
#[derive(Debug)]
struct Conn {
    sock: TcpStream,
    connected: bool,
    addr: SocketAddr,
    tls: Option<Box<rustls::ClientConnection>>,
    req: Vec<u8>,
    sent: usize,
    inbuf: Vec<u8>,
    eof: bool,
}

impl Conn {
    fn open(net: &NetNs, url: &Url, custom: &[(String, String)]) -> Result<Conn, Outcome> {
        let addr = addr_for(&url.host, url.port).map_err(Outcome::Error)?;
        let (sock, connected) = connect(net, addr).map_err(|o| match o {
            Outcome::Failure(m) => Outcome::Failure(format!("Get \"{url}\": {m}")),
            o => o,
        })?;
        let tls = match url.scheme {
            Scheme::Http => None,
            Scheme::Https => Some(Box::new(
                tls::client(&url.host).map_err(|e| Outcome::Error(format!("tls: {e}")))?,
            )),
        };
        let headers = http::request_headers(url, custom);
        Ok(Conn {
            sock,
            connected,
            addr,
            tls,
            req: http::build_request(url, &headers),
            sent: 0,
            inbuf: Vec::new(),
            eof: false,
        })
    }

    fn events(&self) -> i16 {
        if !self.connected {
            return libc::POLLOUT;
        }
        match &self.tls {
            None if self.sent < self.req.len() => libc::POLLOUT,
            None => libc::POLLIN,
            Some(t) if t.wants_write() => libc::POLLIN | libc::POLLOUT,
            Some(_) => libc::POLLIN,
        }
    }

    fn cap(&self) -> usize {
        http::MAX_HEAD + http::MAX_BODY
    }

    /// Ok(Some) with the response; Err with a connection/protocol error.
    fn drive(&mut self) -> Result<Option<Response>, String> {
        if !finish_connect(&self.sock, self.addr, &mut self.connected)? {
            return Ok(None);
        }
        match self.tls.take() {
            None => self.drive_plain()?,
            Some(mut t) => {
                let r = self.drive_tls(&mut t);
                self.tls = Some(t);
                r?
            }
        }
        match http::parse_response(&self.inbuf, self.eof) {
            Parsed::Incomplete if self.inbuf.len() >= self.cap() => {
                Err("response too large".into())
            }
            Parsed::Incomplete => Ok(None),
            Parsed::Done(r) => Ok(Some(r)),
            Parsed::Malformed(m) => Err(m),
        }
    }

    fn drive_plain(&mut self) -> Result<(), String> {
        write_pending(&mut self.sock, &self.req, &mut self.sent)?;
        if self.sent < self.req.len() {
            return Ok(());
        }
        let mut buf = [0u8; 4096];
        while !self.eof && self.inbuf.len() < self.cap() {
            match self.sock.read(&mut buf) {
                Ok(0) => self.eof = true,
                Ok(n) => self.inbuf.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A reset after a complete response is common with Connection: close.
                Err(e) if !self.inbuf.is_empty() => {
                    tracing::debug!(error = %e, "read after response");
                    self.eof = true;
                }
                Err(e) => return Err(format!("read: {e}")),
            }
        }
        Ok(())
    }

    fn drive_tls(&mut self, t: &mut rustls::ClientConnection) -> Result<(), String> {
        if self.sent < self.req.len() {
            // Buffered by rustls until the handshake is done.
            t.writer()
                .write_all(&self.req)
                .map_err(|e| format!("tls write: {e}"))?;
            self.sent = self.req.len();
        }
        let mut buf = [0u8; 4096];
        loop {
            let mut progress = false;
            while t.wants_write() {
                match t.write_tls(&mut self.sock) {
                    Ok(0) => break,
                    Ok(_) => progress = true,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("tls write: {e}")),
                }
            }
            if !self.eof && t.wants_read() {
                match t.read_tls(&mut self.sock) {
                    Ok(0) => {
                        self.eof = true;
                        progress = true;
                    }
                    Ok(_) => {
                        t.process_new_packets().map_err(|e| format!("tls: {e}"))?;
                        progress = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => progress = true,
                    Err(e) if !self.inbuf.is_empty() => {
                        tracing::debug!(error = %e, "tls read after response");
                        self.eof = true;
                    }
                    Err(e) => return Err(format!("tls read: {e}")),
                }
            }
            loop {
                match t.reader().read(&mut buf) {
                    Ok(0) => {
                        self.eof = true;
                        break;
                    }
                    Ok(n) => {
                        self.inbuf.extend_from_slice(&buf[..n]);
                        progress = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        self.eof = true;
                        break;
                    }
                    Err(e) => return Err(format!("tls read: {e}")),
                }
            }
            if !progress || self.inbuf.len() >= self.cap() || self.eof {
                if self.eof && t.is_handshaking() {
                    return Err("tls: connection closed during the handshake".into());
                }
                return Ok(());
            }
        }
    }
}
