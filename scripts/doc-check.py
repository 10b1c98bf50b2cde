#!/usr/bin/env python3
"""The doc check: every command block of the documentation is run, compared, or accounted for.

    python3 scripts/doc-check.py [PAGE.md...]      as root, from anywhere; default: README.md,
                                                   docs/*.md, examples/**/*.md
    python3 scripts/doc-check.py --list            only list the blocks and their markers

A fenced block whose language is sh, bash, shell, console or dockerfile is a command block. Each
one must carry a marker: an HTML comment (invisible on GitHub) on the line right above its
opening fence. Any other block (text, json, yaml, output) is not a command and is ignored.

    <!-- check: run -->                  run it (below)
    <!-- check: run sigint=4 -->         a command that runs until Ctrl-C: run it in a process
                                         group of its own, send the group SIGINT after 4 s (as a
                                         terminal's Ctrl-C does), it must exit 0 (the check runs
                                         `cargo build --release` first, so that a build in the
                                         block is quick)
    <!-- check: run setup: CMD -->       run the shell command CMD first (e.g. start the
                                         container an earlier block stopped)
    <!-- check: build DEST=SRC ... -->   a Dockerfile: built (`docker build --network none`) in
                                         a temporary context holding each repository file or
                                         folder SRC as DEST; the image is removed after
    <!-- check: same-as PATH -->         the block is the file PATH of the repository, verbatim
                                         (or all of it after its leading comment lines, a
                                         header the page leaves out)
    <!-- check: test FILE[::NAME] ... --> what the block does is run by the named tests
                                         (tests/FILE.rs, its `fn NAME`), which CI runs
                                         (scripts/test.sh); checked: they exist
    <!-- check: ci -->                   CI runs these commands itself; checked: the program of
                                         every command line appears in .ci/run
    <!-- check: skip REASON -->          not run, for REASON (printed in the summary)

How blocks run: each one by `bash -e -o pipefail -c BLOCK`, from the repository root, in page
order (a later block may use what an earlier one built), with a time limit of 10 minutes,
and with these helpers defined:
- `sudo`: as root, `env` (the pages say "as root, leave out sudo");
- `docker`: the real one, except that `docker logs -f` follows for 5 s only, and that every
  image (`-t`) and container (`--name`) a block names is removed when the page is done (unless
  it existed before the check started); so are docker/make-bases.sh's `dinit-test/*` bases.
Blocks that use `docker` are skipped, by name, where `docker info` fails. Where the pages' base
images (alpine:3.20, gcr.io/distroless/static-debian12, ...) cannot be pulled, the check puts
local stand-ins under those names first (docker/make-bases.sh's busybox and static bases),
says so, and removes them at the end: the commands run as printed, on stand-in bases.

Exits 1 when a block fails, a file differs, a named test or CI command is missing, or a command
block has no marker. The last line is `doc-check: N passed, N failed, N skipped`.
"""

import glob
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
COMMAND_LANGS = {"sh", "bash", "shell", "console", "dockerfile"}
MARKER = re.compile(r"^<!--\s*check:\s*(.*?)\s*-->\s*$")
BLOCK_TIMEOUT = 600
STAND_INS = {
    "busybox": ["alpine:3.20", "alpine:3.21", "debian:12-slim", "debian:12"],
    "static": [
        "gcr.io/distroless/static-debian12:latest",
        "gcr.io/distroless/static-debian12:nonroot",
    ],
}
MAKE_BASES_IMAGES = ["dinit-test/busybox:latest", "dinit-test/static:latest"]

PRELUDE = r"""
if [ "$(id -u)" = 0 ] && ! command -v sudo >/dev/null; then sudo() { env "$@"; }; fi
docker() {
    local a prev="" follow=false
    for a in "$@"; do
        case "$prev" in
            -t|--tag) echo "image $a" >>"$DOC_CHECK_RECORD" ;;
            --name) echo "container $a" >>"$DOC_CHECK_RECORD" ;;
        esac
        case "$a" in
            --tag=*) echo "image ${a#--tag=}" >>"$DOC_CHECK_RECORD" ;;
            --name=*) echo "container ${a#--name=}" >>"$DOC_CHECK_RECORD" ;;
        esac
        prev="$a"
    done
    if [ "${1:-}" = logs ]; then
        for a in "$@"; do case "$a" in -f|--follow) follow=true ;; esac; done
    fi
    if "$follow"; then
        local code=0
        timeout 5 docker "$@" || code=$?
        [ "$code" = 124 ] && code=0
        return "$code"
    fi
    command docker "$@"
}
"""


class Block:
    def __init__(self, page, line, lang, marker, text):
        self.page, self.line, self.lang, self.marker, self.text = page, line, lang, marker, text

    @property
    def where(self):
        return f"{self.page}:{self.line}"


def blocks_of(page):
    out = []
    lines = open(os.path.join(ROOT, page), encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)```(\S*)", lines[i])
        if not m:
            i += 1
            continue
        indent, lang = m.group(1), m.group(2).lower()
        start = i
        body = []
        i += 1
        while i < len(lines) and not re.match(r"^\s*```\s*$", lines[i]):
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        i += 1
        marker = None
        if start > 0:
            mm = MARKER.match(lines[start - 1].strip())
            if mm:
                marker = mm.group(1)
        if lang in COMMAND_LANGS:
            out.append(Block(page, start + 1, lang, marker, "\n".join(body) + "\n"))
    return out


def pages_default():
    pages = ["README.md"] + sorted(glob.glob("docs/*.md", root_dir=ROOT))
    pages += sorted(glob.glob("examples/**/*.md", root_dir=ROOT, recursive=True))
    return pages


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=isinstance(cmd, str), capture_output=True, text=True, **kw)


def docker_available():
    try:
        r = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                           capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, str(e)
    if r.returncode != 0:
        return False, (r.stderr or r.stdout).strip().splitlines()[-1:] or ["docker info failed"]
    return True, r.stdout.strip()


def docker_names(kind):
    if kind == "image":
        r = sh(["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}"])
    else:
        r = sh(["docker", "ps", "-a", "--format", "{{.Names}}"])
    return set(r.stdout.split())


def full_tag(name):
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else name + ":latest"


class Docker:
    """The engine's state the check changes, and how to put it back."""

    def __init__(self):
        self.ok, self.why = docker_available()
        self.images_before = docker_names("image") if self.ok else set()
        self.containers_before = docker_names("container") if self.ok else set()
        self.stand_ins = []
        self.ready = False

    def prepare(self):
        """Stand-in base images where the pages' bases are not there (no registry)."""
        if self.ready or not self.ok:
            return
        self.ready = True
        missing = {k: [n for n in v if full_tag(n) not in self.images_before]
                   for k, v in STAND_INS.items()}
        if not any(missing.values()):
            return
        prefix = "dinit-doc-check"
        r = sh(["bash", os.path.join(ROOT, "docker/make-bases.sh"), prefix])
        if r.returncode != 0:
            raise SystemExit(f"doc-check: docker/make-bases.sh {prefix} failed:\n{r.stdout}{r.stderr}")
        for kind, names in missing.items():
            for n in names:
                sh(["docker", "tag", f"{prefix}/{kind}:latest", n]).check_returncode()
                self.stand_ins.append(n)
                print(f"doc-check: {n}: a local stand-in ({prefix}/{kind}, docker/make-bases.sh)")
        sh(["docker", "rmi", f"{prefix}/busybox:latest", f"{prefix}/static:latest"])

    def clean(self, record):
        if not self.ok:
            return
        images, containers = [], []
        if os.path.exists(record):
            for line in open(record):
                kind, _, name = line.strip().partition(" ")
                if kind == "container" and name not in self.containers_before:
                    containers.append(name)
                elif kind == "image" and full_tag(name) not in self.images_before:
                    images.append(full_tag(name))
            os.unlink(record)
        images += [n for n in MAKE_BASES_IMAGES if n not in self.images_before]
        if containers:
            sh(["docker", "rm", "-f"] + sorted(set(containers)))
        present = docker_names("image")
        images = [i for i in dict.fromkeys(images) if i in present]
        if images:
            sh(["docker", "rmi", "-f"] + images[::-1])

    def finish(self):
        if self.stand_ins:
            sh(["docker", "rmi"] + self.stand_ins)


def run_block(b, env, opts, setup):
    script = PRELUDE + (setup + "\n" if setup else "") + b.text
    if "sigint" in opts:
        p = subprocess.Popen(["bash", "-e", "-o", "pipefail", "-c", script], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)
        time.sleep(float(opts["sigint"]))
        os.killpg(p.pid, signal.SIGINT)
        try:
            out, _ = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, _ = p.communicate()
            return 1, out + "\n(no end within 60 s of SIGINT)"
        return p.returncode, out
    try:
        r = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=ROOT, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=BLOCK_TIMEOUT, start_new_session=True)
        return r.returncode, r.stdout
    except subprocess.TimeoutExpired as e:
        return 1, (e.stdout or "") + f"\n(no end within {BLOCK_TIMEOUT} s)"


def build_block(b, pairs, record):
    with tempfile.TemporaryDirectory(prefix="doc-check-build.") as ctx:
        for p in pairs:
            dest, _, src = p.partition("=")
            r = sh(["cp", "-a", os.path.join(ROOT, src), os.path.join(ctx, dest)])
            if r.returncode != 0:
                return 1, f"{p}: {r.stderr}"
        with open(os.path.join(ctx, "Dockerfile"), "w") as f:
            f.write(b.text)
        tag = f"dinit-doc-check/build:{os.getpid()}-{b.line}"
        with open(record, "a") as f:
            f.write(f"image {tag}\n")
        r = sh(["docker", "build", "--network", "none", "-t", tag, ctx], timeout=BLOCK_TIMEOUT)
        return r.returncode, r.stdout + r.stderr


def without_header(text):
    """The file without its leading `#` comment lines (and the blank lines after them); a `#!`
    line is not a comment."""
    lines = text.split("\n")
    i = 0
    while i < len(lines) and lines[i].startswith("#") and not lines[i].startswith("#!"):
        i += 1
    if i == 0:
        return text
    while i < len(lines) and not lines[i].strip():
        i += 1
    return "\n".join(lines[i:])


def parse_run(marker):
    rest = marker[len("run"):].strip()
    setup = None
    if "setup:" in rest:
        rest, setup = rest.split("setup:", 1)
        setup = setup.strip()
    opts = dict(kv.split("=", 1) for kv in rest.split() if "=" in kv)
    return opts, setup


def check_test_names(names):
    bad = []
    for n in names:
        f, _, fn = n.partition("::")
        path = os.path.join(ROOT, "tests", f + ".rs")
        if not os.path.exists(path):
            bad.append(f"{n}: no tests/{f}.rs")
        elif fn and not re.search(rf"\bfn {re.escape(fn)}\s*\(", open(path).read()):
            bad.append(f"{n}: no fn {fn} in tests/{f}.rs")
    return bad


def check_ci(text):
    ci = open(os.path.join(ROOT, ".ci/run")).read()
    bad = []
    for line in text.replace("\\\n", " ").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        for cmd in re.split(r"&&|\|\||;", line):
            words = [w for w in shlex.split(cmd) if "=" not in w or w.startswith("-")]
            words = [w for w in words if w not in ("sudo", "env", "bash")]
            if words and words[0] not in ci:
                bad.append(f"{words[0]} (from: {line})")
    return bad


def main(argv):
    list_only = "--list" in argv
    pages = [a for a in argv if not a.startswith("--")] or pages_default()
    blocks = [b for p in pages for b in blocks_of(p)]
    if list_only:
        for b in blocks:
            print(f"{b.where} [{b.lang}] {b.marker or 'NO MARKER'}")
        return 0

    if any(b.marker and b.marker.startswith("run") and "sigint=" in b.marker for b in blocks):
        # a `sigint` block's clock starts at once: let a `cargo build` in it find nothing to do
        r = sh(["cargo", "build", "--release"], cwd=ROOT)
        if r.returncode != 0:
            print(f"doc-check: cargo build --release failed:\n{r.stderr[-3000:]}")
            return 1
    docker = Docker()
    print(f"doc-check: {len(blocks)} command blocks in {len(pages)} pages; docker: "
          f"{docker.why if docker.ok else 'not available: ' + ' '.join(docker.why)}")
    passed, failed, skipped = [], [], []
    record = os.path.join(tempfile.gettempdir(), f"doc-check-{os.getpid()}.record")
    env = dict(os.environ, DOC_CHECK_RECORD=record)
    current_page = None
    try:
        for b in blocks:
            if b.page != current_page:
                if current_page is not None:
                    docker.clean(record)
                current_page = b.page
            m = b.marker
            if m is None:
                failed.append(f"{b.where}: a {b.lang} block without a <!-- check: ... --> marker")
                print(f"FAIL {b.where}: no marker")
                continue
            kind = m.split()[0]
            if kind == "run":
                opts, setup = parse_run(m)
                uses_docker = re.search(r"(^|[\s;&|(])docker(\s|/make-bases)", b.text + (setup or ""))
                if uses_docker and not docker.ok:
                    skipped.append(f"{b.where}: needs docker (not available here)")
                    print(f"SKIP {b.where}: needs docker")
                    continue
                if uses_docker:
                    docker.prepare()
                t = time.monotonic()
                code, out = run_block(b, env, opts, setup)
                took = time.monotonic() - t
                if code == 0:
                    passed.append(b.where)
                    print(f"ok   {b.where} run ({took:.1f} s)")
                else:
                    failed.append(f"{b.where}: exited {code}")
                    print(f"FAIL {b.where} run: exit {code} ({took:.1f} s)\n--- block\n{b.text}--- output\n{out[-6000:]}---")
            elif kind == "build":
                if not docker.ok:
                    skipped.append(f"{b.where}: needs docker (not available here)")
                    print(f"SKIP {b.where}: needs docker")
                    continue
                docker.prepare()
                t = time.monotonic()
                code, out = build_block(b, m.split()[1:], record)
                took = time.monotonic() - t
                if code == 0:
                    passed.append(b.where)
                    print(f"ok   {b.where} docker build ({took:.1f} s)")
                else:
                    failed.append(f"{b.where}: docker build exited {code}")
                    print(f"FAIL {b.where} docker build: exit {code}\n--- Dockerfile\n{b.text}--- output\n{out[-6000:]}---")
            elif kind == "same-as":
                path = m.split(None, 1)[1].strip()
                try:
                    want = open(os.path.join(ROOT, path), encoding="utf-8").read()
                except OSError as e:
                    want = None
                    failed.append(f"{b.where}: {path}: {e}")
                if want is not None and b.text in (want, without_header(want)):
                    passed.append(b.where)
                    print(f"ok   {b.where} is {path}")
                elif want is not None:
                    failed.append(f"{b.where}: differs from {path}")
                    print(f"FAIL {b.where}: differs from {path}")
            elif kind == "test":
                names = m.split()[1:]
                bad = check_test_names(names) if names else ["no test named"]
                if bad:
                    failed.append(f"{b.where}: " + "; ".join(bad))
                    print(f"FAIL {b.where}: " + "; ".join(bad))
                else:
                    passed.append(b.where)
                    print(f"ok   {b.where} run by {' '.join(names)}")
            elif kind == "ci":
                bad = check_ci(b.text)
                if bad:
                    failed.append(f"{b.where}: not in .ci/run: " + "; ".join(bad))
                    print(f"FAIL {b.where}: not in .ci/run: " + "; ".join(bad))
                else:
                    passed.append(b.where)
                    print(f"ok   {b.where} run by .ci/run")
            elif kind == "skip":
                reason = m.split(None, 1)[1] if len(m.split()) > 1 else ""
                if not reason:
                    failed.append(f"{b.where}: skip without a reason")
                else:
                    skipped.append(f"{b.where}: {reason}")
                    print(f"SKIP {b.where}: {reason}")
            else:
                failed.append(f"{b.where}: unknown marker {m!r}")
                print(f"FAIL {b.where}: unknown marker {m!r}")
    finally:
        docker.clean(record)
        docker.finish()

    print(f"\n==== doc-check: {len(blocks)} command blocks ====")
    if skipped:
        print("skipped:")
        for s in skipped:
            print(f"  {s}")
    if failed:
        print("failed:")
        for f in failed:
            print(f"  {f}")
    print(f"doc-check: {len(passed)} passed, {len(failed)} failed, {len(skipped)} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
