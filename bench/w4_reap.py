#!/usr/bin/env python3
"""Workload 4: reap storm.

One service creates BENCH_REAP_N (default 20,000; quick 2,000) orphaned grandchildren as fast as
it can (double fork; the grandchild exits at once, so its zombie is reparented to PID 1), then
sleeps. The harness samples the namespace's /proc continuously (host side) and records:
  storm_s      how long the storm itself took (the service's own clock)
  peak         the highest number of zombies seen in one sample
  drain_s      end of the storm -> first sample with no zombie left
  total_s      start of the storm -> that same sample
  cpu_init_s   user+sys CPU of PID 1 over the whole run (also per orphan)
The storm service is C (lib/storm.c, built with cc if present) or, without a compiler, Python
(slower forks, so a gentler storm: the results say which).
"""

import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import benchlib as B  # noqa: E402

TIMEOUT = float(B.knob("BENCH_REAP_TIMEOUT", 60))


def build_storm(work):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc:
        exe = os.path.join(work, "bench-storm")
        try:
            subprocess.run([cc, "-O2", "-o", exe, os.path.join(B.HERE, "storm.c")], check=True)
            return [exe], "c"
        except (OSError, subprocess.CalledProcessError) as e:
            B.log(f"reap: cannot build storm.c ({e}); using the Python storm")
    return [B.PYTHON, os.path.join(B.HERE, "storm.py")], "python"


def zombies(r):
    z = 0
    for pid in r.pids():
        st = r.stat(pid)
        if st and st[1] == "Z":
            z += 1
    return z


def run_one(peer, work, storm_cmd, n):
    base = os.path.join(work, f"run-{peer.name}")
    shutil.rmtree(base, ignore_errors=True)
    svc_root = os.path.join(base, "service")
    timefile = os.path.join(base, "storm-times")
    B.make_services(svc_root, {"storm": "#!/bin/sh\nexec %s %d %s\n" % (" ".join(storm_cmd), n, timefile)})
    peer.prepare(svc_root, ["storm"])
    out, err = os.path.join(base, "stdout"), os.path.join(base, "stderr")
    try:
        r = B.NsRun(peer, svc_root, ["storm"], out, err)
    except B.StartError as e:
        rec = B.start_error(peer, err, e)
        shutil.rmtree(base, ignore_errors=True)
        return rec
    rec = {"peer": peer.name, "n": n, "load1": r.load1}
    samples, peak, t_zero, times = 0, 0, None, None
    try:
        deadline = r.t_launch + TIMEOUT
        while True:
            z = zombies(r)
            now = time.monotonic()
            samples += 1
            peak = max(peak, z)
            if times is None and os.path.exists(timefile):
                try:
                    with open(timefile) as f:
                        parts = f.read().split()
                    times = (float(parts[0]), float(parts[1]), int(parts[2]))
                except (OSError, ValueError, IndexError):
                    times = None
            if times is not None and z == 0:
                t_zero = now
                break
            if r.proc.poll() is not None:
                rec["error"] = r.exited("init exited")
                break
            if now > deadline:
                rec["error"] = f"timeout: {z} zombies left after {TIMEOUT:.0f}s" if times else "storm did not finish"
                rec["zombies_left"] = z
                break
            time.sleep(0.002)
        rec["samples"] = samples
        rec["peak"] = peak
        if times:
            t0, t1, retries = times
            rec["storm_s"] = t1 - t0
            rec["fork_retries"] = retries
            if t_zero is not None:
                rec["drain_s"] = max(0.0, t_zero - t1)
                rec["total_s"] = t_zero - t0
        rec["sample_interval_ms"] = (time.monotonic() - r.t_launch) / max(1, samples) * 1000
        procs = r.processes()
        tick = 1.0 / B.CLK_TCK
        rec["cpu_init_s"] = sum(p[4] + p[5] for p in procs if p[3] == "init") * tick
        rec["cpu_init_us_per_orphan"] = rec["cpu_init_s"] / n * 1e6
    finally:
        r.kill()
    rec.update(r.http_stats())  # BENCH_HTTP: what the scraper saw
    rec["err_lines"], rec["err_head"] = B.stderr_summary(err)
    shutil.rmtree(base, ignore_errors=True)
    return rec


def main():
    out_dir = sys.argv[1]
    n = int(B.knob("BENCH_REAP_N", 20000, 2000))
    peers, skipped = B.selected_peers()
    peers = [p for p in peers if p.name != "baseline"]  # nothing would reap: zombies stay forever
    work = B.tmp_root()
    try:
        storm_cmd, storm_kind = build_storm(work)
        results = {"params": {"n": n, "storm": storm_kind, "reps": B.reps(), "timeout_s": TIMEOUT},
                   "skipped": skipped, "runs": {}}
        for rep in range(B.reps()):
            for p in peers:
                B.log(f"[reap N={n}] rep {rep + 1}/{B.reps()} {p.name} ...")
                rec = run_one(p, work, storm_cmd, n)
                B.log(f"    storm={rec.get('storm_s', float('nan')):.2f}s peak={rec.get('peak')} "
                      f"drain={rec.get('drain_s', float('nan')):.3f}s "
                      f"init_cpu={rec.get('cpu_init_s', float('nan')):.2f}s "
                      f"{rec.get('error', '')}")
                results["runs"].setdefault(p.name, []).append(rec)
            B.save(out_dir, "reap", results, quiet=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    B.save(out_dir, "reap", results)


if __name__ == "__main__":
    main()
