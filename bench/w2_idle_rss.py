#!/usr/bin/env python3
"""Workload 2: idle memory.

K services (BENCH_IDLE_COUNTS, default "1,10,100") each `exec sleep 1000`. Once all K sleeps run,
wait BENCH_IDLE_SETTLE seconds (default 2, quick 0.5), then read from the host side:
  init only   VmRSS (and PSS) of the namespace's PID 1
  tree        sum over PID 1 + every per-service supervisor and logger (runsv, svlogd, cat,
              s6-supervise, s6-log, ...): VmRSS sum (counts shared libc pages once per process)
              and PSS sum (shares them out; the honest "what this tree costs" figure).
The sleeps themselves (the services) are excluded.
"""

import os
import shutil
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import benchlib as B  # noqa: E402

SETTLE = float(B.knob("BENCH_IDLE_SETTLE", 2, 0.5))
TIMEOUT = 60.0


def run_one(peer, work, k):
    base = os.path.join(work, f"run-{peer.name}-{k}")
    shutil.rmtree(base, ignore_errors=True)
    svc_root = os.path.join(base, "service")
    names = [f"s{i:03d}" for i in range(k)]
    B.make_services(svc_root, {n: "#!/bin/sh\nexec sleep 1000\n" for n in names})
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
        deadline = time.monotonic() + TIMEOUT
        while r.count_comm("sleep") < k:
            if r.proc.poll() is not None:
                rec["error"] = r.exited("init exited")
                break
            if time.monotonic() > deadline:
                rec["error"] = f"only {r.count_comm('sleep')}/{k} services running after {TIMEOUT:.0f}s"
                break
            time.sleep(0.01)
        if "error" not in rec:
            rec["all_running_s"] = time.monotonic() - r.t_launch
            time.sleep(SETTLE)
            procs = r.processes()
            tree = [p for p in procs if p[3] in ("init", "tree")]
            rec["init_rss_kb"] = r.status_kb(1)
            rec["init_pss_kb"] = r.pss_kb(1)
            rec["tree_rss_kb"] = sum(r.status_kb(p[0]) or 0 for p in tree)
            rec["tree_pss_kb"] = sum(r.pss_kb(p[0]) or 0 for p in tree)
            rec["tree_procs"] = len(tree)
            comms = {}
            for p in tree:
                comms[p[1]] = comms.get(p[1], 0) + 1
            rec["tree_comms"] = comms
            rec["init_threads"] = r.status_kb(1, "Threads")
            rec["services_running"] = r.count_comm("sleep")
    finally:
        r.kill()
    rec.update(r.http_stats())  # BENCH_HTTP: what the scraper saw
    rec["err_lines"], rec["err_head"] = B.stderr_summary(err)
    shutil.rmtree(base, ignore_errors=True)
    return rec


def main():
    out_dir = sys.argv[1]
    counts = B.int_list("BENCH_IDLE_COUNTS", "1,10,100")
    peers, skipped = B.selected_peers()
    peers = [p for p in peers if p.name != "baseline"]  # no init to measure
    work = B.tmp_root()
    results = {"params": {"counts": counts, "settle_s": SETTLE, "reps": B.reps()}, "skipped": skipped, "cases": []}
    try:
        for k in counts:
            case = {"services": k, "runs": {}}
            results["cases"].append(case)
            for rep in range(B.reps()):
                for p in peers:
                    if not p.multi and k != 1:
                        continue
                    B.log(f"[idle-rss K={k}] rep {rep + 1}/{B.reps()} {p.name} ...")
                    rec = run_one(p, work, k)
                    B.log(f"    init={rec.get('init_rss_kb')} kB tree_rss={rec.get('tree_rss_kb')} kB "
                          f"tree_pss={rec.get('tree_pss_kb')} kB {rec.get('error', '')}")
                    case["runs"].setdefault(p.name, []).append(rec)
                B.save(out_dir, "idle_rss", results, quiet=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    B.save(out_dir, "idle_rss", results)


if __name__ == "__main__":
    main()
