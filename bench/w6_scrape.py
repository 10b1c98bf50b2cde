#!/usr/bin/env python3
"""Workload 6: what an HTTP request costs dinit (contract §15: "a scrape of 100 services takes
well under a millisecond of dinit's time").

dinit (JSON mode) with K services (BENCH_SCRAPE_SERVICES, default 100) that `exec sleep 1000`
and DINIT_HTTP_LISTEN on a free port of 127.0.0.1. Once all K run and /readyz is 200, the
harness fetches each of /metrics, /status and /livez N times in a row (BENCH_SCRAPES, default
1,000, quick 200), one connection per request as dinit answers them, and reads dinit's CPU time
before and after from /proc/<pid>/schedstat (nanoseconds on the CPU: the scheduler's own
accounting, not 10 ms ticks) and, as a cross-check, utime+stime ticks. dinit's CPU in an idle
second measured just before is subtracted (it is ~0: nothing writes). Per request: dinit's CPU
in µs, the client's wall time (median, 99th percentile), the answer's size; dinit's VmRSS before
and after the requests.

Only dinit has a listener: the other peers are not run. Peer `dinit-json` (BENCH_PEERS may leave
it out, then nothing runs).
"""

import os
import shutil
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import benchlib as B  # noqa: E402

SERVICES = int(B.knob("BENCH_SCRAPE_SERVICES", 100))
SCRAPES = int(B.knob("BENCH_SCRAPES", 1000, 200))
PATHS = ("/metrics", "/status", "/livez")
TIMEOUT = 60.0


def schedstat_ns(pid):
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0])


def ticks(pid):
    with open(f"/proc/{pid}/stat", "rb") as f:
        s = f.read()
    fields = s[s.rindex(b")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def run_one(peer, work):
    base = os.path.join(work, f"run-{peer.name}")
    shutil.rmtree(base, ignore_errors=True)
    svc_root = os.path.join(base, "service")
    names = [f"s{i:03d}" for i in range(SERVICES)]
    B.make_services(svc_root, {n: "#!/bin/sh\nexec sleep 1000\n" for n in names})
    out, err = os.path.join(base, "stdout"), os.path.join(base, "stderr")
    addr = f"127.0.0.1:{B.free_port()}"
    try:
        r = B.NsRun(peer, svc_root, names, out, err, extra_env={"DINIT_HTTP_LISTEN": addr})
    except B.StartError as e:
        rec = B.start_error(peer, err, e)
        shutil.rmtree(base, ignore_errors=True)
        return rec
    rec = {"peer": peer.name, "services": SERVICES, "scrapes": SCRAPES, "load1": r.load1}
    pid = r.init_pid
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                ready = B.http_get(addr, "/readyz")[0] == 200
            except OSError:
                ready = False
            if ready and r.count_comm("sleep") >= SERVICES:
                break
            if r.proc.poll() is not None:
                rec["error"] = r.exited("init exited")
                break
            if time.monotonic() > deadline:
                rec["error"] = f"not ready after {TIMEOUT:.0f}s"
                break
            time.sleep(0.02)
        if "error" not in rec:
            time.sleep(0.5)
            c0, t0 = schedstat_ns(pid), time.monotonic()
            time.sleep(1.0)
            idle_ns_per_s = (schedstat_ns(pid) - c0) / (time.monotonic() - t0)
            rec["idle_cpu_us_per_s"] = idle_ns_per_s / 1e3
            rec["rss_before_kb"] = rss_kb(pid)
            for path in PATHS:
                lat = []
                size = None
                c0, k0, t0 = schedstat_ns(pid), ticks(pid), time.monotonic()
                for _ in range(SCRAPES):
                    s0 = time.monotonic()
                    code, body = B.http_get(addr, path)
                    lat.append((time.monotonic() - s0) * 1e3)
                    if code != 200:
                        raise RuntimeError(f"GET {path}: {code}")
                    size = len(body)
                wall = time.monotonic() - t0
                cpu_ns = schedstat_ns(pid) - c0 - idle_ns_per_s * wall
                lat.sort()
                rec[path] = {
                    "cpu_us": cpu_ns / SCRAPES / 1e3,
                    "ticks_us": (ticks(pid) - k0) / B.CLK_TCK / SCRAPES * 1e6,
                    "ms_median": statistics.median(lat),
                    "ms_p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
                    "bytes": size,
                    "wall_s": wall,
                }
            rec["rss_after_kb"] = rss_kb(pid)
    except (OSError, RuntimeError) as e:
        rec["error"] = f"{type(e).__name__}: {e}"
    finally:
        r.kill()
    rec["err_lines"], rec["err_head"] = B.stderr_summary(err)
    shutil.rmtree(base, ignore_errors=True)
    return rec


def main():
    out_dir = sys.argv[1]
    peers, skipped = B.selected_peers()
    peers = [p for p in peers if p.name == "dinit-json"]
    work = B.tmp_root()
    results = {"params": {"services": SERVICES, "scrapes": SCRAPES, "paths": list(PATHS), "reps": B.reps()},
               "skipped": skipped, "runs": {}}
    try:
        if not peers:
            B.log("scrape: dinit-json is not among the peers: nothing to measure")
        for rep in range(B.reps()):
            for peer in peers:
                B.log(f"scrape: {peer.name}, {SERVICES} services, {SCRAPES} requests per path, rep {rep + 1}")
                rec = run_one(peer, work)
                results["runs"].setdefault(peer.name, []).append(rec)
                if "error" in rec:
                    B.log(f"  error: {rec['error']}")
                else:
                    B.log("  " + ", ".join(f"{p}: {rec[p]['cpu_us']:.1f} µs CPU, {rec[p]['ms_median']:.2f} ms"
                                           for p in PATHS))
                B.save(out_dir, "scrape", results, quiet=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    B.save(out_dir, "scrape", results)


if __name__ == "__main__":
    main()
