//! Credentials and authentication challenges.

use crate::error::{Error, Result};
use base64::Engine;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creds {
    pub user: String,
    pub password: String,
}

impl Creds {
    /// `USER:PASSWORD` as given to `--creds`.
    pub fn parse(s: &str) -> Result<Creds> {
        match s.split_once(':') {
            Some((u, p)) if !u.is_empty() => Ok(Creds {
                user: u.to_string(),
                password: p.to_string(),
            }),
            _ => Err(Error::BadCreds("--creds".into())),
        }
    }

    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.user, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// A parsed `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Lowercased: `bearer` or `basic`.
    pub scheme: String,
    pub params: BTreeMap<String, String>,
}

pub fn parse_challenge(h: &str) -> Option<Challenge> {
    let h = h.trim();
    let (scheme, rest) = match h.split_once(char::is_whitespace) {
        Some((s, r)) => (s, r),
        None => (h, ""),
    };
    if scheme.is_empty() {
        return None;
    }
    let mut params = BTreeMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() || chars.next() != Some('=') {
            break;
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            val.push(n)
                        }
                    }
                    '"' => break,
                    c => val.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                val.push(c);
                chars.next();
            }
        }
        params.insert(key.trim().to_ascii_lowercase(), val.trim().to_string());
    }
    Some(Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    })
}

/// Where credentials are looked for, in order: `$REGISTRY_AUTH_FILE`,
/// `$XDG_RUNTIME_DIR/containers/auth.json`, `~/.docker/config.json`.
pub fn auth_files() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(f) = std::env::var_os("REGISTRY_AUTH_FILE") {
        v.push(PathBuf::from(f));
    }
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR") {
        v.push(PathBuf::from(d).join("containers/auth.json"));
    }
    if let Some(h) = std::env::var_os("HOME") {
        v.push(PathBuf::from(h).join(".docker/config.json"));
    }
    v
}

/// Look up credentials for registry `domain` (as in the reference: `docker.io`, `localhost:5000`).
pub fn lookup(files: &[PathBuf], domain: &str) -> Result<Option<Creds>> {
    for f in files {
        match std::fs::read(f) {
            Ok(b) => {
                if let Some(c) = lookup_in(&b, f, domain)? {
                    return Ok(Some(c));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("reading credentials file", f, e)),
        }
    }
    Ok(None)
}

fn lookup_in(bytes: &[u8], file: &Path, domain: &str) -> Result<Option<Creds>> {
    let v: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::json(format!("credentials file {}", file.display()), e))?;
    let Some(auths) = v.get("auths").and_then(|a| a.as_object()) else {
        return Ok(None);
    };
    let want: Vec<&str> = if domain == "docker.io" {
        vec!["docker.io", "index.docker.io", "registry-1.docker.io"]
    } else {
        vec![domain]
    };
    for (key, entry) in auths {
        let host = key
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or("");
        if !want.contains(&host) {
            continue;
        }
        if let Some(a) = entry
            .get("auth")
            .and_then(|a| a.as_str())
            .filter(|a| !a.is_empty())
        {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(a.trim())
                .map_err(|e| Error::json(format!("auths.{key}.auth in {}", file.display()), e))?;
            let s = String::from_utf8_lossy(&raw);
            return Creds::parse(&s)
                .map(Some)
                .map_err(|_| Error::BadCreds(format!("auths.{key}.auth in {}", file.display())));
        }
        if let (Some(u), Some(p)) = (
            entry.get("username").and_then(|x| x.as_str()),
            entry.get("password").and_then(|x| x.as_str()),
        ) {
            return Ok(Some(Creds {
                user: u.to_string(),
                password: p.to_string(),
            }));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge() {
        let c = parse_challenge(r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#).unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.docker.io/token");
        assert_eq!(c.params["service"], "registry.docker.io");
        assert_eq!(c.params["scope"], "repository:library/busybox:pull");
        let b = parse_challenge(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(b.scheme, "basic");
        assert_eq!(b.params["realm"], "Registry Realm");
        assert_eq!(parse_challenge("Basic").unwrap().params.len(), 0);
    }

    #[test]
    fn creds() {
        assert_eq!(Creds::parse("a:b:c").unwrap().password, "b:c");
        assert!(Creds::parse("nocolon").is_err());
        assert!(Creds::parse(":x").is_err());
        assert_eq!(Creds::parse("u:p").unwrap().basic_header(), "Basic dTpw");
    }

    #[test]
    fn docker_config_lookup() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("config.json");
        std::fs::write(&f, r#"{"auths": {"localhost:5000": {"auth": "dTpw"}, "https://index.docker.io/v1/": {"auth": "aHViOnNlY3JldA=="}}}"#).unwrap();
        let files = vec![d.path().join("missing.json"), f.clone()];
        assert_eq!(lookup(&files, "localhost:5000").unwrap().unwrap().user, "u");
        assert_eq!(
            lookup(&files, "docker.io").unwrap().unwrap().password,
            "secret"
        );
        assert_eq!(lookup(&files, "quay.io").unwrap(), None);
        std::fs::write(&f, "{").unwrap();
        assert!(lookup(&files, "quay.io").is_err());
    }
}
