# shellcheck shell=bash
# What `cargo build` needs besides cargo (sourced by scripts/build-release, which
# scripts/test, scripts/demo and integration/vm/run call): podrun is a static musl
# binary (.cargo/config.toml, docs/dependencies.md), so the Rust standard library for
# x86_64-unknown-linux-musl (added with rustup when missing: it downloads it),
# musl-gcc for the crates that build C (Debian's musl-tools), and the toolchain's
# rust-lld (the linker).
PODRUN_TARGET=x86_64-unknown-linux-musl

ensure_build_env() {
	if ! command -v musl-gcc >/dev/null; then
		echo "error: musl-gcc not found (apt-get install -y musl-tools); podrun is built for $PODRUN_TARGET" >&2
		return 1
	fi
	if ! command -v rustup >/dev/null; then
		echo "error: rustup not found (expected in ~/.cargo/bin)" >&2
		return 1
	fi
	# The musl target links with the toolchain's own lld (.cargo/config.toml): rustup ships
	# it in the rustc component; a Rust from elsewhere (Debian's rustc) may lack it.
	local host lld
	host=$(rustc -vV | sed -n 's/^host: //p')
	lld=$(rustc --print sysroot)/lib/rustlib/$host/bin/rust-lld
	if [ ! -x "$lld" ]; then
		echo "error: $lld not found: podrun links with the rust-lld a rustup toolchain ships (docs/dependencies.md)" >&2
		return 1
	fi
	if ! rustup target list --installed | grep -qx "$PODRUN_TARGET"; then
		echo "==> rustup target add $PODRUN_TARGET"
		rustup target add "$PODRUN_TARGET" || {
			echo "error: cannot add the Rust target $PODRUN_TARGET (rustup downloads it from static.rust-lang.org)" >&2
			return 1
		}
	fi
}
