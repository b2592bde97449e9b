# shellcheck shell=bash
# Configure Debian's podman (4.3) to run containers on this kind of host, with every
# piece of its state under one private directory: nothing is written to /etc, and the
# host's own podman storage (if any) is left alone.
#
#   source scripts/lib/podman-setup.sh
#   podman_setup DIR            # writes DIR/{containers,storage,registries}.conf, exports
#                               # CONTAINERS_CONF, CONTAINERS_STORAGE_CONF,
#                               # CONTAINERS_REGISTRIES_CONF; defines PODMAN (argv array)
#   podman_load_busybox [NAME]  # builds the busybox image with scripts/build-busybox-image
#                               # and loads it into that store (default localhost/busybox:latest)
#   podman_teardown             # removes every pod/container of that store, unmounts its
#                               # overlay storage and removes DIR
#
# What this host needs (hybrid cgroups: v1 controllers under /sys/fs/cgroup/<ctrl>, an
# empty cgroup2 at /sys/fs/cgroup/unified; no systemd as PID 1):
#   - cgroup_manager = "cgroupfs" (the default, "systemd", needs a running systemd);
#   - events_logger = "file" (the default, journald, needs systemd-journald);
#   - runtime = runc: Debian's crun 1.8.1 refuses this hybrid layout, runc 1.1.5 works;
#   - default_ulimits = our own hard limits: without CAP_SYS_RESOURCE podman's default
#     (nofile=1048576) cannot be applied (nproc at most 32768, podman's own limit);
#   - storage driver overlay (kernel overlayfs, as root) under DIR, runroot under DIR;
#   - the pod's infra (pause) container: podman builds "localhost/podman-pause:<version>"
#     on first use from catatonit, so the catatonit package must be installed
#     (/usr/libexec/podman/catatonit);
#   - network: pods are started with `--network none` (a new network namespace with only
#     loopback, what podrun's pause gives a pod); CNI bridges are not needed.
# Requires root.

podman_setup() {
	local dir=$1
	mkdir -p "$dir"/{graph,run,tmp,cni,volumes}
	PODMAN_DIR=$(cd "$dir" && pwd)
	local runtime=${PODMAN_RUNTIME:-$(command -v runc || true)}
	[ -n "$runtime" ] || { echo "podman-setup: runc not found (apt-get install runc)" >&2; return 1; }
	command -v podman >/dev/null || { echo "podman-setup: podman not found (apt-get install podman)" >&2; return 1; }
	command -v conmon >/dev/null || { echo "podman-setup: conmon not found (apt-get install conmon)" >&2; return 1; }
	[ -x /usr/libexec/podman/catatonit ] ||
		{ echo "podman-setup: /usr/libexec/podman/catatonit missing (apt-get install catatonit)" >&2; return 1; }

	# As root, podman raises RLIMIT_NOFILE/NPROC of every container to 1048576; that needs
	# CAP_SYS_RESOURCE, which this environment's bounding set lacks (runc then fails with
	# "error setting rlimit type 7: operation not permitted"). Keep our own hard limits.
	# podman itself also lowers its RLIMIT_NPROC (soft and hard) to 32768 at startup
	# (seen with strace), so its runc children cannot go above that.
	local nofile nproc
	nofile=$(ulimit -Hn)
	nproc=$(ulimit -Hu)
	[ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ] && nproc=32768
	[ "$nofile" = unlimited ] && nofile=1048576
	cat >"$PODMAN_DIR/containers.conf" <<EOF
[containers]
log_driver = "k8s-file"
netns = "none"
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$PODMAN_DIR/events.log"
runtime = "runc"
tmp_dir = "$PODMAN_DIR/tmp"
volume_path = "$PODMAN_DIR/volumes"
num_locks = 2048

[engine.runtimes]
runc = ["$runtime"]

[network]
network_backend = "cni"
network_config_dir = "$PODMAN_DIR/cni"
EOF
	cat >"$PODMAN_DIR/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$PODMAN_DIR/graph"
runroot = "$PODMAN_DIR/run"
EOF
	# No registries: every image used here is loaded locally.
	cat >"$PODMAN_DIR/registries.conf" <<EOF
unqualified-search-registries = []
EOF
	export CONTAINERS_CONF=$PODMAN_DIR/containers.conf
	export CONTAINERS_STORAGE_CONF=$PODMAN_DIR/storage.conf
	export CONTAINERS_REGISTRIES_CONF=$PODMAN_DIR/registries.conf
	# The flags repeat the storage paths: podman's bolt database remembers the paths it
	# was created with and refuses a mismatch, so be explicit.
	PODMAN=(podman --root "$PODMAN_DIR/graph" --runroot "$PODMAN_DIR/run"
		--cgroup-manager cgroupfs --events-backend file --runtime "$runtime"
		--tmpdir "$PODMAN_DIR/tmp")
}

podman_load_busybox() {
	local name=${1:-localhost/busybox:latest}
	local repo
	repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
	local archive=$PODMAN_DIR/busybox.oci.tar
	"$repo/scripts/build-busybox-image" --name "$name" --layout "$PODMAN_DIR/busybox-layout" \
		--archive "$archive" >/dev/null
	# podman (4.3) load takes an oci-archive; the ref name annotation names the image.
	"${PODMAN[@]}" load -q -i "$archive" >/dev/null
	"${PODMAN[@]}" image exists "$name" ||
		"${PODMAN[@]}" tag "$("${PODMAN[@]}" images -q | head -n1)" "$name"
}

podman_teardown() {
	[ -n "${PODMAN_DIR:-}" ] && [ -d "$PODMAN_DIR" ] || return 0
	"${PODMAN[@]}" pod rm -a -f -t 0 >/dev/null 2>&1 || true
	"${PODMAN[@]}" rm -a -f -t 0 >/dev/null 2>&1 || true
	"${PODMAN[@]}" system reset -f >/dev/null 2>&1 || true
	# Anything still mounted below the private root (overlay layers, shm, netns pins).
	local m
	while read -r m; do
		umount -l "$m" 2>/dev/null || true
	done < <(awk -v d="$PODMAN_DIR" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
	rm -rf "$PODMAN_DIR"
	# cgroupfs manager: podman leaves empty libpod_parent/ (and libpod_parent/conmon/)
	# directories in each hierarchy; rmdir only removes the empty ones.
	find /sys/fs/cgroup/*/libpod_parent -depth -type d -exec rmdir {} + 2>/dev/null || true
}
