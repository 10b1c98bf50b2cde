#!/usr/bin/env bash
# Builds the release binaries (docs/releasing.md):
#
#   scripts/release.sh [OUTDIR]        default OUTDIR: dist
#
# 1. the version: Cargo.toml's `version`. On a commit tagged `v<version>` (the tag scheme,
#    docs/releasing.md) the files are named with it; a tag that does not match Cargo.toml is an
#    error. On any other commit the name says so: `<version>+g<commit>` (`.dirty` when the work
#    tree has changes), so an untagged build is never mistaken for a release.
#    RELEASE_REQUIRE_TAG=1 makes an untagged commit an error (what a real release run sets).
# 2. `cargo build --release --locked --target <T>` for x86_64-unknown-linux-musl and
#    aarch64-unknown-linux-musl: static, stripped, linked by rust-lld (.cargo/config.toml), so the
#    only thing needed is the Rust toolchain with the two targets (`rustup target add`, done
#    here when missing), no gcc and no cross gcc.
# 3. OUTDIR/dinit-<version>-x86_64-linux-musl and OUTDIR/dinit-<version>-aarch64-linux-musl,
#    and OUTDIR/SHA256SUMS (`sha256sum -c SHA256SUMS` checks them).
# 4. checks each file: an ELF executable for its machine, statically linked (no program
#    interpreter), and `--version` printing `dinit <Cargo.toml version>`; the aarch64 one runs
#    only where the kernel can run aarch64 binaries (natively, or qemu-user-static's binfmt
#    handler: scripts/qemu-aarch64.sh sets it up); elsewhere the script says it did not run it.
#    Prints each file's size and `file` output.
#
# Environment: RELEASE_TARGETS (default: both targets above) to build fewer; CARGO, RUSTUP.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

OUT="${1:-dist}"
TARGETS=(${RELEASE_TARGETS:-x86_64-unknown-linux-musl aarch64-unknown-linux-musl})
CARGO="${CARGO:-cargo}"
RUSTUP="${RUSTUP:-rustup}"

say() { printf 'release.sh: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}

# ---- 1. the version and the tag
version="$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n 1)"
[ -n "$version" ] || die "no version in Cargo.toml"
tag=""
if git rev-parse --git-dir >/dev/null 2>&1; then
    tag="$(git tag --points-at HEAD --list 'v[0-9]*' | head -n 1)"
fi
if [ -n "$tag" ]; then
    [ "$tag" = "v$version" ] || die "HEAD is tagged $tag but Cargo.toml says version $version (tags are v<Cargo.toml version>)"
    name_version="$version"
    say "release $tag"
else
    [ "${RELEASE_REQUIRE_TAG:-0}" != 1 ] || die "HEAD has no v<version> tag (RELEASE_REQUIRE_TAG=1)"
    commit="$(git rev-parse --short=9 HEAD 2>/dev/null || echo unknown)"
    dirty=""
    if git rev-parse --git-dir >/dev/null 2>&1 && [ -n "$(git status --porcelain --untracked-files=no)" ]; then
        dirty=".dirty"
    fi
    name_version="$version+g$commit$dirty"
    say "untagged commit: files named $name_version (not a release)"
fi

# ---- 2. the builds
elf_machine() { # the file's e_machine, as a word
    case "$(od -An -tx1 -j18 -N2 "$1" | tr -d ' \n')" in
        3e00) echo x86_64 ;;
        b700) echo aarch64 ;;
        *) echo unknown ;;
    esac
}
has_interp() { # a PT_INTERP program header: dynamically linked (64-bit little-endian ELF)
    python3 - "$1" <<'EOF'
import struct, sys
b = open(sys.argv[1], "rb").read()
assert b[:4] == b"\x7fELF" and b[4] == 2 and b[5] == 1, "not a 64-bit little-endian ELF file"
phoff, = struct.unpack_from("<Q", b, 0x20)
phentsize, phnum = struct.unpack_from("<HH", b, 0x36)
sys.exit(0 if any(struct.unpack_from("<I", b, phoff + i * phentsize)[0] == 3 for i in range(phnum)) else 1)
EOF
}

rm -rf "$OUT"
mkdir -p "$OUT"
files=()
for t in "${TARGETS[@]}"; do
    arch="${t%%-*}"
    if command -v "$RUSTUP" >/dev/null && ! "$RUSTUP" target list --installed | grep -qx "$t"; then
        say "rustup target add $t"
        timeout 300 "$RUSTUP" target add "$t" || die "rustup target add $t failed"
    fi
    say "cargo build --release --locked --target $t"
    start=$SECONDS
    "$CARGO" build --release --locked --target "$t"
    say "built $t in $((SECONDS - start)) s"
    f="dinit-$name_version-$arch-linux-musl"
    cp "target/$t/release/dinit" "$OUT/$f"
    chmod 0755 "$OUT/$f"
    files+=("$f")

    # ---- 4. checks
    m="$(elf_machine "$OUT/$f")"
    [ "$m" = "$arch" ] || die "$f: ELF machine $m, not $arch"
    if has_interp "$OUT/$f"; then die "$f is dynamically linked (it has a program interpreter)"; fi
    if v="$("$OUT/$f" --version 2>&1)"; then
        [ "$v" = "dinit $version" ] || die "$f --version printed '$v', not 'dinit $version'"
        say "$f --version: $v"
    elif [ "$arch" = "$(uname -m)" ]; then
        die "$f --version failed: $v"
    else
        say "$f: not run (this kernel runs no $arch binaries: no binfmt handler, see scripts/qemu-aarch64.sh): $v"
    fi
done

# ---- 3. checksums
(cd "$OUT" && sha256sum "${files[@]}" >SHA256SUMS && sha256sum -c --quiet SHA256SUMS)

echo
echo "==== release binaries in $OUT ($name_version) ===="
for f in "${files[@]}"; do
    printf '%-48s %8d bytes\n' "$f" "$(stat -c %s "$OUT/$f")"
    if command -v file >/dev/null; then (cd "$OUT" && file "$f"); fi
done
echo "--- $OUT/SHA256SUMS"
cat "$OUT/SHA256SUMS"
