//! gRPC probes: one `grpc.health.v1.Health/Check` call over plaintext HTTP/2
//! (prior knowledge, as kubelet's prober), pure framing here, driven by
//! `action.rs` over a non-blocking socket in the pod's network namespace.
//!
//! Only what one unary call needs: the client preface, an empty SETTINGS, a
//! HEADERS frame (HPACK literals without indexing, no Huffman), one DATA frame
//! with the request; then SETTINGS/PING are acknowledged and DATA of stream 1
//! collected until the stream ends. The response message decides:
//! `HealthCheckResponse.status` 1 (SERVING) succeeds. Response headers are
//! not decoded (HPACK state is not needed for the verdict): a call that ends
//! without a message (an error status in the trailers) is a failure.

/// HTTP/2 frame types used.
const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const GOAWAY: u8 = 7;

const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;

/// The health service's method path.
pub const CHECK_PATH: &str = "/grpc.health.v1.Health/Check";

fn frame(out: &mut Vec<u8>, ty: u8, flags: u8, stream: u32, payload: &[u8]) {
    let n = payload.len() as u32;
    out.extend_from_slice(&n.to_be_bytes()[1..]);
    out.push(ty);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
}

/// HPACK integer with an N-bit prefix (RFC 7541 5.1); `first` holds the pattern bits.
fn hpack_int(out: &mut Vec<u8>, first: u8, prefix: u8, mut v: usize) {
    let max = (1usize << prefix) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// A header as "literal without indexing, new name" (RFC 7541 6.2.2), no Huffman.
fn hpack_literal(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(0x00);
    hpack_int(out, 0, 7, name.len());
    out.extend_from_slice(name.as_bytes());
    hpack_int(out, 0, 7, value.len());
    out.extend_from_slice(value.as_bytes());
}

/// `HealthCheckRequest { service }` in protobuf.
pub fn request_message(service: &str) -> Vec<u8> {
    let mut m = Vec::new();
    if !service.is_empty() {
        m.push(0x0a); // field 1, length-delimited
        let mut n = service.len();
        while n >= 0x80 {
            m.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        m.push(n as u8);
        m.extend_from_slice(service.as_bytes());
    }
    m
}

/// Everything the client sends first: preface, SETTINGS, HEADERS and the
/// request DATA (END_STREAM) on stream 1.
pub fn client_bytes(authority: &str, service: &str, user_agent: &str) -> Vec<u8> {
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    frame(&mut out, SETTINGS, 0, 0, &[]);
    let mut h = Vec::new();
    for (k, v) in [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", CHECK_PATH),
        (":authority", authority),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        ("user-agent", user_agent),
    ] {
        hpack_literal(&mut h, k, v);
    }
    frame(&mut out, HEADERS, END_HEADERS, 1, &h);
    let msg = request_message(service);
    let mut d = vec![0u8]; // not compressed
    d.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    d.extend_from_slice(&msg);
    frame(&mut out, DATA, END_STREAM, 1, &d);
    out
}

/// Incremental state of the response side.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reader {
    /// Bytes received and not yet parsed.
    buf: Vec<u8>,
    /// DATA payload of stream 1.
    pub data: Vec<u8>,
    /// Stream 1 ended (END_STREAM seen).
    pub ended: bool,
    /// A connection or stream error (GOAWAY, RST_STREAM, bad frame).
    pub error: Option<String>,
}

impl Reader {
    /// Feeds received bytes; returns bytes to send back (SETTINGS/PING acks).
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.buf.extend_from_slice(bytes);
        let mut reply = Vec::new();
        loop {
            if self.buf.len() < 9 {
                return reply;
            }
            let len = u32::from_be_bytes([0, self.buf[0], self.buf[1], self.buf[2]]) as usize;
            if len > 1 << 24 {
                self.error = Some("HTTP/2 frame too large".into());
                return reply;
            }
            if self.buf.len() < 9 + len {
                return reply;
            }
            let ty = self.buf[3];
            let flags = self.buf[4];
            let stream = u32::from_be_bytes([self.buf[5], self.buf[6], self.buf[7], self.buf[8]])
                & 0x7fff_ffff;
            let payload: Vec<u8> = self.buf[9..9 + len].to_vec();
            self.buf.drain(..9 + len);
            match ty {
                DATA if stream == 1 => {
                    let body = if flags & PADDED != 0 {
                        let pad = *payload.first().unwrap_or(&0) as usize;
                        payload
                            .get(1..payload.len().saturating_sub(pad))
                            .unwrap_or(&[])
                            .to_vec()
                    } else {
                        payload
                    };
                    self.data.extend_from_slice(&body);
                    if flags & END_STREAM != 0 {
                        self.ended = true;
                    }
                }
                HEADERS if stream == 1 && flags & END_STREAM != 0 => self.ended = true,
                SETTINGS if flags & ACK == 0 => frame(&mut reply, SETTINGS, ACK, 0, &[]),
                PING if flags & ACK == 0 => frame(&mut reply, PING, ACK, 0, &payload),
                GOAWAY => {
                    let code = payload
                        .get(4..8)
                        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                        .unwrap_or(0);
                    if !self.ended {
                        self.error = Some(format!(
                            "connection closed by the server (GOAWAY, error code {code})"
                        ));
                    }
                }
                RST_STREAM if stream == 1 => {
                    let code = payload
                        .get(..4)
                        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                        .unwrap_or(0);
                    self.error = Some(format!("stream reset by the server (error code {code})"));
                }
                _ => {}
            }
        }
    }
}

/// The `HealthCheckResponse.status` of the first gRPC message in `data`
/// (None: no complete message). 0 UNKNOWN, 1 SERVING, 2 NOT_SERVING, 3 SERVICE_UNKNOWN.
pub fn response_status(data: &[u8]) -> Option<u64> {
    if data.len() < 5 || data[0] != 0 {
        return None;
    }
    let n = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
    let mut m = data.get(5..5 + n)?;
    let mut status = 0;
    while !m.is_empty() {
        let (key, rest) = varint(m)?;
        m = rest;
        match key & 7 {
            0 => {
                let (v, rest) = varint(m)?;
                m = rest;
                if key >> 3 == 1 {
                    status = v;
                }
            }
            2 => {
                let (l, rest) = varint(m)?;
                m = rest.get(l as usize..)?;
            }
            1 => m = m.get(8..)?,
            5 => m = m.get(4..)?,
            _ => return None,
        }
    }
    Some(status)
}

fn varint(b: &[u8]) -> Option<(u64, &[u8])> {
    let mut v = 0u64;
    for (i, x) in b.iter().enumerate().take(10) {
        v |= u64::from(x & 0x7f) << (7 * i);
        if x & 0x80 == 0 {
            return Some((v, &b[i + 1..]));
        }
    }
    None
}

/// The status name kubelet shows.
pub fn status_name(s: u64) -> &'static str {
    match s {
        0 => "UNKNOWN",
        1 => "SERVING",
        2 => "NOT_SERVING",
        3 => "SERVICE_UNKNOWN",
        _ => "?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hpack_integers() {
        let mut v = Vec::new();
        hpack_int(&mut v, 0, 7, 10);
        assert_eq!(v, [10]);
        v.clear();
        hpack_int(&mut v, 0, 5, 1337); // RFC 7541 C.1.2
        assert_eq!(v, [31, 154, 10]);
    }

    #[test]
    fn client_frames() {
        let b = client_bytes("127.0.0.1:50051", "svc", "kube-probe/1.37");
        assert!(b.starts_with(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
        let rest = &b[24..];
        // Empty SETTINGS on stream 0.
        assert_eq!(&rest[..9], &[0, 0, 0, SETTINGS, 0, 0, 0, 0, 0]);
        let rest = &rest[9..];
        assert_eq!((rest[3], rest[4], rest[8]), (HEADERS, END_HEADERS, 1));
        let hl = u32::from_be_bytes([0, rest[0], rest[1], rest[2]]) as usize;
        let block = &rest[9..9 + hl];
        assert!(block
            .windows(CHECK_PATH.len())
            .any(|w| w == CHECK_PATH.as_bytes()));
        let rest = &rest[9 + hl..];
        assert_eq!((rest[3], rest[4], rest[8]), (DATA, END_STREAM, 1));
        // gRPC message: uncompressed, length 5, field 1 "svc".
        assert_eq!(&rest[9..], &[0, 0, 0, 0, 5, 0x0a, 3, b's', b'v', b'c']);
        assert!(request_message("").is_empty());
    }

    #[test]
    fn reader_acks_collects_and_decodes() {
        let mut r = Reader::default();
        let mut srv = Vec::new();
        frame(&mut srv, SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]);
        frame(&mut srv, PING, 0, 0, &[1, 2, 3, 4, 5, 6, 7, 8]);
        frame(&mut srv, HEADERS, END_HEADERS, 1, &[0x88]);
        frame(&mut srv, DATA, 0, 1, &[0, 0, 0, 0, 2, 0x08, 0x01]);
        // Split delivery.
        let mut reply = r.feed(&srv[..7]);
        reply.extend(r.feed(&srv[7..]));
        assert_eq!(&reply[..9], &[0, 0, 0, SETTINGS, ACK, 0, 0, 0, 0]);
        assert_eq!(&reply[9..18], &[0, 0, 8, PING, ACK, 0, 0, 0, 0]);
        assert!(!r.ended);
        let mut trailers = Vec::new();
        frame(&mut trailers, HEADERS, END_HEADERS | END_STREAM, 1, &[0x88]);
        r.feed(&trailers);
        assert!(r.ended && r.error.is_none());
        assert_eq!(response_status(&r.data), Some(1));
        assert_eq!(status_name(2), "NOT_SERVING");
        // Default (absent) status is UNKNOWN; a short message is none.
        assert_eq!(response_status(&[0, 0, 0, 0, 0]), Some(0));
        assert_eq!(response_status(&[0, 0, 0, 0, 2, 0x08]), None);
        let mut g = Reader::default();
        let mut f = Vec::new();
        frame(&mut f, RST_STREAM, 0, 1, &[0, 0, 0, 2]);
        g.feed(&f);
        assert!(g.error.as_deref().unwrap().contains("code 2"));
    }
}
