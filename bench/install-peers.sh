#!/usr/bin/env bash
# Install the peer inits that bench/run.sh measures next to dinit (Debian/Ubuntu packages), and the
# tools the harness itself uses: unshare (util-linux), python3, a C compiler for the reap-storm
# program. Run once per machine, as root. run.sh never installs anything by itself.
#
# Not packaged, so not installed here: tozd/dinit (point TOZD_DINIT_BIN at a binary) and Horust
# (HORUST_BIN). Without them their rows say "not measured"; reference figures are in
# bench/RESULTS-peers.md.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
	echo "install-peers.sh: needs root (apt-get install)" >&2
	exit 2
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
	runit s6 tini dumb-init catatonit util-linux python3 gcc libc6-dev >/dev/null
for tool in runsvdir runsv svlogd s6-svscan s6-supervise s6-log tini dumb-init catatonit unshare python3 cc; do
	printf '%-13s %s\n' "$tool" "$(command -v "$tool" || echo MISSING)"
done
