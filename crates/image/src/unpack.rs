//! Unpack one layer (gzip, zstd or plain tar) into an empty directory, in the form
//! overlayfs wants for a lower layer: whiteouts become 0/0 character devices, opaque
//! directories get `trusted.overlay.opaque=y`. Owners, modes, times, xattrs, hard links,
//! symlinks and device nodes are kept. Nothing is ever written outside `dest`: names with
//! `..` are refused, no entry may go through a symlink, relative symlinks may not climb
//! above the root, and hard links must point at an entry of this layer.

use crate::digest::{Digest, HashingReader};
use crate::error::{Error, IoContext, Result};
use crate::pathcheck::{normalize_member, symlink_escapes, whiteout, Whiteout};
use crate::xattr;
use std::collections::HashSet;
use std::ffi::{CString, OsStr};
use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tar::EntryType;

#[derive(Debug, Clone)]
pub struct UnpackStats {
    /// sha256 of the uncompressed tar stream (the layer's diff ID).
    pub diff_id: Digest,
    /// Uncompressed size.
    pub size: u64,
    pub entries: u64,
}

/// Unpack a possibly compressed layer tar from `src` into the existing empty directory `dest`.
pub fn unpack_layer<R: Read>(src: R, dest: &Path) -> Result<UnpackStats> {
    let mut buffered = BufReader::with_capacity(1 << 20, src);
    let magic = buffered.fill_buf().ctx("reading layer", dest)?;
    let decoder: Box<dyn Read> = if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(
            zstd::stream::read::Decoder::with_buffer(buffered)
                .ctx("starting zstd decoder", dest)?,
        )
    } else {
        Box::new(buffered)
    };
    let mut hashing = HashingReader::new(decoder);
    let mut u = Unpacker {
        dest: dest.to_path_buf(),
        known_dirs: HashSet::new(),
        dir_times: Vec::new(),
        buf: vec![0u8; 256 * 1024],
        entries: 0,
        sgid_dirs: HashSet::new(),
        umask: process_umask(),
        // SAFETY: geteuid/getegid cannot fail and touch no memory.
        euid: unsafe { libc::geteuid() },
        // SAFETY: as above.
        egid: unsafe { libc::getegid() },
    };
    {
        let mut archive = tar::Archive::new(&mut hashing);
        let entries = archive.entries().map_err(|e| bad_tar(dest, e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| bad_tar(dest, e))?;
            u.entry(&mut entry)?;
        }
    }
    let (diff_id, size) = hashing.finish().map_err(|e| bad_tar(dest, e))?;
    if u.entries == 0 && size == 0 {
        return Err(Error::BadArchive {
            path: dest.to_path_buf(),
            reason: "empty layer stream".into(),
        });
    }
    u.finish_dirs();
    Ok(UnpackStats {
        diff_id,
        size,
        entries: u.entries,
    })
}

fn bad_tar(dest: &Path, e: io::Error) -> Error {
    Error::BadArchive {
        path: dest.to_path_buf(),
        reason: format!("layer data is not a valid (complete) tar stream: {e}"),
    }
}

struct Unpacker {
    dest: PathBuf,
    /// Relative paths known to be real directories created by this unpack.
    known_dirs: HashSet<PathBuf>,
    dir_times: Vec<(PathBuf, u64)>,
    buf: Vec<u8>,
    entries: u64,
    /// Directories (relative) with the setgid bit: files in them inherit the group.
    sgid_dirs: HashSet<PathBuf>,
    umask: u32,
    euid: u32,
    egid: u32,
}

struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: u64,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Unpacker {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            return Ok(());
        }
        self.entries += 1;
        let raw_name = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_name).into_owned();
        let rel = normalize_member(&raw_name)?;
        let h = entry.header();
        let mut meta = Meta {
            mode: h
                .mode()
                .map_err(|e| Error::unsafe_entry(&shown, format!("bad mode: {e}")))?
                & 0o7777,
            uid: h
                .uid()
                .map_err(|e| Error::unsafe_entry(&shown, format!("bad uid: {e}")))?
                as u32,
            gid: h
                .gid()
                .map_err(|e| Error::unsafe_entry(&shown, format!("bad gid: {e}")))?
                as u32,
            mtime: h.mtime().unwrap_or(0),
            xattrs: Vec::new(),
        };
        if let Ok(Some(exts)) = entry.pax_extensions() {
            for ext in exts.flatten() {
                let key = ext.key_bytes();
                if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    // Overlay's own attributes are podrun's to set, never a layer's.
                    if !name.starts_with(b"trusted.overlay.") {
                        meta.xattrs
                            .push((name.to_vec(), ext.value_bytes().to_vec()));
                    }
                } else if key == b"uid" || key == b"gid" {
                    if let Some(v) = std::str::from_utf8(ext.value_bytes())
                        .ok()
                        .and_then(|s| s.parse::<u32>().ok())
                    {
                        if key == b"uid" {
                            meta.uid = v;
                        } else {
                            meta.gid = v;
                        }
                    }
                }
            }
        }

        if rel.as_os_str().is_empty() {
            // The layer root itself ("./").
            if kind == EntryType::Directory {
                let dest = self.dest.clone();
                self.apply_meta(&dest, &meta, &shown)?;
                self.dir_times.push((PathBuf::new(), meta.mtime));
            }
            return Ok(());
        }
        self.ensure_parents(&rel, &shown)?;
        let full = self.dest.join(&rel);
        let name = rel
            .file_name()
            .expect("non-empty relative path has a file name");

        match whiteout(name) {
            Whiteout::Opaque => {
                let parent = rel.parent().unwrap_or(Path::new(""));
                let pfull = self.dest.join(parent);
                xattr::set(&pfull, b"trusted.overlay.opaque", b"y")
                    .ctx("marking opaque directory", &pfull)?;
                return Ok(());
            }
            Whiteout::Meta => return Ok(()),
            Whiteout::Remove(target) => {
                if target.is_empty() || target == "." || target == ".." {
                    return Err(Error::unsafe_entry(&shown, "whiteout without a valid name"));
                }
                let trel = rel.with_file_name(target);
                let tfull = self.dest.join(&trel);
                self.clear(&trel, &tfull, false)?;
                mknod(&tfull, libc::S_IFCHR, 0, 0).ctx("creating whiteout", &tfull)?;
                return Ok(());
            }
            Whiteout::None => {}
        }

        match kind {
            EntryType::Directory => {
                self.clear(&rel, &full, true)?;
                match fs::DirBuilder::new().mode(0o700).create(&full) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(Error::io("creating directory", &full, e)),
                }
                self.known_dirs.insert(rel.clone());
                if meta.mode & 0o2000 != 0 {
                    self.sgid_dirs.insert(rel.clone());
                } else {
                    self.sgid_dirs.remove(&rel);
                }
                self.apply_meta(&full, &meta, &shown)?;
                self.dir_times.push((rel, meta.mtime));
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                // Create first and clear only on EEXIST: one syscall fewer for the common case.
                let mut f = match create_file(&full, meta.mode) {
                    Ok(f) => f,
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        self.clear(&rel, &full, false)?;
                        create_file(&full, meta.mode).ctx("creating file", &full)?
                    }
                    Err(e) => return Err(Error::io("creating file", &full, e)),
                };
                loop {
                    let n = entry
                        .read(&mut self.buf)
                        .map_err(|e| bad_tar(&self.dest, e))?;
                    if n == 0 {
                        break;
                    }
                    f.write_all(&self.buf[..n]).ctx("writing file", &full)?;
                }
                // The file was created by us: skip what the kernel already got right.
                if !self.default_owner(&rel, &meta) {
                    std::os::unix::fs::fchown(&f, Some(meta.uid), Some(meta.gid))
                        .ctx("setting owner", &full)?;
                }
                if meta.mode & 0o7000 != 0 || meta.mode & self.umask != 0 {
                    f.set_permissions(fs::Permissions::from_mode(meta.mode))
                        .ctx("setting mode", &full)?;
                }
                self.set_xattrs(&full, &meta);
                set_fd_times(&f, meta.mtime);
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| Error::unsafe_entry(&shown, "symlink without a target"))?
                    .into_owned();
                if target.is_empty() || target.contains(&0) {
                    return Err(Error::unsafe_entry(&shown, "invalid symlink target"));
                }
                if symlink_escapes(&rel, &target) {
                    return Err(Error::unsafe_entry(
                        &shown,
                        format!(
                            "symlink to {:?} points outside the layer directory",
                            String::from_utf8_lossy(&target)
                        ),
                    ));
                }
                self.clear(&rel, &full, false)?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &full)
                    .ctx("creating symlink", &full)?;
                std::os::unix::fs::lchown(&full, Some(meta.uid), Some(meta.gid))
                    .ctx("setting owner", &full)?;
                self.set_xattrs(&full, &meta);
                set_times(&full, meta.mtime, true);
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| Error::unsafe_entry(&shown, "hard link without a target"))?
                    .into_owned();
                let trel = normalize_member(&target)?;
                if trel.as_os_str().is_empty() {
                    return Err(Error::unsafe_entry(&shown, "hard link to the layer root"));
                }
                self.check_parents_real(&trel, &shown)?;
                let tfull = self.dest.join(&trel);
                let tmeta = fs::symlink_metadata(&tfull).map_err(|_| {
                    Error::unsafe_entry(
                        &shown,
                        format!("hard link target {:?} is not in this layer", trel),
                    )
                })?;
                if tmeta.is_dir() {
                    return Err(Error::unsafe_entry(&shown, "hard link to a directory"));
                }
                if trel == rel {
                    return Ok(());
                }
                self.clear(&rel, &full, false)?;
                fs::hard_link(&tfull, &full).ctx("creating hard link", &full)?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let (t, major, minor) = match kind {
                    EntryType::Char => (
                        libc::S_IFCHR,
                        dev(entry.header().device_major()),
                        dev(entry.header().device_minor()),
                    ),
                    EntryType::Block => (
                        libc::S_IFBLK,
                        dev(entry.header().device_major()),
                        dev(entry.header().device_minor()),
                    ),
                    _ => (libc::S_IFIFO, 0, 0),
                };
                self.clear(&rel, &full, false)?;
                match mknod(&full, t | meta.mode, major, minor) {
                    Ok(()) => {
                        std::os::unix::fs::lchown(&full, Some(meta.uid), Some(meta.gid))
                            .ctx("setting owner", &full)?;
                        fs::set_permissions(&full, fs::Permissions::from_mode(meta.mode))
                            .ctx("setting mode", &full)?;
                        set_times(&full, meta.mtime, true);
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                        tracing::warn!(entry = %shown, "cannot create device node (no permission): skipped");
                    }
                    Err(e) => return Err(Error::io("creating device node", &full, e)),
                }
            }
            other => {
                tracing::debug!(entry = %shown, kind = ?other, "unsupported tar entry type: skipped");
            }
        }
        Ok(())
    }

    /// Would a file we create at `rel` already have the owner the entry asks for?
    fn default_owner(&self, rel: &Path, meta: &Meta) -> bool {
        meta.uid == self.euid
            && meta.gid == self.egid
            && !rel.parent().is_some_and(|p| self.sgid_dirs.contains(p))
    }

    /// Make sure every ancestor of `rel` is a real directory of this layer (creating missing ones).
    fn ensure_parents(&mut self, rel: &Path, shown: &str) -> Result<()> {
        let Some(parent) = rel.parent() else {
            return Ok(());
        };
        if parent.as_os_str().is_empty() || self.known_dirs.contains(parent) {
            return Ok(());
        }
        let mut cur = PathBuf::new();
        for comp in parent.components() {
            cur.push(comp);
            if self.known_dirs.contains(&cur) {
                continue;
            }
            let full = self.dest.join(&cur);
            match fs::symlink_metadata(&full) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(Error::unsafe_entry(
                        shown,
                        format!("path goes through the symlink {:?}", cur),
                    ))
                }
                Ok(_) => {
                    return Err(Error::unsafe_entry(
                        shown,
                        format!("parent {:?} is not a directory", cur),
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::DirBuilder::new()
                        .mode(0o755)
                        .create(&full)
                        .ctx("creating directory", &full)?;
                }
                Err(e) => return Err(Error::io("inspecting", &full, e)),
            }
            self.known_dirs.insert(cur.clone());
        }
        Ok(())
    }

    /// Like `ensure_parents`, for a hard link target: nothing is created, all must be real dirs.
    fn check_parents_real(&self, rel: &Path, shown: &str) -> Result<()> {
        let mut cur = PathBuf::new();
        if let Some(parent) = rel.parent() {
            for comp in parent.components() {
                cur.push(comp);
                if self.known_dirs.contains(&cur) {
                    continue;
                }
                match fs::symlink_metadata(self.dest.join(&cur)) {
                    Ok(m) if m.is_dir() => {}
                    _ => {
                        return Err(Error::unsafe_entry(
                            shown,
                            format!("hard link target goes through {:?}, which is not a directory of this layer", cur),
                        ))
                    }
                }
            }
        }
        Ok(())
    }

    /// Remove what is at `full` before a new entry takes its place (a directory over a directory merges).
    fn clear(&mut self, rel: &Path, full: &Path, new_is_dir: bool) -> Result<()> {
        match fs::symlink_metadata(full) {
            Ok(m) if m.is_dir() => {
                if !new_is_dir {
                    fs::remove_dir_all(full).ctx("replacing directory", full)?;
                    self.known_dirs.retain(|d| !d.starts_with(rel));
                }
            }
            Ok(_) => fs::remove_file(full).ctx("replacing file", full)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("inspecting", full, e)),
        }
        Ok(())
    }

    fn apply_meta(&self, full: &Path, meta: &Meta, _shown: &str) -> Result<()> {
        std::os::unix::fs::lchown(full, Some(meta.uid), Some(meta.gid))
            .ctx("setting owner", full)?;
        fs::set_permissions(full, fs::Permissions::from_mode(meta.mode))
            .ctx("setting mode", full)?;
        self.set_xattrs(full, meta);
        Ok(())
    }

    fn set_xattrs(&self, full: &Path, meta: &Meta) {
        for (k, v) in &meta.xattrs {
            if let Err(e) = xattr::set(full, k, v) {
                tracing::debug!(path = %full.display(), attr = %String::from_utf8_lossy(k), error = %e, "xattr not set");
            }
        }
    }

    /// Directory times last: creating children changed them.
    fn finish_dirs(&mut self) {
        for (rel, mtime) in self.dir_times.iter().rev() {
            set_times(&self.dest.join(rel), *mtime, true);
        }
    }
}

fn create_file(p: &Path, mode: u32) -> io::Result<fs::File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode & 0o777)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(p)
}

/// The process umask, from /proc (reading it with umask(2) would change it for a moment).
/// Unknown: all bits, so modes are always set explicitly.
fn process_umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o777)
}

fn set_fd_times(f: &fs::File, mtime: u64) {
    use std::os::fd::AsRawFd;
    let ts = libc::timespec {
        tv_sec: mtime as _,
        tv_nsec: 0,
    };
    let times = [ts, ts];
    // SAFETY: a valid open fd and a two-element timespec array alive for the call.
    let r = unsafe { libc::futimens(f.as_raw_fd(), times.as_ptr()) };
    if r != 0 {
        tracing::debug!(error = %io::Error::last_os_error(), "mtime not set");
    }
}

fn dev(v: io::Result<Option<u32>>) -> u32 {
    v.ok().flatten().unwrap_or(0)
}

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn mknod(p: &Path, mode: u32, major: u32, minor: u32) -> io::Result<()> {
    let c = cpath(p)?;
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    let r = unsafe { libc::mknod(c.as_ptr(), mode, libc::makedev(major, minor)) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn set_times(p: &Path, mtime: u64, nofollow: bool) {
    let Ok(c) = cpath(p) else { return };
    let ts = libc::timespec {
        tv_sec: mtime as _,
        tv_nsec: 0,
    };
    let times = [ts, ts];
    let flags = if nofollow {
        libc::AT_SYMLINK_NOFOLLOW
    } else {
        0
    };
    // SAFETY: valid path and a two-element timespec array, both alive for the call.
    let r = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), flags) };
    if r != 0 {
        tracing::debug!(path = %p.display(), error = %io::Error::last_os_error(), "mtime not set");
    }
}
