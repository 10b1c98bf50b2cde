#!/usr/bin/env bash
# Runs the core integration tests against an aarch64 dinit binary on an x86_64 machine, under
# Debian's qemu-user-static (docs/releasing.md, "aarch64"):
#
#   scripts/qemu-aarch64.sh [BINARY]     as root; default BINARY: the aarch64 file in dist/
#                                        (scripts/release.sh), else
#                                        target/aarch64-unknown-linux-musl/release/dinit
#   scripts/qemu-aarch64.sh --setup      only step 1
#
# 1. binfmt: the kernel runs an aarch64 ELF file through qemu when binfmt_misc has a handler for
#    it. qemu-user-static (a package in scripts/test.sh's list) ships the handler's definition
#    (/usr/lib/binfmt.d/qemu-aarch64.conf, flags F: the interpreter is opened once, so it works
#    in any mount namespace, and P: argv[0] is kept). systemd loads it at boot; a machine or
#    container without systemd does not, so this mounts /proc/sys/fs/binfmt_misc when it is not
#    mounted and registers the handler when it is missing. Then it checks that the binary runs
#    (`--version`).
# 2. the tests: scripts/test.sh with DINIT_TEST_BIN=BINARY (tests/common/mod.rs: the binary under
#    test), for the test files below: dinit is PID 1 of a PID namespace (unshare) and everything
#    it does goes through qemu's system call translation; the services, the test scripts and
#    the tools stay native x86_64.
#
# Not run under qemu, and why (the script lists each test it leaves out, by name):
# - tests/adoption.rs and the adoption tests of tests/orphans.rs (`adopt`, and `nginx`, `redis`:
#   daemons that are adopted): adoption ptraces the orphan, and qemu-user does not emulate
#   ptrace for the guest (`ptrace seize: function not implemented`);
# - the tests that run dinit as a subreaper, not PID 1 (`subreaper`, `not_pid1`): qemu-user 7.2
#   (Debian 12) rejects prctl(PR_SET_CHILD_SUBREAPER) with EINVAL, so dinit exits at once
#   (`exiting: invalid argument`); on aarch64 hardware that call works as on x86_64;
# - control::bad_input_on_the_socket: a load test (a client that floods requests and reads no
#   answer must be cut off within 10 s), a time bound made for native speed;
# - tests/docker.rs: it builds images from the crate's own binary (CARGO_BIN_EXE_dinit), not
#   from DINIT_TEST_BIN;
# - tests/daemons.rs, tests/faults.rs, tests/backpressure.rs, tests/runit_compat.rs, tests/sv.rs:
#   load, fault injection, real daemons and comparisons with runit, bound by time limits made for
#   native speed or long already; the x86_64 runs cover that code, which is the same (CI time:
#   this step stays near 45 s).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The core subset: start, stop, signals, exit codes, reaping, output, configuration, the service
# scan, the environment of children, orphans under terminate and ignore, the control socket and
# its client (`dinit status`, `up`, `down`, ...), the recipes of docs/migrating.md. About 45 s
# on 2 cores.
TESTS=(lifecycle exit_codes signals reaping output config scan child_env orphans control recipes)
# test names (substrings) left out in those files: adoption needs ptrace; a subreaper needs
# prctl(PR_SET_CHILD_SUBREAPER); qemu-user emulates neither (above)
SKIP=(adopt nginx redis subreaper not_pid1 bad_input_on_the_socket)

say() { printf 'qemu-aarch64.sh: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}

setup_binfmt() {
    [ "$(id -u)" = 0 ] || die "registering a binfmt handler needs root"
    local conf=/usr/lib/binfmt.d/qemu-aarch64.conf dir=/proc/sys/fs/binfmt_misc
    [ -r "$conf" ] || die "$conf not found: install Debian's qemu-user-static"
    if ! mountpoint -q "$dir"; then
        mount -t binfmt_misc binfmt_misc "$dir" || die "cannot mount binfmt_misc on $dir"
        say "mounted binfmt_misc on $dir"
    fi
    if [ ! -e "$dir/qemu-aarch64" ]; then
        # the definition's one line, as systemd-binfmt would write it
        grep -v '^[#;]' "$conf" | grep . >"$dir/register" || die "registering $conf failed"
        say "registered $conf"
    fi
    [ "$(head -n 1 "$dir/status")" = enabled ] || echo 1 >"$dir/status"
    [ "$(head -n 1 "$dir/qemu-aarch64")" = enabled ] || echo 1 >"$dir/qemu-aarch64"
    say "binfmt: $(tr '\n' ' ' <"$dir/qemu-aarch64")"
}

if [ "${1:-}" = --setup ]; then
    setup_binfmt
    exit 0
fi

bin="${1:-}"
if [ -z "$bin" ]; then
    bin="$(ls dist/dinit-*-aarch64-linux-musl 2>/dev/null | head -n 1 || true)"
    [ -n "$bin" ] || bin=target/aarch64-unknown-linux-musl/release/dinit
fi
[ -f "$bin" ] || die "$bin not found: build it first (scripts/release.sh)"
bin="$(realpath "$bin")"
case "$(od -An -tx1 -j18 -N2 "$bin" | tr -d ' \n')" in
    b700) ;;
    *) die "$bin is not an aarch64 ELF file" ;;
esac

setup_binfmt
v="$("$bin" --version 2>&1)" || die "$bin does not run here: $v"
say "$bin --version: $v (through $(command -v qemu-aarch64-static || echo qemu))"

args=()
for t in "${TESTS[@]}"; do args+=(--test "$t"); done
args+=(--)
for s in "${SKIP[@]}"; do args+=(--skip "$s"); done
# Say by name what is left out: `--list` of the same test files, matched against SKIP.
list_args=()
for t in "${TESTS[@]}"; do list_args+=(--test "$t"); done
left_out="$(cargo test --release "${list_args[@]}" -- --list 2>/dev/null | sed -n 's/: test$//p' | grep -F "${SKIP[@]/#/-e}" | sort || true)"
say "not run under qemu-user: $(echo "$left_out" | grep -c .) tests (it emulates neither ptrace, for adoption, nor prctl(PR_SET_CHILD_SUBREAPER), for a dinit that is not PID 1; one load test has a time bound for native speed):"
echo "$left_out" | sed 's/^/  NOT RUN under qemu: /' >&2
say "nor tests/adoption.rs, docker.rs, daemons.rs, faults.rs, backpressure.rs, runit_compat.rs, sv.rs (see the head of this script)"
DINIT_TEST_BIN="$bin" DINIT_TEST_INSTALL="${DINIT_TEST_INSTALL:-0}" exec bash scripts/test.sh "${args[@]}"
