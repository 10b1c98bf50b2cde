"""Shared machinery of dinit's benchmarks: peers, PID-namespace runs, /proc sampling, knobs, stats.

Every init runs as PID 1 of a fresh PID namespace (`unshare --pid --fork --mount-proc`).
The harness stays on the host side and looks into the namespace through
/proc/<host pid of ns init>/root/proc (the namespace's own procfs, mounted by --mount-proc),
so it sees namespace PIDs, VmRSS, CPU ticks and zombie states without running anything inside.

Adapted from the shared peers harness (bench-peers); see bench/README.md for what changed.
"""

import atexit
import json
import os
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH_DIR = os.path.dirname(HERE)
CLK_TCK = os.sysconf("SC_CLK_TCK")
# The interpreter running the harness runs the Python services too (writer.py, storm.py): no PATH
# lookup inside the namespace, no version-manager shim in between.
PYTHON = sys.executable or "python3"

# Processes that belong to the workload (the "services"), not to the supervision tree.
# PID 1 of the namespace is always counted as the init, whatever its name.
WORKLOAD_COMMS = {"sleep", "sh", "bench-storm", "dash", "bash"}

QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
# BENCH_HTTP=1: the peers `dinit-json-http` and `dinit-text-http` run too: dinit with its HTTP
# listener on (DINIT_HTTP_LISTEN on a free port of 127.0.0.1) and the harness fetching /metrics
# from it every second while the workload runs (the Prometheus scrape of a real deployment), to
# compare with `dinit-json`/`dinit-text` in the same run.
HTTP = os.environ.get("BENCH_HTTP", "") not in ("", "0")
SCRAPE_EVERY = float(os.environ.get("BENCH_HTTP_EVERY", "").strip() or 1.0)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def which(name):
    return shutil.which(name)


def knob(name, default, quick=None):
    """Environment knob `name` (a string), else the quick-mode default under BENCH_QUICK=1, else
    `default`. Explicit variables always win over BENCH_QUICK."""
    v = os.environ.get(name, "").strip()
    if v:
        return v
    return str(quick) if QUICK and quick is not None else str(default)


def int_list(name, default, quick=None):
    return [int(x) for x in knob(name, default, quick).split(",") if x.strip()]


def reps():
    return int(knob("BENCH_REPS", 3, 1))


def is_workload(comm):
    return comm in WORKLOAD_COMMS or comm.startswith("python")


def tmp_root():
    """A scratch folder on tmpfs when possible, so output files never wait on disk writeback."""
    base = os.environ.get("BENCH_TMP")
    if not base:
        base = "/dev/shm" if os.path.isdir("/dev/shm") and shutil.disk_usage("/dev/shm").free > (3 << 30) else "/tmp"
    return tempfile.mkdtemp(prefix="dinit-bench-", dir=base)


def write_exec(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o755)


# --------------------------------------------------------------------------- peers

REFERENCE = "bench/RESULTS-peers.md has its figures from a reference run"


class Peer:
    """One init under test. `multi` tells whether it supervises several services itself."""

    name = "?"
    multi = True
    # does it add a service name / timestamp to every line (the thing dinit must do)?
    metadata = "none"
    # JSON metadata (fields added to the object) rather than a text prefix
    json = False
    # the main binary (for the size table)
    binary = None
    # extra per-service binaries (supervisor, logger) for the size table
    parts = ()

    def available(self):
        return self.binary is not None and os.access(self.binary, os.X_OK)

    def why_unavailable(self):
        return f"{self.name} not found (bench/install-peers.sh installs it)"

    def prepare(self, svc_root, names):
        """Add whatever the peer needs next to the generic `<svc>/run` files."""

    def argv(self, svc_root, names):
        raise NotImplementedError

    def env(self, svc_root):
        return {}

    def cwd(self, svc_root, names):
        return svc_root


class Baseline(Peer):
    """No supervisor: a tiny sh launcher as PID 1 starts every `run` with stdout/stderr pointing
    straight at the output file (no pipe, no line handling, no metadata)."""

    name = "baseline"
    binary = "/bin/sh"
    metadata = "none (writes go straight to the file)"

    def argv(self, svc_root, names):
        return ["/bin/sh", os.path.join(HERE, "launcher.sh"), svc_root]


class Single(Peer):
    """tini / dumb-init / catatonit: one child, no piping (the child's stdout is the init's stdout)."""

    multi = False
    metadata = "none (child inherits stdout)"

    def __init__(self, name, binary, pre_args):
        self.name = name
        self.binary = binary
        self.pre = pre_args

    def argv(self, svc_root, names):
        assert len(names) == 1, "single-service init"
        return [self.binary, *self.pre, os.path.join(svc_root, names[0], "run")]

    def cwd(self, svc_root, names):
        return os.path.join(svc_root, names[0])


class Runit(Peer):
    """runsvdir over the service dirs; each service gets log/run so its stdout is piped through a
    logger whose own stdout is runsvdir's stdout (the output file).

    logger = 'svlogd': `svlogd -tt -b 65536 ./main 2>&1` with log/main/config `p<svc>: `, `-*`, `e*`
                       -> every line goes to stderr (= stdout) with a UTC timestamp and the service
                       name, nothing is kept in the log dir. The closest runit equivalent of dinit.
    logger = 'cat':    `exec cat` -> raw bytes, no metadata, no line handling (chunks of several
                       services can interleave mid-line).
    """

    def __init__(self, logger):
        self.logger = logger
        self.name = f"runit-{logger}"
        self.binary = which("runsvdir")
        self.parts = tuple(p for p in (which("runsv"), which("svlogd") if logger == "svlogd" else which("cat")) if p)
        self.metadata = "timestamp + name prefix (svlogd -tt, p<svc>:)" if logger == "svlogd" else "none (exec cat)"

    def available(self):
        return super().available() and which("runsv") and (self.logger != "svlogd" or which("svlogd"))

    def prepare(self, svc_root, names):
        for n in names:
            d = os.path.join(svc_root, n, "log")
            os.makedirs(d, exist_ok=True)
            if self.logger == "svlogd":
                os.makedirs(os.path.join(d, "main"), exist_ok=True)
                with open(os.path.join(d, "main", "config"), "w") as f:
                    f.write(f"p{n}: \n-*\ne*\n")
                write_exec(os.path.join(d, "run"), "#!/bin/sh\nexec svlogd -tt -b 65536 ./main 2>&1\n")
            else:
                write_exec(os.path.join(d, "run"), "#!/bin/sh\nexec cat\n")

    def argv(self, svc_root, names):
        # without -P (a new session per runsv), which none of these workloads can tell apart
        return [self.binary, svc_root]


class S6(Peer):
    """s6-svscan over the service dirs; log/run = `s6-log p<svc>: t 1` (TAI64N timestamp, service
    name prefix, action `1` = forward the line to s6-log's stdout = s6-svscan's stdout)."""

    name = "s6"
    metadata = "TAI64N timestamp + name prefix (s6-log p<svc>: t 1)"

    def __init__(self):
        self.binary = which("s6-svscan")
        self.parts = tuple(p for p in (which("s6-supervise"), which("s6-log")) if p)

    def available(self):
        return super().available() and which("s6-supervise") and which("s6-log")

    def prepare(self, svc_root, names):
        for n in names:
            d = os.path.join(svc_root, n, "log")
            os.makedirs(d, exist_ok=True)
            write_exec(os.path.join(d, "run"), f"#!/bin/sh\nexec s6-log p{n}: t 1\n")

    def argv(self, svc_root, names):
        return [self.binary, svc_root]


class Dinit(Peer):
    """dinit (this project's, DINIT_BIN) or tozd/dinit (Go, TOZD_DINIT_BIN): one process, every
    service's output multiplexed onto its own stdout. json=True: DINIT_JSON_STDOUT=1."""

    def __init__(self, name, binary, json_mode, why_missing, http=False):
        self.name = name
        self.binary = binary
        self.json = json_mode
        self.why = why_missing
        # listens on a free port and is scraped every SCRAPE_EVERY s while it runs (BENCH_HTTP)
        self.http = http
        self.metadata = ("JSON fields (service, stage, timestamp)" if json_mode
                         else "text prefix (timestamp name/stage:)")

    def why_unavailable(self):
        return self.why

    def env(self, svc_root):
        env = {"DINIT_DIR": svc_root, "DINIT_JSON_STDOUT": "1" if self.json else "0"}
        if self.http:
            env["DINIT_HTTP_LISTEN"] = f"127.0.0.1:{free_port()}"
        return env

    def argv(self, svc_root, names):
        return [self.binary]


class Horust(Peer):
    """Horust (Rust), one TOML per service: command = <svc>/run, stdout/stderr inherited."""

    name = "horust"
    metadata = "none (stdout = STDOUT)"

    def __init__(self, binary, why_missing):
        self.binary = binary
        self.why = why_missing

    def why_unavailable(self):
        return self.why

    def prepare(self, svc_root, names):
        d = os.path.join(os.path.dirname(svc_root), "horust-services")
        os.makedirs(d, exist_ok=True)
        os.makedirs(os.path.join(os.path.dirname(svc_root), "horust-uds"), exist_ok=True)
        for n in names:
            with open(os.path.join(d, f"{n}.toml"), "w") as f:
                f.write(
                    f'command = "{os.path.join(svc_root, n, "run")}"\n'
                    f'working-directory = "{os.path.join(svc_root, n)}"\n'
                    'stdout = "STDOUT"\nstderr = "STDERR"\n'
                    '[restart]\nstrategy = "never"\n'
                    '[termination]\nwait = "30s"\n'
                )

    def argv(self, svc_root, names):
        base = os.path.dirname(svc_root)
        return [self.binary, "--config-path", os.path.join(base, "horust.toml"),
                "--services-path", os.path.join(base, "horust-services"),
                "--uds-folder-path", os.path.join(base, "horust-uds")]


def _exec_or_none(path):
    return path if path and os.path.isfile(path) and os.access(path, os.X_OK) else None


def _why_missing(var, path, absent):
    if not path:
        return absent
    return f"{var}={path} is not an executable file"


def all_peers():
    """Every peer the harness knows, in the order the tables list them."""
    dinit = os.environ.get("DINIT_BIN")
    why_dinit = _why_missing("DINIT_BIN", dinit, "DINIT_BIN not set (bench/run.sh sets it)")
    tozd = os.environ.get("TOZD_DINIT_BIN")
    why_tozd = _why_missing("TOZD_DINIT_BIN", tozd, f"not shipped: set TOZD_DINIT_BIN to a binary; {REFERENCE}")
    horust = os.environ.get("HORUST_BIN")
    why_horust = _why_missing("HORUST_BIN", horust, f"not packaged: set HORUST_BIN to a build; {REFERENCE}")
    return [
        Baseline(),
        Dinit("dinit-json", _exec_or_none(dinit), True, why_dinit),
        Dinit("dinit-text", _exec_or_none(dinit), False, why_dinit),
        Dinit("dinit-json-http", _exec_or_none(dinit), True, why_dinit, http=True),
        Dinit("dinit-text-http", _exec_or_none(dinit), False, why_dinit, http=True),
        Dinit("tozd-dinit-json", _exec_or_none(tozd), True, why_tozd),
        Dinit("tozd-dinit-text", _exec_or_none(tozd), False, why_tozd),
        S6(),
        Runit("svlogd"),
        Runit("cat"),
        Horust(_exec_or_none(horust), why_horust),
        Single("tini", which("tini"), ["--"]),
        Single("dumb-init", which("dumb-init"), []),
        Single("catatonit", which("catatonit"), ["--"]),
    ]


def wanted_peers():
    """Names listed in BENCH_PEERS (comma list), or None for all. The baseline is always added:
    every ratio in the tables is relative to it."""
    want = [p.strip() for p in os.environ.get("BENCH_PEERS", "").split(",") if p.strip()]
    if not want:
        return None
    if "baseline" not in want:
        want.insert(0, "baseline")
    return want


def unknown_peers():
    want = wanted_peers() or []
    known = {p.name for p in all_peers()}
    return [w for w in want if w not in known]


def selected_peers():
    """Peers named in BENCH_PEERS, else all. Returns (usable, skipped{name: why})."""
    want = wanted_peers()
    usable, skipped = [], {}
    for p in all_peers():
        if want is not None and p.name not in want:
            continue
        if want is None and getattr(p, "http", False) and not HTTP:
            continue  # the listener's variants run with BENCH_HTTP=1 (or when named)
        if not p.available():
            skipped[p.name] = p.why_unavailable()
            continue
        usable.append(p)
    return usable, skipped


# --------------------------------------------------------------------------- HTTP (BENCH_HTTP)

def free_port():
    """A port of 127.0.0.1 nothing listens on now (the kernel's pick, released at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(addr, path, timeout=5.0):
    """GET `path` from dinit's listener (`host:port`): (status code, body bytes). One request per
    connection, read until dinit closes it, as dinit answers."""
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n".encode())
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    code = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else 0
    return code, body


class Scraper:
    """Fetches /metrics from `addr` every SCRAPE_EVERY seconds on a thread until stop(), as a
    Prometheus server scrapes a target; the first 0.1 s after the init started, so that a run
    shorter than a second (a throughput run) is scraped too. A refused connection (the listener
    not up yet, the init gone) counts as failed."""

    def __init__(self, addr):
        self.addr = addr
        self.ok = 0
        self.failed = 0
        self.ms = []
        self.bytes = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()

    def _loop(self):
        wait = min(0.1, SCRAPE_EVERY)
        while not self._stop.wait(wait):
            wait = SCRAPE_EVERY
            t0 = time.monotonic()
            try:
                code, body = http_get(self.addr, "/metrics")
            except OSError:
                code, body = 0, b""
            if code == 200:
                self.ok += 1
                self.ms.append((time.monotonic() - t0) * 1e3)
                self.bytes = len(body)
            else:
                self.failed += 1

    def stop(self):
        self._stop.set()
        self._t.join(timeout=10)

    def stats(self):
        return {"scrapes": self.ok, "scrapes_failed": self.failed,
                "scrape_ms_median": statistics.median(self.ms) if self.ms else None,
                "scrape_bytes": self.bytes}


# --------------------------------------------------------------------------- namespace runs

def make_services(svc_root, scripts):
    """scripts: {name: run-script text}. Creates <svc_root>/<name>/run (executable)."""
    os.makedirs(svc_root, exist_ok=True)
    for name, text in scripts.items():
        os.makedirs(os.path.join(svc_root, name), exist_ok=True)
        write_exec(os.path.join(svc_root, name, "run"), text)


def age_tree(root, seconds=60):
    """Backdate the mtimes of the service tree. runsvdir defers its first scan by a second when the
    scan dir's mtime is the current second (as it is for dirs made just now, unlike an image's
    /etc/service), which would charge runit a start-up delay no real container sees."""
    t = time.time() - seconds
    for dirpath, dirnames, filenames in os.walk(root):
        for n in filenames:
            os.utime(os.path.join(dirpath, n), (t, t), follow_symlinks=False)
        os.utime(dirpath, (t, t))


class StartError(Exception):
    """The init could not be started or exited before it could be measured."""


_live = set()  # NsRuns not yet killed: killed on exit, SIGTERM, SIGINT, so no namespace outlives us


def _kill_live():
    for r in list(_live):
        try:
            r.kill()
        except Exception as e:  # keep killing the others
            log(f"cleanup: {e}")


def _on_signal(signum, frame):
    # turn SIGTERM (from run.sh's cap, or the user) into an exit that runs every `finally`
    raise SystemExit(128 + signum)


atexit.register(_kill_live)
signal.signal(signal.SIGTERM, _on_signal)


class NsRun:
    """One init started as PID 1 of a new PID namespace, stdout/stderr to files.
    Raises StartError (after cleaning up) when the init cannot be found running."""

    def __init__(self, peer, svc_root, names, out_path, err_path, extra_env=None):
        self.peer = peer
        env = dict(os.environ)
        for k in list(env):
            if k.startswith(("DINIT_", "BENCH_", "TOZD_DINIT_", "HORUST_")):
                del env[k]
        env.update(peer.env(svc_root))
        env.update(extra_env or {})
        self.err_path = err_path
        self.out = open(out_path, "wb")
        self.err = open(err_path, "wb")
        argv = ["unshare", "--pid", "--fork", "--mount-proc", *peer.argv(svc_root, names)]
        age_tree(os.path.dirname(svc_root))
        with open("/proc/loadavg") as f:
            self.load1 = float(f.read().split()[0])  # to spot runs taken while the machine was busy
        self.init_pid = None  # host pid of the namespace's PID 1
        self.t_launch = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.err,
                                     cwd=peer.cwd(svc_root, names), env=env, start_new_session=True)
        _live.add(self)
        self.scraper = None
        try:
            self._find_init()
        except BaseException:
            self.kill()
            raise
        if getattr(peer, "http", False):
            self.scraper = Scraper(env["DINIT_HTTP_LISTEN"])

    def _find_init(self, timeout=10.0):
        u = self.proc.pid
        unshare_exe = os.path.realpath(which("unshare"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with open(f"/proc/{u}/task/{u}/children") as f:
                    kids = f.read().split()
            except OSError:
                kids = []
            if kids:
                c = int(kids[0])
                try:
                    exe = os.readlink(f"/proc/{c}/exe")
                except OSError:
                    exe = unshare_exe
                if exe != unshare_exe:  # exec'd into the init: --mount-proc is done
                    self.init_pid = c
                    self.procfs = f"/proc/{c}/root/proc"
                    return
            if self.proc.poll() is not None:
                raise StartError(f"init exited at once ({rc_text(self.proc.returncode)})")
            time.sleep(0.0005)
        raise StartError(f"init not running after {timeout:.0f}s")

    # -- /proc views (namespace pids)
    def pids(self):
        try:
            return [int(x) for x in os.listdir(self.procfs) if x.isdigit()]
        except OSError:
            return []

    def stat(self, pid):
        """(comm, state, ppid, utime, stime, cutime, cstime) in ticks, or None."""
        try:
            with open(f"{self.procfs}/{pid}/stat", "rb") as f:
                s = f.read()
        except OSError:
            return None
        lp, rp = s.index(b"("), s.rindex(b")")
        comm = s[lp + 1:rp].decode(errors="replace")
        f = s[rp + 2:].split()
        return comm, f[0].decode(), int(f[1]), int(f[11]), int(f[12]), int(f[13]), int(f[14])

    def status_kb(self, pid, key="VmRSS"):
        try:
            with open(f"{self.procfs}/{pid}/status") as f:
                for line in f:
                    if line.startswith(key + ":"):
                        return int(line.split()[1])
        except OSError:
            return None
        return 0

    def pss_kb(self, pid):
        try:
            with open(f"{self.procfs}/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def processes(self):
        """[(nspid, comm, state, role, utime, stime)] role in init/tree/workload."""
        res = []
        for pid in self.pids():
            st = self.stat(pid)
            if st is None:
                continue
            comm, state, ppid, ut, stt, cut, cst = st
            role = "init" if pid == 1 else ("workload" if is_workload(comm) else "tree")
            res.append((pid, comm, state, role, ut, stt))
        return res

    def exited(self, what):
        """Error text for an init that exited on its own: what, exit status, its first stderr line."""
        return f"{what} ({rc_text(self.proc.returncode)})" + _first_line(self.err_path)

    def count_comm(self, comm):
        return sum(1 for p in self.processes() if p[1] == comm)

    # -- lifecycle
    def signal_init(self, sig):
        os.kill(self.init_pid, sig)

    def wait(self, timeout):
        """Exit status of unshare (= the init's), or None on timeout. Blocks on a pidfd, so the exit
        is seen at once (Popen.wait(timeout) polls with sleeps of up to 50 ms)."""
        try:
            fd = os.pidfd_open(self.proc.pid)
        except (AttributeError, OSError):
            fd = None
        if fd is not None:
            try:
                ready, _, _ = select.select([fd], [], [], timeout)
            finally:
                os.close(fd)
            if not ready:
                return None
        try:
            return self.proc.wait(timeout=timeout if fd is None else 5)
        except subprocess.TimeoutExpired:
            return None

    def http_stats(self):
        """What the scraper saw ({} without one): scrapes answered, failed, median ms, bytes."""
        return self.scraper.stats() if self.scraper else {}

    def kill(self):
        """SIGKILL of the namespace init: the kernel kills everything left in the namespace."""
        _live.discard(self)
        if self.scraper:
            self.scraper.stop()
        if self.proc.poll() is None:
            try:
                if self.init_pid:
                    os.kill(self.init_pid, signal.SIGKILL)
                else:  # not found yet: unshare's session holds it
                    os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=20)
        self.out.close()
        self.err.close()


def stderr_summary(path, keep=300):
    """(line count, first bytes) of an init's stderr, minus unshare's own complaint when the
    namespace init is SIGKILLed by the harness ("unshare: sigprocmask unblock failed")."""
    n, head = 0, []
    try:
        f = open(path, "rb")
    except OSError:
        return 0, ""
    with f:
        for line in f:
            if line.startswith(b"unshare: "):
                continue
            n += 1
            if sum(map(len, head)) < keep:
                head.append(line)
    return n, b"".join(head)[:keep].decode(errors="replace")


def _first_line(err_path):
    head = stderr_summary(err_path)[1].strip()
    return f"; stderr: {head.splitlines()[0][:120]}" if head else ""


def rc_text(rc):
    if rc is None:
        return "did not exit"
    if rc < 0:
        try:
            return f"signal {signal.Signals(-rc).name}"
        except ValueError:
            return f"signal {-rc}"
    return str(rc)  # unshare re-raises the child's death signal on itself; a shell may report 128+n


def start_error(peer, err_path, e):
    """The record of a run whose init could not be started."""
    n, head = stderr_summary(err_path)
    return {"peer": peer.name, "error": f"{e}{_first_line(err_path)}", "err_lines": n, "err_head": head}


# --------------------------------------------------------------------------- stats & results

def summary(values):
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def machine_info():
    info = {"nproc": os.cpu_count(), "kernel": os.uname().release}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            info["mem_gib"] = round(int(f.readline().split()[1]) / (1 << 20), 1)
        with open("/proc/loadavg") as f:
            info["loadavg_at_start"] = f.read().split()[:3]
    except OSError:
        pass
    return info


def save(out_dir, workload, payload, quiet=False):
    """Write <out_dir>/<workload>.json. Workloads call it after every case, so a run cut short by
    its cap still leaves what it measured."""
    os.makedirs(out_dir, exist_ok=True)
    payload = dict(payload)
    payload.setdefault("machine", machine_info())
    payload["workload"] = workload
    payload["quick"] = QUICK
    payload["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    path = os.path.join(out_dir, f"{workload}.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=1, sort_keys=True)
    os.replace(tmp, path)
    if not quiet:
        log(f"wrote {path}")
