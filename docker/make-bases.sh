#!/usr/bin/env bash
# Builds two small local base images, without pulling anything, for machines that reach no
# registry (and for the end-to-end tests, tests/docker.rs):
#
#   <prefix>/busybox:latest  an Alpine stand-in: FROM scratch + Debian's static busybox, with a
#                            link for every applet in its usual place (/bin/sh, /usr/bin/env,
#                            ...), /etc/passwd (root, nobody 65534, nonroot 65532), /tmp, /run
#   <prefix>/static:latest   a distroless/static stand-in: the same /etc/passwd, /etc/group,
#                            /tmp, /home/nonroot and no shell, no busybox, no package manager
#
# Both are usable as BASE for Dockerfile.alpine and Dockerfile.distroless:
#
#   docker/make-bases.sh                       # dinit-test/busybox, dinit-test/static
#   docker build -f Dockerfile.alpine --build-arg BASE=dinit-test/busybox -t dinit:alpine .
#   docker build -f Dockerfile.distroless --build-arg BASE=dinit-test/static -t dinit:distroless .
#
# usage: docker/make-bases.sh [PREFIX]    (PREFIX defaults to dinit-test; lower case)
# Environment: BUSYBOX, the static busybox to use (default /bin/busybox, from Debian's
# busybox-static package: a dynamically linked busybox cannot run in a FROM scratch image).
#
# How: the root file systems are laid out in a temporary directory on the host and imported
# with `docker import` (one layer each, root-owned). There is no shell in `scratch` to run
# `busybox --install` in, and an import leaves no intermediate images behind.
# Needs: docker, GNU tar, mktemp. Works as any user that may talk to the Docker engine.
set -euo pipefail

PREFIX="${1:-dinit-test}"
BUSYBOX="${BUSYBOX:-/bin/busybox}"
PATH_VALUE=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

die() {
    printf 'make-bases.sh: error: %s\n' "$*" >&2
    exit 1
}

case "$PREFIX" in
    *[!a-z0-9._/-]* | '' | [._/-]*) die "invalid image prefix '$PREFIX' (lower case letters, digits, . _ - /)" ;;
esac
[ -x "$BUSYBOX" ] || die "$BUSYBOX not found: install Debian's busybox-static (apt-get install busybox-static) or set BUSYBOX"
applets="$("$BUSYBOX" --list-full)" || die "$BUSYBOX --list-full failed"
docker info >/dev/null 2>&1 || die "the Docker engine is not reachable (docker info failed)"

work="$(mktemp -d "${TMPDIR:-/tmp}/dinit-bases.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# The files both bases share: users, groups, writable /tmp, a home for nonroot (uid 65532,
# as in distroless), /run (dinit's control socket goes to /run/dinit/control.sock).
common() {
    local r="$1" name="$2"
    mkdir -p "$r/etc" "$r/tmp" "$r/root" "$r/home/nonroot" "$r/run" "$r/var/tmp"
    chmod 1777 "$r/tmp" "$r/var/tmp"
    chmod 0700 "$r/root"
    cat >"$r/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
    cat >"$r/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
nonroot:x:65532:
EOF
    cat >"$r/etc/os-release" <<EOF
NAME="dinit test base ($name)"
ID=dinit-test-$name
PRETTY_NAME="dinit test base ($name), made by docker/make-bases.sh"
EOF
}

# A tarball owned by root whoever runs this (nonroot's home belongs to nonroot, as in
# distroless); `docker import` keeps modes and symlinks.
import() {
    local r="$1" tag="$2" tarball
    shift 2
    tarball="$work/$(basename "$r").tar"
    tar --numeric-owner --owner=0 --group=0 --exclude=./home/nonroot -C "$r" -cf "$tarball" .
    tar --numeric-owner --owner=65532 --group=65532 --no-recursion -C "$r" -rf "$tarball" ./home/nonroot
    docker import "$@" "$tarball" "$tag" >/dev/null
    echo "built $tag"
}

# ---- <prefix>/busybox: busybox and one symlink per applet, where busybox would install it.
bb="$work/busybox"
common "$bb" busybox
mkdir -p "$bb/bin" "$bb/sbin" "$bb/usr/bin" "$bb/usr/sbin"
cp "$BUSYBOX" "$bb/bin/busybox"
chmod 0755 "$bb/bin/busybox"
for a in $applets; do
    case "$a" in
        bin/busybox | linuxrc) continue ;;
        # never shadow dinit's own `sv` link (Debian's busybox has no `sv` applet; others might)
        */sv) continue ;;
    esac
    mkdir -p "$bb/$(dirname "$a")"
    [ -e "$bb/$a" ] || ln -s /bin/busybox "$bb/$a"
done
import "$bb" "$PREFIX/busybox:latest" \
    -c "ENV PATH=$PATH_VALUE" \
    -c 'CMD ["/bin/sh"]'

# ---- <prefix>/static: no shell at all (like gcr.io/distroless/static).
st="$work/static"
common "$st" static
import "$st" "$PREFIX/static:latest" \
    -c "ENV PATH=$PATH_VALUE"

# Smoke test: a dynamically linked busybox would fail right here, not later in a test.
if ! out="$(docker run --rm --network none "$PREFIX/busybox:latest" /bin/sh -c 'echo ok' 2>&1)" || [ "$out" != ok ]; then
    die "$PREFIX/busybox cannot run /bin/sh ($out): is $BUSYBOX statically linked (busybox-static)?"
fi
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E "^$PREFIX/(busybox|static):latest " || true
