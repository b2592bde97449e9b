#!/usr/bin/env bash
# Build a busybox OCI image from the host's busybox-static, without a registry.
#
# Usage: integration/containerd/build-image.sh OUT_DIR [NAME]
#   Produces OUT_DIR/oci (an OCI image layout, tag "latest") and
#   OUT_DIR/busybox.tar (a docker-archive named NAME, default
#   docker.io/podrun-test/busybox:latest) ready for `ctr image import`.
# Needs: umoci, skopeo, busybox-static, jq.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../scripts/lib/busybox-bundle.sh
source "$here/../../scripts/lib/busybox-bundle.sh"

[ $# -ge 1 ] || { sed -n '2,9p' "$0" >&2; exit 2; }
out=$1
name=${2:-docker.io/podrun-test/busybox:latest}
for tool in umoci skopeo jq; do
	command -v $tool >/dev/null || { echo "error: '$tool' not installed" >&2; exit 1; }
done

mkdir -p "$out"
layout=$out/oci
unpacked=$out/unpacked
rm -rf "$layout" "$unpacked" "$out/busybox.tar"

umoci init --layout "$layout"
umoci new --image "$layout:latest"
umoci unpack --image "$layout:latest" "$unpacked"
make_busybox_rootfs "$unpacked/rootfs"
umoci repack --image "$layout:latest" "$unpacked"
umoci config --image "$layout:latest" \
	--config.cmd /bin/sh \
	--config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	--config.workingdir / \
	--os linux --architecture amd64
rm -rf "$unpacked"
skopeo copy --quiet "oci:$layout:latest" "docker-archive:$out/busybox.tar:$name"
echo "$out/busybox.tar"
