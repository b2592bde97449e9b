//! runc's "ENOSYS stub" (libcontainer/seccomp/patchbpf): a profile written
//! before a syscall existed should answer it with ENOSYS, not with the
//! default action (usually EPERM), so libc falls back to older syscalls
//! (clone3 -> clone, ...). A few classic-BPF instructions are put in front
//! of the libseccomp program: on the native architecture, any syscall number
//! above the highest one the profile names returns ENOSYS.

use libc::sock_filter;

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_JGT_K: u16 = 0x25;
const BPF_JSET_K: u16 = 0x45;
const BPF_RET_K: u16 = 0x06;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
/// offsetof(struct seccomp_data, nr) and (.., arch).
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;

/// The AUDIT_ARCH_* value of the architecture we run on.
pub fn native_audit_arch() -> Option<u32> {
    if cfg!(target_arch = "x86_64") {
        Some(0xC000_003E)
    } else if cfg!(target_arch = "aarch64") {
        Some(0xC000_00B7)
    } else {
        None
    }
}

/// x32 syscalls on x86_64 carry this bit; they are left to the filter.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// The instructions to prepend: "if arch is `arch` and nr > `max_nr` (and,
/// on x86_64, not an x32 call) return ENOSYS", otherwise fall through.
pub fn stub(arch: u32, max_nr: u32) -> Vec<sock_filter> {
    vec![
        stmt(BPF_LD_W_ABS, OFF_ARCH),
        // Another architecture: skip the 4 instructions below.
        jump(BPF_JEQ_K, arch, 0, 4),
        stmt(BPF_LD_W_ABS, OFF_NR),
        // x32 call: skip the 2 below.
        jump(BPF_JSET_K, X32_SYSCALL_BIT, 2, 0),
        jump(BPF_JGT_K, max_nr, 0, 1),
        stmt(BPF_RET_K, SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumps_land_on_the_filter_start() {
        let s = stub(0xC000_003E, 435);
        assert_eq!(s.len(), 6);
        // From instruction i, a jump of n lands on i + 1 + n; the filter
        // proper starts at index 6.
        assert_eq!(1 + 1 + s[1].jf as usize, 6);
        assert_eq!(3 + 1 + s[3].jt as usize, 6);
        assert_eq!(4 + 1 + s[4].jf as usize, 6);
        assert_eq!(4 + 1 + s[4].jt as usize, 5);
        assert_eq!(s[5].k, 0x0005_0000 | 38);
        assert_eq!(s[4].k, 435);
    }
}
