#!/usr/bin/env python3
"""Soak run (issue "Reliability", point 4): dinit as PID 1 for minutes under churn.

What runs (dinit as PID 1 of a fresh PID namespace, `unshare --pid --fork --mount-proc`):

- SOAK_SERVICES (50) "churn" services, Python: each run logs numbered text lines at
  SOAK_RATE (10) lines/s and exits 115 after a random SOAK_LIFE_MIN..SOAK_LIFE_MAX (5..60) s.
  A service that exits 115 no longer runs, so the driver starts it again over the control
  socket (`{"cmd":"up"}`, what `dinit up` sends) once status shows it disabled: the churn (exits,
  reaps, pipes closed and opened, loggers of nothing) goes on for the whole run. Numbering goes on
  across runs (the next number is kept in a scratch file), so each service has one sequence.
- SOAK_FOREVER (3) "forever" services log JSON objects `{"seq": n, "pad": "..."}` at
  SOAK_FOREVER_RATE (100) lines/s until SIGTERM.
- Every line carries a random-length padding (0..200 bytes); one line in 500 is 100,000 bytes
  long (dinit cuts it into two records; the checker joins them).

Checked (exit 1 when any check fails):

- zero lost lines: per service, the records on dinit's stdout, read as they stream, carry
  exactly the numbers 0, 1, 2, ... up to the count the service itself wrote (kept in its scratch
  file, written on exit 115 and on SIGTERM): nothing lost, duplicated, reordered or damaged;
- flat memory: dinit's VmRSS is sampled every second; the maximum over the last window
  (SOAK_WINDOW, 60 s; a third of the run when shorter) must not exceed the maximum over the
  first window by more than SOAK_MARGIN_KIB (256 KiB);
- SIGTERM at the end: dinit exits 0, and it wrote no warning or error line.

Usage (as root, from the repository root):

    cargo build --release
    python3 bench/soak.py                 # 300 s (SOAK_SECONDS)
    SOAK_QUICK=1 python3 bench/soak.py    # 60 s, 20 services living 3..15 s, 20 s windows
    DINIT_BIN=/path/to/dinit SOAK_SECONDS=900 python3 bench/soak.py

Knobs (environment): SOAK_SECONDS, SOAK_SERVICES, SOAK_FOREVER, SOAK_RATE, SOAK_FOREVER_RATE,
SOAK_LIFE_MIN, SOAK_LIFE_MAX, SOAK_WINDOW, SOAK_MARGIN_KIB, SOAK_LONG_EVERY (0: no long lines),
SOAK_RESTART (0: a service that exited 115 stays down), SOAK_DINIT_ENV ("K=V K=V": more
variables for dinit, e.g. GLIBC_TUNABLES=glibc.malloc.mmap_threshold=65536), SOAK_JSON.

Prints progress every 30 s on stderr and a summary at the end; writes the figures as JSON to
SOAK_JSON when set. Nothing outlives the run: the namespace is SIGKILLed in any case.
"""

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = os.environ.get("SOAK_QUICK", "") not in ("", "0")


def knob(name, default, quick):
    v = os.environ.get(name)
    if v:
        return type(default)(v)
    return quick if QUICK else default


SECONDS = knob("SOAK_SECONDS", 300.0, 60.0)
SERVICES = knob("SOAK_SERVICES", 50, 20)
FOREVER = knob("SOAK_FOREVER", 3, 3)
RATE = knob("SOAK_RATE", 10.0, 10.0)
FOREVER_RATE = knob("SOAK_FOREVER_RATE", 100.0, 100.0)
LIFE_MIN = knob("SOAK_LIFE_MIN", 5.0, 3.0)
LIFE_MAX = knob("SOAK_LIFE_MAX", 60.0, 15.0)
WINDOW = knob("SOAK_WINDOW", 60.0, 20.0)
MARGIN_KIB = knob("SOAK_MARGIN_KIB", 256, 256)
LONG_EVERY = knob("SOAK_LONG_EVERY", 500, 500)  # 0: no long lines
LONG_LEN = 100_000
RESTART = knob("SOAK_RESTART", 1, 1)  # 0: a service that exited 115 stays down

# A service's `run`. SEQ: where its numbering goes on; the loop stops on SIGTERM (flag) or at the
# end of its life, then writes how many lines it wrote in all (the checker's reference).
WRITER = r'''#!/usr/bin/python3
import json, os, random, signal, sys, time
S = %(scratch)r
NAME = os.path.basename(os.getcwd())
FOREVER = %(forever)r
RATE = %(rate)r
state = os.path.join(S, NAME + '.next')
try:
    n = int(open(state).read())
except (OSError, ValueError):
    n = 0
stop = False
def term(s, f):
    global stop
    stop = True
signal.signal(signal.SIGTERM, term)
life = float('inf') if FOREVER else random.uniform(%(life_min)r, %(life_max)r)
end = time.monotonic() + life
out = sys.stdout
while not stop and time.monotonic() < end:
    pad = 'p' * (%(long_len)d if %(long_every)d and n %% %(long_every)d == %(long_every)d - 1 else random.randrange(200))
    if FOREVER:
        out.write(json.dumps({'seq': n, 'pad': pad}) + '\n')
    else:
        out.write('%%s %%d %%s\n' %% (NAME, n, pad))
    out.flush()
    n += 1
    time.sleep(1.0 / RATE)
open(state + '.tmp', 'w').write('%%d\n' %% n)
os.rename(state + '.tmp', state)
sys.exit(0 if stop else 115)
'''


def log(msg):
    print(f"soak [{time.monotonic() - T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


T0 = time.monotonic()


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def status_kib(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def cpu_s(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
        fields = s[s.rfind(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return None


class Control:
    """One request per connection on dinit's control socket (docs/control.md, version 1)."""

    def __init__(self, path):
        self.path = path

    def ask(self, req, timeout=10.0):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self.path)
            s.sendall((json.dumps(req) + "\n").encode())
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        return json.loads(buf)


def is_long(n):
    return LONG_EVERY and n % LONG_EVERY == LONG_EVERY - 1


class Checker:
    """Reads dinit's stdout as it streams; per service the numbers must be 0, 1, 2, ..."""

    def __init__(self):
        self.next = {}
        self.errors = []
        self.records = 0
        self.bytes = 0
        self.partial = {}  # service -> text of a long line so far (it comes in pieces)
        self.lock = threading.Lock()

    def error(self, msg):
        if len(self.errors) < 20:
            self.errors.append(msg)

    @staticmethod
    def parse(svc, text):
        """(number, padding) of a whole line, or None."""
        if text.startswith("{"):
            try:
                obj = json.loads(text)
            except ValueError:
                return None
            return (obj["seq"], obj["pad"]) if isinstance(obj, dict) and "seq" in obj else None
        parts = text.split(" ", 2)
        if len(parts) == 3 and parts[0] == svc and parts[1].isdigit():
            return int(parts[1]), parts[2]
        return None

    def line(self, raw):
        self.records += 1
        self.bytes += len(raw) + 1
        try:
            rec = json.loads(raw)
        except ValueError as e:
            self.error(f"invalid JSON record ({e}): {raw[:200]!r}")
            return
        svc = rec.get("service")
        if not isinstance(svc, str) or rec.get("stage") != "run":
            self.error(f"unexpected record: {raw[:200]!r}")
            return
        if "seq" in rec:  # a forever service's JSON object, enriched
            n, pad = rec["seq"], rec.get("pad", "")
        else:
            # a text line, or a piece of a long line (a long JSON object too comes in pieces,
            # each wrapped as `msg`): join the pieces until the line parses and is complete
            text = self.partial.pop(svc, "") + rec.get("msg", "")
            parsed = self.parse(svc, text)
            long_line = parsed is not None and is_long(parsed[0])
            if parsed is None or (long_line and len(parsed[1]) < LONG_LEN):
                if len(text) <= LONG_LEN + 200:
                    self.partial[svc] = text
                else:
                    self.error(f"{svc}: unreadable line {text[:120]!r}")
                return
            n, pad = parsed
        with self.lock:
            want = self.next.get(svc, 0)
            if n != want:
                self.error(f"{svc}: got line {n}, expected {want}")
            if set(pad) - {"p"} or (is_long(n) and len(pad) != LONG_LEN):
                self.error(f"{svc}: line {n} damaged (padding of {len(pad)} bytes)")
            self.next[svc] = n + 1

    def run(self, stream):
        rest = b""
        while True:
            chunk = stream.read1(1 << 16)
            if not chunk:
                break
            rest += chunk
            lines = rest.split(b"\n")
            rest = lines.pop()
            for raw in lines:
                self.line(raw)
        if rest:
            self.error(f"stdout ended inside a line: {rest[:100]!r}")


def main():
    if os.geteuid() != 0:
        sys.exit("soak: run as root (dinit runs as PID 1 of a new PID namespace)")
    dinit = os.path.abspath(os.environ.get("DINIT_BIN") or os.path.join(REPO, "target", "release", "dinit"))
    if not os.access(dinit, os.X_OK):
        sys.exit(f"soak: {dinit} not found: cargo build --release, or set DINIT_BIN")
    version = subprocess.run([dinit, "--version"], capture_output=True, text=True).stdout.strip()
    tmp = tempfile.mkdtemp(prefix="dinit-soak-")
    svcdir, scratch = os.path.join(tmp, "service"), os.path.join(tmp, "scratch")
    os.makedirs(scratch)
    names = [f"churn{i:02d}" for i in range(SERVICES)] + [f"forever{i}" for i in range(FOREVER)]
    for name in names:
        forever = name.startswith("forever")
        os.makedirs(os.path.join(svcdir, name))
        run = os.path.join(svcdir, name, "run")
        with open(run, "w") as f:
            f.write(WRITER % {
                "scratch": scratch, "forever": forever,
                "rate": FOREVER_RATE if forever else RATE,
                "life_min": LIFE_MIN, "life_max": LIFE_MAX,
                "long_len": LONG_LEN, "long_every": LONG_EVERY,
            })
        os.chmod(run, 0o755)
    sock = os.path.join(tmp, "control.sock")
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "DINIT_DIR": svcdir,
        "DINIT_CONTROL_SOCKET": sock,
        "DINIT_LOG_LEVEL": "warn",
    }
    # extra variables for dinit (and so its services), e.g. glibc malloc tunables
    for kv in os.environ.get("SOAK_DINIT_ENV", "").split():
        k, _, v = kv.partition("=")
        env[k] = v
    err_path = os.path.join(tmp, "stderr")
    errf = open(err_path, "wb")
    proc = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", dinit], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errf,
                            cwd=tmp)
    init = 0
    result = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "dinit": version, "binary": dinit,
              "seconds": SECONDS, "services": SERVICES, "forever": FOREVER, "rate": RATE,
              "forever_rate": FOREVER_RATE, "life": [LIFE_MIN, LIFE_MAX], "window_s": WINDOW,
              "margin_kib": MARGIN_KIB, "quick": QUICK}
    ok = False
    try:
        deadline = time.monotonic() + 10
        while not init and time.monotonic() < deadline:
            kids = children(proc.pid)
            init = kids[0] if kids else 0
            time.sleep(0.01)
        if not init:
            sys.exit("soak: no namespace init appeared")
        checker = Checker()
        reader = threading.Thread(target=checker.run, args=(proc.stdout,), daemon=True)
        reader.start()
        ctl = Control(sock)
        deadline = time.monotonic() + 10
        while not os.path.exists(sock):
            if time.monotonic() > deadline:
                sys.exit("soak: the control socket never appeared")
            time.sleep(0.01)

        window = min(WINDOW, SECONDS / 3)
        samples = []  # (t, VmRSS KiB)
        ups = 0
        start = time.monotonic()
        last_sample = start - 1
        last_progress = start
        cpu0 = cpu_s(init)
        while time.monotonic() - start < SECONDS:
            if proc.poll() is not None:
                raise SystemExit(f"soak: dinit exited early with {proc.returncode}")
            now = time.monotonic()
            if now - last_sample >= 1:
                last_sample = now
                rss = status_kib(init, "VmRSS")
                samples.append((now - start, rss))
            st = ctl.ask({"cmd": "status"})
            down = [s["name"] for s in st.get("services", [])
                    if s["state"] == "down" and s.get("down_reason") == "disabled"]
            if down and RESTART:
                r = ctl.ask({"cmd": "up", "services": down})
                if not r.get("ok"):
                    raise SystemExit(f"soak: up {down} failed: {r}")
                ups += len(down)
            if now - last_progress >= 30:
                last_progress = now
                running = sum(1 for s in st.get("services", []) if s["state"] == "running")
                log(f"{checker.records} records, {ups} restarts, {running} running, "
                    f"VmRSS {samples[-1][1]} KiB")
            time.sleep(0.2)
        elapsed = time.monotonic() - start
        cpu1 = cpu_s(init)
        hwm = status_kib(init, "VmHWM")
        t_stop = time.monotonic()
        os.kill(init, signal.SIGTERM)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            raise SystemExit("soak: dinit did not exit within 60 s of SIGTERM")
        stop_s = time.monotonic() - t_stop
        reader.join(timeout=30)

        # the reference: how many lines each service wrote in all
        lost = {}
        for name in names:
            try:
                wrote = int(open(os.path.join(scratch, name + ".next")).read())
            except (OSError, ValueError):
                wrote = None
            got = checker.next.get(name, 0)
            if wrote is None or got != wrote:
                lost[name] = {"wrote": wrote, "received": got}
        for svc, text in checker.partial.items():
            checker.error(f"{svc}: an unfinished long line at the end ({len(text)} bytes)")
        first = max(r for t, r in samples if t < window)
        last = max(r for t, r in samples if t >= elapsed - window)
        with open(err_path, "rb") as f:
            stderr = f.read().decode(errors="replace")
        complaints = [l for l in stderr.splitlines() if " dinit: warning: " in l or " dinit: error: " in l]
        result.update({
            "elapsed_s": round(elapsed, 1), "records": checker.records, "bytes": checker.bytes,
            "lines": sum(checker.next.values()), "restarts": ups,
            "lines_per_s": round(sum(checker.next.values()) / elapsed),
            "rss_first_window_max_kib": first, "rss_last_window_max_kib": last,
            "rss_min_kib": min(r for _, r in samples), "rss_max_kib": max(r for _, r in samples),
            "vmhwm_kib": hwm, "dinit_cpu_s": round(cpu1 - cpu0, 2),
            "dinit_cpu_pct": round((cpu1 - cpu0) / elapsed * 100, 1),
            "exit_code": code, "stop_s": round(stop_s, 3), "lost": lost,
            "errors": checker.errors, "complaints": complaints[:10],
            "rss_samples": [r for _, r in samples],
        })
        ok = (code == 0 and not lost and not checker.errors and not complaints
              and last <= first + MARGIN_KIB)
        result["ok"] = ok
    finally:
        for pid in (init, proc.pid):
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        try:
            proc.wait(timeout=10)
        except Exception:
            pass
        errf.close()
        shutil.rmtree(tmp, ignore_errors=True)

    samples_str = result.pop("rss_samples")
    print(f"soak: {result['date']}, {result['dinit']}, {result['elapsed_s']} s, "
          f"{SERVICES} churn services ({RATE:g} lines/s, exit 115 after {LIFE_MIN:g}-{LIFE_MAX:g} s, "
          f"started again) + {FOREVER} forever ({FOREVER_RATE:g} lines/s)")
    print(f"soak: {result['lines']} lines ({result['records']} records, {result['bytes'] / 1e6:.1f} MB, "
          f"{result['lines_per_s']} lines/s), {result['restarts']} restarts after exit 115; "
          f"lost or damaged: {len(result['lost'])} services, {len(result['errors'])} errors")
    print(f"soak: dinit VmRSS first {window:g} s max {result['rss_first_window_max_kib']} KiB, "
          f"last {window:g} s max {result['rss_last_window_max_kib']} KiB "
          f"(min {result['rss_min_kib']}, max {result['rss_max_kib']}, VmHWM {result['vmhwm_kib']} KiB); "
          f"dinit CPU {result['dinit_cpu_s']} s ({result['dinit_cpu_pct']}%)")
    print(f"soak: SIGTERM -> exit {result['exit_code']} after {result['stop_s']} s; "
          f"warnings/errors from dinit: {len(result['complaints'])}")
    for e in result["errors"][:10]:
        print(f"soak: error: {e}")
    for name, v in list(result["lost"].items())[:10]:
        print(f"soak: lost: {name}: {v}")
    for c in result["complaints"]:
        print(f"soak: dinit said: {c}")
    print(f"soak: {'PASS' if result['ok'] else 'FAIL'}")
    if os.environ.get("SOAK_JSON"):
        result["rss_samples"] = samples_str
        with open(os.environ["SOAK_JSON"], "w") as f:
            json.dump(result, f, indent=1)
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
