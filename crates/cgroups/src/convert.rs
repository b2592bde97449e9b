//! Pure value conversions between OCI resource fields and cgroup file values.

use crate::error::{Error, Result};
use oci_spec::runtime::LinuxDeviceCgroup;

/// cgroup v1 cpu.shares -> v2 cpu.weight, the kubelet/runc formula
/// `1 + ((shares - 2) * 9999) / 262142`, mapping [2, 262144] onto [1, 10000].
/// 0 means "unset" and stays 0; out-of-range shares are clamped first.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

/// v1 blkio weight [10, 1000] -> v2 io.weight [1, 10000] (runc's formula). 0 = unset.
pub fn blkio_weight_to_io(weight: u16) -> u64 {
    if weight == 0 {
        return 0;
    }
    let w = weight.clamp(10, 1000) as u64;
    1 + ((w - 10) * 9999) / 990
}

/// OCI memory.swap is memory+swap (v1 semantics); v2 memory.swap.max is swap only.
/// Returns the memory.swap.max value to write, or None for "leave unset". Mirrors runc.
pub fn swap_to_v2(swap: i64, limit: i64) -> Result<Option<String>> {
    if limit == -1 && swap == 0 {
        return Ok(Some("max".into()));
    }
    if swap == 0 {
        return Ok(None);
    }
    if swap == -1 {
        return Ok(Some("max".into()));
    }
    let inv = |reason: &str| Error::InvalidValue {
        field: "memory.swap",
        value: swap.to_string(),
        reason: reason.into(),
    };
    if swap < -1 {
        return Err(inv("must be -1 (unlimited) or a byte count"));
    }
    if limit == 0 || limit == -1 {
        return Err(inv("a swap limit needs a memory limit (memory.limit)"));
    }
    if swap < limit {
        return Err(inv(&format!(
            "memory+swap must be >= memory.limit ({limit})"
        )));
    }
    Ok(Some((swap - limit).to_string()))
}

/// A memory byte value: -1 = unlimited ("max" on v2, "-1" on v1), otherwise >= 0.
pub(crate) fn mem_value(field: &'static str, v: i64, v2: bool) -> Result<String> {
    match v {
        -1 => Ok(if v2 { "max".into() } else { "-1".into() }),
        v if v >= 0 => Ok(v.to_string()),
        v => Err(Error::InvalidValue {
            field,
            value: v.to_string(),
            reason: "must be -1 (unlimited) or a byte count".into(),
        }),
    }
}

/// A v1 devices.allow/deny rule: "c 1:3 rwm", "a *:* rwm". Missing access = "rwm".
pub fn device_rule(d: &LinuxDeviceCgroup) -> Result<String> {
    let access = d
        .access()
        .as_deref()
        .filter(|a| !a.is_empty())
        .unwrap_or("rwm");
    if !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return Err(Error::InvalidValue {
            field: "devices.access",
            value: access.into(),
            reason: "only the letters r, w and m are allowed".into(),
        });
    }
    let typ = d.typ().unwrap_or_default().as_str().to_string();
    if !matches!(typ.as_str(), "a" | "b" | "c") {
        return Err(Error::InvalidValue {
            field: "devices.type",
            value: typ,
            reason: "the devices cgroup only knows a, b and c".into(),
        });
    }
    let num = |v: Option<i64>, what: &'static str| -> Result<String> {
        match v {
            None | Some(-1) => Ok("*".into()),
            Some(n) if n >= 0 => Ok(n.to_string()),
            Some(n) => Err(Error::InvalidValue {
                field: what,
                value: n.to_string(),
                reason: "must be >= 0 (or absent/-1 for any)".into(),
            }),
        }
    };
    if typ == "a" {
        return Ok(format!("a *:* {access}"));
    }
    Ok(format!(
        "{typ} {}:{} {access}",
        num(d.major(), "devices.major")?,
        num(d.minor(), "devices.minor")?
    ))
}

/// Validate a hugepage size as used in file names: digits followed by KB, MB or GB ("2MB").
pub fn validate_page_size(s: &str) -> Result<()> {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &s[digits.len()..];
    let ok = !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
        && matches!(unit, "KB" | "MB" | "GB");
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidValue {
            field: "hugepageLimits.pageSize",
            value: s.into(),
            reason: "expected a size like \"2MB\" or \"1GB\" (digits + KB/MB/GB)".into(),
        })
    }
}

/// Validate a `linux.resources.unified` key: a plain file name inside the cgroup.
pub(crate) fn validate_unified_key(k: &str) -> Result<()> {
    let bad = |reason: &str| Error::InvalidValue {
        field: "unified",
        value: k.into(),
        reason: reason.into(),
    };
    if k.is_empty() || k.contains('/') || k.contains('\0') || k == "." || k == ".." {
        return Err(bad("must be a plain cgroup file name"));
    }
    if !k.contains('.') {
        return Err(bad("must look like <controller>.<file>"));
    }
    if matches!(
        k,
        "cgroup.procs"
            | "cgroup.threads"
            | "cgroup.subtree_control"
            | "cgroup.kill"
            | "cgroup.freeze"
    ) {
        return Err(bad("managed by the runtime, cannot be set through unified"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxDeviceCgroupBuilder, LinuxDeviceType};

    #[test]
    fn shares_weight_table() {
        assert_eq!(shares_to_weight(0), 0);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1), 1); // clamped
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(512), 20);
        assert_eq!(shares_to_weight(102), 4);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1_000_000), 10_000);
    }

    #[test]
    fn blkio_weight_table() {
        assert_eq!(blkio_weight_to_io(0), 0);
        assert_eq!(blkio_weight_to_io(10), 1);
        assert_eq!(blkio_weight_to_io(1000), 10_000);
        assert_eq!(blkio_weight_to_io(500), 1 + (490 * 9999) / 990);
    }

    #[test]
    fn swap_conversion() {
        assert_eq!(swap_to_v2(0, -1).unwrap().as_deref(), Some("max"));
        assert_eq!(swap_to_v2(0, 100).unwrap(), None);
        assert_eq!(swap_to_v2(-1, 100).unwrap().as_deref(), Some("max"));
        assert_eq!(swap_to_v2(300, 100).unwrap().as_deref(), Some("200"));
        assert_eq!(swap_to_v2(100, 100).unwrap().as_deref(), Some("0"));
        assert!(swap_to_v2(50, 100)
            .unwrap_err()
            .to_string()
            .contains("memory.swap"));
        assert!(swap_to_v2(50, 0).is_err());
        assert!(swap_to_v2(-5, 10).is_err());
    }

    #[test]
    fn mem_values() {
        assert_eq!(mem_value("memory.limit", -1, true).unwrap(), "max");
        assert_eq!(mem_value("memory.limit", -1, false).unwrap(), "-1");
        assert_eq!(mem_value("memory.limit", 4096, true).unwrap(), "4096");
        assert!(mem_value("memory.limit", -2, true).is_err());
    }

    #[test]
    fn device_rules() {
        let d = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .major(1)
            .minor(3)
            .access("rwm")
            .build()
            .unwrap();
        assert_eq!(device_rule(&d).unwrap(), "c 1:3 rwm");
        let all = LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .build()
            .unwrap();
        assert_eq!(device_rule(&all).unwrap(), "a *:* rwm");
        let wild = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::B)
            .major(8)
            .access("r")
            .build()
            .unwrap();
        assert_eq!(device_rule(&wild).unwrap(), "b 8:* r");
        let bad = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .access("rx")
            .build()
            .unwrap();
        assert!(device_rule(&bad)
            .unwrap_err()
            .to_string()
            .contains("devices.access"));
        let fifo = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::P)
            .build()
            .unwrap();
        assert!(device_rule(&fifo).is_err());
    }

    #[test]
    fn page_sizes() {
        for ok in ["2MB", "1GB", "64KB"] {
            validate_page_size(ok).unwrap();
        }
        for bad in ["", "MB", "2mb", "2M", "2 MB", "../x", "2MBB"] {
            assert!(validate_page_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unified_keys() {
        validate_unified_key("memory.high").unwrap();
        validate_unified_key("io.latency").unwrap();
        for bad in ["", "../memory.max", "memory", "cgroup.procs", "a/b.c"] {
            assert!(validate_unified_key(bad).is_err(), "{bad}");
        }
    }
}
