//! Errors of the image store. Every variant names the file, field, reference or
//! digest it is about, so the CLI can print it as is.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {path}: {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("image not known: {0} (pull it with `podrun image pull`, or load an archive with `podrun image load -i`)")]
    ImageNotKnown(String),
    #[error("invalid digest {digest:?}: {reason}")]
    InvalidDigest { digest: String, reason: String },
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("unsafe layer archive: entry {entry:?}: {reason}")]
    UnsafeArchive { entry: String, reason: String },
    #[error("broken archive {path}: {reason}")]
    BadArchive { path: PathBuf, reason: String },
    #[error("invalid {what}: {reason}")]
    BadJson { what: String, reason: String },
    #[error("no manifest for platform {wanted} in {reference} (available: {available})")]
    NoPlatform {
        reference: String,
        wanted: String,
        available: String,
    },
    #[error("unsupported media type {media_type:?} in {what}")]
    UnsupportedMediaType { what: String, media_type: String },
    #[error("registry {registry}: {reason}")]
    Registry { registry: String, reason: String },
    #[error("registry {registry}: authentication failed: {reason}")]
    Auth { registry: String, reason: String },
    #[error("invalid credentials {0}: expected USER:PASSWORD")]
    BadCreds(String),
    #[error("invalid container key {0:?}: use letters, digits, '.', '_' or '-' only")]
    BadKey(String),
    #[error("rootfs for container {0:?} is already mounted")]
    AlreadyMounted(String),
    #[error("overlay mount at {path}: {reason}")]
    Mount { path: PathBuf, reason: String },
    #[error("image {image} is used by container(s) {containers}: remove them first")]
    InUse { image: String, containers: String },
}

impl Error {
    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Error {
        Error::Io {
            context,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn unsafe_entry(entry: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::UnsafeArchive {
            entry: entry.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn json(what: impl Into<String>, e: impl std::fmt::Display) -> Error {
        Error::BadJson {
            what: what.into(),
            reason: e.to_string(),
        }
    }
}

/// Attach a context and path to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn ctx(self, context: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(context, path, e))
    }
}
