#!/usr/bin/env python3
"""Check the peer selection and record what this run measures: <out>/run.json.

usage: runinfo.py OUT_DIR
Exits 2 when BENCH_PEERS names a peer the harness does not know. Prints the plan (peers measured,
peers skipped and why) to stderr.
"""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402

PACKAGES = ("runit", "s6", "skalibs", "libskarnet2.13", "tini", "dumb-init", "catatonit", "dash")


def output(argv, cwd=None):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=10, cwd=cwd)
    except (OSError, subprocess.SubprocessError):
        return None
    return p.stdout.strip() if p.returncode == 0 else None


def package_versions():
    vers = {}
    for pkg in PACKAGES:
        v = output(["dpkg-query", "-W", "-f=${Version}", pkg])
        if v:
            vers[pkg] = v
    return vers


def main():
    out_dir = sys.argv[1]
    bad = B.unknown_peers()
    if bad:
        known = ", ".join(p.name for p in B.all_peers())
        B.log(f"run.sh: unknown peer(s) in BENCH_PEERS: {', '.join(bad)} (known: {known})")
        return 2
    peers, skipped = B.selected_peers()
    repo = os.path.dirname(B.BENCH_DIR)
    dinit = os.environ.get("DINIT_BIN")
    info = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "quick": B.QUICK,
        "knobs": {k: v for k, v in sorted(os.environ.items())
                  if k.startswith("BENCH_") or k in ("DINIT_BIN", "TOZD_DINIT_BIN", "HORUST_BIN")},
        "peers": [p.name for p in peers],
        "skipped": skipped,
        "machine": B.machine_info(),
        "packages": package_versions(),
        "python": sys.version.split()[0],
    }
    if dinit and any(p.name.startswith("dinit-") for p in peers):
        info["dinit"] = {
            "bin": dinit,
            "version": output([dinit, "--version"]),
            "commit": output(["git", "rev-parse", "--short=12", "HEAD"], cwd=repo),
            "dirty": bool(output(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo)),
        }
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "run.json"), "w") as f:
        json.dump(info, f, indent=1, sort_keys=True)
    B.log(f"peers: {', '.join(p.name for p in peers)}")
    for name, why in skipped.items():
        B.log(f"not measured: {name}: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
