//! Switching this process's executable (`/proc/self/exe`) to a read-only view of the same
//! binary without executing it again.
//!
//! The kernel lets a process replace `mm->exe_file` (`prctl(PR_SET_MM, PR_SET_MM_MAP)` with
//! an `exe_fd`, needing CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE; or `PR_SET_MM_EXE_FILE`,
//! needing CAP_SYS_RESOURCE) only once no memory mapping refers to the old file by the same
//! path (`replace_mm_exe_file`: `path_equal` on every VMA's file). So every mapping of the
//! binary is first moved off the host path:
//!
//! * a mapping whose pages still equal the file (text, read-only data: the ELF segments
//!   without `PF_W`) is mapped again, `MAP_FIXED` at the same address and file offset, from
//!   the read-only view -- the same inode, so the same page-cache pages and the same bytes;
//! * a mapping of a writable segment (relocated RELRO data, `.data`, the first page of
//!   `.bss`), whose pages may differ from the file, is copied into fresh anonymous memory
//!   that then replaces it with `mremap(MREMAP_FIXED)`, one system call.
//!
//! Between the copy of a writable mapping and its replacement nothing but raw system calls
//! runs (no allocation, no logging), so no static changes behind the copy's back; the
//! process must be single-threaded. Every step keeps the process's memory contents intact,
//! so when anything fails the caller can still fall back to executing the read-only view.

use crate::error::{Error, Result};
use std::os::fd::RawFd;

/// One mapping of the executable, from /proc/self/maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Vma {
    pub start: usize,
    pub end: usize,
    pub prot: i32,
    pub offset: u64,
    pub private: bool,
}

/// What to do with one mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Map the same file range again from the read-only view.
    Remap(Vma),
    /// Copy into anonymous memory and move that over the mapping.
    Copy(Vma),
}

/// One PT_LOAD segment of the main program: absolute, page-rounded address range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Load {
    pub start: usize,
    pub end: usize,
    pub writable: bool,
}

/// The file-backed mappings in `maps` (the text of /proc/self/maps) that lie inside the
/// main program's load segments: the executable's own mappings (its `.bss` beyond the last
/// file page is anonymous and not listed).
pub(crate) fn exe_mappings(maps: &str, loads: &[Load]) -> Vec<Vma> {
    maps.lines()
        .filter_map(crate::util::MapsLine::parse)
        .filter(|m| m.inode != 0 && loads.iter().any(|l| m.start < l.end && l.start < m.end))
        .map(|m| {
            let p = m.perms.as_bytes();
            let flag = |i: usize, c: u8, v: i32| if p.get(i) == Some(&c) { v } else { 0 };
            Vma {
                start: m.start,
                end: m.end,
                prot: flag(0, b'r', libc::PROT_READ)
                    | flag(1, b'w', libc::PROT_WRITE)
                    | flag(2, b'x', libc::PROT_EXEC),
                offset: m.offset,
                private: p.get(3) == Some(&b'p'),
            }
        })
        .collect()
}

/// Decide per mapping: mappings inside writable segments are copied, those inside read-only
/// ones mapped again. A mapping may span adjacent segments of one kind (the kernel merges
/// the mappings of two writable segments that touch, as when the linker puts RELRO and
/// `.data` on separate pages). A shared mapping of the binary (nobody makes one), one that
/// mixes writable and read-only segments or leaves them, or a writable one in a read-only
/// segment is refused.
pub(crate) fn plan(vmas: &[Vma], loads: &[Load]) -> Result<Vec<Step>> {
    let mut steps = Vec::with_capacity(vmas.len());
    for v in vmas {
        if !v.private {
            return Err(Error::Other(format!(
                "shared mapping of the executable at {:#x}",
                v.start
            )));
        }
        let Some(writable) = covering_kind(v, loads) else {
            return Err(Error::Other(format!(
                "executable mapping {:#x}-{:#x} straddles its segments",
                v.start, v.end
            )));
        };
        if writable {
            steps.push(Step::Copy(*v));
        } else if v.prot & libc::PROT_WRITE != 0 {
            return Err(Error::Other(format!(
                "writable mapping {:#x}-{:#x} in a read-only segment",
                v.start, v.end
            )));
        } else {
            steps.push(Step::Remap(*v));
        }
    }
    Ok(steps)
}

/// Whether `v` lies in writable segments (`Some(true)`) or read-only ones (`Some(false)`):
/// the segments it overlaps must all be of that kind and cover it without a gap.
fn covering_kind(v: &Vma, loads: &[Load]) -> Option<bool> {
    let mut over: Vec<&Load> = loads
        .iter()
        .filter(|l| l.start < v.end && v.start < l.end)
        .collect();
    over.sort_by_key(|l| l.start);
    let first = over.first()?;
    let mut reach = first.end;
    for l in &over[1..] {
        if l.writable != first.writable || l.start > reach {
            return None;
        }
        reach = reach.max(l.end);
    }
    (first.start <= v.start && v.end <= reach).then_some(first.writable)
}

fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

/// The main program's PT_LOAD segments, and whether it has text relocations (then its
/// text differs from the file and cannot be mapped again).
pub(crate) fn load_segments() -> (Vec<Load>, bool) {
    struct Acc {
        ranges: Vec<Load>,
        textrel: bool,
        seen: bool,
    }
    unsafe extern "C" fn cb(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: `data` is the &mut Acc passed to dl_iterate_phdr below; `info` points to a
        // valid dl_phdr_info for the duration of the callback, its dlpi_phdr to dlpi_phnum
        // program headers.
        let (acc, info) = unsafe { (&mut *(data as *mut Acc), &*info) };
        if acc.seen {
            return 1;
        }
        acc.seen = true; // the first object reported is the main program
                         // SAFETY: see above: dlpi_phnum headers at dlpi_phdr.
        let phdrs = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
        let bias = info.dlpi_addr as usize;
        for ph in phdrs {
            if ph.p_type == libc::PT_LOAD {
                let page = page_size();
                let a = bias + ph.p_vaddr as usize;
                acc.ranges.push(Load {
                    start: a & !(page - 1),
                    end: (a + ph.p_memsz as usize + page - 1) & !(page - 1),
                    writable: ph.p_flags & libc::PF_W != 0,
                });
            }
            if ph.p_type == libc::PT_DYNAMIC {
                let mut d = (bias + ph.p_vaddr as usize) as *const Dyn;
                // SAFETY: PT_DYNAMIC points at the loaded, DT_NULL-terminated dynamic array.
                unsafe {
                    while (*d).d_tag != 0 {
                        if (*d).d_tag == 22 /* DT_TEXTREL */
                            || ((*d).d_tag == 30 /* DT_FLAGS */ && (*d).d_un & 0x4 /* DF_TEXTREL */ != 0)
                        {
                            acc.textrel = true;
                        }
                        d = d.add(1);
                    }
                }
            }
        }
        1
    }
    /// `Elf64_Dyn` of <elf.h>.
    #[repr(C)]
    struct Dyn {
        d_tag: i64,
        d_un: u64,
    }
    let mut acc = Acc {
        ranges: Vec::new(),
        textrel: false,
        seen: false,
    };
    // SAFETY: the callback only reads the headers it is given and writes to `acc`, which
    // outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(cb), &mut acc as *mut Acc as *mut libc::c_void) };
    (acc.ranges, acc.textrel)
}

/// Carry out `steps`, mapping `Remap` ranges from `fd` (a readable descriptor of the same
/// binary). Allocation-free: see the module comment. On error the mappings already
/// processed stay processed (their contents are unchanged either way).
pub(crate) fn apply(steps: &[Step], fd: RawFd) -> Result<()> {
    for s in steps {
        match *s {
            Step::Remap(v) => {
                // SAFETY: maps the same file range over itself: the bytes at [start, end)
                // are the same before and after (same inode and offset, never written).
                let r = unsafe {
                    libc::mmap(
                        v.start as *mut libc::c_void,
                        v.end - v.start,
                        v.prot,
                        libc::MAP_PRIVATE | libc::MAP_FIXED,
                        fd,
                        v.offset as libc::off_t,
                    )
                };
                if r == libc::MAP_FAILED {
                    return Err(Error::sys(
                        "map the executable from its read-only view",
                        nix::errno::Errno::last(),
                    ));
                }
            }
            Step::Copy(v) => copy_over(v)?,
        }
    }
    Ok(())
}

fn copy_over(v: Vma) -> Result<()> {
    let len = v.end - v.start;
    // SAFETY: a fresh anonymous mapping; checked below.
    let tmp = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            // Populated in one go: cheaper than a fault per page during the copy.
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
            -1,
            0,
        )
    };
    if tmp == libc::MAP_FAILED {
        return Err(Error::sys("mmap", nix::errno::Errno::last()));
    }
    let undo = |what: &str| {
        let e = nix::errno::Errno::last();
        // SAFETY: unmapping the temporary mapping made above, nothing else.
        unsafe { libc::munmap(tmp, len) };
        Err(Error::sys(what.to_string(), e))
    };
    if v.prot & libc::PROT_READ != 0 {
        // SAFETY: [start, end) is a readable mapping of len bytes, tmp a fresh writable one
        // of the same size; they do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(v.start as *const u8, tmp as *mut u8, len) };
    }
    // SAFETY: changes the protection of our temporary mapping only.
    if unsafe { libc::mprotect(tmp, len, v.prot) } != 0 {
        return undo("mprotect");
    }
    // SAFETY: moves the temporary mapping, whose bytes equal [start, end)'s, over that
    // range in one step (MREMAP_FIXED unmaps the old mapping); nothing ran in between that
    // could have written to [start, end).
    let r = unsafe {
        libc::mremap(
            tmp,
            len,
            len,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
            v.start as *mut libc::c_void,
        )
    };
    if r == libc::MAP_FAILED {
        return undo("mremap over the executable's data");
    }
    Ok(())
}

/// `struct prctl_mm_map` of <linux/prctl.h>.
#[repr(C)]
#[derive(Default)]
struct PrctlMmMap {
    start_code: u64,
    end_code: u64,
    start_data: u64,
    end_data: u64,
    start_brk: u64,
    brk: u64,
    start_stack: u64,
    arg_start: u64,
    arg_end: u64,
    env_start: u64,
    env_end: u64,
    auxv: u64,
    auxv_size: u32,
    exe_fd: u32,
}

const PR_SET_MM: libc::c_int = 35;
const PR_SET_MM_EXE_FILE: libc::c_ulong = 13;
const PR_SET_MM_MAP: libc::c_ulong = 14;

/// The number of threads, field 20 of /proc/self/stat.
pub(crate) fn threads(stat: &str) -> Option<u64> {
    crate::util::proc_stat_field(stat, 20)?.parse().ok()
}

/// The memory-layout fields of /proc/self/stat PR_SET_MM_MAP needs (written back unchanged).
pub(crate) fn mm_fields(stat: &str) -> Option<[u64; 10]> {
    let get = |n: usize| crate::util::proc_stat_field(stat, n)?.parse::<u64>().ok();
    Some([
        get(26)?, // startcode
        get(27)?, // endcode
        get(45)?, // start_data
        get(46)?, // end_data
        get(47)?, // start_brk
        get(28)?, // startstack
        get(48)?, // arg_start
        get(49)?, // arg_end
        get(50)?, // env_start
        get(51)?, // env_end
    ])
}

/// Point `mm->exe_file` at `fd`. All mappings of the old file must be gone.
pub(crate) fn set_exe_file(fd: RawFd, stat: &str) -> Result<()> {
    let m = mm_fields(stat).ok_or_else(|| Error::Other("cannot parse /proc/self/stat".into()))?;
    // SAFETY: brk(0) only reports the current program break.
    let brk = unsafe { libc::syscall(libc::SYS_brk, 0usize) } as u64;
    let map = PrctlMmMap {
        start_code: m[0],
        end_code: m[1],
        start_data: m[2],
        end_data: m[3],
        start_brk: m[4],
        brk,
        start_stack: m[5],
        arg_start: m[6],
        arg_end: m[7],
        env_start: m[8],
        env_end: m[9],
        auxv: 0,
        auxv_size: 0,
        exe_fd: fd as u32,
    };
    // SAFETY: PR_SET_MM_MAP reads a prctl_mm_map of the size given; every field is this
    // process's current value (auxv_size 0 leaves the saved auxv alone), so only exe_file
    // changes.
    let r = unsafe {
        libc::prctl(
            PR_SET_MM,
            PR_SET_MM_MAP,
            &map as *const PrctlMmMap,
            std::mem::size_of::<PrctlMmMap>(),
            0,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e1 = nix::errno::Errno::last();
    // SAFETY: PR_SET_MM_EXE_FILE takes a descriptor number.
    let r = unsafe { libc::prctl(PR_SET_MM, PR_SET_MM_EXE_FILE, fd as libc::c_ulong, 0, 0) };
    if r == 0 {
        return Ok(());
    }
    let e2 = nix::errno::Errno::last();
    Err(Error::Other(format!(
        "replace the executable: PR_SET_MM_MAP: {e1}; PR_SET_MM_EXE_FILE: {e2}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d0a0000000-55d0a028b000 r--p 00000000 fe:00 1234                       /usr/bin/podrun
55d0a028b000-55d0a0c03000 r-xp 0028a000 fe:00 1234                       /usr/bin/podrun
55d0a0c04000-55d0a0c68000 r--p 00c02000 fe:00 1234                       /usr/bin/podrun
55d0a0c68000-55d0a0c6a000 rw-p 00c65000 fe:00 1234                       /usr/bin/podrun
55d0a0c6a000-55d0a0c6b000 rw-p 00000000 00:00 0 
55d0a1000000-55d0a1021000 rw-p 00000000 00:00 0                          [heap]
7f0000000000-7f0000022000 r--p 00000000 fe:00 99                         /usr/lib/x86_64-linux-gnu/libc.so.6
";
    const B: usize = 0x55d0a0000000;
    // As in the real binary: R, RX, RW (RELRO), RW (.data/.bss), page-rounded.
    const LOADS: [Load; 4] = [
        Load {
            start: B,
            end: B + 0x28b000,
            writable: false,
        },
        Load {
            start: B + 0x28b000,
            end: B + 0xc04000,
            writable: false,
        },
        Load {
            start: B + 0xc04000,
            end: B + 0xc69000,
            writable: true,
        },
        Load {
            start: B + 0xc68000,
            end: B + 0xc6b000,
            writable: true,
        },
    ];

    #[test]
    fn finds_only_the_executables_file_mappings() {
        let v = exe_mappings(MAPS, &LOADS);
        assert_eq!(v.len(), 4);
        assert_eq!(v[1].prot, libc::PROT_READ | libc::PROT_EXEC);
        assert_eq!(v[1].offset, 0x28a000);
        assert_eq!(v[3].prot, libc::PROT_READ | libc::PROT_WRITE);
        assert!(v.iter().all(|m| m.private));
    }

    #[test]
    fn copies_writable_segments_and_remaps_the_rest() {
        let v = exe_mappings(MAPS, &LOADS);
        let p = plan(&v, &LOADS).unwrap();
        assert!(matches!(p[0], Step::Remap(_)));
        assert!(matches!(p[1], Step::Remap(_)));
        assert!(matches!(p[2], Step::Copy(_)));
        assert!(matches!(p[3], Step::Copy(_)));
    }

    #[test]
    fn refuses_writable_mapping_in_read_only_segment_and_shared_ones() {
        let mut v = exe_mappings(MAPS, &LOADS);
        let ro = [Load {
            start: B,
            end: B + 0xc6b000,
            writable: false,
        }];
        assert!(plan(&v[3..4], &ro).is_err());
        v[0].private = false;
        assert!(plan(&v[..1], &LOADS).is_err());
    }

    /// Two writable segments on adjacent pages (lld's `-z separate-loadable-segments`) are
    /// one mapping in the kernel: copied as one. Mixed or uncovered spans are refused.
    #[test]
    fn a_mapping_over_adjacent_segments_of_one_kind() {
        let seg = |start: usize, end: usize, writable| Load {
            start: B + start,
            end: B + end,
            writable,
        };
        let vma = |start: usize, end: usize, prot| Vma {
            start: B + start,
            end: B + end,
            prot,
            offset: start as u64,
            private: true,
        };
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        let loads = [
            seg(0x0, 0x1000, false),
            seg(0x1000, 0x5000, false),
            seg(0x5000, 0x6000, true),
            seg(0x6000, 0x9000, true),
        ];
        let p = plan(&[vma(0x5000, 0x8000, rw)], &loads).unwrap();
        assert_eq!(p, [Step::Copy(vma(0x5000, 0x8000, rw))]);
        let p = plan(&[vma(0x0, 0x3000, libc::PROT_READ)], &loads).unwrap();
        assert!(matches!(p[0], Step::Remap(_)));
        // Read-only and writable in one mapping; beyond the last segment; over a gap.
        assert!(plan(&[vma(0x4000, 0x6000, rw)], &loads).is_err());
        assert!(plan(&[vma(0x8000, 0xa000, rw)], &loads).is_err());
        let gap = [seg(0x5000, 0x6000, true), seg(0x7000, 0x9000, true)];
        assert!(plan(&[vma(0x5000, 0x8000, rw)], &gap).is_err());
    }

    #[test]
    fn parses_stat_fields() {
        // field n (1-based) holds n * 10, fields 1 and 2 being pid and "(comm)".
        let rest: Vec<String> = (3..=52).map(|n| (n * 10).to_string()).collect();
        let stat = format!("1234 (pod) run) {}\n", rest.join(" "));
        assert_eq!(
            mm_fields(&stat).unwrap(),
            [260, 270, 450, 460, 470, 280, 480, 490, 500, 510]
        );
        assert_eq!(threads(&stat), Some(200));
    }

    #[test]
    fn real_process_has_a_plan_covering_every_mapping_of_the_binary() {
        use std::os::unix::fs::MetadataExt;
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let (loads, textrel) = load_segments();
        assert!(!textrel);
        let v = exe_mappings(&maps, &loads);
        assert!(v.iter().any(|m| m.prot & libc::PROT_EXEC != 0), "{maps}");
        let p = plan(&v, &loads).unwrap();
        assert!(p.iter().any(|s| matches!(s, Step::Copy(_))));
        // Every mapping of the test binary's inode is in the plan.
        let md = std::fs::metadata("/proc/self/exe").unwrap();
        let ino = md.ino().to_string();
        let by_inode = maps
            .lines()
            .filter(|l| l.split_ascii_whitespace().nth(4) == Some(ino.as_str()))
            .count();
        assert_eq!(by_inode, p.len(), "{maps}");
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(mm_fields(&stat).unwrap().iter().all(|&x| x > 0));
        assert!(threads(&stat).unwrap() >= 1);
    }
}
