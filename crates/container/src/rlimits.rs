//! `process.rlimits` -> setrlimit(2), with an error that says what the host
//! allows when a hard limit cannot be raised.

use oci_spec::runtime::{PosixRlimit, PosixRlimitType};

use crate::error::{Error, Result};

/// setrlimit's resource argument: an enum type in glibc, an int in musl.
#[cfg(target_env = "gnu")]
pub type Resource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
pub type Resource = libc::c_int;

/// The kernel resource number of an OCI rlimit type.
pub fn resource(t: PosixRlimitType) -> Resource {
    match t {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

/// Current (soft, hard) of a resource.
pub fn get_rlimit(t: PosixRlimitType) -> Result<(u64, u64)> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(resource(t), &mut r) } < 0 {
        return Err(Error::sys(format!("getrlimit {t}"), nix::Error::last()));
    }
    Ok((r.rlim_cur, r.rlim_max))
}

/// Set every rlimit, in order. Soft above hard is a spec error.
pub fn set_rlimits(limits: &[PosixRlimit]) -> Result<()> {
    for l in limits {
        let t = l.typ();
        if l.soft() > l.hard() {
            return Err(Error::spec(
                format!("process.rlimits {t}"),
                format!("soft limit {} is above hard limit {}", l.soft(), l.hard()),
            ));
        }
        let r = libc::rlimit {
            rlim_cur: l.soft(),
            rlim_max: l.hard(),
        };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(resource(t), &r) } == 0 {
            continue;
        }
        let err = nix::Error::last();
        let (_, cur_hard) = get_rlimit(t).unwrap_or((0, u64::MAX));
        let mut allowed = cur_hard;
        if t == PosixRlimitType::RlimitNofile {
            if let Some(nr_open) = std::fs::read_to_string("/proc/sys/fs/nr_open")
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
            {
                if l.hard() > nr_open {
                    allowed = nr_open;
                }
            }
        }
        let msg = if err == nix::Error::EPERM && l.hard() > allowed {
            format!(
                "cannot raise hard limit to {} (host allows at most {allowed}): {}",
                l.hard(),
                err.desc()
            )
        } else {
            format!(
                "cannot set soft {} hard {}: {}",
                l.soft(),
                l.hard(),
                err.desc()
            )
        };
        return Err(Error::Other(format!("process.rlimits {t}: {msg}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::PosixRlimitBuilder;

    #[test]
    fn names_and_resources() {
        assert_eq!(resource(PosixRlimitType::RlimitNofile), libc::RLIMIT_NOFILE);
        assert_eq!(PosixRlimitType::RlimitNofile.to_string(), "RLIMIT_NOFILE");
    }

    #[test]
    fn soft_above_hard_is_rejected() {
        let l = PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitCore)
            .soft(10u64)
            .hard(5u64)
            .build()
            .unwrap();
        let e = set_rlimits(&[l]).unwrap_err().to_string();
        assert!(e.contains("RLIMIT_CORE") && e.contains("above hard"), "{e}");
    }

    #[test]
    fn lowering_and_impossible_raise() {
        // Lowering the soft core limit is harmless for the test process.
        let (_, hard) = get_rlimit(PosixRlimitType::RlimitCore).unwrap();
        let ok = PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitCore)
            .soft(0u64)
            .hard(hard)
            .build()
            .unwrap();
        set_rlimits(&[ok]).unwrap();
        assert_eq!(get_rlimit(PosixRlimitType::RlimitCore).unwrap(), (0, hard));

        let nr_open: u64 = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let too_big = PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .soft(nr_open + 1)
            .hard(nr_open + 1)
            .build()
            .unwrap();
        let e = set_rlimits(&[too_big]).unwrap_err().to_string();
        assert!(
            e.contains("process.rlimits RLIMIT_NOFILE: cannot raise hard limit to")
                && e.contains(&format!("host allows at most {nr_open}")),
            "{e}"
        );
    }
}
