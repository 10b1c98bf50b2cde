#!/usr/bin/env python3
"""Workload 1: log throughput, CPU per line, line integrity.

S services (BENCH_SERVICES, default "1,8") together write BENCH_LINES (default 1,000,000; quick
100,000) JSON lines of ~120 bytes, then sleep. The init's stdout goes to a file on tmpfs. Per run:
  wall      launch of the init -> the last service's last line is in the output file
  cpu       user+sys ticks of the init (ns PID 1) and of the whole supervision tree (PID 1 +
            supervisors + loggers), writers excluded, read from /proc just before the kill;
            also per line (µs of CPU per line written)
  lines/s, MB/s (of payload written by the services)
  integrity every output line must hold exactly one intact payload (valid JSON object after the
            peer's prefix if any, every field as written); per service no line missing,
            duplicated or reordered; where the peer adds the service name, it must be the right
            one. Any violation marks the run as failed (not intact), whatever its speed.
Writer modes (BENCH_MODES, default "bulk,line"): bulk = 64 KiB writes that split lines anywhere;
line = one write(2) per line.
"""

import json
import os
import re
import shutil
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import benchlib as B  # noqa: E402

EOS = "bench-eos"
TIMEOUT = float(B.knob("BENCH_TIMEOUT", 180))


def message(i, n):
    """The msg field of line i of n (the last one carries the end marker)."""
    if i == n - 1:
        return EOS
    return ("GET /api/v1/items/%d status=200 dur_ms=%d user=u%04d trace=%016x"
            % (i % 997, i % 89, i % 9973, (i * 2654435761) & 0xFFFFFFFFFFFFFFFF))


def gen_data(path, svc, n):
    """n lines for service `svc`, written to `path`. Returns the lines (bytes, with "\\n")."""
    lines = [b'{"level":"info","svc":"%s","i":%d,"msg":"%s"}\n' % (svc.encode(), i, message(i, n).encode())
             for i in range(n)]
    with open(path, "wb") as f:
        f.writelines(lines)
    return lines


KEY = re.compile(rb'"svc":"([^"]*)","i":([0-9]+),')
_suffixes = {}  # fields an init appended -> the service they name, or None if not a JSON object body


def appended_service(suffix):
    """The "service" named by `suffix`, the bytes an init appended after the writer's last member
    (`,"service":...}\n`); False if they do not close a valid JSON object. Cached: they repeat
    for every line with the same timestamp."""
    got = _suffixes.get(suffix, _suffixes)
    if got is _suffixes:
        try:
            extra = json.loads(b"{" + suffix[1:])
            got = extra.get("service") if isinstance(extra, dict) else False
        except ValueError:
            got = False
        if len(_suffixes) > 100_000:
            _suffixes.clear()
        _suffixes[suffix] = got
    return got


def intact_payload(payload, originals, per_svc, json_kind):
    """(svc, i, service name the init added or None) if `payload` (the line from its first "{")
    is an intact copy of a line a writer wrote, else None.
    Text peers must pass the line's bytes unchanged. JSON peers may append fields after the
    writer's last member (checked byte for byte up to there, then the whole must parse), or
    rewrite the object, which is then parsed and compared field by field (slower)."""
    m = KEY.search(payload)
    if m:
        svc, i = m.group(1).decode(errors="replace"), int(m.group(2))
        lines = originals.get(svc)
        if lines is not None and i < per_svc:
            want = lines[i]
            if payload == want:
                return svc, i, None
            head = want[:-2]  # without the closing "}\n"
            if json_kind and payload.startswith(head) and payload[len(head):len(head) + 1] == b",":
                named = appended_service(payload[len(head):])
                if named is not False:
                    return svc, i, named
    if not json_kind:
        return None
    try:
        d = json.loads(payload)
        svc, i = d["svc"], d["i"]
        if (svc in originals and type(i) is int and 0 <= i < per_svc and d["msg"] == message(i, per_svc)
                and d["level"] == "info"):
            return svc, i, d.get("service")
    except (ValueError, KeyError, TypeError):
        pass
    return None


def verify(out_path, originals, metadata_kind):
    """Read the whole output: every line must be one intact payload, each exactly once and in
    order per service, attributed to the right service where the peer names services.
    originals: {service: [lines it wrote]}."""
    names = list(originals)
    per_svc = len(originals[names[0]])
    json_kind = metadata_kind == "json"
    seen = {n: bytearray(per_svc) for n in names}
    last = {n: -1 for n in names}
    others = {n: [o.encode() for o in names if o != n] for n in names}
    res = {"lines": 0, "corrupt": 0, "dup": 0, "reordered": 0, "misattributed": 0,
           "with_metadata": 0, "corrupt_examples": []}

    def bad(line, why):
        res["corrupt"] += 1
        if len(res["corrupt_examples"]) < 3:
            res["corrupt_examples"].append(f"{why}: " + line[:160].decode(errors="replace"))

    with open(out_path, "rb") as f:
        for line in f:
            res["lines"] += 1
            if not line.endswith(b"\n"):
                bad(line, "no newline")
                continue
            idx = line.find(b"{")
            if idx < 0:
                bad(line, "no JSON object")
                continue
            got = intact_payload(line[idx:], originals, per_svc, json_kind)
            if got is None:
                bad(line, "not an intact payload")
                continue
            svc, i, named = got
            if seen[svc][i]:
                res["dup"] += 1
            seen[svc][i] = 1
            if i < last[svc]:
                res["reordered"] += 1
            last[svc] = i
            if json_kind:
                if named is not None:
                    if named == svc:
                        res["with_metadata"] += 1
                    else:
                        res["misattributed"] += 1
            else:
                prefix = line[:idx]
                if prefix.strip():
                    if svc.encode() in prefix:
                        res["with_metadata"] += 1
                    elif any(o in prefix for o in others[svc]):
                        res["misattributed"] += 1
    res["missing"] = sum(per_svc - sum(s) for s in seen.values())
    res["ok"] = not (res["missing"] or res["corrupt"] or res["dup"] or res["reordered"] or res["misattributed"])
    return res


def run_one(peer, work, names, data_files, originals, mode, per_svc, total_in_bytes):
    base = os.path.join(work, f"run-{peer.name}")
    shutil.rmtree(base, ignore_errors=True)
    svc_root = os.path.join(base, "service")
    scripts = {}
    for n in names:
        scripts[n] = (f"#!/bin/sh\nexec {B.PYTHON} {os.path.join(B.HERE, 'writer.py')} "
                      f"{data_files[n]} {mode} {os.path.join(base, n + '.done')}\n")
    B.make_services(svc_root, scripts)
    peer.prepare(svc_root, names)
    out, err = os.path.join(base, "stdout"), os.path.join(base, "stderr")
    eos = EOS.encode()
    try:
        r = B.NsRun(peer, svc_root, names, out, err)
    except B.StartError as e:
        rec = B.start_error(peer, err, e)
        rec["verify"] = verify(out, originals, "json" if peer.json else "text")
        shutil.rmtree(base, ignore_errors=True)
        return rec
    rec = {"peer": peer.name, "load1": r.load1}
    try:
        fd = os.open(out, os.O_RDONLY)
        found, tail, deadline, t_first = 0, b"", r.t_launch + TIMEOUT, None
        while found < len(names):
            chunk = os.read(fd, 8 << 20)
            if chunk:
                if t_first is None:
                    t_first = time.monotonic()
                buf = tail + chunk
                found += buf.count(eos)
                tail = buf[-(len(eos) - 1):]  # too short to hold a whole marker: no double count
                continue
            if r.proc.poll() is not None:
                rec["error"] = r.exited("init exited early")
                break
            if time.monotonic() > deadline:
                rec["error"] = f"timeout after {TIMEOUT:.0f}s ({found}/{len(names)} services complete)"
                break
            time.sleep(0.002)
        t_done = time.monotonic()
        os.close(fd)
        procs = r.processes()
        rec["wall_s"] = t_done - r.t_launch
        rec["first_line_s"] = (t_first - r.t_launch) if t_first else None
        rec["stream_s"] = (t_done - t_first) if t_first else None
        tick = 1.0 / B.CLK_TCK
        for role in ("init", "tree", "workload"):
            ps = [p for p in procs if p[3] == role or (role == "tree" and p[3] == "init")]
            rec[f"cpu_{role}_user_s"] = sum(p[4] for p in ps) * tick
            rec[f"cpu_{role}_sys_s"] = sum(p[5] for p in ps) * tick
            rec[f"cpu_{role}_s"] = rec[f"cpu_{role}_user_s"] + rec[f"cpu_{role}_sys_s"]
        lines = per_svc * len(names)
        rec["cpu_init_us_per_line"] = rec["cpu_init_s"] / lines * 1e6
        rec["cpu_tree_us_per_line"] = rec["cpu_tree_s"] / lines * 1e6
        rec["tree_procs"] = sorted(p[1] for p in procs if p[3] in ("init", "tree"))
        dones = []
        for n in names:
            try:
                with open(os.path.join(base, n + ".done")) as f:
                    dones.append(float(f.read()))
            except (OSError, ValueError):
                pass
        if len(dones) == len(names):
            rec["lag_after_writers_s"] = t_done - max(dones)
    finally:
        r.kill()
    if "error" not in rec:
        rec["lines_per_s"] = per_svc * len(names) / rec["wall_s"]
        rec["mb_per_s"] = total_in_bytes / rec["wall_s"] / 1e6
    rec["out_bytes"] = os.path.getsize(out)
    rec.update(r.http_stats())  # BENCH_HTTP: what the scraper saw
    rec["err_lines"], rec["err_head"] = B.stderr_summary(err)
    rec["verify"] = verify(out, originals, "json" if peer.json else "text")
    rec["overhead_bytes_per_line"] = (rec["out_bytes"] - total_in_bytes) / max(1, per_svc * len(names))
    shutil.rmtree(base, ignore_errors=True)
    return rec


def main():
    out_dir = sys.argv[1]
    total = int(B.knob("BENCH_LINES", 1_000_000, 100_000))
    svc_counts = B.int_list("BENCH_SERVICES", "1,8")
    modes = [m for m in B.knob("BENCH_MODES", "bulk,line").split(",") if m]
    peers, skipped = B.selected_peers()
    work = B.tmp_root()
    results = {"params": {"lines": total, "services": svc_counts, "modes": modes, "reps": B.reps()},
               "skipped": skipped, "cases": [], "peer_metadata": {p.name: p.metadata for p in peers}}
    try:
        for S in svc_counts:
            per = total // S
            names = [f"s{i:02d}" for i in range(S)]
            data_files, originals = {}, {}
            for n in names:
                data_files[n] = os.path.join(work, f"data-{S}-{n}.jsonl")
                originals[n] = gen_data(data_files[n], n, per)
            in_bytes = sum(len(line) for lines in originals.values() for line in lines)
            for mode in modes:
                case_peers = [p for p in peers if p.multi or S == 1]
                case = {"services": S, "mode": mode, "lines": per * S, "in_bytes": in_bytes, "runs": {}}
                results["cases"].append(case)
                for rep in range(B.reps()):
                    for p in case_peers:
                        B.log(f"[throughput S={S} {mode}] rep {rep + 1}/{B.reps()} {p.name} ...")
                        rec = run_one(p, work, names, data_files, originals, mode, per, in_bytes)
                        v = rec["verify"]
                        B.log(f"    wall={rec.get('wall_s', float('nan')):.3f}s "
                              f"init_cpu={rec.get('cpu_init_s', float('nan')):.2f}s "
                              f"tree_cpu={rec.get('cpu_tree_s', float('nan')):.2f}s intact={v['ok']} "
                              f"{rec.get('error', '')}")
                        case["runs"].setdefault(p.name, []).append(rec)
                    B.save(out_dir, "throughput", results, quiet=True)
            for f in data_files.values():
                os.unlink(f)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    B.save(out_dir, "throughput", results)


if __name__ == "__main__":
    main()
