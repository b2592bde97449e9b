//! The cgroup resources a container really gets: the spec's `linux.resources` plus the
//! device rules every runtime adds (runc's `AllowedDevices`): the default devices the rootfs
//! setup creates, and every device the spec itself lists in `linux.devices`.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources, Spec};

fn rule(
    typ: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(true);
    r.set_typ(Some(typ));
    r.set_major(major);
    r.set_minor(minor);
    r.set_access(Some(access.to_string()));
    r
}

/// runc's implicit allow-list: mknod of anything, and rwm on null, zero, full, random,
/// urandom, tty, console, ptmx, pts/*, net/tun.
pub fn default_device_rules() -> Vec<LinuxDeviceCgroup> {
    use LinuxDeviceType::{B, C};
    vec![
        rule(C, None, None, "m"),
        rule(B, None, None, "m"),
        rule(C, Some(1), Some(3), "rwm"),
        rule(C, Some(1), Some(5), "rwm"),
        rule(C, Some(1), Some(7), "rwm"),
        rule(C, Some(1), Some(8), "rwm"),
        rule(C, Some(1), Some(9), "rwm"),
        rule(C, Some(5), Some(0), "rwm"),
        rule(C, Some(5), Some(1), "rwm"),
        rule(C, Some(5), Some(2), "rwm"),
        rule(C, Some(136), None, "rwm"),
        rule(C, Some(10), Some(200), "rwm"),
    ]
}

/// The spec's resources with the implicit device rules appended (after the spec's own rules,
/// as runc orders them, so a spec "deny all" does not take them away).
pub fn effective(spec: &Spec) -> LinuxResources {
    let linux = spec.linux().as_ref();
    let mut res = linux
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
    let mut devs = res.devices().clone().unwrap_or_default();
    devs.extend(default_device_rules());
    for d in linux
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
    {
        let typ = match d.typ() {
            LinuxDeviceType::B => LinuxDeviceType::B,
            LinuxDeviceType::P => continue,
            _ => LinuxDeviceType::C,
        };
        devs.push(rule(typ, Some(d.major()), Some(d.minor()), "rwm"));
    }
    res.set_devices(Some(devs));
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn deny_all_then_defaults() {
        let spec = crate::spec::default_spec(false);
        let r = effective(&spec);
        let d = r.devices().as_ref().unwrap();
        assert!(!d[0].allow(), "the spec's deny-all stays first");
        assert!(d
            .iter()
            .any(|x| x.allow() && x.major() == Some(1) && x.minor() == Some(3)));
    }
}
