//! podrun-cgroups: host cgroup layout (v2 / v1 / hybrid), resources, OOM watch, stats,
//! freeze, kill-all. Knows nothing of containers or pods.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cgroup: {0}")]
    Other(String),
}
