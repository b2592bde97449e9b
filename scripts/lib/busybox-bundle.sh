#!/usr/bin/env bash
# Helpers to build a minimal OCI bundle / rootfs from the host's busybox-static.
# Source this file; it defines functions only.

# busybox_bin: path of a statically linked busybox on the host.
busybox_bin() {
	local b
	for b in /bin/busybox /usr/bin/busybox; do
		[ -x "$b" ] || continue
		# `file` tells static from dynamic; without it, trust the path.
		if ! command -v file >/dev/null || file -L "$b" | grep -q 'statically linked'; then
			echo "$b"
			return 0
		fi
	done
	echo "error: no statically linked busybox found (apt-get install -y busybox-static)" >&2
	return 1
}

# make_busybox_rootfs DIR: populate DIR with busybox and its applet symlinks.
make_busybox_rootfs() {
	local root=$1 bb
	bb=$(busybox_bin) || return 1
	mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,var,run}
	cp "$bb" "$root/bin/busybox"
	local applet
	for applet in $("$root/bin/busybox" --list); do
		[ "$applet" = busybox ] && continue
		[ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
	done
	echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
	echo 'root:x:0:' >"$root/etc/group"
	chmod 1777 "$root/tmp"
}

# make_busybox_bundle DIR [ARGS...]: DIR/rootfs + DIR/config.json whose process
# runs ARGS (default: /bin/true) without a terminal. The spec template comes
# from `runc spec` when runc is present (identical config for every runtime
# compared), else from `$SPEC_RUNTIME spec`.
make_busybox_bundle() {
	local dir=$1
	shift
	[ $# -gt 0 ] || set -- /bin/true
	mkdir -p "$dir"
	make_busybox_rootfs "$dir/rootfs" || return 1
	rm -f "$dir/config.json"
	local gen=${SPEC_RUNTIME:-}
	if [ -z "$gen" ]; then
		gen=$(command -v runc || true)
	fi
	if [ -z "$gen" ]; then
		echo "error: need runc or SPEC_RUNTIME to generate config.json" >&2
		return 1
	fi
	(cd "$dir" && "$gen" spec) || {
		echo "error: '$gen spec' failed in $dir" >&2
		return 1
	}
	local args
	args=$(printf '%s\n' "$@" | jq -R . | jq -s .)
	jq --argjson a "$args" '.process.args = $a | .process.terminal = false' \
		"$dir/config.json" >"$dir/config.json.new" && mv "$dir/config.json.new" "$dir/config.json"
}
