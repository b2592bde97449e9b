# shellcheck shell=bash
# The end-to-end suites' tiny test harness (integration/containerd, integration/podman):
# one line per check, "ok   - name" or "FAIL - name" with the details indented below, and
# counts for the final "N passed, M failed" line.
#
#   source integration/lib/harness.sh
#   expect_eq NAME EXPECTED ACTUAL
#   expect_contains NAME NEEDLE HAYSTACK
#   pass NAME / fail NAME [DETAIL...]
#   harness_summary            # prints the counts; returns non-zero if anything failed
#   suite_setup TOOL...        # must be root, TOOLs installed; sets rt to the runtime under
#                              # test ($RUNTIME: a path or a name on PATH, default runc)

passed=0 failed=0
pass() { passed=$((passed + 1)); echo "ok   - $1"; }
fail() {
	failed=$((failed + 1))
	echo "FAIL - $1"
	shift
	local l
	for l in "$@"; do echo "       $l"; done
}
expect_eq() { # name expected actual
	if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "expected: $(printf %q "$2")" "actual:   $(printf %q "$3")"; fi
}
expect_contains() { # name needle haystack
	if [[ "$3" == *"$2"* ]]; then pass "$1"; else fail "$1" "expected to contain: $2" "actual: $(printf %q "$3")"; fi
}
harness_summary() {
	echo "$passed passed, $failed failed"
	[ "$failed" = 0 ]
}

suite_setup() {
	[ "$(id -u)" = 0 ] || { echo "error: must run as root" >&2; exit 1; }
	local tool
	for tool in "$@"; do
		command -v "$tool" >/dev/null || { echo "error: '$tool' not installed (see .ci/run)" >&2; exit 1; }
	done
	rt=${RUNTIME:-runc}
	if [[ "$rt" == */* ]]; then
		rt=$(cd "$(dirname "$rt")" 2>/dev/null && pwd)/$(basename "$rt")
	else
		rt=$(command -v "$rt") || { echo "error: RUNTIME '${RUNTIME:-runc}' not found" >&2; exit 1; }
	fi
	[ -x "$rt" ] || { echo "error: RUNTIME '${RUNTIME:-runc}' is not an executable file" >&2; exit 1; }
}
