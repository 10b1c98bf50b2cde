#!/usr/bin/env bash
# dinit's benchmarks: dinit (JSON and text mode) and the peer inits, each as PID 1 of a fresh PID
# namespace, on the same workloads in one run; tables with ratios to a no-supervisor baseline.
#
#   bench/run.sh                          # every workload, every peer found (~20 min on 2 cores)
#   bench/run.sh throughput startstop     # some workloads
#   BENCH_QUICK=1 bench/run.sh            # quick development run (1 rep, fewer lines)
#   BENCH_PEERS=dinit-json,s6 bench/run.sh throughput
#
# Workloads: throughput idle_rss startstop reap size scrape (default: all, in that order).
# BENCH_HTTP=1 adds the peers dinit-json-http and dinit-text-http: dinit with its HTTP listener
# on, scraped (GET /metrics) every second while each workload runs.
# dinit: built with `cargo build --release` unless DINIT_BIN names a binary; not built when
# BENCH_PEERS names no dinit-* peer. Peers: bench/install-peers.sh (run once; this script
# installs nothing). Needs root (unshare --pid). Knobs and how to read the tables: bench/README.md.
# Results: bench/results/<id>/{run,<workload>}.json and RESULTS.md (BENCH_OUT overrides the
# folder); the tables are also printed on stdout, progress on stderr.
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
quick=
case "${BENCH_QUICK:-}" in "" | 0) ;; *) quick=-quick ;; esac
id=${BENCH_ID:-$(date +%Y%m%d-%H%M%S)$quick}
out=${BENCH_OUT:-$here/results/$id}

die() {
	echo "run.sh: $*" >&2
	exit 2
}

[ "$(id -u)" = 0 ] || die "needs root (unshare --pid --fork --mount-proc)"
for tool in unshare python3; do
	command -v "$tool" >/dev/null || die "$tool not found (bench/install-peers.sh installs it)"
done

declare -A script=([throughput]=w1_throughput.py [idle_rss]=w2_idle_rss.py [startstop]=w3_startstop.py
	[reap]=w4_reap.py [size]=w5_size.py [scrape]=w6_scrape.py)
# wall-clock cap per workload (seconds; BENCH_CAP overrides all); every run inside has its own,
# shorter timeout, and a workload saves after every case, so a cap keeps what was measured
declare -A cap=([throughput]=3600 [idle_rss]=1800 [startstop]=1800 [reap]=3600 [size]=300 [scrape]=600)
workloads=("$@")
[ ${#workloads[@]} -gt 0 ] || workloads=(throughput idle_rss startstop reap size scrape)
for w in "${workloads[@]}"; do
	[ -n "${script[$w]:-}" ] || die "unknown workload $w (known: throughput idle_rss startstop reap size scrape)"
done

# --- dinit's binary: DINIT_BIN, else a release build of this repository
wants_dinit=yes
if [ -n "${BENCH_PEERS:-}" ] && ! [[ ",${BENCH_PEERS// /}," =~ ,dinit-(json|text), ]]; then
	wants_dinit=
fi
if [ -n "${DINIT_BIN:-}" ]; then
	[ -x "$DINIT_BIN" ] || die "DINIT_BIN=$DINIT_BIN is not executable"
	DINIT_BIN=$(realpath "$DINIT_BIN")
elif [ -n "$wants_dinit" ]; then
	command -v cargo >/dev/null || die "cargo not found: install Rust, or set DINIT_BIN, or leave dinit-* out of BENCH_PEERS"
	echo "== cargo build --release ($(date +%H:%M:%S))" >&2
	cargo build --release --manifest-path "$repo/Cargo.toml" >&2 || die "cargo build --release failed"
	target=$(cargo metadata --format-version 1 --no-deps --manifest-path "$repo/Cargo.toml" |
		python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
	DINIT_BIN=$target/release/dinit
	[ -x "$DINIT_BIN" ] || die "no $DINIT_BIN after the build"
fi
[ -z "${DINIT_BIN:-}" ] || export DINIT_BIN

mkdir -p "$out"
python3 "$here/lib/runinfo.py" "$out" || exit 2

# --- the workloads, one Python process each; INT/TERM reach it, so it kills its namespaces
child=
trap 'if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null || true; wait "$child" || true; fi; exit 130' INT TERM
status=0
for w in "${workloads[@]}"; do
	limit=${BENCH_CAP:-${cap[$w]}}
	echo "== $w ($(date +%H:%M:%S))" >&2
	timeout --kill-after=30 "$limit" python3 "$here/${script[$w]}" "$out" &
	child=$!
	if wait "$child"; then rc=0; else rc=$?; fi
	child=
	if [ "$rc" != 0 ]; then
		echo "run.sh: workload $w failed (exit $rc$([ "$rc" = 124 ] && echo ", hit its $limit s cap"))" >&2
		status=1
	fi
done
python3 "$here/report.py" "$out" "$out/RESULTS.md"
cat "$out/RESULTS.md"
echo "results: $out/RESULTS.md" >&2
exit $status
