#!/usr/bin/env python3
"""Workload 3: start-up and shutdown latency.

K services (BENCH_SS_SERVICES, default 100) each print one JSON line containing "ready", then wait
in a shell that traps TERM: on TERM it kills its sleep, prints one "bye" line and exits 0 (a
clean, logged exit, so a graceful stop is visible in the output). Measured:
  start    launch of the init -> K "ready" lines in its stdout file
  stop     SIGTERM to the init (after BENCH_SS_SETTLE s, default 1, quick 0.3) -> the init has
           exited (the namespace is empty: the kernel only lets PID 1 finish once all others
           are gone)
  rc       the init's exit status
  bye      how many services got to log their "bye" line before the init exited
           (K = every service was stopped gracefully; 0 = they were SIGKILLed by the kernel
           when PID 1 exited)
"""

import os
import shutil
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import benchlib as B  # noqa: E402

SETTLE = float(B.knob("BENCH_SS_SETTLE", 1, 0.3))
START_TIMEOUT = 60.0
STOP_TIMEOUT = float(B.knob("BENCH_SS_STOP_TIMEOUT", 30))

RUN = """#!/bin/sh
echo '{"msg":"ready","svc":"%s"}'
trap 'kill $pid 2>/dev/null; echo "{\\"msg\\":\\"bye\\",\\"svc\\":\\"%s\\"}"; exit 0' TERM
sleep 1000 &
pid=$!
wait
"""


def run_one(peer, work, k):
    base = os.path.join(work, f"run-{peer.name}")
    shutil.rmtree(base, ignore_errors=True)
    svc_root = os.path.join(base, "service")
    names = [f"s{i:03d}" for i in range(k)]
    B.make_services(svc_root, {n: RUN % (n, n) for n in names})
    peer.prepare(svc_root, names)
    out, err = os.path.join(base, "stdout"), os.path.join(base, "stderr")
    try:
        r = B.NsRun(peer, svc_root, names, out, err)
    except B.StartError as e:
        rec = B.start_error(peer, err, e)
        shutil.rmtree(base, ignore_errors=True)
        return rec
    rec = {"peer": peer.name, "services": k, "load1": r.load1}
    try:
        deadline = r.t_launch + START_TIMEOUT
        ready = 0
        with open(out, "rb") as f:
            data = b""
            while True:
                data += f.read()
                ready = data.count(b"ready")
                if ready >= k:
                    break
                if r.proc.poll() is not None:
                    rec["error"] = r.exited("init exited before all were ready")
                    break
                if time.monotonic() > deadline:
                    rec["error"] = f"only {ready}/{k} ready after {START_TIMEOUT:.0f}s"
                    break
                time.sleep(0.001)
        rec["ready"] = ready
        if "error" not in rec:
            rec["start_s"] = time.monotonic() - r.t_launch
            time.sleep(SETTLE)
            rec["procs_before_stop"] = len(r.pids())
            t_term = time.monotonic()
            r.signal_init(signal.SIGTERM)
            rc = r.wait(STOP_TIMEOUT)
            if rc is None:
                rec["error"] = f"did not exit within {STOP_TIMEOUT:.0f}s of SIGTERM"
            else:
                rec["stop_s"] = time.monotonic() - t_term
                rec["rc"] = B.rc_text(rc)
    finally:
        r.kill()
    with open(out, "rb") as f:
        rec["bye"] = f.read().count(b"bye")
    rec.update(r.http_stats())  # BENCH_HTTP: what the scraper saw
    rec["err_lines"], rec["err_head"] = B.stderr_summary(err)
    shutil.rmtree(base, ignore_errors=True)
    return rec


def main():
    out_dir = sys.argv[1]
    k = int(B.knob("BENCH_SS_SERVICES", 100))
    peers, skipped = B.selected_peers()
    peers = [p for p in peers if p.multi]  # tini & co run one program: not applicable
    work = B.tmp_root()
    results = {"params": {"services": k, "settle_s": SETTLE, "reps": B.reps()}, "skipped": skipped,
               "runs": {}}
    try:
        for rep in range(B.reps()):
            for p in peers:
                B.log(f"[start-stop K={k}] rep {rep + 1}/{B.reps()} {p.name} ...")
                rec = run_one(p, work, k)
                B.log(f"    start={rec.get('start_s', float('nan')):.3f}s stop={rec.get('stop_s', float('nan')):.3f}s "
                      f"rc={rec.get('rc')} bye={rec.get('bye')} {rec.get('error', '')}")
                results["runs"].setdefault(p.name, []).append(rec)
            B.save(out_dir, "startstop", results, quiet=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    B.save(out_dir, "startstop", results)


if __name__ == "__main__":
    main()
