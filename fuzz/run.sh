#!/usr/bin/env bash
# Fuzz every target for a while: `fuzz/run.sh [seconds-per-target] [target...]` (default 10 s,
# every target). Needs rustup's nightly toolchain (cargo fuzz builds with nightly-only flags);
# installs cargo-fuzz from crates.io when it is missing. Exits non-zero when a target crashes
# (the input is saved under fuzz/artifacts/<target>/) or when anything cannot be set up.
#
# Seeds come from fuzz/seeds/<target>/ (committed, read only); what a run adds goes to
# fuzz/corpus/<target>/ (not committed; kept between runs, delete it to start over).
#
# Environment:
#   FUZZ_SANITIZER    cargo fuzz --sanitizer (default none: the fuzzed code is safe Rust;
#                     `address` is about 2x slower)
#   FUZZ_JOBS_ARGS    extra libFuzzer arguments for every target (e.g. "-jobs=2 -workers=2")
#   FUZZ_TARGET_DIR   cargo target directory (default fuzz/target)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
ALL_TARGETS=(lines json_scan record config protocol control_conn)

SECS="${1:-10}"
[ "$#" -gt 0 ] && shift
case "$SECS" in
    '' | *[!0-9]*) echo "usage: fuzz/run.sh [seconds-per-target] [target...]" >&2; exit 2 ;;
esac
TARGETS=("$@")
[ "${#TARGETS[@]}" -gt 0 ] || TARGETS=("${ALL_TARGETS[@]}")
SANITIZER="${FUZZ_SANITIZER:-none}"
TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/target}"
LOGS="$TARGET_DIR/fuzz-logs"

die() {
    printf 'fuzz/run.sh: error: %s\n' "$*" >&2
    exit 1
}

# ---- toolchain: nightly is required, fail loudly when it is not there.
command -v cargo >/dev/null || die "cargo not found in PATH"
if ! cargo +nightly --version >/dev/null 2>&1; then
    if command -v rustup >/dev/null; then
        echo "nightly toolchain missing: rustup toolchain install nightly --profile minimal"
        rustup toolchain install nightly --profile minimal \
            || die "cannot install the nightly toolchain (cargo fuzz needs it)"
    else
        die "no nightly toolchain and no rustup: cargo fuzz needs nightly"
    fi
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz missing: cargo install cargo-fuzz --locked"
    cargo install cargo-fuzz --locked || die "cannot install cargo-fuzz"
fi
echo "toolchain: $(cargo +nightly --version), $(cargo +nightly fuzz --version)"

FUZZ_FLAGS=(--debug-assertions --sanitizer "$SANITIZER" --target-dir "$TARGET_DIR")
cargo +nightly fuzz build "${FUZZ_FLAGS[@]}" || die "cargo fuzz build failed"

mkdir -p "$LOGS"
failed=()
summary=()
for t in "${TARGETS[@]}"; do
    [ -f "fuzz_targets/$t.rs" ] || die "no fuzz target $t (have: ${ALL_TARGETS[*]})"
    mkdir -p "corpus/$t" "artifacts/$t"
    args=(-max_total_time="$SECS" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1)
    case "$t" in
        json_scan | record) args+=(-dict=dicts/json.dict) ;;
        protocol) args+=(-dict=dicts/protocol.dict) ;;
        control_conn) args+=(-dict=dicts/control_conn.dict) ;;
        config) args+=(-dict=dicts/config.dict) ;;
        lines) args+=(-dict=dicts/lines.dict) ;;
    esac
    # shellcheck disable=SC2206 # word splitting wanted
    args+=(${FUZZ_JOBS_ARGS:-})
    log="$LOGS/$t.log"
    echo "---- $t: ${SECS}s (log: $log)"
    rc=0
    cargo +nightly fuzz run "${FUZZ_FLAGS[@]}" "$t" "corpus/$t" "seeds/$t" -- "${args[@]}" \
        >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$done_line")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$done_line")
    corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$done_line")
    if [ "$rc" = 0 ]; then
        line=$(printf '%-10s ok     execs %-10s cov %-6s ft %-6s corpus %s' \
            "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}")
    else
        failed+=("$t")
        line=$(printf '%-10s FAILED (exit %s): see %s' "$t" "$rc" "$log")
        # The panic message (or libFuzzer's verdict) and the saved input, without the backtraces.
        grep -E -A3 "panicked at" "$log" | grep -v -E '^ *[0-9]+: |^ +at |^stack backtrace' | head -n 12 || true
        grep -E "^==[0-9]+== ERROR|Test unit written|^Base64" "$log" | head -n 5 || true
    fi
    echo "$line"
    summary+=("$line")
done

echo
echo "==== fuzz summary (${SECS}s per target, sanitizer $SANITIZER)"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz/run.sh: FAILED: ${failed[*]}; inputs under fuzz/artifacts/<target>/;" \
        "reproduce with: cargo +nightly fuzz run ${FUZZ_FLAGS[*]} <target> <input>" >&2
    exit 1
fi
echo "all ${#TARGETS[@]} targets ran without a crash"
