#!/usr/bin/env python3
"""Render the JSON results of one bench run (a results/<id>/ folder) as Markdown tables.

usage: report.py RESULTS_DIR [OUT.md]
Each figure is "median [min–max]" over the repetitions; ratios are medians divided by the
baseline's median from the same run (lower is better for times, CPU and memory).
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import benchlib as B  # noqa: E402

WORKLOADS = ("throughput", "idle_rss", "startstop", "reap", "size", "scrape")


def load(d, name):
    p = os.path.join(d, f"{name}.json")
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f)


def fmt(v, digits=3):
    if v is None:
        return "-"
    if isinstance(v, float) and digits == 0:
        return f"{v:,.0f}"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        if abs(v) >= 100:
            return f"{v:.0f}"
        if abs(v) >= 10:
            return f"{v:.1f}"
        return f"{v:.{digits}f}" if abs(v) < 1 else f"{v:.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def mmm(vals, digits=3, scale=1.0):
    """("median [min–max]", median) of the values that are not None."""
    s = B.summary([v * scale if v is not None else None for v in vals])
    if not s:
        return "-", None
    if s["n"] == 1:
        return fmt(s["median"], digits), s["median"]
    return f"{fmt(s['median'], digits)} [{fmt(s['min'], digits)}–{fmt(s['max'], digits)}]", s["median"]


def median(vals):
    s = B.summary(vals)
    return s["median"] if s else None


def ratio(v, base):
    if v is None or not base:
        return "-"
    return f"{v / base:.2f}×"


ORDER = [p.name for p in B.all_peers()]


def ordered(runs):
    """A peer -> runs mapping as (peer, runs) pairs in the harness's peer order (the JSON files
    keep their keys sorted)."""
    return sorted(runs.items(), key=lambda kv: (ORDER.index(kv[0]) if kv[0] in ORDER else len(ORDER), kv[0]))


def good(rs):
    return [r for r in rs if "error" not in r]


def counted(peer, rs):
    """The throughput runs whose figures count: finished and intact. A run that lost, duplicated,
    reordered, broke or misattributed a line is a failure, not a fast result. The baseline is the
    floor every ratio divides by, not a contender: its runs count even when chunks of several
    writers interleave in its file (S > 1, bulk writes)."""
    return [r for r in good(rs) if r["verify"]["ok"] or peer == "baseline"]


def failure(rs):
    return "failed" if not good(rs) else "not intact"


def errors(rs):
    return "; ".join(sorted({r["error"] for r in rs if "error" in r}))


def all_recs(res):
    for c in res.get("cases") or []:
        for rs in c["runs"].values():
            yield from rs
    for rs in (res.get("runs") or {}).values():
        yield from rs


def load_note(res):
    loads = [r["load1"] for r in all_recs(res) if "load1" in r]
    if not loads:
        return []
    nproc = (res.get("machine") or {}).get("nproc", "?")
    return ["", f"1-minute load average at the runs' starts: {min(loads):.2f}–{max(loads):.2f} ({nproc} cores)."]


def skipped_note(res):
    sk = res.get("skipped") or {}
    if not sk:
        return load_note(res)
    return load_note(res) + ["", "Not measured: " + "; ".join(f"`{k}` ({v})" for k, v in sk.items()) + "."]


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def integrity(rs):
    """("k/n", worst-run detail) of a throughput case."""
    intact = sum(1 for r in rs if r["verify"]["ok"])
    text = f"{intact}/{len(rs)}"
    if intact < len(rs):
        def badness(r):
            v = r["verify"]
            return sum(v.get(k, 0) for k in ("corrupt", "missing", "dup", "reordered", "misattributed"))
        v = max(rs, key=badness)["verify"]
        parts = [f"{v.get(k, 0):,} {word}" for k, word in (("corrupt", "broken"), ("missing", "missing"),
                                                           ("dup", "duplicated"), ("reordered", "reordered"),
                                                           ("misattributed", "misattributed")) if v.get(k)]
        text += f" (worst: {', '.join(parts) or 'run failed'})"
    return text


def case_title(case):
    return f"S={case['services']} {case['mode']}"


# --------------------------------------------------------------------------- header & overview

def section_header(runinfo, first):
    m = (runinfo or {}).get("machine") or (first or {}).get("machine") or {}
    out = ["# dinit benchmark results", ""]
    if runinfo:
        quick = " — **quick mode** (`BENCH_QUICK=1`: fewer lines and repetitions; for development only)" \
            if runinfo.get("quick") else ""
        out += [f"Run started {runinfo.get('started_at', '?')}{quick}."]
        d = runinfo.get("dinit")
        if d:
            commit = d.get("commit") or "no commit"
            out += [f"dinit: `{d['bin']}` ({d.get('version') or 'no --version output'}; "
                    f"git {commit}{', uncommitted changes' if d.get('dirty') else ''})."]
        if runinfo.get("packages"):
            out += ["Peers: " + ", ".join(f"{k} {v}" for k, v in runinfo["packages"].items()) + "."]
        if runinfo.get("knobs"):
            out += ["Knobs: " + ", ".join(f"`{k}={v}`" for k, v in runinfo["knobs"].items()) + "."]
        out += [""]
    out += [f"Machine: {m.get('nproc')} cores ({m.get('cpu', '?')}), {m.get('mem_gib', '?')} GiB, kernel "
            f"{m.get('kernel', '?')}; load average at start {' '.join(m.get('loadavg_at_start', []))}.", "",
            "Compare figures **within this run only** (every ratio is to this run's `baseline`, no "
            "supervisor at all); on a shared machine read differences under ~20% as noise unless the "
            "min–max ranges separate. Figures of peers not measured here (tozd/dinit, Horust) are in "
            "`bench/RESULTS-peers.md`, from another run: compare their ratios, not their seconds.", ""]
    return out


def section_overview(tp, idle, ss, reap, size):
    """One row per peer, medians only: the figures to look at first."""
    peers = []

    def add(names):
        for n in names:
            if n not in peers:
                peers.append(n)

    for res in (tp, idle):
        for c in (res or {}).get("cases") or []:
            add(c["runs"])
    for res in (ss, reap):
        add(((res or {}).get("runs") or {}).keys())
    add((size or {}).get("peer_names") or [])
    if not peers:
        return []
    peers = [p for p, _ in ordered({p: None for p in peers})]
    out = ["## Overview", ""]
    if tp:
        out += ["Throughput: wall time / baseline, then CPU µs per line of the supervision tree (PID 1 + "
                "supervisors + loggers; for a single-process init like dinit that is PID 1 alone; section 1 "
                "splits it), over the intact runs; ✗ = runs that lost, duplicated, reordered, broke or "
                "misattributed lines: failures, whatever their speed.", ""]
        rows = []
        for p in peers:
            row, any_run = [f"`{p}`"], False
            for case in tp["cases"]:
                rs = case["runs"].get(p)
                if not rs:
                    row.append("")
                    continue
                any_run = True
                base = median([r.get("wall_s") for r in counted("baseline", case["runs"].get("baseline", []))])
                cnt = counted(p, rs)
                if not cnt:
                    row.append(f"✗ {failure(rs)}")
                    continue
                w = median([r["wall_s"] for r in cnt])
                us = median([r.get("cpu_tree_us_per_line") for r in cnt])
                cell = f"{ratio(w, base)}, {fmt(us, 2)} µs"
                intact = sum(1 for r in rs if r["verify"]["ok"])
                if intact < len(rs):
                    cell += " (lines interleave)" if p == "baseline" else f" ✗ {intact}/{len(rs)} intact"
                row.append(cell)
            if any_run:
                rows.append(row)
        out += table(["init"] + [case_title(c) for c in tp["cases"]], rows) + [""]
    rows = []
    idle_max = idle["cases"][-1] if idle and idle.get("cases") else None
    for p in peers:
        row = [f"`{p}`"]
        if idle_max:
            rs = idle_max["runs"].get(p, [])
            if rs and not good(rs):
                row += ["failed", "failed"]
            else:
                row += [fmt(median([r["init_rss_kb"] for r in good(rs)]), 0),
                        fmt(median([r["tree_pss_kb"] for r in good(rs)]), 0)]
        if ss:
            rs = ss["runs"].get(p, [])
            base = good(ss["runs"].get("baseline", []))
            if rs and not good(rs):
                row += ["failed", "failed", "failed"]
            else:
                row += [ratio(median([r.get("start_s") for r in good(rs)]), median([r.get("start_s") for r in base])),
                        fmt(median([r.get("stop_s") for r in good(rs)])),
                        "/".join(str(b) for b in sorted({r["bye"] for r in good(rs) if r.get("bye") is not None}))]
        if reap:
            rs = reap["runs"].get(p, [])
            if rs and not good(rs):
                row += ["failed", fmt(median([r.get("peak") for r in rs if r.get("storm_s")]), 0), "failed"]
            else:
                row += [fmt(median([r.get("drain_s") for r in good(rs)])),
                        fmt(median([r.get("peak") for r in good(rs)]), 0),
                        fmt(median([r.get("cpu_init_us_per_orphan") for r in good(rs)]), 1)]
        if size:
            name = p[:-5] if p.endswith("-http") else p
            e = size["peers"].get(name[:-5] if name.endswith(("-json", "-text")) else name)
            row += [f"{e['main']['bytes']:,}" if e else ""]
        if any(c not in ("", "-") for c in row[1:]):
            rows.append(row)
    header = ["init"]
    if idle_max:
        header += [f"idle RSS kB (K={idle_max['services']})", f"idle tree PSS kB (K={idle_max['services']})"]
    if ss:
        header += ["start / baseline", "stop s", f"graceful of {ss['params']['services']}"]
    if reap:
        header += ["reap drain s", "peak zombies", "reap init CPU µs/orphan"]
    if size:
        header += ["binary bytes"]
    if len(header) > 1 and rows:
        out += table(header, rows) + [""]
    return out


# --------------------------------------------------------------------------- sections

def section_throughput(res):
    if not res:
        return []
    prm = res["params"]
    out = ["## 1. Log throughput", "",
           f"{prm['lines']:,} JSON lines of ~117 bytes in total, split over S services; init stdout to a "
           f"file on tmpfs; {prm['reps']} run(s) each. `wall` = launch of the init until the last line is in "
           "the file; `stream lines/s` counts from the first byte in the file (start-up excluded); CPU = "
           "user+sys of the init (PID 1) and of the whole supervision tree (PID 1 + supervisors + "
           "loggers; writers excluded), from /proc ticks (10 ms), also per line written "
           "(`init CPU µs/line` = init CPU s / lines × 10⁶). `intact` = runs where every line arrived "
           "exactly once, unbroken, with every field as written, in order per service and (where the "
           "init names services) under the right name. A run that is not intact is a failure, not a "
           "fast result: its figures are left out (✗ where no run is left); only the baseline, the "
           "floor every ratio divides by, keeps its figures when its writers' chunks interleave. "
           "`meta` = share of lines carrying the service name."]
    meta = res.get("peer_metadata", {})
    for case in res["cases"]:
        runs = case["runs"]
        base = None
        if "baseline" in runs:
            base = median([r.get("wall_s") for r in counted("baseline", runs["baseline"])])
        out += ["", f"### S={case['services']} service(s), writer mode `{case['mode']}` "
                    f"({case['lines']:,} lines, {case['in_bytes'] / 1e6:.1f} MB)", ""]
        rows = []
        for peer, rs in ordered(runs):
            ok = counted(peer, rs)
            wall, wmed = mmm([r["wall_s"] for r in ok])
            lps, _ = mmm([case["lines"] / r["stream_s"] if r.get("stream_s") else None for r in ok], scale=1e-3)
            mbs, _ = mmm([r.get("mb_per_s") for r in ok])
            cpu_i, _ = mmm([r.get("cpu_init_s") for r in ok], digits=2)
            us_i, _ = mmm([r.get("cpu_init_us_per_line") for r in ok], digits=2)
            cpu_t, _ = mmm([r.get("cpu_tree_s") for r in ok], digits=2)
            us_t, _ = mmm([r.get("cpu_tree_us_per_line") for r in ok], digits=2)
            cpu_w, _ = mmm([r.get("cpu_workload_s") for r in ok], digits=2)
            metas = [r["verify"]["with_metadata"] / max(1, r["verify"]["lines"]) for r in rs]
            over = B.summary([r.get("overhead_bytes_per_line") for r in ok])
            if rs and not ok:
                wall = f"✗ {failure(rs)}"
            rows.append([f"`{peer}`", wall, ratio(wmed, base), lps, mbs, cpu_i, us_i, cpu_t, us_t, cpu_w,
                         integrity(rs), f"{min(metas) * 100:.0f}%", fmt(over["median"], 1) if over else "-",
                         errors(rs)])
        out += table(["init", "wall s", "wall / baseline", "stream klines/s", "MB/s (wall)", "init CPU s",
                      "init CPU µs/line", "tree CPU s", "tree CPU µs/line", "writers CPU s", "intact", "meta",
                      "+bytes/line", "errors"], rows)
    if meta:
        out += ["", "What each peer adds to a line: " + "; ".join(f"`{k}`: {v}" for k, v in meta.items()) + "."]
    return out + skipped_note(res)


def section_idle(res):
    if not res:
        return []
    out = ["## 2. Idle memory", "",
           f"K services each `exec sleep 1000`; read {res['params']['settle_s']:g} s after all K run; "
           f"{res['params']['reps']} run(s) each. `init` = PID 1 only; `tree` = PID 1 + per-service "
           "supervisors + loggers (sleeps excluded). RSS sums count shared libc pages once per process; "
           "PSS shares them out. kB. (The baseline has no init to measure.)"]
    for case in res["cases"]:
        out += ["", f"### K={case['services']}", ""]
        rows = []
        for peer, rs in ordered(case["runs"]):
            ok = good(rs)
            comms = ok[-1]["tree_comms"] if ok else {}
            rows.append([f"`{peer}`", mmm([r["init_rss_kb"] for r in ok], 0)[0],
                         mmm([r["init_pss_kb"] for r in ok], 0)[0],
                         mmm([r["tree_rss_kb"] for r in ok], 0)[0], mmm([r["tree_pss_kb"] for r in ok], 0)[0],
                         ", ".join(f"{k}×{v}" for k, v in sorted(comms.items())), errors(rs)])
        out += table(["init", "init RSS", "init PSS", "tree RSS sum", "tree PSS sum", "tree processes", "errors"], rows)
    return out + skipped_note(res)


def section_startstop(res):
    if not res:
        return []
    k = res["params"]["services"]
    out = ["## 3. Start-up and shutdown latency", "",
           f"{k} services each print one `ready` line, then wait in a shell that traps TERM (kills its "
           "sleep, prints `bye`, exits 0). `start` = launch of the init until all `ready` lines are in its "
           f"stdout; then, after {res['params']['settle_s']:g} s, SIGTERM to the init: `stop` = until the init "
           "(and with it the whole namespace) is gone; `bye` = services that logged their clean exit before "
           f"the end; {res['params']['reps']} run(s) each.", ""]
    runs = res["runs"]
    base = runs.get("baseline", [])
    base_start = median([r.get("start_s") for r in base])
    base_stop = median([r.get("stop_s") for r in base])
    rows = []
    for peer, rs in ordered(runs):
        st, smed = mmm([r.get("start_s") for r in rs])
        sp, pmed = mmm([r.get("stop_s") for r in rs])
        rcs = sorted({r["rc"] for r in rs if r.get("rc") is not None})
        byes = sorted({r["bye"] for r in rs if r.get("bye") is not None})
        rows.append([f"`{peer}`", st, ratio(smed, base_start), sp, ratio(pmed, base_stop), ", ".join(rcs) or "-",
                     ("/".join(str(b) for b in byes) + f" of {k}") if byes else "-", errors(rs)])
    out += table(["init", "start s", "start / baseline", "stop s", "stop / baseline", "exit code", "bye",
                  "errors"], rows)
    return out + skipped_note(res)


def section_reap(res):
    if not res:
        return []
    prm = res["params"]
    out = ["## 4. Reap storm", "",
           f"One service makes {prm['n']:,} orphaned grandchildren (double fork, {prm['storm']} storm "
           "program, the grandchild exits at once) as fast as it can, then sleeps. The harness samples the "
           "namespace's /proc every ~2 ms plus scan time. `storm` = the storm's own duration (an init "
           "that competes for CPU slows it); `peak` = most zombies in one sample; `drain` = end of storm "
           f"until a sample shows no zombie; init CPU over the whole run; {prm['reps']} run(s) each. "
           "(The baseline reaps nothing: not run.)", ""]
    rows = []
    for peer, rs in ordered(res["runs"]):
        rows.append([f"`{peer}`", mmm([r.get("storm_s") for r in rs])[0],
                     mmm([r.get("peak") for r in rs if r.get("storm_s") is not None], 0)[0],
                     mmm([r.get("drain_s") for r in rs])[0], mmm([r.get("total_s") for r in rs])[0],
                     mmm([r.get("cpu_init_s") for r in rs], 2)[0],
                     mmm([r.get("cpu_init_us_per_orphan") for r in rs], 1)[0], errors(rs)])
    out += table(["init", "storm s", "peak zombies", "drain s", "storm start → 0 zombies s", "init CPU s",
                  "init CPU µs/orphan", "errors"], rows)
    return out + skipped_note(res)


def section_size(res):
    if not res:
        return []
    out = ["## 5. Binary size", "", "Main binary, then the per-service helpers the setup needs. Bytes on disk; "
           "`stripped` = the size of a stripped copy when the binary itself is not stripped.", ""]
    rows = []
    for peer, e in ordered(res["peers"]):
        m = e["main"]
        kind = ("dynamic" if m.get("dynamic") else "static") + (", stripped" if m.get("stripped") else ", not stripped")
        if m.get("stripped_bytes"):
            kind += f" ({m['stripped_bytes']:,} stripped)"
        libs = m.get("libs") or []
        parts = ", ".join(f"{os.path.basename(p['path'])} {p['bytes']:,}" for p in e["parts"])
        libtxt = ", ".join(f"{lib['name']} {lib['bytes']:,}" for lib in libs)
        rows.append([f"`{peer}`", f"`{m['path']}`", f"{m['bytes']:,}", kind, parts or "-", libtxt or "-"])
    out += table(["init", "main binary", "bytes", "linking", "helpers (bytes)", "extra shared libs (bytes)"], rows)
    return out + skipped_note(res)


def section_scrape(res):
    if not res:
        return []
    prm = res["params"]
    out = ["## 6. HTTP requests (contract §15)", "",
           f"dinit (JSON mode) with {prm['services']} idle services and `DINIT_HTTP_LISTEN`; the harness "
           f"sends {prm['scrapes']:,} requests in a row to each path, one connection each. `dinit CPU` = "
           "dinit's time on the CPU per request, from /proc/<pid>/schedstat (ns), less its idle rate; "
           "`ticks` = the same from utime+stime (10 ms ticks: coarse); the client's wall time per request "
           "(Python, connect to close); dinit's VmRSS before and after all requests; "
           f"{prm['reps']} run(s).", ""]
    rows = []
    for peer, rs in ordered(res["runs"]):
        ok = good(rs)
        for path in prm["paths"]:
            rows.append([f"`{peer}`", f"`{path}`",
                         mmm([r[path]["cpu_us"] for r in ok], 1)[0],
                         mmm([r[path]["ticks_us"] for r in ok], 1)[0],
                         mmm([r[path]["ms_median"] for r in ok], 2)[0],
                         mmm([r[path]["ms_p99"] for r in ok], 2)[0],
                         mmm([r[path]["bytes"] for r in ok], 0)[0],
                         mmm([r.get("rss_before_kb") for r in ok], 0)[0] + " → "
                         + mmm([r.get("rss_after_kb") for r in ok], 0)[0],
                         errors(rs)])
    out += table(["init", "path", "dinit CPU µs/request", "ticks µs/request", "client ms median",
                  "client ms p99", "answer bytes", "dinit RSS kB", "errors"], rows)
    return out + skipped_note(res)


def http_note(res):
    """BENCH_HTTP: what the scrapers of the `-http` peers saw, over every run of a workload."""
    recs = [r for r in all_recs(res or {}) if "scrapes" in r and r.get("peer", "").endswith("-http")]
    if not recs:
        return []
    ok = sum(r["scrapes"] for r in recs)
    failed = sum(r.get("scrapes_failed", 0) for r in recs)
    ms = median([r.get("scrape_ms_median") for r in recs])
    return ["", f"`-http` peers: dinit listening, /metrics fetched every {B.SCRAPE_EVERY:g} s while each run "
                f"went on: {ok:,} scrapes answered, {failed:,} failed (refused before the listener was up or "
                f"after the run), median {fmt(ms, 2)} ms."]


def render(d):
    res = {name: load(d, name) for name in WORKLOADS}
    first = next((r for r in res.values() if r), None)
    parts = section_header(load(d, "run"), first)
    parts += section_overview(res["throughput"], res["idle_rss"], res["startstop"], res["reap"], res["size"])
    for name, fn in (("throughput", section_throughput), ("idle_rss", section_idle),
                     ("startstop", section_startstop), ("reap", section_reap), ("size", section_size),
                     ("scrape", section_scrape)):
        if res[name]:
            parts += fn(res[name]) + http_note(res[name]) + [""]
    return "\n".join(parts)


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: report.py RESULTS_DIR [OUT.md]")
    text = render(sys.argv[1])
    if len(sys.argv) > 2:
        with open(sys.argv[2], "w") as f:
            f.write(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
