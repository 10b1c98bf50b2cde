//! Black-box harness shared by every integration test file.
//!
//! - [`TestDir`]: a fresh temp dir under /tmp (removed on drop) holding the service directory
//!   (`DINIT_DIR`) and a scratch dir for markers the services write; [`Svc`] builds one service.
//! - [`Launcher`] / [`Dinit`]: runs the binary under test as PID 1 of a new PID namespace
//!   (`unshare --pid --fork --mount-proc <bin>`) or, with [`Launcher::not_pid1`], as PID 2 under a
//!   tiny `sh` init in that namespace (dinit is then not PID 1 and acts as a child subreaper; the
//!   namespace still guarantees that nothing leaks when the test ends). Clean environment, stdin
//!   `/dev/null`, stdout/stderr captured by reader threads. Dropping a `Dinit` SIGKILLs the
//!   namespace init, which kills the whole namespace.
//! - [`wait_until`] polls a condition every 10 ms until a deadline: no blind sleeps.
//! - Record parsers: JSON stdout records, text records `<ts> <name>/<stage>: <line>`, own
//!   messages `<ts> dinit: <level>: <text>`, [`is_timestamp`].
//!
//! The binary under test is `$DINIT_TEST_BIN` if set, else the crate's `dinit` binary.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::{PipeReader, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use serde_json::{Map, Value};

/// Clean `PATH` given to dinit (and so to every service). `/usr/bin/python3` is the system one.
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Generous deadline for anything that should happen "soon" on a loaded 2-core machine.
pub const LONG: Duration = Duration::from_secs(20);
pub const MEDIUM: Duration = Duration::from_secs(10);

/// The binary under test.
pub fn bin() -> PathBuf {
    match std::env::var_os("DINIT_TEST_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_dinit")),
    }
}

// ---------------------------------------------------------------------------------------------
// waiting

/// Polls `cond` every ~10 ms until it is true (returns true) or `deadline` passed (false).
pub fn wait_until(deadline: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return cond();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------------------------
// service directory builder

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh temp dir: `<root>/service` is `DINIT_DIR`, `<root>/scratch` is for the services'
/// markers (dinit must never write into service directories, so markers live outside).
pub struct TestDir {
    root: PathBuf,
    dir: PathBuf,
    scratch: PathBuf,
}

impl Default for TestDir {
    fn default() -> Self {
        Self::new()
    }
}

impl TestDir {
    pub fn new() -> TestDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let root = PathBuf::from(format!("/tmp/dinit-it-{}-{}", std::process::id(), n));
        let _ = fs::remove_dir_all(&root);
        let dir = root.join("service");
        let scratch = root.join("scratch");
        fs::create_dir_all(&dir).unwrap();
        fs::create_dir_all(&scratch).unwrap();
        TestDir { root, dir, scratch }
    }

    /// The service directory (`DINIT_DIR`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// The dir as a `String` (for building expected texts).
    pub fn dir_str(&self) -> String {
        self.dir.to_str().unwrap().to_string()
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn scratch(&self) -> &Path {
        &self.scratch
    }
    /// Path of a scratch file.
    pub fn s(&self, name: &str) -> PathBuf {
        self.scratch.join(name)
    }

    /// `#!/bin/sh` script whose body can use `$S` (the scratch dir).
    pub fn sh(&self, body: &str) -> String {
        format!("#!/bin/sh\nS='{}'\n{}\n", self.scratch.display(), body)
    }

    /// A `/usr/bin/python3` script; `S` is a Python variable holding the scratch dir.
    pub fn py(&self, body: &str) -> String {
        format!(
            "#!/usr/bin/python3\nS = '{}'\n{}\n",
            self.scratch.display(),
            body
        )
    }

    /// A long-running service script: traps TERM (appends `<tag>-term` to `$S/events`, creates
    /// `$S/<tag>.term`, exits 0), then creates `$S/<tag>.started` and loops on `sleep 0.05`
    /// (a trapped signal is handled within 50 ms; no background child whose `wait` could race
    /// with the trap — dash hangs in a trap's `wait` now and then). `extra` runs after the TERM
    /// trap is set and before the started marker (e.g. more traps, output).
    pub fn long_running(&self, tag: &str, extra: &str) -> String {
        self.sh(&format!(
            "trap 'echo {tag}-term >> \"$S/events\"; echo term > \"$S/{tag}.term\"; exit 0' TERM\n\
             {extra}\n\
             echo started > \"$S/{tag}.started\"\n\
             while :; do sleep 0.05; done\n"
        ))
    }

    /// Creates (or reuses) `<dir>/<name>` and returns its builder.
    pub fn svc(&self, name: &str) -> Svc {
        let path = self.dir.join(name);
        fs::create_dir_all(&path).unwrap();
        Svc { path }
    }

    /// A symlink `<dir>/<name>` -> `target`.
    pub fn symlink(&self, name: &str, target: impl AsRef<Path>) {
        std::os::unix::fs::symlink(target, self.dir.join(name)).unwrap();
    }
    /// A dangling symlink `<dir>/<name>`.
    pub fn dangling(&self, name: &str) {
        self.symlink(name, self.root.join("does-not-exist"));
    }
    /// A plain file `<dir>/<name>`.
    pub fn plain_file(&self, name: &str, content: &str) {
        fs::write(self.dir.join(name), content).unwrap();
    }
    /// A directory outside the service dir (e.g. the target of a symlinked service).
    pub fn outside_svc(&self, name: &str) -> Svc {
        let path = self.root.join("outside").join(name);
        fs::create_dir_all(&path).unwrap();
        Svc { path }
    }

    pub fn exists(&self, scratch_name: &str) -> bool {
        self.s(scratch_name).exists()
    }
    pub fn read(&self, scratch_name: &str) -> String {
        fs::read_to_string(self.s(scratch_name)).unwrap_or_default()
    }
    /// Creates a scratch file (e.g. a `go` file a service waits for).
    pub fn touch(&self, scratch_name: &str) {
        fs::write(self.s(scratch_name), "go\n").unwrap();
    }
    /// Waits until a scratch file exists and ends with a newline; returns its content.
    pub fn wait_file(&self, scratch_name: &str, deadline: Duration) -> String {
        let p = self.s(scratch_name);
        let ok = wait_until(deadline, || {
            fs::read(&p).map(|c| c.ends_with(b"\n")).unwrap_or(false)
        });
        assert!(ok, "timed out waiting for scratch file {}", p.display());
        fs::read_to_string(&p).unwrap()
    }
    /// Lines of `$S/events` (appended by scripts).
    pub fn events(&self) -> Vec<String> {
        self.read("events").lines().map(str::to_string).collect()
    }
    /// Recursive listing (relative names) of the service directory.
    pub fn listing(&self) -> Vec<String> {
        fn walk(base: &Path, p: &Path, out: &mut Vec<String>) {
            if let Ok(rd) = fs::read_dir(p) {
                for e in rd.flatten() {
                    let path = e.path();
                    out.push(path.strip_prefix(base).unwrap().display().to_string());
                    let ft = e.file_type().unwrap();
                    if ft.is_dir() {
                        walk(base, &path, out);
                    }
                }
            }
        }
        let mut v = Vec::new();
        walk(&self.dir, &self.dir, &mut v);
        v.sort();
        v
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// Builder of one service directory; every method writes at once.
pub struct Svc {
    path: PathBuf,
}

impl Svc {
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// `run`, mode 0755.
    pub fn run(self, script: &str) -> Svc {
        self.file("run", script, 0o755)
    }
    /// `log/run`, mode 0755.
    pub fn log_run(self, script: &str) -> Svc {
        self.file("log/run", script, 0o755)
    }
    /// `terminate`, mode 0755.
    pub fn terminate(self, script: &str) -> Svc {
        self.file("terminate", script, 0o755)
    }
    /// `finish`, mode 0755.
    pub fn finish(self, script: &str) -> Svc {
        self.file("finish", script, 0o755)
    }
    /// Any file with the given content and mode (parent dirs created).
    pub fn file(self, name: &str, content: impl AsRef<[u8]>, mode: u32) -> Svc {
        let p = self.path.join(name);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(&p, content).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        self
    }
    /// runit's `down` file.
    pub fn down(self) -> Svc {
        self.file("down", "", 0o644)
    }
    /// A symlink inside the service dir.
    pub fn symlink(self, name: &str, target: impl AsRef<Path>) -> Svc {
        let p = self.path.join(name);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        std::os::unix::fs::symlink(target, p).unwrap();
        self
    }
}

// ---------------------------------------------------------------------------------------------
// launcher

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OutMode {
    /// Read continuously by a thread.
    Capture,
    /// A pipe nobody reads until [`Dinit::resume_stdout`] (or [`Dinit::close_stdout`]).
    Paused,
    /// A pipe whose read end is closed before dinit starts (writes get EPIPE).
    Closed,
}

pub struct Launcher {
    env: BTreeMap<String, String>,
    args: Vec<OsString>,
    pid1: bool,
    stdout: OutMode,
    stderr_closed: bool,
    merged: bool,
    cwd: PathBuf,
    inherit_fds: Vec<i32>,
    ignore: Vec<i32>,
    block: Vec<i32>,
    program: Option<PathBuf>,
    setup: Option<String>,
    consumer: Option<Consumer>,
}

/// What [`Launcher::stdout_consumer`] hands dinit's stdout to.
type Consumer = Box<dyn FnMut(&[u8]) + Send>;

/// A launcher for the binary under test with a clean environment: `PATH`, `DINIT_DIR` (the
/// test dir) and `DINIT_CONTROL_SOCKET` (a per-test path under the temp root, so parallel tests
/// never share `/run/dinit/control.sock`). cwd is the temp root.
pub fn launch(d: &TestDir) -> Launcher {
    let mut env = BTreeMap::new();
    env.insert("PATH".to_string(), PATH.to_string());
    env.insert("DINIT_DIR".to_string(), d.dir_str());
    env.insert(
        "DINIT_CONTROL_SOCKET".to_string(),
        d.root().join("control.sock").display().to_string(),
    );
    Launcher {
        env,
        args: Vec::new(),
        pid1: true,
        stdout: OutMode::Capture,
        stderr_closed: false,
        merged: false,
        cwd: d.root().to_path_buf(),
        inherit_fds: Vec::new(),
        ignore: Vec::new(),
        block: Vec::new(),
        program: None,
        setup: None,
        consumer: None,
    }
}

impl Launcher {
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.insert(k.to_string(), v.to_string());
        self
    }
    pub fn envs(mut self, kv: &[(&str, &str)]) -> Self {
        for (k, v) in kv {
            self.env.insert(k.to_string(), v.to_string());
        }
        self
    }
    pub fn env_remove(mut self, k: &str) -> Self {
        self.env.remove(k);
        self
    }
    /// `DINIT_LOG_LEVEL=info` (most tests look at info lines).
    pub fn info(self) -> Self {
        self.env("DINIT_LOG_LEVEL", "info")
    }
    /// `DINIT_JSON_STDOUT=0`.
    pub fn text(self) -> Self {
        self.env("DINIT_JSON_STDOUT", "0")
    }
    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.into());
        self
    }
    /// Run dinit as PID 2 under a `sh` init of the namespace (dinit is a subreaper).
    pub fn not_pid1(mut self) -> Self {
        self.pid1 = false;
        self
    }
    pub fn stdout(mut self, m: OutMode) -> Self {
        self.stdout = m;
        self
    }
    pub fn stderr_closed(mut self) -> Self {
        self.stderr_closed = true;
        self
    }
    /// stdout and stderr are the same pipe (read as "stderr"), so their relative order shows.
    pub fn merged(mut self) -> Self {
        self.merged = true;
        self
    }
    pub fn cwd(mut self, p: impl AsRef<Path>) -> Self {
        self.cwd = p.as_ref().to_path_buf();
        self
    }
    /// dinit starts with these fds (>= 3, < 10) open on /dev/null, without close-on-exec.
    pub fn inherit_fds(mut self, fds: &[i32]) -> Self {
        self.inherit_fds = fds.to_vec();
        self
    }
    /// dinit starts with these signals ignored (PID 1 mode only: unshare passes them on).
    pub fn ignore_signals(mut self, sigs: &[i32]) -> Self {
        self.ignore = sigs.to_vec();
        self
    }
    /// dinit starts with these signals blocked (PID 1 mode only).
    pub fn block_signals(mut self, sigs: &[i32]) -> Self {
        self.block = sigs.to_vec();
        self
    }

    /// Runs `program` (with the `arg`s) in dinit's place: negative controls.
    pub fn program(mut self, program: impl AsRef<Path>) -> Self {
        self.program = Some(program.as_ref().to_path_buf());
        self
    }

    /// Runs the `sh` script `setup` inside the new namespaces first, then execs dinit (or the
    /// `program`) in its place, keeping its pid (PID 1 stays PID 1). `unshare --mount-proc`
    /// makes a private mount namespace, so mounts made by `setup` (bind mounts over `/run`,
    /// `/var/log`, read-only `supervise/` dirs) are seen only inside it and vanish with it. A
    /// failing `setup` should `exit` non-zero: the test then sees that exit code.
    pub fn setup(mut self, script: &str) -> Self {
        self.setup = Some(script.to_string());
        self
    }

    /// Hands every chunk read from dinit's stdout to `f`, on the reader thread, instead of
    /// keeping it: the `Dinit`'s stdout buffer stays empty. For output too large to keep (a flood
    /// of hundreds of MB checked as it streams) and for a reader that paces itself (`f` may
    /// sleep: a slow `docker logs`). With [`OutMode::Paused`], chunks flow once resumed.
    pub fn stdout_consumer(mut self, f: impl FnMut(&[u8]) + Send + 'static) -> Self {
        self.consumer = Some(Box::new(f));
        self
    }

    pub fn spawn(mut self) -> Dinit {
        let bin = self.program.clone().unwrap_or_else(bin);
        let mut argv: Vec<OsString> = Vec::new();
        if !self.inherit_fds.is_empty() {
            let redirs: Vec<String> = self
                .inherit_fds
                .iter()
                .map(|fd| format!("{fd}</dev/null"))
                .collect();
            argv.push("/bin/sh".into());
            argv.push("-c".into());
            argv.push(format!("exec \"$@\" {}", redirs.join(" ")).into());
            argv.push("sh".into());
        }
        argv.extend(["unshare", "--pid", "--fork", "--mount-proc"].map(OsString::from));
        if !self.pid1 {
            argv.extend(["/bin/sh", "-c", "\"$@\"; exit $?", "sh"].map(OsString::from));
        }
        if let Some(setup) = &self.setup {
            argv.extend(["/bin/sh", "-c"].map(OsString::from));
            argv.push(format!("{setup}\nexec \"$@\"").into());
            argv.push("sh".into());
        }
        argv.push(bin.into_os_string());
        argv.extend(self.args.iter().cloned());

        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        cmd.env_clear();
        cmd.envs(&self.env);
        cmd.current_dir(&self.cwd);
        cmd.stdin(Stdio::null());

        let (err_r, err_w) = std::io::pipe().unwrap();
        let mut out_reader: Option<PipeReader> = None;
        if self.merged {
            cmd.stdout(Stdio::from(err_w.try_clone().unwrap()));
        } else {
            let (r, w) = std::io::pipe().unwrap();
            cmd.stdout(Stdio::from(w));
            if self.stdout == OutMode::Closed {
                drop(r);
            } else {
                out_reader = Some(r);
            }
        }
        let err_reader = if self.stderr_closed {
            drop(err_r);
            None
        } else {
            Some(err_r)
        };
        cmd.stderr(Stdio::from(err_w));

        // dinit starts from a known state whatever the test process inherited (cargo's
        // jobserver fds, ignored signals): every signal at its default disposition, an empty
        // mask, no fd >= 3 surviving exec (close_range CLOEXEC keeps std's own error pipe
        // working); then what the test asked for (ignored/blocked signals; extra fds are
        // opened later by the `sh` wrapper).
        let ignore = self.ignore.clone();
        let block = self.block.clone();
        // SAFETY: only raw syscalls (async-signal-safe) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // struct kernel_sigaction { handler, flags, restorer, mask } (x86_64, aarch64)
                let set_action = |sig: i32, handler: usize| {
                    let act: [u64; 4] = [handler as u64, 0, 0, 0];
                    libc::syscall(
                        libc::SYS_rt_sigaction,
                        sig,
                        act.as_ptr(),
                        std::ptr::null::<u64>(),
                        8usize,
                    );
                };
                for sig in 1..=64 {
                    if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                        set_action(sig, libc::SIG_DFL);
                    }
                }
                for &sig in &ignore {
                    set_action(sig, libc::SIG_IGN);
                }
                let mut mask: u64 = 0;
                for &sig in &block {
                    mask |= 1u64 << (sig - 1);
                }
                libc::syscall(
                    libc::SYS_rt_sigprocmask,
                    libc::SIG_SETMASK,
                    &mask as *const u64,
                    std::ptr::null::<u64>(),
                    8usize,
                );
                libc::syscall(
                    libc::SYS_close_range,
                    3u32,
                    u32::MAX,
                    4u32, /* CLOSE_RANGE_CLOEXEC */
                );
                Ok(())
            });
        }

        let started = Instant::now();
        let child = cmd.spawn().expect("spawn unshare");
        drop(cmd); // closes our copies of the write ends

        let out = Arc::new(Stream::default());
        let err = Arc::new(Stream::default());
        let mut threads = Vec::new();
        let mut out_ctl = None;
        let mut out_fd = None;
        if let Some(r) = out_reader {
            let ctl = Arc::new(Ctl {
                state: Mutex::new(if self.stdout == OutMode::Paused {
                    CtlState::Paused
                } else {
                    CtlState::Reading
                }),
                cv: Condvar::new(),
            });
            out_fd = Some(r.as_raw_fd());
            let (s, c, f) = (out.clone(), ctl.clone(), self.consumer.take());
            threads.push(std::thread::spawn(move || reader(r, s, Some(c), f)));
            out_ctl = Some(ctl);
        } else {
            out.eof.store(true, Ordering::SeqCst);
        }
        if let Some(r) = err_reader {
            let s = err.clone();
            threads.push(std::thread::spawn(move || reader(r, s, None, None)));
        } else {
            err.eof.store(true, Ordering::SeqCst);
        }

        let upid = child.id() as i32;
        let mut d = Dinit {
            child,
            pid: 0,
            init_pid: 0,
            out,
            err,
            out_ctl,
            out_fd,
            threads,
            status: None,
            started,
        };
        // The namespace init is the child of unshare; as PID 1 it is dinit itself. A dinit that
        // exits at once (bad configuration, --version) may be gone before we see it: pid 0.
        let mut init = 0;
        let found = wait_until(LONG, || {
            init = children_of(upid).first().copied().unwrap_or(0);
            init != 0 || d.exited()
        });
        assert!(found, "no namespace init appeared under unshare {upid}");
        d.init_pid = init;
        if init == 0 {
            return d;
        }
        if self.pid1 {
            d.pid = init;
        } else {
            let mut p = 0;
            let found = wait_until(LONG, || {
                p = children_of(init).first().copied().unwrap_or(0);
                p != 0 || d.exited()
            });
            assert!(found, "dinit did not appear under the sh init {init}");
            d.pid = p;
        }
        d
    }

    /// Spawns and waits for the exit (20 s deadline); the common case.
    pub fn run(self) -> Dinit {
        let mut d = self.spawn();
        d.wait_exit(LONG);
        d
    }
}

#[derive(Default)]
struct Stream {
    buf: Mutex<Vec<u8>>,
    eof: AtomicBool,
}

#[derive(PartialEq)]
enum CtlState {
    Reading,
    Paused,
    Close,
}

struct Ctl {
    state: Mutex<CtlState>,
    cv: Condvar,
}

fn reader(mut r: PipeReader, s: Arc<Stream>, ctl: Option<Arc<Ctl>>, mut consume: Option<Consumer>) {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        if let Some(c) = &ctl {
            let mut st = c.state.lock().unwrap();
            while *st == CtlState::Paused {
                st = c.cv.wait(st).unwrap();
            }
            if *st == CtlState::Close {
                drop(st);
                drop(r);
                s.eof.store(true, Ordering::SeqCst);
                return;
            }
        }
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => match consume.as_mut() {
                Some(f) => f(&buf[..n]),
                None => s.buf.lock().unwrap().extend_from_slice(&buf[..n]),
            },
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    s.eof.store(true, Ordering::SeqCst);
}

/// A running (or finished) dinit.
pub struct Dinit {
    child: Child,
    /// dinit's pid as seen from the test (host pid namespace).
    pub pid: i32,
    /// The namespace init (== `pid` in PID 1 mode, the `sh` init otherwise).
    pub init_pid: i32,
    out: Arc<Stream>,
    err: Arc<Stream>,
    out_ctl: Option<Arc<Ctl>>,
    out_fd: Option<i32>,
    threads: Vec<JoinHandle<()>>,
    status: Option<i32>,
    pub started: Instant,
}

impl Dinit {
    /// Sends a signal to dinit.
    pub fn signal(&self, sig: i32) {
        assert!(
            self.pid > 0,
            "dinit exited before its pid was known\n{}",
            self.dump()
        );
        // SAFETY: plain kill(2).
        let r = unsafe { libc::kill(self.pid, sig) };
        assert_eq!(r, 0, "kill({}, {sig}) failed", self.pid);
    }

    /// Has dinit (the unshare wrapper) exited?
    pub fn exited(&mut self) -> bool {
        if self.status.is_some() {
            return true;
        }
        if let Ok(Some(st)) = self.child.try_wait() {
            self.status = Some(status_code(st));
            return true;
        }
        false
    }

    /// Waits for dinit to exit and returns its exit code (128+n if it was killed by signal n).
    /// Panics (after killing the namespace) with the captured output when `timeout` passes.
    /// Then waits for the captured streams to reach EOF (except a paused stdout).
    pub fn wait_exit(&mut self, timeout: Duration) -> i32 {
        if !wait_until(timeout, || self.exited()) {
            self.kill();
            panic!("dinit did not exit within {:?}\n{}", timeout, self.dump());
        }
        let paused = self
            .out_ctl
            .as_ref()
            .map(|c| *c.state.lock().unwrap() != CtlState::Reading)
            .unwrap_or(false);
        let (out, err) = (self.out.clone(), self.err.clone());
        let ok = wait_until(MEDIUM, || {
            err.eof.load(Ordering::SeqCst) && (paused || out.eof.load(Ordering::SeqCst))
        });
        assert!(ok, "output pipes not at EOF 10 s after dinit exited");
        // util-linux unshare reports a child killed by a signal with its own message and
        // exit 1 (SIGKILL) or a re-raised signal: never let that pass for dinit's exit code.
        if self
            .stderr_lines()
            .iter()
            .any(|l| l.starts_with("unshare: "))
        {
            panic!(
                "dinit was killed by a signal (unshare complained)\n{}",
                self.dump()
            );
        }
        self.status.unwrap()
    }

    /// The exit code (after [`wait_exit`]).
    pub fn code(&self) -> i32 {
        self.status.expect("dinit has not exited")
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn kill(&mut self) {
        // SAFETY: plain kill(2). SIGKILL to a namespace init kills the namespace.
        unsafe {
            if self.init_pid > 0 {
                libc::kill(self.init_pid, libc::SIGKILL);
            }
            libc::kill(self.child.id() as i32, libc::SIGKILL);
        }
        if let Some(c) = &self.out_ctl {
            *c.state.lock().unwrap() = CtlState::Close;
            c.cv.notify_all();
        }
        if let Ok(st) = self.child.wait() {
            self.status.get_or_insert(status_code(st));
        }
    }

    // ---- output --------------------------------------------------------------------------

    pub fn stdout(&self) -> Vec<u8> {
        self.out.buf.lock().unwrap().clone()
    }
    pub fn stderr(&self) -> Vec<u8> {
        self.err.buf.lock().unwrap().clone()
    }
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout()).into_owned()
    }
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr()).into_owned()
    }
    /// Complete stdout lines (without `\n`), raw bytes.
    pub fn stdout_lines(&self) -> Vec<Vec<u8>> {
        split_lines(&self.stdout())
    }
    /// Complete stderr lines (lossy UTF-8).
    pub fn stderr_lines(&self) -> Vec<String> {
        split_lines(&self.stderr())
            .into_iter()
            .map(|l| String::from_utf8_lossy(&l).into_owned())
            .collect()
    }
    /// dinit's own messages on stderr.
    pub fn own(&self) -> Vec<Own> {
        own_messages(&self.stderr_lines())
    }
    /// Texts of own messages with the given level word (`info`, `warning`, `error`, `debug`).
    pub fn own_texts(&self, level: &str) -> Vec<String> {
        self.own()
            .into_iter()
            .filter(|o| o.level == level)
            .map(|o| o.text)
            .collect()
    }
    /// Whether an own message with exactly this level and text exists.
    pub fn has_own(&self, level: &str, text: &str) -> bool {
        self.own()
            .iter()
            .any(|o| o.level == level && o.text == text)
    }
    /// Whether an own message of any level contains `s`.
    pub fn own_contains(&self, s: &str) -> bool {
        self.own().iter().any(|o| o.text.contains(s))
    }
    /// Text records (`<ts> <name>/<stage>: <line>`) on stderr.
    pub fn stderr_records(&self) -> Vec<TextRec> {
        text_records(&self.stderr())
    }
    /// Text records on stdout (text mode).
    pub fn stdout_records(&self) -> Vec<TextRec> {
        text_records(&self.stdout())
    }
    /// JSON records on stdout (JSON mode); panics if a line is not a valid record.
    pub fn json(&self) -> Vec<JsonRec> {
        json_records(&self.stdout())
    }

    /// The pid `<name>/<stage>: running with PID <pid>` reported (namespace pid).
    pub fn reported_pid(&self, name_stage: &str) -> Option<i32> {
        let prefix = format!("{name_stage}: running with PID ");
        self.own()
            .iter()
            .find_map(|o| o.text.strip_prefix(&prefix).and_then(|p| p.parse().ok()))
    }

    /// Waits until a stderr line satisfies `pred`; returns it. Panics on timeout.
    pub fn wait_stderr(
        &self,
        what: &str,
        deadline: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let mut found = None;
        let ok = wait_until(deadline, || {
            found = self.stderr_lines().into_iter().find(|l| pred(l));
            found.is_some()
        });
        if !ok {
            panic!("timed out waiting for stderr line: {what}\n{}", self.dump());
        }
        found.unwrap()
    }
    /// Waits until a stderr line contains `s`.
    pub fn wait_stderr_contains(&self, s: &str, deadline: Duration) -> String {
        self.wait_stderr(s, deadline, |l| l.contains(s))
    }
    /// Waits until stdout contains `s`.
    pub fn wait_stdout_contains(&self, s: &str, deadline: Duration) {
        let ok = wait_until(deadline, || self.stdout_str().contains(s));
        if !ok {
            panic!(
                "timed out waiting for stdout to contain {s:?}\n{}",
                self.dump()
            );
        }
    }

    /// The last few KiB of both streams, for failure messages.
    pub fn dump(&self) -> String {
        fn tail(b: &[u8]) -> String {
            let n = b.len().saturating_sub(6000);
            String::from_utf8_lossy(&b[n..]).into_owned()
        }
        format!(
            "--- exit: {:?}\n--- stdout (tail):\n{}\n--- stderr (tail):\n{}\n---",
            self.status,
            tail(&self.stdout()),
            tail(&self.stderr())
        )
    }

    // ---- stdout control --------------------------------------------------------------------

    /// Stops reading dinit's stdout after the read in progress, until [`Dinit::resume_stdout`].
    pub fn pause_stdout(&self) {
        let c = self
            .out_ctl
            .as_ref()
            .expect("stdout is not a controlled pipe");
        *c.state.lock().unwrap() = CtlState::Paused;
        c.cv.notify_all();
    }
    pub fn resume_stdout(&self) {
        let c = self
            .out_ctl
            .as_ref()
            .expect("stdout is not a controlled pipe");
        *c.state.lock().unwrap() = CtlState::Reading;
        c.cv.notify_all();
    }
    /// Closes the read end of dinit's stdout (only immediate while paused).
    pub fn close_stdout(&self) {
        let c = self
            .out_ctl
            .as_ref()
            .expect("stdout is not a controlled pipe");
        *c.state.lock().unwrap() = CtlState::Close;
        c.cv.notify_all();
    }
    /// Bytes waiting unread in dinit's stdout pipe (FIONREAD), while paused.
    pub fn stdout_pipe_bytes(&self) -> usize {
        let fd = self.out_fd.expect("stdout is not a controlled pipe");
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD on a pipe fd owned by the (paused) reader thread.
        let r = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
        assert_eq!(r, 0, "FIONREAD failed");
        n as usize
    }

    // ---- processes -------------------------------------------------------------------------

    /// Host pids of dinit's direct children.
    pub fn children(&self) -> Vec<i32> {
        children_of(self.pid)
    }
    /// Host pids of all descendants of dinit (not dinit itself).
    pub fn descendants(&self) -> Vec<i32> {
        descendants_of(self.pid)
    }
    /// Host pid of the namespace process with namespace pid `nspid`, among the namespace init
    /// and its descendants.
    pub fn host_pid(&self, nspid: i32) -> Option<i32> {
        let mut all = vec![self.init_pid];
        all.extend(descendants_of(self.init_pid));
        all.into_iter().find(|&p| ns_pid(p) == Some(nspid))
    }
}

impl Drop for Dinit {
    fn drop(&mut self) {
        if !self.exited() {
            self.kill();
        }
        if let Some(c) = &self.out_ctl {
            *c.state.lock().unwrap() = CtlState::Close;
            c.cv.notify_all();
        }
        for t in self.threads.drain(..) {
            // Reader threads end at EOF (the namespace is dead); don't block the test on them.
            drop(t);
        }
    }
}

fn status_code(st: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (st.code(), st.signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        _ => -1,
    }
}

pub fn split_lines(b: &[u8]) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = b.split(|&c| c == b'\n').map(|l| l.to_vec()).collect();
    v.pop(); // the part after the last '\n' (empty when complete)
    v
}

// ---------------------------------------------------------------------------------------------
// other programs: runit's tools, dinit as a client (`sv`, `dinit status`)

/// What a finished command printed, and its exit code (128+n when killed by signal n).
#[derive(Debug, Clone)]
pub struct CmdOut {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

static CMD_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Runs `cmd` to its end with stdin `/dev/null` and stdout/stderr captured in temp files (so a
/// grandchild that keeps them open, such as a `check` script, cannot block the test). SIGKILLs
/// it and panics when it has not ended after `deadline`.
pub fn run_cmd(cmd: &mut Command, deadline: Duration) -> CmdOut {
    let n = CMD_COUNTER.fetch_add(1, Ordering::SeqCst);
    let base = std::env::temp_dir().join(format!("dinit-cmd-{}-{n}", std::process::id()));
    let (out_p, err_p) = (base.with_extension("out"), base.with_extension("err"));
    let out_f = fs::File::create(&out_p).unwrap();
    let err_f = fs::File::create(&err_p).unwrap();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(out_f))
        .stderr(Stdio::from(err_f));
    let t0 = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut status = None;
    let ended = wait_until(deadline, || {
        if let Ok(Some(st)) = child.try_wait() {
            status = Some(st);
        }
        status.is_some()
    });
    let took = t0.elapsed();
    if !ended {
        let _ = child.kill();
        let _ = child.wait();
    }
    let stdout = fs::read_to_string(&out_p).unwrap_or_default();
    let stderr = fs::read_to_string(&err_p).unwrap_or_default();
    let _ = fs::remove_file(&out_p);
    let _ = fs::remove_file(&err_p);
    assert!(
        ended,
        "{cmd:?} did not end within {deadline:?}\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}"
    );
    CmdOut {
        code: status_code(status.unwrap()),
        stdout,
        stderr,
        took,
    }
}

/// `true` when runit's programs are installed (Debian's `runit` package; `scripts/test.sh`
/// installs it). Otherwise the test cannot compare dinit with runit: records it as skipped
/// ([`skip`]) and returns `false`, and the caller returns.
#[must_use]
pub fn require_runit(test: &str) -> bool {
    for p in [
        "/usr/bin/runsvdir",
        "/usr/bin/runsv",
        "/usr/bin/sv",
        "/usr/bin/svlogd",
        "/usr/bin/chpst",
    ] {
        if !Path::new(p).exists() {
            skip(
                test,
                &format!(
                    "{p} not found: this test compares dinit with real runit (install Debian's \
                     `runit` package: apt-get install runit; scripts/test.sh does)"
                ),
            );
            return false;
        }
    }
    true
}

// ---------------------------------------------------------------------------------------------
// /proc helpers

/// Children of every thread of `pid`.
pub fn children_of(pid: i32) -> Vec<i32> {
    let mut v = Vec::new();
    if let Ok(rd) = fs::read_dir(format!("/proc/{pid}/task")) {
        for t in rd.flatten() {
            if let Ok(s) = fs::read_to_string(t.path().join("children")) {
                v.extend(s.split_whitespace().filter_map(|x| x.parse::<i32>().ok()));
            }
        }
    }
    v
}

pub fn descendants_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut todo = children_of(pid);
    while let Some(p) = todo.pop() {
        out.push(p);
        todo.extend(children_of(p));
    }
    out
}

/// The innermost namespace pid of a host pid (`NSpid:` last field).
pub fn ns_pid(pid: i32) -> Option<i32> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("NSpid:"))?;
    line.split_whitespace().last()?.parse().ok()
}

/// The state letter of `/proc/<pid>/stat` (`R`, `S`, `Z`, ...).
pub fn proc_state(pid: i32) -> Option<char> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &s[s.rfind(')')? + 2..];
    after.chars().next()
}

pub fn proc_comm(pid: i32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim_end().to_string())
}

/// A field (`SigBlk`, `SigIgn`, ...) of `/proc/<pid>/status`.
pub fn proc_status_field(pid: i32, field: &str) -> Option<String> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find_map(|l| {
        l.strip_prefix(&format!("{field}:"))
            .map(|v| v.trim().to_string())
    })
}

/// Open fds of a process with their link targets.
pub fn proc_fds(pid: i32) -> BTreeMap<i32, String> {
    let mut m = BTreeMap::new();
    if let Ok(rd) = fs::read_dir(format!("/proc/{pid}/fd")) {
        for e in rd.flatten() {
            if let Ok(n) = e.file_name().to_string_lossy().parse::<i32>() {
                let t = fs::read_link(e.path())
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                m.insert(n, t);
            }
        }
    }
    m
}

// ---------------------------------------------------------------------------------------------
// records

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`
pub fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 24 {
        return false;
    }
    let pat = b"dddd-dd-ddTdd:dd:dd.dddZ";
    b.iter().zip(pat.iter()).all(|(&c, &p)| {
        if p == b'd' {
            c.is_ascii_digit()
        } else {
            c == p
        }
    })
}

/// Milliseconds since the epoch-ish (only for differences) of a valid timestamp.
pub fn ts_millis(s: &str) -> i64 {
    assert!(is_timestamp(s), "bad timestamp {s:?}");
    let n = |a: usize, b: usize| s[a..b].parse::<i64>().unwrap();
    let (y, mo, d) = (n(0, 4), n(5, 7), n(8, 10));
    // days from civil (Howard Hinnant)
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    ((days * 24 + n(11, 13)) * 60 + n(14, 16)) * 60_000 + n(17, 19) * 1000 + n(20, 23)
}

#[derive(Debug, Clone)]
pub struct Own {
    pub ts: String,
    pub level: String,
    pub text: String,
}

/// Lines `<ts> dinit: <level>: <text>`; panics on a malformed timestamp in such a line.
pub fn own_messages(lines: &[String]) -> Vec<Own> {
    let mut v = Vec::new();
    for l in lines {
        let Some((ts, rest)) = l.split_once(' ') else {
            continue;
        };
        let Some(rest) = rest.strip_prefix("dinit: ") else {
            continue;
        };
        let Some((level, text)) = rest.split_once(": ") else {
            continue;
        };
        assert!(is_timestamp(ts), "own message with a bad timestamp: {l:?}");
        v.push(Own {
            ts: ts.to_string(),
            level: level.to_string(),
            text: text.to_string(),
        });
    }
    v
}

#[derive(Debug, Clone)]
pub struct TextRec {
    pub ts: String,
    pub name: String,
    pub stage: String,
    pub line: Vec<u8>,
}

impl TextRec {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.line).into_owned()
    }
}

/// Lines `<ts> <name>/<stage>: <line>` (raw bytes kept); other lines are skipped.
pub fn text_records(b: &[u8]) -> Vec<TextRec> {
    let mut v = Vec::new();
    for l in split_lines(b) {
        let Some(sp) = l.iter().position(|&c| c == b' ') else {
            continue;
        };
        let ts = String::from_utf8_lossy(&l[..sp]).into_owned();
        if !is_timestamp(&ts) {
            continue;
        }
        let rest = &l[sp + 1..];
        let Some(slash) = rest.iter().position(|&c| c == b'/') else {
            continue;
        };
        let Some(colon) = find(&rest[slash..], b": ").map(|i| i + slash) else {
            continue;
        };
        if rest[..slash].contains(&b' ') {
            continue;
        }
        v.push(TextRec {
            ts,
            name: String::from_utf8_lossy(&rest[..slash]).into_owned(),
            stage: String::from_utf8_lossy(&rest[slash + 1..colon]).into_owned(),
            line: rest[colon + 2..].to_vec(),
        });
    }
    v
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[derive(Debug, Clone)]
pub struct JsonRec {
    pub raw: String,
    pub obj: Map<String, Value>,
}

impl JsonRec {
    pub fn service(&self) -> &str {
        self.obj["service"].as_str().unwrap()
    }
    pub fn stage(&self) -> &str {
        self.obj["stage"].as_str().unwrap()
    }
    pub fn logged(&self) -> &str {
        self.obj["logged"].as_str().unwrap()
    }
    pub fn msg(&self) -> Option<&str> {
        self.obj.get("msg").and_then(Value::as_str)
    }
    /// How often `"key":` occurs as a key in the raw text (duplicate-key check).
    pub fn key_count(&self, key: &str) -> usize {
        count_keys(&self.raw, key)
    }
}

/// Counts top-level-or-nested occurrences of `"key"` used as an object key in raw JSON.
pub fn count_keys(raw: &str, key: &str) -> usize {
    // Walk the JSON text tracking strings; a string followed by ':' is a key.
    let b = raw.as_bytes();
    let mut i = 0;
    let mut n = 0;
    while i < b.len() {
        if b[i] == b'"' {
            let start = i + 1;
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            let s = &raw[start..i.min(b.len())];
            i += 1;
            let mut j = i;
            while j < b.len() && (b[j] as char).is_whitespace() {
                j += 1;
            }
            if j < b.len() && b[j] == b':' {
                let decoded: String = serde_json::from_str(&format!("\"{s}\"")).unwrap_or_default();
                if decoded == key {
                    n += 1;
                }
            }
        } else {
            i += 1;
        }
    }
    n
}

/// Parses every stdout line as a JSON record: valid UTF-8, a JSON object, with string fields
/// `service`, `stage` and `logged` (a valid timestamp). Panics naming the first bad line.
pub fn json_records(b: &[u8]) -> Vec<JsonRec> {
    let mut v = Vec::new();
    for (i, l) in split_lines(b).into_iter().enumerate() {
        let raw = match String::from_utf8(l) {
            Ok(s) => s,
            Err(e) => panic!(
                "stdout line {i} is not valid UTF-8: {:?}",
                String::from_utf8_lossy(e.as_bytes())
            ),
        };
        let val: Value = match serde_json::from_str(&raw) {
            Ok(v) => v,
            Err(e) => panic!("stdout line {i} is not valid JSON ({e}): {}", trunc(&raw)),
        };
        let Value::Object(obj) = val else {
            panic!("stdout line {i} is not a JSON object: {}", trunc(&raw))
        };
        for k in ["service", "stage", "logged"] {
            assert!(
                obj.get(k).map(Value::is_string).unwrap_or(false),
                "stdout line {i} lacks string field {k:?}: {}",
                trunc(&raw)
            );
        }
        assert!(
            is_timestamp(obj["logged"].as_str().unwrap()),
            "bad logged in line {i}: {}",
            trunc(&raw)
        );
        v.push(JsonRec { raw, obj });
    }
    v
}

pub fn trunc(s: &str) -> String {
    if s.len() <= 300 {
        s.to_string()
    } else {
        let mut e = 300;
        while !s.is_char_boundary(e) {
            e -= 1;
        }
        format!("{}… ({} bytes)", &s[..e], s.len())
    }
}

// ---------------------------------------------------------------------------------------------
// skipped tests

/// The variable naming the file where [`skip`] records skipped tests, one line each
/// (`scripts/test.sh` sets it and lists them in its summary).
pub const SKIPS_ENV: &str = "DINIT_TEST_SKIPS";

/// Reports that `test` (this test binary's test function) cannot run on this machine because
/// of `reason` (a missing package, no Docker engine, ptrace forbidden); the caller then returns
/// at once, without asserting anything. One line `SKIPPED <crate>::<test>: <reason>` goes
/// straight to fd 2 (libtest captures `eprintln!`, not fd 2), so it shows with or without
/// `--nocapture`; and when `$DINIT_TEST_SKIPS` names a file, the same line is appended to it, so
/// that `scripts/test.sh` counts the test as skipped, not passed. Panics when that file cannot
/// be written: a skip that is not recorded would be counted as a pass.
pub fn skip(test: &str, reason: &str) {
    use std::io::Write;
    let reason: Vec<&str> = reason
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let line = format!(
        "SKIPPED {}::{test}: {}\n",
        env!("CARGO_CRATE_NAME"),
        reason.join(" / ")
    );
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
    if let Some(path) = std::env::var_os(SKIPS_ENV).filter(|p| !p.is_empty()) {
        // One write(2) of a short line with O_APPEND: lines from parallel tests never mix.
        let r = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = r {
            panic!(
                "cannot record the skip of {test} in {} (${SKIPS_ENV}): {e}",
                Path::new(&path).display()
            );
        }
    }
}

/// The name of the running test: libtest runs each test on a thread named after it.
pub fn this_test() -> String {
    std::thread::current()
        .name()
        .unwrap_or("<unnamed test>")
        .to_string()
}
