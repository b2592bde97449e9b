//! Pure HTTP/1.1 for httpGet probes and hooks, as kubelet's prober does it
//! (pkg/probe/http/request.go, http.go): request building with kubelet's
//! header rules, incremental response parsing with a 10 KiB body cap, and the
//! redirect rule (follow only to the same host, at most 10 times).

use std::fmt;

/// kubelet's `User-Agent` is `kube-probe/<major>.<minor>`: the Kubernetes
/// version whose API this build follows (k8s-openapi `latest`).
pub const KUBE_VERSION: &str = "1.37";

/// At most this many body bytes are read (kubelet's maxRespBodyLength).
pub const MAX_BODY: usize = 10 * 1024;

/// At most this many header bytes are accepted.
pub const MAX_HEAD: usize = 64 * 1024;

/// Redirects followed before the probe fails (Go's http.Client default).
pub const MAX_REDIRECTS: usize = 10;

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// A parsed absolute URL (only what probes need).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub scheme: Scheme,
    /// Host name or IP (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// Path plus query, always starting with `/`.
    pub path: String,
}

impl Url {
    /// `host:port` as it goes into a `Host` header (IPv6 bracketed, default port omitted).
    pub fn authority(&self) -> String {
        let h = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == self.scheme.default_port() {
            h
        } else {
            format!("{h}:{}", self.port)
        }
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(
            f,
            "{}://{}:{}{}",
            self.scheme.as_str(),
            h,
            self.port,
            self.path
        )
    }
}

/// The probe's URL: `path` gets a leading `/` if it lacks one (kubelet formatURL).
pub fn probe_url(scheme: Scheme, host: &str, port: u16, path: &str) -> Url {
    let path = if path.is_empty() {
        "/".to_string()
    } else if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    Url {
        scheme,
        host: host.trim_start_matches('[').trim_end_matches(']').into(),
        port,
        path,
    }
}

/// Parses an absolute `http(s)://host[:port][/path]` URL.
pub fn parse_url(s: &str) -> Option<Url> {
    let (scheme, rest) = if let Some(r) = strip_prefix_ci(s, "http://") {
        (Scheme::Http, r)
    } else if let Some(r) = strip_prefix_ci(s, "https://") {
        (Scheme::Https, r)
    } else {
        return None;
    };
    let (auth, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = path.split('#').next().unwrap_or("/");
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else if path.is_empty() {
        "/".into()
    } else {
        path.to_string()
    };
    let auth = auth.rsplit('@').next().unwrap_or(auth);
    let (host, port) = if let Some(r) = auth.strip_prefix('[') {
        let end = r.find(']')?;
        let host = &r[..end];
        let port = match r[end + 1..].strip_prefix(':') {
            Some(p) if !p.is_empty() => p.parse().ok()?,
            _ => scheme.default_port(),
        };
        (host.to_string(), port)
    } else {
        match auth.rsplit_once(':') {
            Some((h, p)) if !p.is_empty() => (h.to_string(), p.parse().ok()?),
            Some((h, _)) => (h.to_string(), scheme.default_port()),
            None => (auth.to_string(), scheme.default_port()),
        }
    };
    if host.is_empty() {
        return None;
    }
    Some(Url {
        scheme,
        host: host.to_ascii_lowercase(),
        port,
        path,
    })
}

fn strip_prefix_ci<'a>(s: &'a str, p: &str) -> Option<&'a str> {
    (s.len() >= p.len() && s[..p.len()].eq_ignore_ascii_case(p)).then(|| &s[p.len()..])
}

/// The headers a probe sends, after kubelet's rules: the manifest's
/// `httpHeaders` in order (repeatable), `User-Agent: kube-probe/<v>` and
/// `Accept: */*` unless given, a header with an empty value is not sent and
/// removes the default of that name; `Host` sets the Host header (else the
/// URL's authority); `Connection: close` always.
pub fn request_headers(url: &Url, custom: &[(String, String)]) -> Vec<(String, String)> {
    let given = |n: &str| custom.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    let host = custom
        .iter()
        .rfind(|(k, _)| k.eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.clone())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| url.authority());
    let mut out = vec![("Host".to_string(), host)];
    for (k, v) in custom {
        if k.eq_ignore_ascii_case("host") || k.eq_ignore_ascii_case("connection") || v.is_empty() {
            continue;
        }
        out.push((k.clone(), v.clone()));
    }
    if !given("user-agent") {
        out.push(("User-Agent".into(), format!("kube-probe/{KUBE_VERSION}")));
    }
    if !given("accept") {
        out.push(("Accept".into(), "*/*".into()));
    }
    out.push(("Connection".into(), "close".into()));
    out
}

/// The bytes of a GET request for `url` with `headers` (from [`request_headers`]).
pub fn build_request(url: &Url, headers: &[(String, String)]) -> Vec<u8> {
    let mut s = format!("GET {} HTTP/1.1\r\n", url.path);
    for (k, v) in headers {
        // Header injection guard: CR/LF never reach the wire.
        let clean = |x: &str| x.replace(['\r', '\n'], " ");
        s.push_str(&format!("{}: {}\r\n", clean(k), clean(v)));
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// A parsed response (body truncated to [`MAX_BODY`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text for an event message.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Result of feeding received bytes to [`parse_response`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Need more bytes.
    Incomplete,
    Done(Response),
    Malformed(String),
}

/// Parses the bytes received so far; `eof` once the peer closed. Complete
/// when the head is in and the body is complete (Content-Length, chunked end,
/// or EOF) or [`MAX_BODY`] body bytes are in. 1xx responses are skipped.
pub fn parse_response(buf: &[u8], eof: bool) -> Parsed {
    let mut buf = buf;
    loop {
        let Some(end) = find(buf, b"\r\n\r\n") else {
            if buf.len() > MAX_HEAD {
                return Parsed::Malformed("response head over 64 KiB".into());
            }
            return if eof {
                Parsed::Malformed(if buf.is_empty() {
                    "EOF before any response".into()
                } else {
                    "EOF in the response head".into()
                })
            } else {
                Parsed::Incomplete
            };
        };
        let head = String::from_utf8_lossy(&buf[..end]);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let mut parts = status_line.splitn(3, ' ');
        let ver = parts.next().unwrap_or("");
        if !ver.starts_with("HTTP/1.") {
            return Parsed::Malformed(format!("malformed HTTP status line {status_line:?}"));
        }
        let Some(status) = parts
            .next()
            .and_then(|c| c.parse::<u16>().ok())
            .filter(|c| (100..1000).contains(c))
        else {
            return Parsed::Malformed(format!("malformed HTTP status code in {status_line:?}"));
        };
        let mut headers = Vec::new();
        for l in lines {
            if let Some((k, v)) = l.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let rest = &buf[end + 4..];
        if (100..200).contains(&status) {
            buf = rest;
            continue;
        }
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        let chunked =
            get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let done = |body: Vec<u8>| {
            let mut body = body;
            body.truncate(MAX_BODY);
            Parsed::Done(Response {
                status,
                headers: headers.clone(),
                body,
            })
        };
        if status == 204 || status == 304 {
            return done(Vec::new());
        }
        if chunked {
            let (body, complete) = dechunk(rest);
            if complete || eof || body.len() >= MAX_BODY {
                return done(body);
            }
            return Parsed::Incomplete;
        }
        if let Some(len) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
            let want = len.min(MAX_BODY);
            if rest.len() >= want || eof {
                return done(rest[..rest.len().min(want)].to_vec());
            }
            return Parsed::Incomplete;
        }
        if eof || rest.len() >= MAX_BODY {
            return done(rest.to_vec());
        }
        return Parsed::Incomplete;
    }
}

/// Decodes as much of a chunked body as is present; true once the last chunk was seen.
fn dechunk(mut b: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(eol) = find(b, b"\r\n") else {
            return (out, false);
        };
        let size_s = String::from_utf8_lossy(&b[..eol]);
        let size_s = size_s.split(';').next().unwrap_or("").trim().to_string();
        let Ok(size) = usize::from_str_radix(&size_s, 16) else {
            return (out, true);
        };
        if size == 0 {
            return (out, true);
        }
        let data = &b[eol + 2..];
        if data.len() < size {
            out.extend_from_slice(data);
            return (out, false);
        }
        out.extend_from_slice(&data[..size]);
        if out.len() >= MAX_BODY {
            return (out, true);
        }
        b = data.get(size + 2..).unwrap_or(&[]);
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

/// What to do with a 3xx response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redirect {
    /// Not a redirect (or no Location): the status decides.
    None,
    /// Follow to this URL (same host name).
    Follow(Url),
    /// Another host: stop here; success with a warning.
    OtherHost(String),
}

/// kubelet's redirect rule: 301, 302, 303, 307, 308 with a Location are
/// followed when the target's host name equals the original request's; a
/// different host stops with the 3xx as the response (a success with a
/// warning).
pub fn redirect(original: &Url, current: &Url, resp: &Response) -> Redirect {
    if !matches!(resp.status, 301 | 302 | 303 | 307 | 308) {
        return Redirect::None;
    }
    let Some(loc) = resp.header("location").filter(|l| !l.is_empty()) else {
        return Redirect::None;
    };
    let target = resolve_location(current, loc);
    match target {
        Some(u) if u.host.eq_ignore_ascii_case(&original.host) => Redirect::Follow(u),
        Some(u) => Redirect::OtherHost(u.to_string()),
        None => Redirect::OtherHost(loc.to_string()),
    }
}

/// Resolves a Location header against the current URL.
pub fn resolve_location(current: &Url, loc: &str) -> Option<Url> {
    if let Some(u) = parse_url(loc) {
        return Some(u);
    }
    if let Some(rest) = loc.strip_prefix("//") {
        return parse_url(&format!("{}://{rest}", current.scheme.as_str()));
    }
    if loc.contains("://") {
        return None;
    }
    let path = if loc.starts_with('/') {
        loc.to_string()
    } else if loc.starts_with('?') {
        let base = current.path.split('?').next().unwrap_or("/");
        format!("{base}{loc}")
    } else {
        let base = current.path.split('?').next().unwrap_or("/");
        let dir = &base[..base.rfind('/').map(|i| i + 1).unwrap_or(0)];
        format!("{dir}{loc}")
    };
    Some(Url {
        path,
        ..current.clone()
    })
}

/// kubelet's success rule: 200 ≤ status < 400.
pub fn is_success(status: u16) -> bool {
    (200..400).contains(&status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(k: &str, v: &str) -> (String, String) {
        (k.into(), v.into())
    }

    #[test]
    fn url_building_and_authority() {
        let u = probe_url(Scheme::Http, "127.0.0.1", 8080, "healthz?x=1");
        assert_eq!(u.path, "/healthz?x=1");
        assert_eq!(u.authority(), "127.0.0.1:8080");
        assert_eq!(probe_url(Scheme::Http, "a", 80, "").authority(), "a");
        assert_eq!(
            probe_url(Scheme::Https, "::1", 8443, "/").authority(),
            "[::1]:8443"
        );
        assert_eq!(
            probe_url(Scheme::Https, "[::1]", 443, "/").to_string(),
            "https://[::1]:443/"
        );
    }

    #[test]
    fn default_headers_and_request_bytes() {
        let u = probe_url(Scheme::Http, "10.0.0.1", 8080, "/healthz");
        let hs = request_headers(&u, &[]);
        assert_eq!(
            hs,
            vec![
                h("Host", "10.0.0.1:8080"),
                h("User-Agent", "kube-probe/1.37"),
                h("Accept", "*/*"),
                h("Connection", "close"),
            ]
        );
        let req = String::from_utf8(build_request(&u, &hs)).unwrap();
        assert!(req.starts_with("GET /healthz HTTP/1.1\r\nHost: 10.0.0.1:8080\r\n"));
        assert!(req.ends_with("Connection: close\r\n\r\n"));
    }

    #[test]
    fn custom_headers_host_repeats_and_empty_removes_default() {
        let u = probe_url(Scheme::Http, "10.0.0.1", 80, "/");
        let hs = request_headers(
            &u,
            &[
                h("X-Custom", "a"),
                h("x-custom", "b"),
                h("host", "example.com"),
                h("user-agent", ""),
                h("Accept", "application/json"),
                h("Connection", "keep-alive"),
            ],
        );
        assert_eq!(
            hs,
            vec![
                h("Host", "example.com"),
                h("X-Custom", "a"),
                h("x-custom", "b"),
                h("Accept", "application/json"),
                h("Connection", "close"),
            ]
        );
        // CR/LF in a value cannot inject a header.
        let req = build_request(&u, &[h("X", "a\r\nEvil: 1")]);
        assert!(!String::from_utf8(req).unwrap().contains("\r\nEvil"));
    }

    #[test]
    fn parse_content_length_chunked_eof_and_cap() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel";
        assert_eq!(parse_response(r, false), Parsed::Incomplete);
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        match parse_response(r, false) {
            Parsed::Done(x) => assert_eq!((x.status, x.body.as_slice()), (200, &b"hello"[..])),
            o => panic!("{o:?}"),
        }
        let r = b"HTTP/1.1 500 Internal\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        match parse_response(r, false) {
            Parsed::Done(x) => assert_eq!((x.status, x.body_text()), (500, "abcde".into())),
            o => panic!("{o:?}"),
        }
        let r = b"HTTP/1.0 404 Not Found\r\nServer: x\r\n\r\nnope";
        assert_eq!(parse_response(r, false), Parsed::Incomplete);
        match parse_response(r, true) {
            Parsed::Done(x) => assert_eq!((x.status, x.body_text()), (404, "nope".into())),
            o => panic!("{o:?}"),
        }
        let mut big = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        big.extend(std::iter::repeat_n(b'x', 20_000));
        match parse_response(&big, false) {
            Parsed::Done(x) => assert_eq!(x.body.len(), MAX_BODY),
            o => panic!("{o:?}"),
        }
        let r = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
        assert!(matches!(parse_response(r, false), Parsed::Done(x) if x.status == 204));
    }

    #[test]
    fn malformed_responses() {
        assert!(matches!(parse_response(b"", true), Parsed::Malformed(_)));
        assert!(matches!(
            parse_response(b"SSH-2.0-OpenSSH\r\n\r\n", false),
            Parsed::Malformed(m) if m.contains("status line")
        ));
        assert!(matches!(
            parse_response(b"HTTP/1.1 abc OK\r\n\r\n", false),
            Parsed::Malformed(_)
        ));
        assert!(matches!(
            parse_response(b"HTTP/1.1 200 OK\r\nX: y", true),
            Parsed::Malformed(m) if m.contains("EOF")
        ));
    }

    fn resp(status: u16, loc: Option<&str>) -> Response {
        Response {
            status,
            headers: loc.map(|l| vec![h("Location", l)]).unwrap_or_default(),
            body: vec![],
        }
    }

    #[test]
    fn redirect_rule() {
        let orig = probe_url(Scheme::Http, "127.0.0.1", 8080, "/a/b");
        assert_eq!(redirect(&orig, &orig, &resp(200, None)), Redirect::None);
        assert_eq!(redirect(&orig, &orig, &resp(302, None)), Redirect::None);
        assert_eq!(
            redirect(&orig, &orig, &resp(302, Some("/new"))),
            Redirect::Follow(probe_url(Scheme::Http, "127.0.0.1", 8080, "/new"))
        );
        assert_eq!(
            redirect(&orig, &orig, &resp(301, Some("c?x"))),
            Redirect::Follow(probe_url(Scheme::Http, "127.0.0.1", 8080, "/a/c?x"))
        );
        // Same host name, other port and scheme: followed (kubelet compares host names).
        assert_eq!(
            redirect(&orig, &orig, &resp(307, Some("https://127.0.0.1:8443/x"))),
            Redirect::Follow(probe_url(Scheme::Https, "127.0.0.1", 8443, "/x"))
        );
        assert_eq!(
            redirect(&orig, &orig, &resp(308, Some("http://example.com/"))),
            Redirect::OtherHost("http://example.com:80/".into())
        );
        assert_eq!(
            redirect(&orig, &orig, &resp(302, Some("//other:81/p"))),
            Redirect::OtherHost("http://other:81/p".into())
        );
        assert_eq!(
            redirect(&orig, &orig, &resp(300, Some("/x"))),
            Redirect::None
        );
    }

    #[test]
    fn success_range_and_url_parsing() {
        assert!(!is_success(199) && is_success(200) && is_success(399) && !is_success(400));
        assert_eq!(
            parse_url("HTTP://User@Host:81?q"),
            Some(Url {
                scheme: Scheme::Http,
                host: "host".into(),
                port: 81,
                path: "/?q".into()
            })
        );
        assert_eq!(parse_url("ftp://x/"), None);
        assert_eq!(parse_url("http://:80/"), None);
        assert_eq!(parse_url("http://[::1]/").unwrap().host, "::1");
    }
}
