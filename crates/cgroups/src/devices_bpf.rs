//! cgroup v2 device control: OCI `linux.resources.devices` -> a BPF_PROG_TYPE_CGROUP_DEVICE
//! program attached to the cgroup (v2 has no devices.allow/deny files).
//!
//! Semantics follow the v1 devices controller: a new cgroup allows everything; a rule of type
//! "a" resets the default (allow or deny) and drops earlier rules; other rules are exceptions,
//! the last matching one wins. A rule matches when the type matches, major/minor match (absent
//! or -1 = any) and the requested access is a subset of the rule's access (as runc's filter).

use crate::error::{Error, Result};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// One eBPF instruction (struct bpf_insn).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst_reg (low 4 bits) | src_reg (high 4 bits)
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

const LDX_W: u8 = 0x61; // r_dst = *(u32 *)(r_src + off)
const AND32_K: u8 = 0x54;
const RSH32_K: u8 = 0x74;
const MOV32_X: u8 = 0xbc;
const MOV64_K: u8 = 0xb7;
const JNE_K: u8 = 0x55;
const JNE_X: u8 = 0x5d;
const EXIT: u8 = 0x95;

// linux/bpf.h
const DEVCG_DEV_BLOCK: i32 = 1;
const DEVCG_DEV_CHAR: i32 = 2;
const DEVCG_ACC_MKNOD: i32 = 1;
const DEVCG_ACC_READ: i32 = 2;
const DEVCG_ACC_WRITE: i32 = 4;

fn ins(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (dst & 0xf) | (src << 4),
        off,
        imm,
    }
}

/// A normalised exception rule.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    typ: Option<i32>, // None = any
    major: Option<i32>,
    minor: Option<i32>,
    access: i32,
    allow: bool,
}

fn access_bits(a: &str) -> Result<i32> {
    let a = if a.is_empty() { "rwm" } else { a };
    let mut bits = 0;
    for c in a.chars() {
        bits |= match c {
            'r' => DEVCG_ACC_READ,
            'w' => DEVCG_ACC_WRITE,
            'm' => DEVCG_ACC_MKNOD,
            _ => {
                return Err(Error::InvalidValue {
                    field: "devices.access",
                    value: a.into(),
                    reason: "only the letters r, w and m are allowed".into(),
                })
            }
        };
    }
    Ok(bits)
}

fn dev_num(v: Option<i64>, field: &'static str) -> Result<Option<i32>> {
    match v {
        None | Some(-1) => Ok(None),
        Some(n) if (0..=i32::MAX as i64).contains(&n) => Ok(Some(n as i32)),
        Some(n) => Err(Error::InvalidValue {
            field,
            value: n.to_string(),
            reason: "must be >= 0 (or absent/-1 for any)".into(),
        }),
    }
}

/// Normalise OCI rules into (default allow?, exceptions in order).
fn normalise(rules: &[LinuxDeviceCgroup]) -> Result<(bool, Vec<Rule>)> {
    let mut default_allow = true;
    let mut out = Vec::new();
    for d in rules {
        let access = access_bits(d.access().as_deref().unwrap_or(""))?;
        let typ = match d.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => None,
            LinuxDeviceType::B => Some(DEVCG_DEV_BLOCK),
            LinuxDeviceType::C | LinuxDeviceType::U => Some(DEVCG_DEV_CHAR),
            LinuxDeviceType::P => {
                return Err(Error::InvalidValue {
                    field: "devices.type",
                    value: "p".into(),
                    reason: "the device controller only knows a, b and c".into(),
                })
            }
        };
        let major = dev_num(d.major(), "devices.major")?;
        let minor = dev_num(d.minor(), "devices.minor")?;
        if typ.is_none() && major.is_none() && minor.is_none() {
            default_allow = d.allow();
            out.clear();
            continue;
        }
        out.push(Rule {
            typ,
            major,
            minor,
            access,
            allow: d.allow(),
        });
    }
    Ok((default_allow, out))
}

/// Build the program. Registers after the prologue: r2 = type, r3 = access, r4 = major,
/// r5 = minor. Exceptions are checked last-to-first; only forward jumps (verifier-friendly).
pub fn program(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Insn>> {
    let (default_allow, rules) = normalise(rules)?;
    let mut p = vec![
        ins(LDX_W, 2, 1, 0, 0),
        ins(AND32_K, 2, 0, 0, 0xffff),
        ins(LDX_W, 3, 1, 0, 0),
        ins(RSH32_K, 3, 0, 0, 16),
        ins(LDX_W, 4, 1, 4, 0),
        ins(LDX_W, 5, 1, 8, 0),
    ];
    for r in rules.iter().rev() {
        let mut block: Vec<Insn> = Vec::new();
        let mut jumps: Vec<usize> = Vec::new();
        if let Some(t) = r.typ {
            jumps.push(block.len());
            block.push(ins(JNE_K, 2, 0, 0, t));
        }
        if r.access != DEVCG_ACC_MKNOD | DEVCG_ACC_READ | DEVCG_ACC_WRITE {
            block.push(ins(MOV32_X, 1, 3, 0, 0));
            block.push(ins(AND32_K, 1, 0, 0, r.access));
            jumps.push(block.len());
            block.push(ins(JNE_X, 1, 3, 0, 0));
        }
        if let Some(m) = r.major {
            jumps.push(block.len());
            block.push(ins(JNE_K, 4, 0, 0, m));
        }
        if let Some(m) = r.minor {
            jumps.push(block.len());
            block.push(ins(JNE_K, 5, 0, 0, m));
        }
        block.push(ins(MOV64_K, 0, 0, 0, r.allow as i32));
        block.push(ins(EXIT, 0, 0, 0, 0));
        let len = block.len();
        for j in jumps {
            block[j].off = (len - j - 1) as i16;
        }
        p.extend(block);
    }
    p.push(ins(MOV64_K, 0, 0, 0, default_allow as i32));
    p.push(ins(EXIT, 0, 0, 0, 0));
    Ok(p)
}

/// union bpf_attr, BPF_PROG_LOAD part.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// union bpf_attr, BPF_PROG_ATTACH part.
#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<i64> {
    // SAFETY: `attr` is a live, fully initialised repr(C) bpf_attr prefix of the given size;
    // the kernel reads (and for logs, writes) only within it and the buffers it points to.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn load(insns: &[Insn], with_log: bool) -> std::result::Result<OwnedFd, (io::Error, String)> {
    let license = b"Apache\0";
    let mut log = if with_log {
        vec![0u8; 1 << 16]
    } else {
        Vec::new()
    };
    let mut name = [0u8; 16];
    name[..13].copy_from_slice(b"podrun_device");
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name,
        ..Default::default()
    };
    if with_log {
        attr.log_level = 1;
        attr.log_size = log.len() as u32;
        attr.log_buf = log.as_mut_ptr() as u64;
    }
    match bpf(BPF_PROG_LOAD, &mut attr) {
        // SAFETY: a fresh fd returned by bpf(BPF_PROG_LOAD), owned by nobody else.
        Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
        Err(e) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            Err((e, String::from_utf8_lossy(&log[..end]).trim().to_string()))
        }
    }
}

/// Load the device program for `rules` and attach it to the cgroup2 directory `dir`,
/// replacing the one a previous apply attached (attach without BPF_F_ALLOW_MULTI).
pub(crate) fn attach(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    let insns = program(rules)?;
    let prog = match load(&insns, false) {
        Ok(fd) => fd,
        Err(_) => load(&insns, true).map_err(|(source, log)| Error::Sys {
            call: format!(
                "bpf(BPF_PROG_LOAD) of the device program for {} ({} insns){}",
                dir.display(),
                insns.len(),
                if log.is_empty() {
                    String::new()
                } else {
                    format!(", verifier: {log}")
                }
            ),
            source,
        })?,
    };
    let cg = std::fs::File::open(dir).map_err(|e| crate::fsio::dir_err(dir, "open", e))?;
    let mut attr = ProgAttachAttr {
        target_fd: cg.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: 0,
        replace_bpf_fd: 0,
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map_err(|source| Error::Sys {
        call: format!(
            "bpf(BPF_PROG_ATTACH, BPF_CGROUP_DEVICE) to {}",
            dir.display()
        ),
        source,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    /// A tiny interpreter for the opcodes we emit: runs the program on a device request.
    fn run(p: &[Insn], typ: i32, access: i32, major: i32, minor: i32) -> i64 {
        let ctx = [
            ((access as u32) << 16) | typ as u32,
            major as u32,
            minor as u32,
        ];
        let mut r = [0i64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (d, s) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_W => {
                    assert_eq!(s, 1, "only ctx loads");
                    r[d] = ctx[(i.off / 4) as usize] as i64;
                }
                AND32_K => r[d] = ((r[d] as u32) & (i.imm as u32)) as i64,
                RSH32_K => r[d] = ((r[d] as u32) >> i.imm) as i64,
                MOV32_X => r[d] = (r[s] as u32) as i64,
                MOV64_K => r[d] = i.imm as i64,
                JNE_K => {
                    if r[d] != i.imm as i64 {
                        pc += i.off as usize
                    }
                }
                JNE_X => {
                    if r[d] != r[s] {
                        pc += i.off as usize
                    }
                }
                EXIT => return r[0],
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    fn rule(
        allow: bool,
        t: LinuxDeviceType,
        maj: Option<i64>,
        min: Option<i64>,
        acc: &str,
    ) -> LinuxDeviceCgroup {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .typ(t)
            .access(acc);
        if let Some(m) = maj {
            b = b.major(m);
        }
        if let Some(m) = min {
            b = b.minor(m);
        }
        b.build().unwrap()
    }

    const C: i32 = DEVCG_DEV_CHAR;
    const B: i32 = DEVCG_DEV_BLOCK;
    const R: i32 = DEVCG_ACC_READ;
    const W: i32 = DEVCG_ACC_WRITE;
    const M: i32 = DEVCG_ACC_MKNOD;

    #[test]
    fn default_deny_with_exceptions() {
        let rules = vec![
            rule(false, LinuxDeviceType::A, None, None, "rwm"),
            rule(true, LinuxDeviceType::C, Some(1), Some(3), "rwm"), // /dev/null
            rule(true, LinuxDeviceType::C, Some(136), None, "rw"),   // ptys
            rule(true, LinuxDeviceType::B, None, None, "m"),         // mknod any block
        ];
        let p = program(&rules).unwrap();
        assert_eq!(run(&p, C, R | W, 1, 3), 1);
        assert_eq!(run(&p, C, M, 1, 3), 1);
        assert_eq!(run(&p, C, R, 1, 5), 0); // /dev/zero denied
        assert_eq!(run(&p, C, R | W, 136, 7), 1);
        assert_eq!(run(&p, C, M, 136, 7), 0); // mknod not in "rw"
        assert_eq!(run(&p, B, M, 8, 0), 1);
        assert_eq!(run(&p, B, R, 8, 0), 0);
    }

    #[test]
    fn default_allow_and_last_rule_wins() {
        // no "a" rule: v1 semantics, everything allowed except the deny exception
        let p = program(&[rule(false, LinuxDeviceType::C, Some(1), Some(5), "rwm")]).unwrap();
        assert_eq!(run(&p, C, R, 1, 5), 0);
        assert_eq!(run(&p, C, R, 1, 3), 1);
        // later rules override earlier ones
        let p = program(&[
            rule(false, LinuxDeviceType::A, None, None, "rwm"),
            rule(true, LinuxDeviceType::C, Some(1), None, "rwm"),
            rule(false, LinuxDeviceType::C, Some(1), Some(5), "rwm"),
        ])
        .unwrap();
        assert_eq!(run(&p, C, R, 1, 3), 1);
        assert_eq!(run(&p, C, R, 1, 5), 0);
        // an "a" rule later on resets everything before it
        let p = program(&[
            rule(false, LinuxDeviceType::C, Some(1), Some(5), "rwm"),
            rule(true, LinuxDeviceType::A, None, None, "rwm"),
        ])
        .unwrap();
        assert_eq!(run(&p, C, R, 1, 5), 1);
        assert_eq!(p.len(), 8); // prologue + default only
    }

    #[test]
    fn jumps_are_forward_and_in_range() {
        let p = program(&[
            rule(false, LinuxDeviceType::A, None, None, "rwm"),
            rule(true, LinuxDeviceType::C, Some(1), Some(3), "rw"),
            rule(true, LinuxDeviceType::C, Some(5), Some(0), "rwm"),
        ])
        .unwrap();
        for (i, insn) in p.iter().enumerate() {
            if insn.code == JNE_K || insn.code == JNE_X {
                assert!(insn.off > 0 && i + 1 + (insn.off as usize) < p.len());
            }
        }
        assert_eq!(p.last().unwrap().code, EXIT);
    }

    #[test]
    fn bad_rules() {
        assert!(program(&[rule(true, LinuxDeviceType::C, Some(1), Some(3), "rx")]).is_err());
        assert!(program(&[rule(true, LinuxDeviceType::P, None, None, "r")]).is_err());
        assert!(program(&[rule(true, LinuxDeviceType::C, Some(-7), None, "r")]).is_err());
    }
}
