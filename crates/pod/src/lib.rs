//! Pure Pod logic for podrun: the rules kubelet and the API server apply to a
//! Pod, as plain functions over `k8s_openapi` types. No processes, no kernel
//! work: the sandbox and the supervisor call these. See docs/pod-rules.md for
//! each rule's Kubernetes source.
//!
//! Typical flow for `podrun create pod.yaml`:
//! [`manifest::load_manifest`] → [`validate::validate_pod`] →
//! [`defaults::apply_defaults`] → [`resources::pod_cgroup_config`] /
//! [`resources::container_cgroup`], [`env::container_env`] +
//! [`command::container_argv`] per container; at run time
//! [`probe::ProbeWorker`], [`backoff::RestartBackoff`],
//! [`status::should_restart`], [`status::pod_status`] and [`crilog::LogEncoder`].

pub mod backoff;
pub mod command;
pub mod crilog;
pub mod daemon;
pub mod defaults;
pub mod display;
pub mod env;
pub mod events;
pub mod health;
pub mod launch;
pub mod logs;
pub mod manifest;
pub mod names;
pub mod podcgroup;
pub mod podstate;
pub mod probe;
pub mod quantity;
pub mod resources;
pub mod sandbox;
pub mod security;
pub mod status;
pub mod supervisor;
pub mod validate;
pub mod volumes;

/// Re-exported so callers use the exact same Kubernetes types and time type.
pub use k8s_openapi;
