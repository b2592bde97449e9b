//! runc's `tmpcopyup` mount extension: a fresh tmpfs that starts with a copy
//! of what the directory held in the image. The tmpfs is mounted on a
//! private staging directory, filled, then moved over the destination.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use nix::fcntl::AtFlags;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{mknod, Mode, SFlag};
use nix::unistd::{fchownat, Gid, Uid};

use crate::error::{Error, Result, SysContext};

/// Mount a tmpfs (`flags`, `data`) on `target` holding a copy of its content.
pub fn mount_tmpfs_copyup(
    source: &Path,
    target: &Path,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<()> {
    let stage = std::env::temp_dir().join(format!("podrun-copyup-{}", std::process::id()));
    std::fs::create_dir_all(&stage).map_err(|e| Error::io("create", &stage, e))?;
    let res = (|| {
        // Filled read-write; `ro` is applied by a remount after the copy.
        mount(
            Some(source),
            &stage,
            Some("tmpfs"),
            flags & !MsFlags::MS_RDONLY,
            data,
        )
        .ctx(|| format!("mount tmpfs on {}", stage.display()))?;
        // Nothing we do under the staging point may reach the host.
        mount(
            None::<&str>,
            &stage,
            None::<&str>,
            MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .ctx(|| format!("make {} private", stage.display()))?;
        let copied = copy_tree(target, &stage).and_then(|_| {
            mount(
                Some(&stage),
                target,
                None::<&str>,
                MsFlags::MS_MOVE,
                None::<&str>,
            )
            .ctx(|| format!("move tmpfs onto {}", target.display()))
        });
        if copied.is_err() {
            let _ = umount2(&stage, MntFlags::MNT_DETACH);
        }
        copied
    })();
    let _ = std::fs::remove_dir(&stage);
    res?;
    if flags.contains(MsFlags::MS_RDONLY) {
        mount(
            None::<&str>,
            target,
            None::<&str>,
            flags | MsFlags::MS_REMOUNT,
            data,
        )
        .ctx(|| format!("remount {} read-only", target.display()))?;
    }
    Ok(())
}

/// Copy the content of `src` into `dst` (an existing directory): regular
/// files, directories, symlinks, device nodes and FIFOs, with owner and mode.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let entries = std::fs::read_dir(src).map_err(|e| Error::io("read directory", src, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("read directory", src, e))?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let md = std::fs::symlink_metadata(&from).map_err(|e| Error::io("lstat", &from, e))?;
        let ft = md.file_type();
        if ft.is_dir() {
            std::fs::create_dir(&to).map_err(|e| Error::io("create directory", &to, e))?;
            copy_tree(&from, &to)?;
        } else if ft.is_symlink() {
            let link = std::fs::read_link(&from).map_err(|e| Error::io("readlink", &from, e))?;
            std::os::unix::fs::symlink(&link, &to).map_err(|e| Error::io("symlink", &to, e))?;
        } else if ft.is_file() {
            std::fs::copy(&from, &to).map_err(|e| Error::io("copy", &from, e))?;
        } else {
            let kind = SFlag::from_bits_truncate(md.mode() & libc::S_IFMT);
            mknod(&to, kind, Mode::from_bits_truncate(md.mode()), md.rdev())
                .ctx(|| format!("mknod {}", to.display()))?;
        }
        fchownat(
            None,
            &to,
            Some(Uid::from_raw(md.uid())),
            Some(Gid::from_raw(md.gid())),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .ctx(|| format!("chown {}", to.display()))?;
        if !ft.is_symlink() {
            // chown clears set-id bits: restore the exact mode last.
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(md.mode() & 0o7777))
                .map_err(|e| Error::io("chmod", &to, e))?;
        }
    }
    // The directory itself keeps the source's mode and owner.
    if let Ok(md) = std::fs::metadata(src) {
        let _ = std::fs::set_permissions(dst, std::fs::Permissions::from_mode(md.mode() & 0o7777));
        let _ = nix::unistd::chown(
            dst,
            Some(Uid::from_raw(md.uid())),
            Some(Gid::from_raw(md.gid())),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_files_dirs_links_and_modes() {
        let t = std::env::temp_dir().join(format!("podrun-copyup-test-{}", std::process::id()));
        let (src, dst) = (t.join("src"), t.join("dst"));
        let _ = std::fs::remove_dir_all(&t);
        std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
        std::fs::create_dir_all(&dst).unwrap();
        std::fs::write(src.join("a"), "alpha").unwrap();
        std::fs::set_permissions(src.join("a"), std::fs::Permissions::from_mode(0o640)).unwrap();
        std::fs::write(src.join("sub/deeper/b"), "beta").unwrap();
        std::os::unix::fs::symlink("../a", src.join("sub/link")).unwrap();
        std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o1777)).unwrap();
        nix::unistd::mkfifo(&src.join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();

        copy_tree(&src, &dst).unwrap();
        assert_eq!(std::fs::read_to_string(dst.join("a")).unwrap(), "alpha");
        assert_eq!(
            std::fs::metadata(dst.join("a")).unwrap().mode() & 0o777,
            0o640
        );
        assert_eq!(
            std::fs::read_to_string(dst.join("sub/deeper/b")).unwrap(),
            "beta"
        );
        assert_eq!(
            std::fs::read_link(dst.join("sub/link")).unwrap(),
            Path::new("../a")
        );
        assert!(std::fs::symlink_metadata(dst.join("fifo"))
            .unwrap()
            .file_type()
            .is_fifo_like());
        assert_eq!(std::fs::metadata(&dst).unwrap().mode() & 0o7777, 0o1777);
        std::fs::remove_dir_all(&t).unwrap();
    }

    trait FifoLike {
        fn is_fifo_like(&self) -> bool;
    }
    impl FifoLike for std::fs::FileType {
        fn is_fifo_like(&self) -> bool {
            use std::os::unix::fs::FileTypeExt;
            self.is_fifo()
        }
    }
}
