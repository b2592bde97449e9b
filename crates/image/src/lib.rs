//! podrun-image: an OCI image store with verified blobs, layers unpacked once into
//! overlayfs lower dirs, docker/oci archive load, rootfs import, registry pull, and
//! per-container overlay root filesystems. Knows nothing of containers beyond a key.

mod archive;
pub mod config;
pub mod digest;
pub mod error;
mod import;
mod index;
mod lock;
pub mod manifest;
mod overlay;
mod parallel;
pub mod pathcheck;
mod pull;
pub mod reference;
pub mod registry;
mod store;
mod tmp;
pub mod unpack;
pub mod xattr;

pub use config::ImageConfig;
pub use digest::Digest;
pub use error::{Error, Result};
pub use overlay::validate_key;
pub use pull::{Progress, PullOptions};
pub use reference::Reference;
pub use store::{default_root, Image, PruneReport, Store, DEFAULT_ROOT};
