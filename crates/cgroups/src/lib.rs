//! podrun-cgroups: host cgroup layout (v2 / v1 / hybrid), resources, OOM watch, stats,
//! freeze, kill-all. Knows nothing of containers or pods.
//!
//! Hot path (create + apply + add_pid + destroy) is plain open/write/mkdir/rmdir on cgroupfs:
//! no threads, no D-Bus, no re-reading of mountinfo.

mod apply;
mod cgroup;
mod convert;
pub mod devices_bpf;
mod error;
mod freeze;
mod fsio;
mod layout;
mod oom;
pub mod plan;
mod procself;
mod resolve;
mod stats;

pub use cgroup::{Cgroup, Mode, Node, SelfAttach};
pub use convert::{
    blkio_weight_to_io, device_rule, shares_to_weight, swap_to_v2, validate_page_size,
};
pub use error::{Error, Result};
pub use layout::{detect, parse_mountinfo, unescape_mountinfo, Layout, V1_CONTROLLERS};
pub use oom::OomWatcher;
pub use procself::{parse_proc_cgroup, ProcCgroups};
pub use resolve::DELEGATION_LEAF;
pub use stats::Stats;
