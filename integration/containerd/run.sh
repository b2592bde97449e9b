#!/usr/bin/env bash
# containerd end-to-end suite: drive a runc-compatible runtime through
# containerd 1.6 (`ctr ... --runc-binary`), the way a real node does.
#
# Usage: integration/containerd/run.sh
# Env:   RUNTIME  runtime binary under test (default: runc on PATH; for podrun
#                 use RUNTIME=target/x86_64-unknown-linux-musl/release/podrun)
#        KEEP=1   keep the work directory (logs) after the run
# Starts a private containerd (own socket, root, state, config; CRI plugin
# and CNI off; overlayfs snapshotter), imports a busybox image built from
# busybox-static, runs the cases below, then stops containerd and removes
# everything (trap). Prints "N passed, M failed"; exits non-zero on failure.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib/harness.sh
source "$here/../lib/harness.sh"
suite_setup containerd ctr containerd-shim-runc-v2 umoci skopeo jq script

work=$(mktemp -d /tmp/podrun-containerd.XXXXXX)
sock=$work/containerd.sock
ns=podrun-it
image=docker.io/podrun-test/busybox:latest
cpid=

ctr_() { ctr --address "$sock" --namespace "$ns" "$@"; }

# Containers' cgroups nest under our own memory cgroup (the caller's), one
# parent per run; on v1 the same path is used in every controller, so the
# directories missing before the run are recorded and removed afterwards.
cg_base=$(awk -F: '$2 == "memory" {print $3}' /proc/self/cgroup)
cg_base=${cg_base%/}
cg_parent=$cg_base/podrun-it-$$
cg_created=()
for ctrl in /sys/fs/cgroup/*/; do
	[ -e "$ctrl/cgroup.procs" ] || continue
	d=$ctrl${cg_parent#/}
	while [ "$d" != "${ctrl%/}" ] && [ ! -d "$d" ]; do
		cg_created+=("$d")
		d=$(dirname "$d")
	done
done
cg_cleanup() { # deepest first; rmdir only removes empty cgroups
	local d sub
	for d in "${cg_created[@]}"; do
		[ -d "$d" ] || continue
		for sub in "$d"/*/; do
			[ -e "$sub/cgroup.procs" ] && rmdir "$sub" 2>/dev/null
		done
		rmdir "$d" 2>/dev/null || echo "warning: cgroup $d not removed" >&2
	done
}
# /run/containerd/{s,fifo,runc} are containerd/ctr defaults we cannot move
# (shim sockets); remove what this run created there.
run_containerd_existed=$([ -d /run/containerd ] && echo 1 || echo 0)

cleanup() {
	local id
	if [ -n "$cpid" ] && kill -0 "$cpid" 2>/dev/null; then
		for id in $(ctr_ task ls -q 2>/dev/null); do
			ctr_ task kill -s SIGKILL "$id" >/dev/null 2>&1
			ctr_ task rm -f "$id" >/dev/null 2>&1
		done
		for id in $(ctr_ container ls -q 2>/dev/null); do
			ctr_ container rm "$id" >/dev/null 2>&1
		done
		ctr_ image rm "$image" >/dev/null 2>&1
		kill "$cpid"
		wait "$cpid" 2>/dev/null
	fi
	# Shims of this containerd exit with it; kill any straggler by its pid.
	local p
	for p in $(pgrep -f "containerd-shim-runc-v2 -namespace $ns -address $sock" 2>/dev/null); do
		kill -9 "$p" 2>/dev/null
	done
	# Snapshot mounts (overlay) must be gone before removing the tree.
	grep -F " $work/" /proc/self/mounts | awk '{print $2}' | sort -r | while read -r m; do
		umount -l "$m" 2>/dev/null
	done
	cg_cleanup
	if [ "$run_containerd_existed" = 0 ]; then
		rmdir /run/containerd/s /run/containerd/fifo /run/containerd/runc/"$ns" /run/containerd/runc /run/containerd 2>/dev/null
	fi
	if [ "${KEEP:-}" = 1 ]; then
		echo "work directory kept: $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT

# --- containerd -------------------------------------------------------------
cat >"$work/config.toml" <<TOML
version = 2
root = "$work/root"
state = "$work/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[debug]
  address = "$work/debug.sock"
  level = "info"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$work/opt"
[plugins."io.containerd.runtime.v2.task"]
  platforms = ["linux/amd64"]
TOML

containerd --config "$work/config.toml" >"$work/containerd.log" 2>&1 &
cpid=$!
for _ in $(seq 100); do
	ctr --address "$sock" version >/dev/null 2>&1 && break
	kill -0 "$cpid" 2>/dev/null || break
	sleep 0.1
done
if ! ctr --address "$sock" version >/dev/null 2>&1; then
	echo "error: containerd did not start; log:" >&2
	tail -20 "$work/containerd.log" >&2
	exit 1
fi

"$here/build-image.sh" "$work/image" "$image" >/dev/null || { echo "error: building the busybox image failed" >&2; exit 1; }
ctr_ image import "$work/image/busybox.tar" >/dev/null || { echo "error: ctr image import failed" >&2; exit 1; }

# --- checks (integration/lib/harness.sh) ----------------------------------------
task_status() { ctr_ task ls 2>/dev/null | awk -v id="$1" '$1 == id {print $3}'; }
wait_status() { # id status
	local s
	for _ in $(seq 100); do
		s=$(task_status "$1")
		[ "$s" = "$2" ] && return 0
		sleep 0.1
	done
	return 1
}

echo "containerd suite: runtime=$rt ($("$rt" --version 2>/dev/null | head -1))"
run=(ctr_ run --runc-binary "$rt" --runc-root "$work/runc-root" --fifo-dir "$work/fifo")
cgroup_of() { echo "$cg_parent/$1"; }

# 1. run to completion: output and exit code come back through containerd.
out=$("${run[@]}" --cgroup "$(cgroup_of c-exit)" --rm "$image" c-exit /bin/sh -c 'echo hello from $(hostname); echo to-stderr >&2; exit 3' </dev/null 2>&1)
rc=$?
expect_eq "run: exit code propagates" 3 "$rc"
expect_contains "run: stdout captured" "hello from" "$out"
expect_contains "run: stderr captured" "to-stderr" "$out"

# 2. environment, cwd, user and rootfs from the image + spec.
out=$("${run[@]}" --cgroup "$(cgroup_of c-env)" --rm --env FOO=bar --cwd /tmp "$image" c-env /bin/sh -c 'echo "$FOO $(pwd) $(id -u) $(cat /proc/1/cmdline | tr "\0" " ")"' </dev/null 2>&1)
expect_eq "run: env, cwd, uid, pid 1" "bar /tmp 0 /bin/sh -c echo \"\$FOO \$(pwd) \$(id -u) \$(cat /proc/1/cmdline | tr \"\\0\" \" \")\" " "$out"

# 3. detached task: exec into it, pause/resume, kill, delete.
if "${run[@]}" --cgroup "$(cgroup_of c-det)" -d "$image" c-det /bin/sleep 600 </dev/null >/dev/null 2>"$work/err"; then
	pass "detached: ctr run -d"
	if wait_status c-det RUNNING; then pass "detached: task RUNNING"; else fail "detached: task RUNNING" "status: $(task_status c-det)"; fi
	# The task really is the runtime under test's: it holds the state.
	st=$("$rt" --root "$work/runc-root/$ns" state c-det 2>&1)
	expect_eq "runtime: '$(basename "$rt") state' says running" running "$(echo "$st" | jq -r .status 2>/dev/null)"
	out=$(ctr_ task exec --fifo-dir "$work/fifo" --exec-id e1 c-det /bin/sh -c 'echo exec-out; cat /proc/1/cmdline | tr "\0" " "' 2>&1)
	expect_eq "exec: output, sees container pid 1" "exec-out
/bin/sleep 600 " "$out"
	ctr_ task exec --fifo-dir "$work/fifo" --exec-id e2 c-det /bin/sh -c 'exit 7' >/dev/null 2>&1
	expect_eq "exec: exit code propagates" 7 "$?"
	out=$(ctr_ task exec --fifo-dir "$work/fifo" --exec-id e3 --cwd /etc --user 1:1 c-det /bin/sh -c 'echo $(pwd) $(id -u):$(id -g)' 2>&1)
	expect_eq "exec: cwd and user" "/etc 1:1" "$out"
	if ctr_ task pause c-det 2>"$work/err" && wait_status c-det PAUSED; then
		pass "pause: task PAUSED"
	else
		fail "pause: task PAUSED" "$(cat "$work/err")" "status: $(task_status c-det)"
	fi
	if ctr_ task resume c-det 2>"$work/err" && wait_status c-det RUNNING; then
		pass "resume: task RUNNING"
	else
		fail "resume: task RUNNING" "$(cat "$work/err")" "status: $(task_status c-det)"
	fi
	ctr_ task kill -s SIGKILL c-det 2>"$work/err"
	if wait_status c-det STOPPED; then pass "kill: task STOPPED"; else fail "kill: task STOPPED" "$(cat "$work/err")" "status: $(task_status c-det)"; fi
	if ctr_ task rm c-det >/dev/null 2>"$work/err"; then pass "delete: ctr task rm"; else fail "delete: ctr task rm" "$(cat "$work/err")"; fi
	if ctr_ container rm c-det 2>"$work/err"; then pass "delete: ctr container rm"; else fail "delete: ctr container rm" "$(cat "$work/err")"; fi
else
	fail "detached: ctr run -d" "$(cat "$work/err")"
fi

# 4. SIGTERM reaches a shell that traps it; `ctr run` returns the trap's
#    exit status (ctr 1.6 has no `task wait`, so run in the background).
"${run[@]}" --cgroup "$(cgroup_of c-term)" --rm "$image" c-term /bin/sh -c 'trap "exit 42" TERM; while :; do sleep 0.1; done' </dev/null >/dev/null 2>"$work/err" &
bg=$!
if wait_status c-term RUNNING; then
	sleep 0.3 # let the shell install its trap
	ctr_ task kill -s SIGTERM c-term
	code=0
	wait "$bg" || code=$?
	expect_eq "kill: SIGTERM handled, exit status 42" 42 "$code"
else
	fail "kill: SIGTERM container running" "$(cat "$work/err")"
	kill "$bg" 2>/dev/null
fi

# 5. tty: ctr needs a terminal on its stdin; `script` provides one.
out=$(script -qec "ctr --address $sock --namespace $ns run --runc-binary $rt --runc-root $work/runc-root --fifo-dir $work/fifo --cgroup $(cgroup_of c-tty) -t --rm $image c-tty /bin/sh -c 'tty; [ -t 1 ] && echo tty-ok'" /dev/null </dev/null 2>&1 | tr -d '\r')
expect_contains "tty: /dev/pts allocated" "/dev/pts/" "$out"
expect_contains "tty: stdout is a terminal" "tty-ok" "$out"

# 6. resources and security knobs, checked from the host: read-only rootfs,
#    memory limit and CFS quota in the container's cgroups, seccomp on, and
#    `ctr task ps` (the shim asks the runtime: `RT ps --format json`).
if "${run[@]}" --cgroup "$(cgroup_of c-res)" -d --read-only --memory-limit 33554432 --cpus 0.5 --seccomp \
	"$image" c-res /bin/sleep 600 </dev/null >/dev/null 2>"$work/err" && wait_status c-res RUNNING; then
	pid=$(ctr_ task ls | awk '$1 == "c-res" {print $2}')
	out=$(ctr_ task exec --fifo-dir "$work/fifo" --exec-id w c-res /bin/sh -c 'touch /x 2>/dev/null && echo writable || echo read-only' 2>&1)
	expect_eq "resources: --read-only rootfs" read-only "$out"
	mem=$(awk -F: '$2 == "memory" {print $3}' "/proc/$pid/cgroup")
	expect_eq "resources: memory.limit_in_bytes" 33554432 "$(cat "/sys/fs/cgroup/memory$mem/memory.limit_in_bytes" 2>&1)"
	cpu=$(awk -F: '$2 == "cpu" {print $3}' "/proc/$pid/cgroup")
	expect_eq "resources: cpu.cfs_quota_us / period" "50000/100000" \
		"$(cat "/sys/fs/cgroup/cpu$cpu/cpu.cfs_quota_us" 2>&1)/$(cat "/sys/fs/cgroup/cpu$cpu/cpu.cfs_period_us" 2>&1)"
	expect_eq "security: seccomp filter on" 2 "$(awk '$1 == "Seccomp:" {print $2}' "/proc/$pid/status")"
	out=$(ctr_ task ps c-res 2>&1)
	expect_contains "ps: ctr task ps lists the init pid" "$pid" "$out"
	ctr_ task kill -s SIGKILL c-res
	wait_status c-res STOPPED
	ctr_ task rm c-res >/dev/null 2>&1
	ctr_ container rm c-res >/dev/null 2>&1
else
	fail "resources: container with limits started" "$(cat "$work/err")"
fi

# 7. a process that cannot start: clear error, non-zero exit, nothing left.
out=$("${run[@]}" --cgroup "$(cgroup_of c-bad)" --rm "$image" c-bad /no/such/binary </dev/null 2>&1)
rc=$?
if [ $rc -ne 0 ]; then pass "bad command: ctr run fails"; else fail "bad command: ctr run fails" "exit 0: $out"; fi
expect_contains "bad command: error names the binary" "/no/such/binary" "$out"
ctr_ container rm c-bad >/dev/null 2>&1 # in case `--rm` left it (task never started)

# 8. nothing left behind: containerd objects, runtime state, cgroups.
left=$(ctr_ task ls -q; ctr_ container ls -q)
expect_eq "cleanup: no tasks or containers left" "" "$left"
# runtime-wide dot-files (e.g. podrun's .exe-lower) are not container state
left=$(ls "$work/runc-root/$ns" 2>/dev/null)
expect_eq "cleanup: runtime --root has no container state" "" "$left"
left=$(for c in /sys/fs/cgroup/*/; do ls -d "$c${cg_parent#/}"/*/ 2>/dev/null; done)
expect_eq "cleanup: no container cgroups left" "" "$left"

echo
harness_summary
