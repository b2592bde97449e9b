//! Registry v2 HTTP client.

use super::auth::{parse_challenge, Creds};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::reference::Reference;
use std::io::Read;
use std::sync::Mutex;
use std::time::Duration;

const MAX_MANIFEST: u64 = 4 << 20;

pub struct Client {
    agent: ureq::Agent,
    base: String,
    registry: String,
    repository: String,
    creds: Option<Creds>,
    /// `Authorization` header value once authenticated.
    auth: Mutex<Option<String>>,
}

impl Client {
    /// A client for `reference`'s repository. `plain_http` talks HTTP instead of HTTPS (only
    /// for registries the user named as insecure).
    pub fn new(reference: &Reference, creds: Option<Creds>, plain_http: bool) -> Client {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .timeout_read(Duration::from_secs(120))
            .user_agent(concat!("podrun/", env!("CARGO_PKG_VERSION")))
            .build();
        let scheme = if plain_http { "http" } else { "https" };
        Client {
            agent,
            base: format!("{scheme}://{}", reference.registry_host()),
            registry: reference.domain.clone(),
            repository: reference.repository.clone(),
            creds,
            auth: Mutex::new(None),
        }
    }

    fn err(&self, reason: impl Into<String>) -> Error {
        Error::Registry {
            registry: self.registry.clone(),
            reason: reason.into(),
        }
    }

    /// GET with the current credentials; on 401 follow the challenge once and retry.
    fn get(&self, url: &str, accept: Option<&str>, what: &str) -> Result<ureq::Response> {
        let mut retried = false;
        loop {
            let mut req = self.agent.get(url);
            if let Some(a) = accept {
                req = req.set("Accept", a);
            }
            if let Some(h) = self.auth.lock().unwrap().clone() {
                req = req.set("Authorization", &h);
            }
            match req.call() {
                Ok(r) => return Ok(r),
                Err(ureq::Error::Status(401, r)) if !retried => {
                    retried = true;
                    let h = r.header("WWW-Authenticate").unwrap_or("").to_string();
                    self.authenticate(&h)?;
                }
                Err(ureq::Error::Status(401, _)) => {
                    return Err(Error::Auth {
                        registry: self.registry.clone(),
                        reason: format!(
                            "access to {what} denied (check --creds or the credentials file)"
                        ),
                    })
                }
                Err(ureq::Error::Status(404, _)) => {
                    return Err(self.err(format!("{what} not found (404)")))
                }
                Err(ureq::Error::Status(code, r)) => {
                    let body: String = r
                        .into_string()
                        .unwrap_or_default()
                        .chars()
                        .take(300)
                        .collect();
                    return Err(self.err(format!("GET {url}: HTTP {code}: {}", body.trim())));
                }
                Err(ureq::Error::Transport(t)) => {
                    return Err(self.err(format!("cannot reach {}: {t}", self.base)))
                }
            }
        }
    }

    fn authenticate(&self, header: &str) -> Result<()> {
        let auth_err = |reason: String| Error::Auth {
            registry: self.registry.clone(),
            reason,
        };
        let ch = parse_challenge(header)
            .ok_or_else(|| auth_err(format!("unexpected WWW-Authenticate {header:?}")))?;
        match ch.scheme.as_str() {
            "basic" => {
                let c = self
                    .creds
                    .as_ref()
                    .ok_or_else(|| auth_err("credentials required: pass --creds USER:PASSWORD or add them to ~/.docker/config.json / $REGISTRY_AUTH_FILE".into()))?;
                *self.auth.lock().unwrap() = Some(c.basic_header());
                Ok(())
            }
            "bearer" => {
                let realm = ch
                    .params
                    .get("realm")
                    .ok_or_else(|| auth_err("Bearer challenge without realm".into()))?;
                let mut req = self.agent.get(realm);
                if let Some(s) = ch.params.get("service") {
                    req = req.query("service", s);
                }
                let scope = ch
                    .params
                    .get("scope")
                    .cloned()
                    .unwrap_or_else(|| format!("repository:{}:pull", self.repository));
                req = req.query("scope", &scope);
                if let Some(c) = &self.creds {
                    req = req.set("Authorization", &c.basic_header());
                }
                let resp = match req.call() {
                    Ok(r) => r,
                    Err(ureq::Error::Status(code, _)) => {
                        return Err(auth_err(format!(
                            "token server {realm} answered HTTP {code}"
                        )))
                    }
                    Err(ureq::Error::Transport(t)) => {
                        return Err(auth_err(format!("token server {realm}: {t}")))
                    }
                };
                let mut body = Vec::new();
                resp.into_reader()
                    .take(MAX_MANIFEST)
                    .read_to_end(&mut body)
                    .map_err(|e| auth_err(format!("token server {realm}: {e}")))?;
                let v: serde_json::Value = serde_json::from_slice(&body)
                    .map_err(|e| auth_err(format!("token server {realm}: bad JSON: {e}")))?;
                let tok = v
                    .get("token")
                    .or_else(|| v.get("access_token"))
                    .and_then(|t| t.as_str())
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| auth_err(format!("token server {realm} returned no token")))?;
                *self.auth.lock().unwrap() = Some(format!("Bearer {tok}"));
                Ok(())
            }
            other => Err(auth_err(format!("unsupported auth scheme {other:?}"))),
        }
    }

    /// Fetch a manifest or index by tag or digest; returns body and media type. When asked by
    /// digest, the body is verified against it.
    pub fn manifest(&self, reference: &str) -> Result<(Vec<u8>, String)> {
        let url = format!(
            "{}/v2/{}/manifests/{}",
            self.base, self.repository, reference
        );
        let what = format!("manifest {}:{}", self.repository, reference);
        let resp = self.get(&url, Some(crate::manifest::ACCEPT), &what)?;
        let ct = resp.header("Content-Type").unwrap_or("").to_string();
        let mut body = Vec::new();
        resp.into_reader()
            .take(MAX_MANIFEST + 1)
            .read_to_end(&mut body)
            .map_err(|e| self.err(format!("reading {what}: {e}")))?;
        if body.len() as u64 > MAX_MANIFEST {
            return Err(self.err(format!("{what} is larger than {MAX_MANIFEST} bytes")));
        }
        if reference.starts_with("sha256:") {
            Digest::parse(reference)?.verify(&Digest::of_bytes(&body), what)?;
        }
        Ok((body, ct))
    }

    /// Stream a blob (following redirects); the caller verifies the digest.
    pub fn blob(&self, digest: &Digest) -> Result<Box<dyn Read + Send + Sync + 'static>> {
        let url = format!("{}/v2/{}/blobs/{}", self.base, self.repository, digest);
        let resp = self.get(&url, None, &format!("blob {digest}"))?;
        Ok(Box::new(resp.into_reader()))
    }
}
