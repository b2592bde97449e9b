//! Lays out podrun's hot functions together: when the binary is linked by lld (the musl
//! target's linker, .cargo/config.toml), hand it build/podrun.order, the functions podrun's
//! per-container commands run, those most of its processes run first (made by
//! scripts/gen-text-order). Each podrun command is a fresh exec whose text is faulted in 64
//! KiB window by window; packed, the code a command runs spans a few windows instead of
//! ~50 spread over 12 MiB (docs/benchmarks.md, "Text layout"). Only the layout changes: a
//! stale or missing order costs speed, never correctness.

use std::path::Path;

fn main() {
    let order = Path::new(env!("CARGO_MANIFEST_DIR")).join("build/podrun.order");
    println!("cargo:rerun-if-changed={}", order.display());
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    // Other linkers (the glibc build through cc) do not take the option.
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let lld = flags.split('\x1f').any(|f| f == "linker-flavor=ld.lld");
    if lld {
        // Each segment at a file offset congruent to its address modulo 2 MiB, as GNU ld
        // lays them out. lld packs them (text at an offset 4 KiB off its address), so every
        // 64 KiB window a page fault maps straddled two of the page cache's large folios.
        println!("cargo:rustc-link-arg-bin=podrun=-zseparate-loadable-segments");
    }
    if lld && order.exists() {
        println!(
            "cargo:rustc-link-arg-bin=podrun=--symbol-ordering-file={}",
            order.display()
        );
        // Functions renamed since the order was made are skipped, without a warning each.
        println!("cargo:rustc-link-arg-bin=podrun=--no-warn-symbol-ordering");
    }
    // For scripts/gen-text-order: a link map (every function's address, mangled) of this very
    // build, so that the stripped binary can be traced. Symbol names carry a hash of the
    // build's profile and flags: only a map of the release build itself names them right.
    println!("cargo:rerun-if-env-changed=PODRUN_LINK_MAP");
    if let (true, Some(map)) = (lld, std::env::var_os("PODRUN_LINK_MAP")) {
        let map = map.to_string_lossy();
        println!("cargo:rustc-link-arg-bin=podrun=-Map={map}");
        println!("cargo:rustc-link-arg-bin=podrun=--no-demangle");
    }
}
