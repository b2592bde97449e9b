#!/usr/bin/env bash
# podman end-to-end suite: Debian's podman 4.3 (with conmon) drives a runc-compatible
# runtime through its OCI runtime interface, as `podman --runtime` does on a real host:
# create/start/state/kill/delete through conmon, exec, pause/resume, update, a tty.
#
# Usage: integration/podman/run.sh
# Env:   RUNTIME  runtime binary under test (default: runc on PATH; for podrun use
#                 RUNTIME=target/x86_64-unknown-linux-musl/release/podrun)
#        KEEP=1   keep the work directory (logs) after the run
# podman runs with every piece of its state in a private directory
# (scripts/lib/podman-setup.sh: cgroupfs manager, file events, no network), and the
# containers' cgroups nest under this shell's own cgroup (--cgroup-parent). Prints
# "N passed, M failed"; exits non-zero on failure. Needs root, podman, conmon, catatonit.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=../lib/harness.sh
source "$here/../lib/harness.sh"
suite_setup podman conmon umoci skopeo jq script

# shellcheck source=../../scripts/lib/podman-setup.sh
source "$repo/scripts/lib/podman-setup.sh"
work=$(mktemp -d /tmp/podrun-podman.XXXXXX)
image=localhost/busybox:latest

# Containers nest under our own cgroup (the caller's memory cgroup path, the same path in
# every v1 hierarchy); the directories this run makes are removed afterwards.
cg_base=$(awk -F: '$2 == "memory" || $2 == "" {print $3; exit}' /proc/self/cgroup)
cg_parent=${cg_base%/}/podrun-podman-it-$$

cleanup() {
	podman_teardown
	local d
	for d in /sys/fs/cgroup/*/"${cg_parent#/}" /sys/fs/cgroup/"${cg_parent#/}"; do
		[ -d "$d" ] || continue
		find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || echo "warning: cgroup $d not removed" >&2
	done
	if [ "${KEEP:-}" = 1 ]; then
		echo "work directory kept: $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT

PODMAN_RUNTIME=$rt podman_setup "$work/podman" || exit 1
podman_load_busybox "$image" || { echo "error: loading the busybox image into podman failed" >&2; exit 1; }
pm() { "${PODMAN[@]}" "$@"; }
run=(pm run --cgroup-parent "$cg_parent")

# --- checks (integration/lib/harness.sh) ----------------------------------------
status_of() { pm inspect --format '{{.State.Status}}' "$1" 2>/dev/null; }
wait_status() { # name status
	for _ in $(seq 100); do
		[ "$(status_of "$1")" = "$2" ] && return 0
		sleep 0.1
	done
	return 1
}

echo "podman suite: runtime=$rt ($("$rt" --version 2>/dev/null | head -1)); $(podman --version)"

# 1. run to completion: output and exit code come back through conmon and podman.
out=$("${run[@]}" --rm "$image" sh -c 'echo hello from $(hostname); echo to-stderr >&2; exit 3' </dev/null 2>&1)
rc=$?
expect_eq "run: exit code propagates" 3 "$rc"
expect_contains "run: stdout captured" "hello from" "$out"
expect_contains "run: stderr captured" "to-stderr" "$out"

# 2. env, cwd, user, pid 1.
out=$("${run[@]}" --rm -e FOO=bar -w /tmp -u 1:1 "$image" sh -c 'echo "$FOO $(pwd) $(id -u):$(id -g) $(cat /proc/1/cmdline | tr "\0" " ")"' </dev/null 2>&1)
expect_eq "run: env, cwd, user, pid 1" "bar /tmp 1:1 sh -c echo \"\$FOO \$(pwd) \$(id -u):\$(id -g) \$(cat /proc/1/cmdline | tr \"\\0\" \" \")\" " "$out"

# 3. a detached container: exec, update, pause/resume, stop, rm.
if "${run[@]}" -d --name c-det --memory 64m "$image" sleep 600 </dev/null >/dev/null 2>"$work/err"; then
	pass "detached: podman run -d"
	if wait_status c-det running; then pass "detached: running"; else fail "detached: running" "status: $(status_of c-det)"; fi
	# The container really is the runtime under test's: it holds the state (podman, as
	# root, leaves the runtime at its default --root).
	cid=$(pm inspect --format '{{.Id}}' c-det)
	expect_eq "runtime: '$(basename "$rt") state' says running" running "$("$rt" state "$cid" 2>&1 | jq -r .status 2>/dev/null)"
	out=$(pm exec c-det sh -c 'echo exec-out; cat /proc/1/cmdline | tr "\0" " "' 2>&1)
	expect_eq "exec: output, sees container pid 1" "exec-out
sleep 600 " "$out"
	pm exec c-det sh -c 'exit 7' >/dev/null 2>&1
	expect_eq "exec: exit code propagates" 7 "$?"
	out=$(pm exec -u 1:1 -w /etc c-det sh -c 'echo $(pwd) $(id -u):$(id -g)' 2>&1)
	expect_eq "exec: cwd and user" "/etc 1:1" "$out"
	out=$(pm exec c-det cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>&1)
	expect_eq "memory: --memory 64m seen inside" 67108864 "$out"
	if pm update --memory 128m c-det >/dev/null 2>"$work/err"; then
		out=$(pm exec c-det cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>&1)
		expect_eq "update: --memory 128m seen inside" 134217728 "$out"
	else
		fail "update: podman update --memory 128m" "$(cat "$work/err")"
	fi
	if pm pause c-det >/dev/null 2>"$work/err" && wait_status c-det paused; then
		pass "pause: paused"
	else
		fail "pause: paused" "$(cat "$work/err")" "status: $(status_of c-det)"
	fi
	if pm unpause c-det >/dev/null 2>"$work/err" && wait_status c-det running; then
		pass "unpause: running"
	else
		fail "unpause: running" "$(cat "$work/err")" "status: $(status_of c-det)"
	fi
	# sleep as pid 1 ignores SIGTERM: podman stop falls back to SIGKILL after 1 s.
	if pm stop -t 1 c-det >/dev/null 2>"$work/err" && wait_status c-det exited; then
		pass "stop: exited"
	else
		fail "stop: exited" "$(cat "$work/err")" "status: $(status_of c-det)"
	fi
	if pm rm c-det >/dev/null 2>"$work/err"; then pass "rm: removed"; else fail "rm: removed" "$(cat "$work/err")"; fi
	if "$rt" state "$cid" >/dev/null 2>&1; then
		fail "rm: the runtime's state is gone" "$("$rt" state "$cid" 2>&1)"
	else
		pass "rm: the runtime's state is gone"
	fi
else
	fail "detached: podman run -d" "$(cat "$work/err")"
fi

# 4. SIGTERM reaches a shell that traps it; `podman wait` returns its status.
if "${run[@]}" -d --name c-term "$image" sh -c 'trap "exit 42" TERM; while :; do sleep 0.1; done' </dev/null >/dev/null 2>"$work/err" &&
	wait_status c-term running; then
	sleep 0.3 # let the shell install its trap
	pm kill -s TERM c-term >/dev/null
	expect_eq "kill: SIGTERM handled, exit status 42" 42 "$(pm wait c-term 2>&1)"
	pm rm c-term >/dev/null 2>&1
else
	fail "kill: SIGTERM container running" "$(cat "$work/err")"
fi

# 5. tty: podman -t needs a terminal on its stdin; `script` provides one.
out=$(script -qec "$(printf '%q ' "${PODMAN[@]}") run --cgroup-parent $cg_parent -t --rm $image sh -c 'tty; [ -t 1 ] && echo tty-ok'" /dev/null </dev/null 2>&1 | tr -d '\r')
expect_contains "tty: /dev/pts allocated" "/dev/pts/" "$out"
expect_contains "tty: stdout is a terminal" "tty-ok" "$out"

# 6. options that reach the runtime through the spec podman writes: a read-only root, a
#    read-only bind volume, a tmpfs, dropped capabilities.
mkdir -p "$work/vol" && echo from-host >"$work/vol/file"
out=$("${run[@]}" --rm --read-only -v "$work/vol:/vol:ro" --tmpfs /scratch --cap-drop ALL "$image" sh -c '
	cat /vol/file
	touch /rootfile 2>/dev/null && echo root-writable || echo root-ro
	touch /vol/x 2>/dev/null && echo vol-writable || echo vol-ro
	touch /scratch/x && echo tmpfs-writable
	grep CapEff /proc/self/status' </dev/null 2>&1)
expect_eq "options: ro root, ro volume, tmpfs, --cap-drop ALL" "from-host
root-ro
vol-ro
tmpfs-writable
CapEff:	0000000000000000" "$out"

# 7. restart: the runtime deletes the container and creates it again from the same bundle.
if "${run[@]}" -d --name c-rs "$image" sh -c 'echo run; sleep 600' </dev/null >/dev/null 2>"$work/err" &&
	wait_status c-rs running; then
	pid1=$(pm inspect --format '{{.State.Pid}}' c-rs)
	if pm restart -t 0 c-rs >/dev/null 2>"$work/err" && wait_status c-rs running; then
		pid2=$(pm inspect --format '{{.State.Pid}}' c-rs)
		if [ "$pid1" != "$pid2" ]; then pass "restart: running again, new init"; else fail "restart: new init" "pid $pid1 both times"; fi
		expect_eq "restart: logs of both runs" "run
run" "$(pm logs c-rs 2>&1)"
	else
		fail "restart: podman restart" "$(cat "$work/err")" "status: $(status_of c-rs)"
	fi
	# exec with a terminal: conmon hands the runtime a console socket.
	out=$(script -qec "$(printf '%q ' "${PODMAN[@]}") exec -t c-rs sh -c 'tty; [ -t 1 ] && echo exec-tty-ok'" /dev/null </dev/null 2>&1 | tr -d '\r')
	expect_contains "exec -t: stdout is a terminal" "exec-tty-ok" "$out"
	pm rm -f -t 0 c-rs >/dev/null 2>&1
else
	fail "restart: podman run -d" "$(cat "$work/err")"
fi

# 8. nothing left: no container in podman, none in the runtime's state, no cgroup below ours.
expect_eq "leftovers: no podman container" "" "$(pm ps -aq 2>&1)"
left=$(find /sys/fs/cgroup/*/"${cg_parent#/}" -mindepth 1 -type d -name 'libpod-*' 2>/dev/null)
expect_eq "leftovers: no container cgroup" "" "$left"

harness_summary
