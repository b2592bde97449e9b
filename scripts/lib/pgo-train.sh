# shellcheck shell=bash
# The training run of the profile-guided build (scripts/build-release): an instrumented
# podrun (-Cprofile-generate, --cfg podrun_pgo) goes through what podrun is used for, and
# every process writes its counters to DATA (LLVM_PROFILE_FILE).
#
#   pgo_train BIN DATA
#
# What it runs: the OCI lifecycle of busybox bundles (run; create, state, start, wait,
# delete; a detached container with exec, ps, list, pause/resume, kill, delete --force;
# bad input), then scripts/demo (an image load and a Kubernetes pod with an init container,
# probes-free httpd and client, logs, exec, describe, delete).
#
# A container's init writes its counters just before it executes the user program
# (util::pgo_flush), from inside the container: the training bundles bind-mount DATA at the
# same path. The demo's containers do not (their inits' writes fail quietly into the pod
# logs); the bundles above cover the init's code.

# shellcheck source=busybox-bundle.sh
source "$(dirname "${BASH_SOURCE[0]}")/busybox-bundle.sh"

pgo_train() {
	local bin=$1 data=$2 work root i pid
	work=$(mktemp -d /tmp/podrun-pgo.XXXXXX)
	root=$work/state
	mkdir -p "$root" "$data"
	export LLVM_PROFILE_FILE="$data/podrun-%m.profraw"
	local bind
	bind=$(jq -n --arg d "$data" '{destination: $d, source: $d, type: "bind", options: ["rbind", "rw"]}')
	SPEC_RUNTIME=$bin make_busybox_bundle "$work/true" /bin/true >/dev/null || return 1
	jq --argjson m "$bind" '.mounts += [$m]' "$work/true/config.json" >"$work/c.json" &&
		mv "$work/c.json" "$work/true/config.json"
	mkdir -p "$work/true/rootfs$data"
	cp -a "$work/true" "$work/sleep"
	jq '.process.args = ["/bin/sleep", "30"]' "$work/sleep/config.json" >"$work/c.json" &&
		mv "$work/c.json" "$work/sleep/config.json"

	local p=("$bin" --root "$root")
	for ((i = 0; i < 20; i++)); do
		"${p[@]}" run --bundle "$work/true" "r$i" </dev/null >/dev/null
		"${p[@]}" create --bundle "$work/true" --pid-file "$work/pid" "c$i" </dev/null >/dev/null
		"${p[@]}" state "c$i" >/dev/null
		"${p[@]}" start "c$i"
		pid=$(<"$work/pid")
		while [ -e "/proc/$pid" ] && ! grep -q ') Z' "/proc/$pid/stat" 2>/dev/null; do sleep 0.001; done
		"${p[@]}" state "c$i" >/dev/null
		"${p[@]}" delete "c$i"
		"${p[@]}" state "nonexistent" >/dev/null 2>&1 || true
	done
	for ((i = 0; i < 5; i++)); do
		"${p[@]}" run -d --bundle "$work/sleep" "s$i" </dev/null >/dev/null
		"${p[@]}" exec "s$i" /bin/true
		"${p[@]}" ps "s$i" >/dev/null
		"${p[@]}" list >/dev/null
		"${p[@]}" list --format json >/dev/null
		"${p[@]}" pause "s$i" && "${p[@]}" resume "s$i"
		"${p[@]}" kill --all "s$i" KILL
		"${p[@]}" delete --force "s$i"
	done
	"${p[@]}" spec --bundle "$work" >/dev/null 2>&1 || true
	"${p[@]}" features >/dev/null
	"${p[@]}" run --bundle "$work/nonexistent" bad </dev/null >/dev/null 2>&1 || true

	# Pods and images: the demo, with this binary.
	local repo
	repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
	if ! PODRUN=$bin "$repo/scripts/demo" >"$work/demo.log" 2>&1; then
		echo "warning: pgo training: scripts/demo failed (the profile lacks pods); its log:" >&2
		tail -20 "$work/demo.log" >&2
	fi
	unset LLVM_PROFILE_FILE
	rm -rf "$work"
}
