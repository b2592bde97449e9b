//! Linux capabilities of the container process: name parsing, the five sets
//! from `process.capabilities` as bit masks, bounding-set drop, and one
//! capset(2) for effective/permitted/inheritable plus the ambient raises.
//! Capabilities the running kernel does not know are skipped with a warning,
//! like runc.

use std::str::FromStr;

use oci_spec::runtime::{Capabilities, Capability as OciCap, LinuxCapabilities};

use crate::error::{Error, Result};

/// "CAP_NET_ADMIN" (or "NET_ADMIN", any case) -> the capability.
pub fn parse_capability(name: &str) -> Result<caps::Capability> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    caps::Capability::from_str(&full)
        .map_err(|_| Error::Other(format!("unknown capability \"{name}\"")))
}

/// "CAP_SYS_ADMIN" (or "SYS_ADMIN", any case) -> oci-spec's enum, e.g. for
/// `exec --cap`. (oci-spec's own `FromStr` wants "SYS_ADMIN" only.)
pub fn parse_oci_capability(name: &str) -> Result<OciCap> {
    let canonical = parse_capability(name)?.to_string();
    serde_json::from_value(serde_json::Value::String(canonical))
        .map_err(|_| Error::Other(format!("unknown capability \"{name}\"")))
}

/// oci-spec's capability enum (Display = "NET_ADMIN") -> caps'.
pub fn from_oci(c: &OciCap) -> Result<caps::Capability> {
    parse_capability(&format!("CAP_{c}"))
}

/// The five capability sets as bit masks (bit n = capability n).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapSets {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

fn mask(set: Option<&Capabilities>, last_cap: u8, which: &str) -> Result<u64> {
    let mut m = 0u64;
    for c in set.into_iter().flatten() {
        let cap = from_oci(c)
            .map_err(|e| Error::spec(format!("process.capabilities.{which}"), e.to_string()))?;
        let idx = cap.index();
        if idx > last_cap {
            tracing::warn!(capability = %cap, "capability not supported by the running kernel; ignored");
            continue;
        }
        m |= 1u64 << idx;
    }
    Ok(m)
}

/// Compute the sets; an absent `process.capabilities` means "no capabilities".
pub fn cap_sets(c: Option<&LinuxCapabilities>, last_cap: u8) -> Result<CapSets> {
    let Some(c) = c else {
        return Ok(CapSets::default());
    };
    Ok(CapSets {
        bounding: mask(c.bounding().as_ref(), last_cap, "bounding")?,
        effective: mask(c.effective().as_ref(), last_cap, "effective")?,
        permitted: mask(c.permitted().as_ref(), last_cap, "permitted")?,
        inheritable: mask(c.inheritable().as_ref(), last_cap, "inheritable")?,
        ambient: mask(c.ambient().as_ref(), last_cap, "ambient")?,
    })
}

/// Highest capability number the running kernel knows.
///
/// Asked of the kernel with PR_CAPBSET_READ, which fails with EINVAL for a capability it does
/// not know (libcap does the same): six system calls instead of reading
/// /proc/sys/kernel/cap_last_cap, whose first lookups in a container's new /proc cost more
/// than all of them. The file is the fallback when the probe is refused otherwise (a
/// seccomp filter, say), so call this before loading one.
pub fn last_cap() -> u8 {
    probe_last_cap().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse::<u8>().ok())
            .unwrap_or(40)
            .min(63)
    })
}

/// Binary search for the highest capability PR_CAPBSET_READ accepts; None if it fails for
/// another reason than EINVAL, or even for capability 0.
fn probe_last_cap() -> Option<u8> {
    let known = |cap: u8| -> Option<bool> {
        // SAFETY: prctl with integer arguments only; it reads this thread's bounding set.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) };
        match (r, nix::Error::last()) {
            (0.., _) => Some(true),
            (_, nix::Error::EINVAL) => Some(false),
            _ => None,
        }
    };
    if !known(0)? {
        return None;
    }
    // Invariant: `lo` is known, everything above `hi` is not.
    let (mut lo, mut hi) = (0u8, 63u8);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if known(mid)? {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Some(lo)
}

/// Drop every capability not in `bounding` from the bounding set.
pub fn drop_bounding(bounding: u64, last_cap: u8) -> Result<()> {
    for cap in 0..=last_cap {
        if bounding & (1u64 << cap) != 0 {
            continue;
        }
        // SAFETY: prctl with integer arguments only.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if r < 0 {
            let e = nix::Error::last();
            if e == nix::Error::EINVAL {
                continue; // capability unknown to this kernel
            }
            return Err(Error::sys(
                format!("drop capability {cap} from the bounding set"),
                e,
            ));
        }
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Set effective, permitted and inheritable at once, then the ambient set
/// (failures to raise an ambient capability are warnings, as in runc).
/// This process's permitted capability set, from capget(2).
fn current_permitted() -> Option<u64> {
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [
        CapData {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        },
        CapData {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        },
    ];
    // SAFETY: capget fills the two v3 data structs we own.
    let r = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut hdr as *mut CapHeader,
            data.as_mut_ptr(),
        )
    };
    (r == 0).then(|| data[0].permitted as u64 | (data[1].permitted as u64) << 32)
}

/// "CAP_SYS_RESOURCE" names of the bits set in `mask`.
fn cap_names(mask: u64) -> Vec<String> {
    (0..64u8)
        .filter(|b| mask & (1u64 << b) != 0)
        .map(|b| {
            caps::all()
                .into_iter()
                .find(|c| c.index() == b)
                .map(|c| c.to_string())
                .unwrap_or_else(|| format!("capability {b}"))
        })
        .collect()
}

pub fn apply_caps(s: &CapSets) -> Result<()> {
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: s.effective as u32,
            permitted: s.permitted as u32,
            inheritable: s.inheritable as u32,
        },
        CapData {
            effective: (s.effective >> 32) as u32,
            permitted: (s.permitted >> 32) as u32,
            inheritable: (s.inheritable >> 32) as u32,
        },
    ];
    // SAFETY: capset takes a header and an array of two data structs (v3).
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) };
    if r < 0 {
        let err = nix::Error::last();
        // The usual cause: the host never granted the runtime some of the asked capabilities.
        if let Some(have) = current_permitted() {
            let missing = (s.permitted | s.effective | s.inheritable) & !have;
            if missing != 0 {
                return Err(Error::spec(
                    "process.capabilities",
                    format!(
                        "{} not available to podrun on this host (not in its permitted set {have:#x})",
                        cap_names(missing).join(", ")
                    ),
                ));
            }
        }
        return Err(Error::sys(
            format!(
                "capset (effective {:#x}, permitted {:#x}, inheritable {:#x})",
                s.effective, s.permitted, s.inheritable
            ),
            err,
        ));
    }
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    for cap in 0..64u64 {
        if s.ambient & (1 << cap) == 0 {
            continue;
        }
        // SAFETY: prctl with integer arguments only.
        let r = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE,
                cap as libc::c_ulong,
                0,
                0,
            )
        };
        if r < 0 {
            if s.inheritable & (1 << cap) == 0 {
                // The kernel raises only what is also inheritable; runc's default spec asks
                // for ambient without inheritable, and runc too goes on without them.
                tracing::debug!(
                    cap,
                    "ambient capability not raised: not in the inheritable set"
                );
            } else {
                tracing::warn!(cap, error = %nix::Error::last(), "cannot raise ambient capability");
            }
        }
    }
    Ok(())
}

/// Keep permitted capabilities across setuid (PR_SET_KEEPCAPS).
pub fn set_keep_caps(on: bool) -> Result<()> {
    // SAFETY: prctl with integer arguments only.
    let r = unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, on as libc::c_ulong, 0, 0, 0) };
    if r < 0 {
        return Err(Error::sys("prctl(PR_SET_KEEPCAPS)", nix::Error::last()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probed_last_cap_is_the_kernels() {
        let file: u8 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(probe_last_cap(), Some(file));
        assert_eq!(last_cap(), file);
    }

    #[test]
    fn parse_names() {
        assert_eq!(
            parse_capability("CAP_NET_ADMIN").unwrap(),
            caps::Capability::CAP_NET_ADMIN
        );
        assert_eq!(
            parse_capability("net_admin").unwrap(),
            caps::Capability::CAP_NET_ADMIN
        );
        assert_eq!(
            parse_capability("CAP_SYS_PTRACE").unwrap(),
            caps::Capability::CAP_SYS_PTRACE
        );
        let e = parse_capability("CAP_FLY").unwrap_err().to_string();
        assert!(e.contains("CAP_FLY"), "{e}");
    }

    #[test]
    fn oci_capability_names() {
        assert_eq!(
            parse_oci_capability("CAP_SYS_ADMIN").unwrap(),
            OciCap::SysAdmin
        );
        assert_eq!(parse_oci_capability("sys_admin").unwrap(), OciCap::SysAdmin);
        assert!(parse_oci_capability("CAP_NOPE").is_err());
    }

    #[test]
    fn every_oci_capability_maps() {
        for c in caps::all() {
            let name = c.to_string();
            let oci: OciCap = serde_json::from_value(serde_json::Value::String(name.clone()))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(from_oci(&oci).unwrap(), c, "{name}");
        }
    }

    #[test]
    fn sets_as_masks() {
        let c: LinuxCapabilities = serde_json::from_str(
            r#"{"bounding":["CAP_KILL","CAP_CHOWN"],"effective":["CAP_KILL"],
                "permitted":["CAP_KILL"],"ambient":["CAP_KILL"]}"#,
        )
        .unwrap();
        let s = cap_sets(Some(&c), 40).unwrap();
        let kill = 1u64 << caps::Capability::CAP_KILL.index();
        let chown = 1u64 << caps::Capability::CAP_CHOWN.index();
        assert_eq!(s.bounding, kill | chown);
        assert_eq!(
            (s.effective, s.permitted, s.inheritable, s.ambient),
            (kill, kill, 0, kill)
        );
        assert_eq!(cap_sets(None, 40).unwrap(), CapSets::default());
        // A capability above the kernel's last one is ignored.
        let c: LinuxCapabilities =
            serde_json::from_str(r#"{"bounding":["CAP_CHECKPOINT_RESTORE","CAP_CHOWN"]}"#).unwrap();
        assert_eq!(cap_sets(Some(&c), 39).unwrap().bounding, chown);
    }
}

#[cfg(test)]
mod missing_caps_tests {
    #[test]
    fn names_missing_bits() {
        assert_eq!(
            super::cap_names((1 << 24) | (1 << 21)),
            vec!["CAP_SYS_ADMIN".to_string(), "CAP_SYS_RESOURCE".to_string()]
        );
        assert!(super::current_permitted().is_some());
    }
}
