#!/usr/bin/env bash
# The project's test command (README), also what CI runs (.ci/run):
#
#   scripts/test.sh [CARGO-TEST-ARGS...]     as root, on Debian 12 with Rust (cargo) installed
#   scripts/test.sh --install-only           only step 1
#
# 1. installs the Debian packages the tests use (PACKAGES below) with apt-get when any is
#    missing, with a policy-rc.d that keeps their daemons from starting during the install;
# 2. checks that this machine can run the tests: cargo, root, a PID namespace
#    (`unshare --pid --fork --mount-proc`: the integration tests start dinit as its PID 1);
# 3. builds the binary under test, `cargo build --release` (with `--target T`: that target's),
#    and runs `cargo test --profile tests --no-fail-fast CARGO-TEST-ARGS...` against it
#    ($DINIT_TEST_BIN; every test binary runs even when one fails), e.g.
#    `--target x86_64-unknown-linux-musl`, `--test runit_compat`, a name filter, `-- --nocapture`;
# 4. prints a summary: tests passed, failed (by name), skipped (by name, with the reason) and
#    ignored. A test that cannot run here (no Docker engine, ptrace forbidden, a package
#    missing) is skipped: it calls `common::skip` (tests/common/mod.rs), which prints
#    `SKIPPED <binary>::<test>: <reason>` and appends that line to the file named by
#    $DINIT_TEST_SKIPS; the summary counts it as skipped, never as passed.
#
# Exits non-zero when cargo test fails (a test failed, a binary crashed, the build failed) or
# when step 1 or 2 fails. As a user other than root, step 1 uses sudo; the tests need root.
#
# Environment: DINIT_TEST_INSTALL=0 skips step 1 (then a missing package makes its tests skip).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# What the build and the tests use (Debian 12 package names):
# - util-linux: unshare, nsenter, setpriv (dinit runs as PID 1 of a PID namespace in the tests);
#   procps: ps, pgrep; bash; python3: some test services are Python scripts (/usr/bin/python3);
# - busybox-static: the shipped examples must run with nothing but busybox, and tests/docker.rs
#   builds FROM scratch images around it (docker/make-bases.sh); jq: reading JSON in checks;
# - gcc, libc6-dev, ca-certificates: building crates;
# - runit, runit-services: tests/sv.rs and tests/runit_compat.rs compare dinit with real runit
#   (runsvdir, sv, svlogd, chpst) and run copies of Debian's /etc/sv/* directories, whose
#   daemons come from rsyslog, dbus, at and cron;
# - nginx, redis-server: tests/orphans.rs adopts these real daemonizing programs;
# - postgresql, postgresql-contrib, redis-tools: tests/daemons.rs runs PostgreSQL, Redis and
#   nginx as dinit services under load (pgbench, redis-benchmark), on temp dirs and free ports;
# - tini: tests/tini.rs runs tini's own test ideas under tini and under `dinit --` side by side;
# - podman, crun, containerd, runc: tests/docker.rs runs the images under Podman and under a
#   containerd it starts itself (ctr + runc), loaded from `docker save` tarballs;
# - qemu-user-static: scripts/qemu-aarch64.sh runs the aarch64 release binary under it (CI).
# None of these daemons is started by the install (policy-rc.d); the tests start their own,
# inside PID and mount namespaces. Docker is not installed here: tests/docker.rs runs when the
# machine has an engine (`docker info`) and is skipped otherwise.
PACKAGES=(util-linux procps python3 bash busybox-static jq gcc libc6-dev ca-certificates
    runit runit-services rsyslog dbus at cron nginx redis-server
    postgresql postgresql-contrib redis-tools tini
    podman crun containerd runc qemu-user-static)

say() { printf 'scripts/test.sh: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}

# Issue 22 (contract §15): prometheus ships promtool, which checks /metrics in tests/http.rs
# (about 20 MB, some 12 s to install); iproute2: `ip` brings up the loopback of the network
# namespace tests/http.rs gives dinit; containerd and runc: tests/kubernetes.rs runs the image
# under a containerd it starts itself (ctr + runc), as a Kubernetes node runs it.
PACKAGES+=(prometheus iproute2 containerd runc)

SUDO=()
if [ "$(id -u)" != 0 ]; then
    SUDO=(sudo)
fi

install_packages() {
    command -v dpkg-query >/dev/null || die "dpkg-query not found: this script installs Debian packages (Debian 12)"
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        say "packages: all ${#PACKAGES[@]} present"
        return
    fi
    if [ "${#SUDO[@]}" -gt 0 ] && ! command -v sudo >/dev/null; then
        die "packages missing (${missing[*]}) and not root, no sudo: run as root"
    fi
    say "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # No daemon may start on the host during the install (postgresql, redis-server, nginx,
    # rsyslog, cron would): Docker-built machines have a policy-rc.d that forbids it; elsewhere
    # one is put in place for the install only, and removed after it whatever happens.
    local policy_rc_d=/usr/sbin/policy-rc.d policy_added=false
    if [ ! -e "$policy_rc_d" ]; then
        printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy_rc_d" >/dev/null
        "${SUDO[@]}" chmod 755 "$policy_rc_d"
        policy_added=true
        trap '"${SUDO[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    if "$policy_added"; then
        "${SUDO[@]}" rm -f "$policy_rc_d"
        trap - EXIT
    fi
    say "installed: ${missing[*]}"
}

if [ "${1:-}" = --install-only ]; then
    [ "$#" = 1 ] || die "--install-only takes no other argument"
    install_packages
    exit 0
fi

# ---- 1. packages
if [ "${DINIT_TEST_INSTALL:-1}" != 0 ]; then
    install_packages
fi

# ---- 2. what the tests need from the machine
command -v cargo >/dev/null || die "cargo not found in PATH ($PATH): install Rust (rustup) first"
command -v unshare >/dev/null || die "unshare not found (package util-linux)"
[ -x /usr/bin/python3 ] || die "/usr/bin/python3 not found (package python3)"
[ "$(id -u)" = 0 ] \
    || die "the tests start dinit as PID 1 of a new PID namespace (unshare --pid --mount-proc) and need root: run as root"
unshare --pid --fork --mount-proc /bin/true \
    || die "cannot create a PID namespace here (unshare --pid --fork --mount-proc /bin/true failed)"

# ---- 3. the tests
work="$(mktemp -d "${TMPDIR:-/tmp}/dinit-test.XXXXXX")"
trap 'rm -rf "$work"' EXIT
export DINIT_TEST_SKIPS="$work/skipped"
: >"$DINIT_TEST_SKIPS"
log="$work/cargo-test.log"
# The binary under test is the shipped one: `cargo build --release` (for `--target T`, that
# target's), handed to every test as $DINIT_TEST_BIN. The harnesses are built once, for this
# machine, with the `tests` profile (release without LTO, Cargo.toml): a second target's run
# only re-runs them against its binary.
target=""
args=()
while [ "$#" -gt 0 ]; do
    case "$1" in
    --target) target="$2"; shift 2 ;;
    --target=*) target="${1#--target=}"; shift ;;
    *) args+=("$1"); shift ;;
    esac
done
build=(cargo build --release ${target:+--target "$target"})
say "building the binary under test: ${build[*]}"
"${build[@]}" || die "${build[*]} failed"
export DINIT_TEST_BIN="$PWD/target/${target:+$target/}release/dinit"
cmd=(cargo test --profile tests --no-fail-fast "${args[@]}")
say "running: DINIT_TEST_BIN=$DINIT_TEST_BIN ${cmd[*]}"
start=$SECONDS
set +e
"${cmd[@]}" 2>&1 | tee "$log"
code=${PIPESTATUS[0]}
set -e
took=$((SECONDS - start))

# ---- 4. the summary
# libtest's `test result:` lines count a skipped test as passed (it returned normally): the
# skips recorded in $DINIT_TEST_SKIPS are taken out of that count.
sed -e 's/\x1b\[[0-9;]*[A-Za-z]//g' "$log" >"$work/plain.log"
read -r passed failed ignored filtered binaries < <(awk '
    /^test result: / {
        for (i = 1; i <= NF; i++) {
            n = $(i - 1) + 0
            if ($i ~ /^passed/) p += n
            else if ($i ~ /^failed/) f += n
            else if ($i ~ /^ignored/) ig += n
            else if ($i == "filtered") fo += n
        }
        b++
    }
    END { printf "%d %d %d %d %d\n", p, f, ig, fo, b }' "$work/plain.log")
# `test <name> ... FAILED`, under the `Running <binary>` line cargo printed before it
mapfile -t failed_names < <(awk '
    /^ *Running / {
        bin = ($2 == "unittests") ? $3 : $2
        sub(/^(tests|src)\//, "", bin)
        sub(/\.rs$/, "", bin)
    }
    match($0, /test [^ ]+ \.\.\. FAILED/) {
        print bin "::" substr($0, RSTART + 5, RLENGTH - 5 - 11)
    }' "$work/plain.log" | sort -u)
# a binary that ended without its `test result:` line (crashed, killed)
mapfile -t failed_bins < <(sed -n 's/.*error: test failed, to rerun pass `\(.*\)`.*/\1/p' "$work/plain.log" | sort -u)
mapfile -t skipped_lines < <(sed -n 's/^SKIPPED //p' "$DINIT_TEST_SKIPS" | sort -u)
skipped=${#skipped_lines[@]}
passed_net=$((passed - skipped))

{
    echo
    echo "==== summary: ${cmd[*]} ($took s) ===="
    echo "test binaries: $binaries; tests run: $((passed + failed)), filtered out: $filtered"
    echo "passed:  $passed_net"
    echo "failed:  $failed"
    for n in "${failed_names[@]}"; do echo "  $n"; done
    echo "skipped: $skipped"
    for l in "${skipped_lines[@]}"; do echo "  $l"; done
    echo "ignored: $ignored"
    if [ "$code" != 0 ]; then
        if [ "${#failed_bins[@]}" -gt 0 ]; then
            echo "failed test binaries (rerun with): ${failed_bins[*]}"
        fi
        echo "RESULT: FAILED (cargo test exited $code)"
    elif [ "$passed_net" -lt 0 ] || [ "$failed" != 0 ]; then
        echo "RESULT: FAILED (the counts do not add up: see above)"
        code=1
    else
        echo "RESULT: OK ($passed_net passed, $skipped skipped)"
    fi
}
exit "$code"
