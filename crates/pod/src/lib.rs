//! Pure Pod logic for podrun: the rules kubelet and the API server apply to a
//! Pod, as plain functions over k8s-openapi types. No processes, no kernel work.

pub mod backoff;
pub mod command;
pub mod crilog;
pub mod defaults;
pub mod env;
pub mod manifest;
pub mod names;
pub mod probe;
pub mod quantity;
pub mod resources;
pub mod status;
pub mod validate;
