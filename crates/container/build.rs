//! On the musl target: glibc's `__fprintf_chk`, the one C library function that Debian's
//! (glibc-built) libseccomp.a imports and musl lacks (csrc/musl_glibc_compat.c).
fn main() {
    println!("cargo:rerun-if-changed=csrc/musl_glibc_compat.c");
    if std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("musl") {
        cc::Build::new()
            .file("csrc/musl_glibc_compat.c")
            // Linked whole: libseccomp.a, which needs it, comes later on the link line.
            .link_lib_modifier("+whole-archive")
            .compile("podrun_musl_glibc_compat");
    }
}
