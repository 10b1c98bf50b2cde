//! End to end in real Docker containers: the images (`Dockerfile.alpine`,
//! `Dockerfile.distroless`, `examples/Dockerfile`) and dinit as PID 1 under `docker run`,
//! `docker stop`, `docker kill`, `docker exec`, `HEALTHCHECK`, `--read-only` and `--user`.
//!
//! Every test first asks `docker info` and looks for a static busybox (`/bin/busybox` from
//! Debian's busybox-static, or `$BUSYBOX`; the images cannot be built without it); when either
//! is missing the test is skipped: `common::skip` writes one `SKIPPED docker::<test>: <why>`
//! line to stderr and records it for `scripts/test.sh`'s summary.
//! Nothing is pulled: the first test to need them builds, once per test binary
//! (`std::sync::OnceLock`), with `<p>` = `dinit-e2e-<pid>-<n>` unique per run:
//!
//! - `<p>/busybox`, `<p>/static`: the local bases of `docker/make-bases.sh` (`FROM scratch` +
//!   Debian's busybox-static; a shell-less distroless stand-in);
//! - `<p>/dinit:alpine`, `<p>/dinit:distroless`: the repository's two Dockerfiles on those bases,
//!   from a temporary build context holding the binary under test (`CARGO_BIN_EXE_dinit`, the
//!   release binary under `cargo test --release`) as `target/release/dinit`;
//! - `<p>/examples`: `examples/Dockerfile` (`examples/etc-service`);
//! - `<p>/e2e`: scenario service directories under `/svc/<scenario>`, chosen with `DINIT_DIR`
//!   at `docker run`; `<p>/e2e-health`: the same with `HEALTHCHECK CMD ["/dinit", "check"]`;
//! - `<p>/e2e-distroless`: the distroless image, a busybox binary but no shell, one service;
//! - `<p>/user-image`: `examples/user-image`, the walk-through of docs/image.md;
//! - `<p>/e2e-main` (built by the first test that needs it): tini's use, `ENTRYPOINT
//!   ["/dinit", "--"]` and `CMD ["sh", "-c", "exit 5"]` on `<p>/dinit:alpine`, with a sidecar
//!   service under `/svc/main-sidecar` and a main program `/svc/bin/main-loop`.
//!
//! Containers are named `<p>-<test>` and removed by their guard (`docker rm -f`); at exit (an
//! `atexit` handler) whatever is left and every image built here is removed
//! (`DINIT_E2E_KEEP=1` keeps the images). No fixed sleeps: every wait polls a condition against
//! a deadline (`docker logs -f` is followed into memory).

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

// Only for `common::skip` (this file has its own helpers for talking to Docker).
mod common;
// `docker run -it` needs a terminal.
#[path = "common/pty.rs"]
mod pty;

/// Anything that should happen "soon" on a loaded 2-core machine.
const LONG: Duration = Duration::from_secs(30);
/// `docker build` and friends.
const BUILD: Duration = Duration::from_secs(300);
/// `docker stop -t`: Docker's SIGKILL deadline; dinit must be done well before it.
const STOP_TIMEOUT_S: u64 = 10;
/// "Well within" `STOP_TIMEOUT_S`.
const STOP_LIMIT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// skip when there is no Docker engine or no static busybox

/// The binary under test: `$DINIT_TEST_BIN` (scripts/test.sh sets it to the release build), else
/// the crate's own.
fn dinit_bin() -> std::path::PathBuf {
    match std::env::var_os("DINIT_TEST_BIN") {
        Some(p) if !p.is_empty() => p.into(),
        _ => env!("CARGO_BIN_EXE_dinit").into(),
    }
}

fn docker_unavailable() -> Option<&'static str> {
    static WHY: OnceLock<Option<String>> = OnceLock::new();
    WHY.get_or_init(|| {
        let mut cmd = Command::new("docker");
        cmd.args(["info", "--format", "{{.ServerVersion}}"]);
        match run_cmd(cmd, Duration::from_secs(30)) {
            Err(e) => Some(format!("cannot run `docker info`: {e}")),
            Ok(o) if o.code != 0 => {
                let why = o.stderr.trim();
                let why = if why.is_empty() { o.stdout.trim() } else { why };
                Some(format!(
                    "`docker info` exited {}: {}",
                    o.code,
                    one_line(why)
                ))
            }
            Ok(_) => None,
        }
    })
    .as_deref()
}

/// Why the images cannot be built here, if they cannot: `docker/make-bases.sh` copies a static
/// busybox into a `FROM scratch` image (a dynamically linked one cannot run there).
fn busybox_unavailable() -> Option<String> {
    let p = busybox_path();
    let hint = "install Debian's busybox-static (apt-get install busybox-static; \
                scripts/test.sh does) or set BUSYBOX";
    match fs::read(&p) {
        Err(e) => Some(format!("{}: {e}: {hint}", p.display())),
        Ok(elf) if elf_has_interpreter(&elf) => Some(format!(
            "{} is dynamically linked (it cannot run in a FROM scratch image): {hint}",
            p.display()
        )),
        Ok(_) => None,
    }
}

/// A 64-bit little-endian ELF file with a `PT_INTERP` program header (a dynamically linked
/// executable). Anything else (static, or not such an ELF file) is left to make-bases.sh.
fn elf_has_interpreter(b: &[u8]) -> bool {
    let u16_at = |o: usize| {
        b.get(o..o + 2)
            .map(|x| u16::from_le_bytes([x[0], x[1]]) as usize)
    };
    let u64_at = |o: usize| {
        b.get(o..o + 8)
            .map(|x| u64::from_le_bytes(x.try_into().unwrap()) as usize)
    };
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 || b[5] != 1 {
        return false;
    }
    let (Some(phoff), Some(size), Some(num)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38)) else {
        return false;
    };
    (0..num).any(|i| {
        let o = phoff + i * size;
        b.get(o..o + 4) == Some(&3u32.to_le_bytes()[..]) // PT_INTERP
    })
}

/// Returns from the test, recorded as skipped (`common::skip`), when Docker or a static busybox
/// is not there.
macro_rules! require_docker {
    ($test:expr) => {
        if let Some(why) = docker_unavailable() {
            common::skip($test, &format!("docker not available: {why}"));
            return;
        }
        if let Some(why) = busybox_unavailable() {
            common::skip($test, &format!("no static busybox for the images: {why}"));
            return;
        }
    };
}

fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" / ")
}

// ---------------------------------------------------------------------------------------------
// running commands

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}---",
            self.code, self.stdout, self.stderr
        )
    }
}

fn reader(
    mut r: impl Read + Send + 'static,
    buf: Arc<Mutex<Vec<u8>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        loop {
            match r.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.lock().unwrap().extend_from_slice(&chunk[..n]),
            }
        }
    })
}

/// Runs `cmd` to its end (stdin /dev/null), or kills it after `timeout` (an error).
fn run_cmd(mut cmd: Command, timeout: Duration) -> Result<Out, String> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{what}: {e}"))?;
    let out = Arc::new(Mutex::new(Vec::new()));
    let err = Arc::new(Mutex::new(Vec::new()));
    let t1 = reader(child.stdout.take().unwrap(), out.clone());
    let t2 = reader(child.stderr.take().unwrap(), err.clone());
    let end = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| format!("{what}: {e}"))? {
            break s;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{what}: no end after {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = t1.join();
    let _ = t2.join();
    let text = |b: &Arc<Mutex<Vec<u8>>>| String::from_utf8_lossy(&b.lock().unwrap()).into_owned();
    Ok(Out {
        code: status.code().unwrap_or(-1),
        stdout: text(&out),
        stderr: text(&err),
    })
}

/// `docker <args>`; panics when it cannot run or times out (not on a non-zero exit).
fn docker_t(args: &[&str], timeout: Duration) -> Out {
    let mut cmd = Command::new("docker");
    cmd.args(args);
    run_cmd(cmd, timeout).unwrap_or_else(|e| panic!("{e}"))
}

fn docker(args: &[&str]) -> Out {
    docker_t(args, LONG)
}

/// `docker <args>` that must succeed.
fn docker_ok(args: &[&str], timeout: Duration) -> Out {
    let o = docker_t(args, timeout);
    assert_eq!(o.code, 0, "docker {}: {o}", args.join(" "));
    o
}

/// Polls `cond` every 20 ms until it holds (true) or `deadline` passed (false).
fn wait_until(deadline: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return cond();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// what to remove at exit

static CONTAINERS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static IMAGES_BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
static WORKDIR: Mutex<Option<PathBuf>> = Mutex::new(None);

extern "C" fn cleanup_at_exit() {
    let names: Vec<String> =
        std::mem::take(&mut *CONTAINERS.lock().unwrap_or_else(|e| e.into_inner()));
    if !names.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(names.iter().map(String::as_str));
        let _ = Command::new("docker")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let mut images: Vec<String> =
        std::mem::take(&mut *IMAGES_BUILT.lock().unwrap_or_else(|e| e.into_inner()));
    if !images.is_empty() && std::env::var_os("DINIT_E2E_KEEP").is_none_or(|v| v.is_empty()) {
        images.reverse(); // children before their bases
        let mut args = vec!["rmi", "-f"];
        args.extend(images.iter().map(String::as_str));
        let _ = Command::new("docker")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    if let Some(dir) = WORKDIR.lock().unwrap_or_else(|e| e.into_inner()).take() {
        let _ = fs::remove_dir_all(dir);
    }
}

fn register_cleanup() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| unsafe {
        libc::atexit(cleanup_at_exit);
    });
}

// ---------------------------------------------------------------------------------------------
// the images

struct Images {
    prefix: String,
    alpine: String,
    distroless: String,
    examples: String,
    e2e: String,
    health: String,
    e2e_distroless: String,
    user_image: String,
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn images() -> &'static Images {
    static IMAGES: OnceLock<Result<Images, String>> = OnceLock::new();
    match IMAGES.get_or_init(build_images) {
        Ok(i) => i,
        Err(e) => panic!("building the test images failed: {e}"),
    }
}

fn write_file(path: &Path, content: &str, mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn build(tag: &str, args: &[&str], context: &Path) -> Result<Out, String> {
    IMAGES_BUILT.lock().unwrap().push(tag.to_string());
    let mut all = vec!["build", "--network", "none", "-t", tag];
    all.extend_from_slice(args);
    all.push(context.to_str().unwrap());
    let o = docker_t(&all, BUILD);
    if o.code != 0 {
        return Err(format!("docker {}: {o}", all.join(" ")));
    }
    Ok(o)
}

/// The build context size the builder reports: the classic builder's `Sending build context
/// to Docker daemon  1.61MB`, BuildKit's `transferring context: 1.61MB`. `None`: not reported.
fn context_bytes(build_output: &str) -> Option<f64> {
    let v = build_output.lines().rev().find_map(|l| {
        if let Some(rest) = l.strip_prefix("Sending build context to Docker daemon") {
            return Some(rest.trim().to_string());
        }
        let rest = &l[l.find("transferring context: ")? + "transferring context: ".len()..];
        Some(rest.split_whitespace().next()?.to_string())
    })?;
    let split = v.find(|c: char| c.is_ascii_alphabetic())?;
    let n: f64 = v[..split].parse().ok()?;
    let unit = match &v[split..] {
        "B" => 1.0,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        _ => return None,
    };
    Some(n * unit)
}

fn build_images() -> Result<Images, String> {
    register_cleanup();
    let t0 = Instant::now();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let prefix = format!("dinit-e2e-{}-{}", std::process::id(), nanos % 100_000);
    let work = std::env::temp_dir().join(&prefix);
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    *WORKDIR.lock().unwrap() = Some(work.clone());

    // Bases: docker/make-bases.sh, as users run it.
    let busybox = format!("{prefix}/busybox:latest");
    let stat = format!("{prefix}/static:latest");
    IMAGES_BUILT
        .lock()
        .unwrap()
        .extend([busybox.clone(), stat.clone()]);
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("docker/make-bases.sh")).arg(&prefix);
    let o = run_cmd(cmd, BUILD)?;
    if o.code != 0 {
        return Err(format!("docker/make-bases.sh {prefix}: {o}"));
    }

    // The dinit images: the repository's Dockerfiles and .dockerignore in a context that holds
    // the binary under test where `cargo build --release` puts it.
    let ctx = work.join("ctx");
    for f in [
        "Dockerfile.alpine",
        "Dockerfile.distroless",
        ".dockerignore",
    ] {
        let dst = ctx.join(f);
        fs::create_dir_all(dst.parent().unwrap()).unwrap();
        fs::copy(repo().join(f), &dst).map_err(|e| format!("{f}: {e}"))?;
    }
    fs::create_dir_all(ctx.join("target/release")).unwrap();
    fs::copy(dinit_bin(), ctx.join("target/release/dinit"))
        .map_err(|e| format!("copying {}: {e}", dinit_bin().display()))?;
    for link in ["docker/rootfs/usr/bin/sv", "docker/rootfs/usr/bin/dinit"] {
        let target = fs::read_link(repo().join(link)).map_err(|e| format!("{link}: {e}"))?;
        fs::create_dir_all(ctx.join(link).parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, ctx.join(link)).unwrap();
    }
    // What the .dockerignore must keep out of the context (target/ holds gigabytes).
    write_file(
        &ctx.join("target/release/deps/big"),
        &"x".repeat(16 << 20),
        0o644,
    );
    write_file(&ctx.join("src/main.rs"), &"x".repeat(16 << 20), 0o644);

    let alpine = format!("{prefix}/dinit:alpine");
    let distroless = format!("{prefix}/dinit:distroless");
    let (a, d) = std::thread::scope(|s| {
        let a = s.spawn(|| {
            let f = ctx.join("Dockerfile.alpine");
            let base = format!("BASE={busybox}");
            build(
                &alpine,
                &["-f", f.to_str().unwrap(), "--build-arg", &base],
                &ctx,
            )
        });
        let d = s.spawn(|| {
            let f = ctx.join("Dockerfile.distroless");
            let base = format!("BASE={stat}");
            build(
                &distroless,
                &["-f", f.to_str().unwrap(), "--build-arg", &base],
                &ctx,
            )
        });
        (a.join().unwrap(), d.join().unwrap())
    });
    // Only the binary and docker/rootfs went to the daemon.
    let a = a?;
    d?;
    let bin_len = fs::metadata(dinit_bin()).unwrap().len() as f64;
    match context_bytes(&format!("{}\n{}", a.stdout, a.stderr)) {
        Some(n) if n < bin_len + 1e6 => {}
        None => {
            let _ = writeln!(
                std::io::stderr().lock(),
                "tests/docker.rs: note: the builder did not report the build context size"
            );
        }
        Some(n) => {
            return Err(format!(
                "build context of {n} B for a {bin_len} B binary: .dockerignore lets more in:\n{a}"
            ));
        }
    }

    // Scenario images.
    let e2e_ctx = work.join("e2e");
    write_file(
        &e2e_ctx.join("Dockerfile"),
        &format!("FROM {alpine}\nCOPY svc /svc\n"),
        0o644,
    );
    for (path, body) in scenario_files() {
        write_file(&e2e_ctx.join("svc").join(path), &body, 0o755);
    }
    let dl_ctx = work.join("distroless");
    write_file(
        &dl_ctx.join("Dockerfile"),
        &format!("FROM {distroless}\nCOPY busybox /bin/busybox\nCOPY svc /etc/service\n"),
        0o644,
    );
    fs::copy(busybox_path(), dl_ctx.join("busybox")).map_err(|e| format!("busybox: {e}"))?;
    write_file(
        &dl_ctx.join("svc/tick/run"),
        &long_running_with("#!/bin/busybox sh", "tick", ""),
        0o755,
    );
    let examples = format!("{prefix}/examples:latest");
    let e2e = format!("{prefix}/e2e:latest");
    let health = format!("{prefix}/e2e-health:latest");
    let e2e_distroless = format!("{prefix}/e2e-distroless:latest");
    let user_image = format!("{prefix}/user-image:latest");
    let results = std::thread::scope(|s| {
        let x = s.spawn(|| {
            let arg = format!("DINIT_IMAGE={alpine}");
            build(&examples, &["--build-arg", &arg], &repo().join("examples")).map(drop)
        });
        let y = s.spawn(|| {
            build(&e2e, &[], &e2e_ctx)?;
            let h = work.join("health");
            write_file(
                &h.join("Dockerfile"),
                &format!(
                    "FROM {e2e}\nENV DINIT_DIR=/svc/health DINIT_LOG_LEVEL=info\n\
                     HEALTHCHECK --interval=1s --timeout=5s --retries=2 CMD [\"/dinit\", \"check\"]\n"
                ),
                0o644,
            );
            build(&health, &[], &h).map(drop)
        });
        let z = s.spawn(|| build(&e2e_distroless, &[], &dl_ctx).map(drop));
        let u = s.spawn(|| {
            let arg = format!("DINIT_IMAGE={alpine}");
            build(
                &user_image,
                &["--build-arg", &arg],
                &repo().join("examples/user-image"),
            )
            .map(drop)
        });
        [
            x.join().unwrap(),
            y.join().unwrap(),
            z.join().unwrap(),
            u.join().unwrap(),
        ]
    });
    for r in results {
        r?;
    }
    let _ = fs::remove_dir_all(ctx.join("target/release/deps"));
    let _ = fs::remove_dir_all(ctx.join("src"));
    let _ = writeln!(
        std::io::stderr().lock(),
        "tests/docker.rs: images {prefix}/* built in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    Ok(Images {
        prefix,
        alpine,
        distroless,
        examples,
        e2e,
        health,
        e2e_distroless,
        user_image,
    })
}

fn busybox_path() -> PathBuf {
    std::env::var_os("BUSYBOX")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/bin/busybox"))
}

// ---------------------------------------------------------------------------------------------
// the scenarios in <p>/e2e: /svc/<scenario>/<service>/...

/// A service that runs until SIGTERM: `<name>: started pid=… uid=…`, a tick every 0.25 s,
/// `<name>: got SIGHUP` on HUP, `<name>: got SIGTERM` on TERM (then exit 0). `extra` runs once
/// the traps are set.
fn long_running_with(shebang: &str, name: &str, extra: &str) -> String {
    format!(
        "{shebang}\n\
         trap 'echo \"{name}: got SIGTERM\"; exit 0' TERM\n\
         trap 'echo \"{name}: got SIGHUP\"' HUP\n\
         {extra}\n\
         echo \"{name}: started pid=$$ uid=$(id -u)\"\n\
         i=0\n\
         while :; do i=$((i + 1)); echo \"{name}: tick $i\"; sleep 0.25; done\n"
    )
}

fn long_running(name: &str, extra: &str) -> String {
    long_running_with("#!/bin/sh", name, extra)
}

fn scenario_files() -> Vec<(String, String)> {
    let mut f: Vec<(String, String)> = Vec::new();
    let mut add = |p: &str, body: String| f.push((p.to_string(), body));
    // simple: one long-running service (read-only, non-root).
    add("simple/tick/run", long_running("tick", ""));
    // exit0 / exit7: `a` ends once `b` is ready (its TERM trap set).
    for (scenario, code) in [("exit0", 0), ("exit7", 7)] {
        add(
            &format!("{scenario}/a/run"),
            format!(
                "#!/bin/sh\nwhile [ ! -e /tmp/b.ready ]; do sleep 0.05; done\n\
                 echo \"a: exiting {code}\"\nexit {code}\n"
            ),
        );
        add(
            &format!("{scenario}/b/run"),
            long_running("b", "touch /tmp/b.ready"),
        );
    }
    // disable: `once` exits 115, `tick` keeps running.
    add(
        "disable/once/run",
        "#!/bin/sh\necho \"once: set-up done\"\nexit 115\n".into(),
    );
    add("disable/tick/run", long_running("tick", ""));
    // all115: both disable themselves.
    add(
        "all115/a/run",
        "#!/bin/sh\necho \"a: done\"\nexit 115\n".into(),
    );
    add(
        "all115/b/run",
        "#!/bin/sh\nsleep 0.3\necho \"b: done\"\nexit 115\n".into(),
    );
    // zombies: double-forked children that end at once or soon after, as orphans of PID 1.
    add(
        "zombies/spawner/run",
        "#!/bin/sh\n\
         trap 'echo \"spawner: got SIGTERM\"; exit 0' TERM\n\
         i=0\n\
         while [ $i -lt 20 ]; do i=$((i + 1)); ( sleep 0.1 & ); ( sh -c 'exit 0' & ); done\n\
         echo \"spawner: made $((i * 2)) orphans\"\n\
         while :; do sleep 0.25; done\n"
            .into(),
    );
    // orphans: a double-forked daemon that prints, and a double-forked sleep.
    add(
        "orphans/spawner/run",
        "#!/bin/sh\n\
         trap 'echo \"spawner: got SIGTERM\"; exit 0' TERM\n\
         ( /svc/bin/daemon & )\n\
         ( sleep 1000 & )\n\
         echo \"spawner: daemon and sleep started\"\n\
         while :; do sleep 0.25; done\n"
            .into(),
    );
    add(
        "bin/daemon",
        "#!/bin/sh\n\
         trap 'echo \"daemon: got SIGTERM\"; exit 0' TERM\n\
         i=0\n\
         while :; do i=$((i + 1)); echo \"daemon tick $i\"; sleep 0.2; done\n"
            .into(),
    );
    // health: `web` has a check script that fails while /tmp/web-broken exists.
    add("health/web/run", long_running("web", ""));
    add(
        "health/web/check",
        "#!/bin/sh\n[ ! -e /tmp/web-broken ] || { echo \"web: broken\" >&2; exit 1; }\n".into(),
    );
    add("health/db/run", long_running("db", ""));
    f
}

// ---------------------------------------------------------------------------------------------
// containers

/// A running container, removed (`docker rm -f`) on drop; its logs followed into memory.
struct Container {
    name: String,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
    follower: Option<Child>,
}

impl Container {
    /// `docker run -d --name <p>-<test> <opts> <image>`.
    fn start(test: &str, opts: &[&str], image: &str) -> Container {
        Container::start_cmd(test, opts, image, &[])
    }

    /// `docker run -d --name <p>-<test> <opts> <image> <cmd>`.
    fn start_cmd(test: &str, opts: &[&str], image: &str, cmd: &[&str]) -> Container {
        let name = format!("{}-{test}", images().prefix);
        CONTAINERS.lock().unwrap().push(name.clone());
        let _ = docker(&["rm", "-f", &name]);
        let mut args = vec!["run", "-d", "--name", &name];
        args.extend_from_slice(opts);
        args.push(image);
        args.extend_from_slice(cmd);
        docker_ok(&args, LONG);
        let mut follower = Command::new("docker")
            .args(["logs", "-f", &name])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("docker logs -f");
        let out = Arc::new(Mutex::new(Vec::new()));
        let err = Arc::new(Mutex::new(Vec::new()));
        reader(follower.stdout.take().unwrap(), out.clone());
        reader(follower.stderr.take().unwrap(), err.clone());
        Container {
            name,
            out,
            err,
            follower: Some(follower),
        }
    }

    /// What `docker logs -f` delivered so far: (stdout, stderr).
    fn seen(&self) -> (String, String) {
        let t = |b: &Arc<Mutex<Vec<u8>>>| String::from_utf8_lossy(&b.lock().unwrap()).into_owned();
        (t(&self.out), t(&self.err))
    }

    /// Waits until `cond(stdout, stderr)` holds; panics with the logs when it does not.
    fn wait_logs(&self, what: &str, deadline: Duration, cond: impl Fn(&str, &str) -> bool) {
        let ok = wait_until(deadline, || {
            let (o, e) = self.seen();
            cond(&o, &e)
        });
        if !ok {
            let (o, e) = self.logs();
            panic!(
                "{}: no {what} within {deadline:?}\n--- stdout\n{o}--- stderr\n{e}---\nstate: {}",
                self.name,
                self.inspect("{{.State.Status}} exit={{.State.ExitCode}}")
            );
        }
    }

    /// Waits for a line containing `needle` on stdout (`err` false) or stderr.
    fn wait_line(&self, err: bool, needle: &str) {
        let what = format!("{needle:?} on {}", if err { "stderr" } else { "stdout" });
        self.wait_logs(&what, LONG, |o, e| if err { e } else { o }.contains(needle));
    }

    /// The complete logs now (`docker logs`): (stdout, stderr).
    fn logs(&self) -> (String, String) {
        let o = docker(&["logs", &self.name]);
        (o.stdout, o.stderr)
    }

    fn inspect(&self, format: &str) -> String {
        docker(&["inspect", "-f", format, &self.name])
            .stdout
            .trim()
            .to_string()
    }

    /// Waits for `docker inspect`'s health status to be `want`.
    fn wait_health(&self, want: &str) {
        let mut last = String::new();
        let ok = wait_until(LONG, || {
            last = self.inspect("{{.State.Health.Status}}");
            last == want
        });
        assert!(
            ok,
            "{}: health {last:?}, not {want:?}: {}",
            self.name,
            self.inspect("{{json .State.Health}}")
        );
    }

    fn running(&self) -> bool {
        self.inspect("{{.State.Running}}") == "true"
    }

    fn exec(&self, args: &[&str]) -> Out {
        let mut all = vec!["exec", &self.name];
        all.extend_from_slice(args);
        docker(&all)
    }

    fn exec_as(&self, user: &str, args: &[&str]) -> Out {
        let mut all = vec!["exec", "-u", user, &self.name];
        all.extend_from_slice(args);
        docker(&all)
    }

    /// `docker stop -t 10`: how long it took; the container must have stopped.
    fn stop(&self) -> Duration {
        let t = Instant::now();
        let timeout = STOP_TIMEOUT_S.to_string();
        docker_ok(&["stop", "-t", &timeout, &self.name], LONG + LONG);
        t.elapsed()
    }

    /// Waits for the container to end on its own; its exit code.
    fn exit_code(&self) -> i32 {
        let o = docker_t(&["wait", &self.name], LONG + LONG);
        assert_eq!(o.code, 0, "docker wait {}: {o}", self.name);
        o.stdout
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("docker wait: {o}"))
    }

    /// Every process in the container: pid, state, ppid, comm, cmdline.
    fn procs(&self) -> Vec<Proc> {
        let o = self.exec(&[
            "sh",
            "-c",
            "for d in /proc/[0-9]*; do s=$(cat $d/stat 2>/dev/null) || continue; \
             c=$(tr '\\0' ' ' < $d/cmdline 2>/dev/null); echo \"$s|$c\"; done",
        ]);
        assert_eq!(o.code, 0, "listing processes in {}: {o}", self.name);
        o.stdout.lines().filter_map(Proc::parse).collect()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.name]);
        if let Some(mut f) = self.follower.take() {
            let _ = f.kill();
            let _ = f.wait();
        }
        CONTAINERS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|n| n != &self.name);
    }
}

#[derive(Debug)]
struct Proc {
    pid: u32,
    state: char,
    ppid: u32,
    comm: String,
    cmdline: String,
}

impl Proc {
    /// `<pid> (<comm>) <state> <ppid> …|<cmdline>`
    fn parse(line: &str) -> Option<Proc> {
        let (stat, cmdline) = line.split_once('|')?;
        let open = stat.find('(')?;
        let close = stat.rfind(')')?;
        let mut rest = stat[close + 1..].split_whitespace();
        Some(Proc {
            pid: stat[..open].trim().parse().ok()?,
            comm: stat[open + 1..close].to_string(),
            state: rest.next()?.chars().next()?,
            ppid: rest.next()?.parse().ok()?,
            cmdline: cmdline.trim().to_string(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// checking output

fn is_timestamp(s: &str) -> bool {
    let pat = b"dddd-dd-ddTdd:dd:dd.dddZ";
    s.len() == pat.len()
        && s.bytes().zip(pat.iter()).all(|(c, &p)| {
            if p == b'd' {
                c.is_ascii_digit()
            } else {
                c == p
            }
        })
}

/// Every stdout line is a JSON object with string `service`, `stage` and a `logged` timestamp.
fn json_records(stdout: &str) -> Vec<serde_json::Map<String, Value>> {
    stdout
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l:?}"));
            let Value::Object(m) = v else {
                panic!("stdout line is not a JSON object: {l:?}")
            };
            for k in ["service", "stage", "logged"] {
                assert!(
                    m.get(k).is_some_and(Value::is_string),
                    "stdout record without string {k:?}: {l}"
                );
            }
            assert!(
                is_timestamp(m["logged"].as_str().unwrap()),
                "bad logged: {l}"
            );
            m
        })
        .collect()
}

fn field<'a>(r: &'a serde_json::Map<String, Value>, k: &str) -> &'a str {
    r.get(k).and_then(Value::as_str).unwrap_or("")
}

/// Is there a record of `service`/`stage` whose `msg` contains `needle`?
fn has_msg(stdout: &str, service: &str, stage: &str, needle: &str) -> bool {
    stdout.lines().any(|l| {
        serde_json::from_str::<serde_json::Map<String, Value>>(l).is_ok_and(|r| {
            field(&r, "service") == service
                && field(&r, "stage") == stage
                && field(&r, "msg").contains(needle)
        })
    })
}

/// dinit's own messages containing `needle` (`<ts> dinit: <level>: <text>`).
fn own_messages<'a>(stderr: &'a str, needle: &str) -> Vec<&'a str> {
    stderr
        .lines()
        .filter(|l| l.get(24..).is_some_and(|r| r.starts_with(" dinit: ")) && l.contains(needle))
        .collect()
}

fn count(s: &str, needle: &str) -> usize {
    s.matches(needle).count()
}

// ---------------------------------------------------------------------------------------------
// the tests

/// The example services as an image: every service's lines in `docker logs` (stdout all JSON),
/// SIGHUP from `docker kill` reaching `web`, and `docker stop` running every shutdown handler,
/// fast, with exit code 0.
#[test]
fn examples_image_logs_hup_and_graceful_stop() {
    require_docker!("examples_image_logs_hup_and_graceful_stop");
    let img = images();
    let c = Container::start("examples", &["-e", "DINIT_LOG_LEVEL=info"], &img.examples);
    // Every service shows up; setup disables itself (115) and the others run on.
    c.wait_logs("every example service's first lines", LONG, |o, e| {
        has_msg(o, "api", "run", "api listening on :8080")
            && o.lines()
                .any(|l| l.contains("\"method\":\"GET\"") && l.contains("\"service\":\"api\""))
            && e.contains("cache/run: warning: cache")
            && has_msg(o, "clock", "run", "#1 tick 1")
            && has_msg(o, "setup", "run", "setup: 3 migrations applied")
            && e.contains("setup/run: PID")
            && own_messages(e, "setup/run: PID")
                .iter()
                .any(|l| l.ends_with("finished and disabled itself"))
            && has_msg(o, "web", "run", "web: serving on :80")
            && has_msg(o, "worker", "run", "job 1: started")
    });
    // dinit is PID 1, without docker-init.
    let procs = c.procs();
    let init = procs.iter().find(|p| p.pid == 1).expect("no PID 1");
    assert_eq!(init.comm, "dinit", "PID 1: {init:?}");

    // docker kill --signal HUP: forwarded; web reloads, the others ignore it and run on.
    docker_ok(&["kill", "--signal", "HUP", &c.name], LONG);
    c.wait_line(
        false,
        "web: got SIGHUP, reloaded configuration (generation 2)",
    );
    c.wait_line(true, "dinit: info: got signal 1, forwarding to services");
    assert!(c.running(), "a forwarded HUP stopped the container");

    // docker stop: graceful, every handler ran, exit 0, well within Docker's 10 s.
    let took = c.stop();
    let _ = writeln!(
        std::io::stderr().lock(),
        "tests/docker.rs: docker stop of the examples took {took:?}"
    );
    assert!(took < STOP_LIMIT, "docker stop took {took:?}");
    assert_eq!(c.inspect("{{.State.ExitCode}}"), "0");
    let (o, e) = c.logs();
    json_records(&o);
    for (service, stage, needle) in [
        ("api", "run", "api: got SIGTERM, shutting down"),
        ("clock", "run", "clock: got SIGTERM after"),
        ("web", "run", "web: got SIGTERM, closing connections"),
        ("worker", "term", "asking the worker (PID"),
        ("worker", "run", "worker: quitting after"),
        ("worker", "finish", "worker exited with code 0, cleaning up"),
    ] {
        assert!(
            has_msg(&o, service, stage, needle),
            "no {service}/{stage} {needle:?} in\n{o}"
        );
    }
    for needle in [
        "cache/run: cache: got SIGTERM, flushing to disk",
        "clock/log: clock logger: end of input after",
        "dinit: info: got signal 15, terminating services",
        "dinit: info: dinit exiting with status 0",
    ] {
        assert!(e.contains(needle), "no {needle:?} on stderr:\n{e}");
    }
    assert!(!e.contains("SIGKILL"), "something was killed:\n{e}");
}

/// Exit codes: a service exiting 0 → 0 (the others stopped gracefully), non-zero → 3, 115 →
/// the others keep running (and `docker stop` → 0), all 115 → 0. Also text mode.
#[test]
fn exit_codes_follow_the_contract() {
    require_docker!("exit_codes_follow_the_contract");
    let img = images();
    let e2e = img.e2e.as_str();
    std::thread::scope(|s| {
        s.spawn(|| {
            // exit 0, in text mode: every stdout line is `<ts> <name>/<stage>: <line>`.
            let c = Container::start(
                "exit0",
                &["-e", "DINIT_DIR=/svc/exit0", "-e", "DINIT_JSON_STDOUT=0"],
                e2e,
            );
            assert_eq!(c.exit_code(), 0);
            let (o, e) = c.logs();
            assert!(o.contains(" a/run: a: exiting 0\n"), "{o}");
            assert!(
                o.contains(" b/run: b: got SIGTERM\n"),
                "b's handler did not run:\n{o}\n{e}"
            );
            for l in o.lines() {
                assert!(
                    is_timestamp(&l[..24.min(l.len())])
                        && (l[24..].starts_with(" a/run: ") || l[24..].starts_with(" b/run: ")),
                    "not a text record: {l:?}"
                );
            }
        });
        s.spawn(|| {
            let c = Container::start("exit7", &["-e", "DINIT_DIR=/svc/exit7"], e2e);
            assert_eq!(c.exit_code(), 3);
            let (o, e) = c.logs();
            json_records(&o);
            assert!(has_msg(&o, "a", "run", "a: exiting 7"), "{o}");
            assert!(has_msg(&o, "b", "run", "b: got SIGTERM"), "{o}\n{e}");
        });
        s.spawn(|| {
            let c = Container::start(
                "all115",
                &["-e", "DINIT_DIR=/svc/all115", "-e", "DINIT_LOG_LEVEL=info"],
                e2e,
            );
            assert_eq!(c.exit_code(), 0);
            let (o, e) = c.logs();
            assert!(
                has_msg(&o, "a", "run", "a: done") && has_msg(&o, "b", "run", "b: done"),
                "{o}"
            );
            assert_eq!(
                own_messages(&e, "all services finished, exiting").len(),
                1,
                "{e}"
            );
        });
    });
    // 115 while another service runs: nothing stops; then docker stop → 0.
    let c = Container::start(
        "disable",
        &["-e", "DINIT_DIR=/svc/disable", "-e", "DINIT_LOG_LEVEL=info"],
        e2e,
    );
    c.wait_logs("once disabling itself", LONG, |_, e| {
        own_messages(e, "once/run: PID")
            .iter()
            .any(|l| l.ends_with("finished and disabled itself"))
    });
    let ticks = count(&c.seen().0, "tick: tick ");
    c.wait_logs("tick going on after once ended", LONG, |o, _| {
        count(o, "tick: tick ") >= ticks + 3
    });
    assert!(c.running());
    let took = c.stop();
    assert!(took < STOP_LIMIT, "docker stop took {took:?}");
    assert_eq!(c.inspect("{{.State.ExitCode}}"), "0");
    let (o, _) = c.logs();
    json_records(&o);
    assert!(has_msg(&o, "once", "run", "once: set-up done"), "{o}");
    assert!(has_msg(&o, "tick", "run", "tick: got SIGTERM"), "{o}");
}

/// Zombies are reaped without `docker run --init`: 40 double-forked children end as orphans
/// of PID 1 and none is left, zombie or not.
#[test]
fn zombies_reaped_without_docker_init() {
    require_docker!("zombies_reaped_without_docker_init");
    let img = images();
    let c = Container::start(
        "zombies",
        &["--init=false", "-e", "DINIT_DIR=/svc/zombies"],
        &img.e2e,
    );
    c.wait_line(false, "spawner: made 40 orphans");
    let init = c
        .procs()
        .into_iter()
        .find(|p| p.pid == 1)
        .expect("no PID 1");
    assert_eq!(
        (init.comm.as_str(), init.cmdline.as_str()),
        ("dinit", "/dinit")
    );
    let mut last = Vec::new();
    let clean = wait_until(LONG, || {
        last = c.procs();
        !last
            .iter()
            .any(|p| p.state == 'Z' || p.cmdline == "sleep 0.1")
    });
    assert!(clean, "zombies or orphans left: {last:#?}");
    assert!(c.running());
    c.stop();
    assert_eq!(c.inspect("{{.State.ExitCode}}"), "0");
}

/// `--read-only`: one warning that the control socket cannot be created, services run, stop
/// → 0; with `--tmpfs /run` the control socket works (`sv status`).
#[test]
fn read_only_root_filesystem() {
    require_docker!("read_only_root_filesystem");
    let img = images();
    let ro = Container::start(
        "ro",
        &["--read-only", "-e", "DINIT_DIR=/svc/simple"],
        &img.e2e,
    );
    let tmpfs = Container::start(
        "ro-tmpfs",
        &[
            "--read-only",
            "--tmpfs",
            "/run",
            "-e",
            "DINIT_DIR=/svc/simple",
        ],
        &img.e2e,
    );
    ro.wait_line(false, "tick: tick 3");
    let (_, e) = ro.seen();
    let warnings = own_messages(&e, "control socket");
    assert_eq!(warnings.len(), 1, "{e}");
    assert!(
        warnings[0].contains("dinit: warning: ")
            && warnings[0].contains("/run/dinit")
            && warnings[0].contains("read-only file system"),
        "{}",
        warnings[0]
    );
    let st = ro.exec(&["/dinit", "status"]);
    assert_eq!(st.code, 1, "{st}");
    assert!(
        st.stderr
            .contains("cannot reach dinit at /run/dinit/control.sock"),
        "{st}"
    );

    tmpfs.wait_line(false, "tick: tick 3");
    let st = tmpfs.exec(&["sv", "status", "tick"]);
    assert_eq!(st.code, 0, "{st}");
    assert!(st.stdout.starts_with("run: tick: (pid "), "{st}");
    assert!(
        own_messages(&tmpfs.seen().1, "control socket").is_empty(),
        "{:?}",
        tmpfs.seen().1
    );

    for c in [&ro, &tmpfs] {
        assert!(c.stop() < STOP_LIMIT);
        assert_eq!(c.inspect("{{.State.ExitCode}}"), "0");
        let (o, _) = c.logs();
        json_records(&o);
        assert!(has_msg(&o, "tick", "run", "tick: got SIGTERM"), "{o}");
    }
}

/// `--user`: the same image as nobody (the socket folder in /run is root's: one warning), and
/// as nonroot with the socket in /tmp: `sv status`, `sv restart` by dinit's own uid, refused
/// for another uid.
#[test]
fn non_root_user() {
    require_docker!("non_root_user");
    let img = images();
    let nobody = Container::start(
        "nobody",
        &["--user", "65534:65534", "-e", "DINIT_DIR=/svc/simple"],
        &img.e2e,
    );
    let nonroot = Container::start(
        "nonroot",
        &[
            "--user",
            "65532:65532",
            "-e",
            "DINIT_DIR=/svc/simple",
            "-e",
            "DINIT_CONTROL_SOCKET=/tmp/dinit.sock",
            "-e",
            "DINIT_LOG_LEVEL=info",
        ],
        &img.e2e,
    );
    nobody.wait_line(false, "tick: started pid=");
    let (o, e) = nobody.seen();
    assert!(o.contains("uid=65534"), "{o}");
    let warnings = own_messages(&e, "control socket");
    assert_eq!(warnings.len(), 1, "{e}");
    assert!(
        warnings[0].contains("/run/dinit") && warnings[0].contains("permission denied"),
        "{e}"
    );

    nonroot.wait_line(false, "tick: started pid=");
    assert!(nonroot.seen().0.contains("uid=65532"));
    assert!(
        own_messages(&nonroot.seen().1, "control socket").is_empty(),
        "{}",
        nonroot.seen().1
    );
    let st = nonroot.exec(&["sv", "status", "tick"]);
    assert_eq!(st.code, 0, "{st}");
    assert!(st.stdout.starts_with("run: tick: (pid "), "{st}");
    // The client trusts only a dinit of root or its own uid (contract §13): root's and
    // another user's clients refuse this one before sending anything, so nothing happens.
    // (The server's own `permission denied` for other uids is tests/control.rs's.)
    let st = nonroot.exec_as("0", &["/dinit", "status"]);
    assert_eq!(st.code, 1, "{st}");
    assert!(
        st.stderr.contains("not owned by root or you (uid 65532)"),
        "{st}"
    );
    let down = nonroot.exec_as("65534", &["/dinit", "down", "tick"]);
    assert_eq!(down.code, 1, "{down}");
    assert!(
        format!("{}{}", down.stdout, down.stderr).contains("not owned by root or you"),
        "{down}"
    );
    // dinit's own uid may restart
    let r = nonroot.exec(&["sv", "restart", "tick"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.starts_with("ok: run: tick: (pid "), "{r}");
    nonroot.wait_logs("tick started twice", LONG, |o, _| {
        count(o, "tick: started pid=") == 2
    });
    assert!(
        nonroot
            .seen()
            .1
            .contains("tick/run: restart requested by uid 65532"),
        "{}",
        nonroot.seen().1
    );

    for c in [&nobody, &nonroot] {
        assert!(c.stop() < STOP_LIMIT);
        assert_eq!(c.inspect("{{.State.ExitCode}}"), "0");
        let (o, _) = c.logs();
        json_records(&o);
        assert!(has_msg(&o, "tick", "run", "tick: got SIGTERM"), "{o}");
    }
}

fn orphans_container(policy: &str) -> Container {
    Container::start(
        &format!("orphans-{policy}"),
        &[
            "-e",
            "DINIT_DIR=/svc/orphans",
            "-e",
            "DINIT_LOG_LEVEL=info",
            "-e",
            &format!("DINIT_REPARENTING_POLICY={policy}"),
        ],
        &images().e2e,
    )
}

fn alive<'a>(procs: &'a [Proc], cmdline: &str) -> Option<&'a Proc> {
    procs
        .iter()
        .find(|p| p.cmdline == cmdline && p.state != 'Z')
}

/// terminate (the default): the double-forked sleep and daemon get SIGTERM and are gone; the
/// service runs on.
#[test]
fn orphan_policy_terminate() {
    require_docker!("orphan_policy_terminate");
    let c = orphans_container("terminate");
    c.wait_logs("both orphans terminated", LONG, |_, e| {
        !own_messages(e, "terminating reparented child process with PID").is_empty()
            && own_messages(e, ": sleep 1000").len() == 1
            && own_messages(e, ": /bin/sh /svc/bin/daemon").len() == 1
    });
    c.wait_line(false, "daemon: got SIGTERM");
    let mut last = Vec::new();
    let gone = wait_until(LONG, || {
        last = c.procs();
        alive(&last, "sleep 1000").is_none() && alive(&last, "/bin/sh /svc/bin/daemon").is_none()
    });
    assert!(gone, "orphans still there: {last:#?}");
    assert!(c.running());
    assert!(c.stop() < STOP_LIMIT);
    assert_eq!(c.inspect("{{.State.ExitCode}}"), "0");
}

/// adopt: the daemon's output is redirected (ptrace, allowed by Docker's default seccomp
/// profile) and shows up as `<name>/<pid>`; at `docker stop` it gets SIGTERM like a service.
#[test]
fn orphan_policy_adopt() {
    require_docker!("orphan_policy_adopt");
    let c = orphans_container("adopt");
    let adopted = |o: &str| -> Option<(String, String)> {
        o.lines().find_map(|l| {
            let r: serde_json::Map<String, Value> = serde_json::from_str(l).ok()?;
            let stage = field(&r, "stage");
            (field(&r, "msg").starts_with("daemon tick ") && stage.parse::<u32>().is_ok())
                .then(|| (field(&r, "service").to_string(), stage.to_string()))
        })
    };
    // The same as nobody on a read-only root: ptrace of one's own child needs neither root
    // nor a writable file system.
    let nobody = Container::start(
        "orphans-adopt-nobody-ro",
        &[
            "--user",
            "65534:65534",
            "--read-only",
            "-e",
            "DINIT_DIR=/svc/orphans",
            "-e",
            "DINIT_REPARENTING_POLICY=adopt",
        ],
        &images().e2e,
    );
    c.wait_logs(
        "the adopted daemon's output as <name>/<pid>",
        LONG,
        |o, _| adopted(o).is_some(),
    );
    nobody.wait_logs(
        "the adopted daemon's output as <name>/<pid> (nobody, read-only)",
        LONG,
        |o, _| adopted(o).is_some(),
    );
    assert!(
        !nobody.seen().1.contains("error redirecting"),
        "{}",
        nobody.seen().1
    );
    drop(nobody);
    let (name, pid) = adopted(&c.seen().0).unwrap();
    let (_, e) = c.seen();
    let want = format!(
        "{name}/{pid}: adopting reparented child process with PID {pid}: /bin/sh /svc/bin/daemon"
    );
    assert_eq!(own_messages(&e, &want).len(), 1, "no {want:?} in\n{e}");
    assert!(
        !own_messages(&e, "sleep 1000").is_empty(),
        "the sleep was not adopted:\n{e}"
    );
    let procs = c.procs();
    let daemon = alive(&procs, "/bin/sh /svc/bin/daemon").expect("the adopted daemon is gone");
    assert_eq!(
        (daemon.pid.to_string(), daemon.ppid),
        (pid.clone(), 1),
        "{procs:#?}"
    );
    assert!(alive(&procs, "sleep 1000").is_some(), "{procs:#?}");
    assert!(c.stop() < STOP_LIMIT);
    assert_eq!(c.inspect("{{.State.ExitCode}}"), "0");
    let (o, e) = c.logs();
    json_records(&o);
    assert!(has_msg(&o, &name, &pid, "daemon: got SIGTERM"), "{o}\n{e}");
    assert!(!e.contains("error redirecting"), "{e}");
}

/// ignore: the orphans are left alone (no message, still alive after several scan periods);
/// at `docker stop` they get SIGTERM like everything else (dinit does not wait for them under
/// `ignore`: they die with the container's PID namespace at the latest).
#[test]
fn orphan_policy_ignore() {
    require_docker!("orphan_policy_ignore");
    let c = orphans_container("ignore");
    c.wait_line(false, "spawner: daemon and sleep started");
    // The terminate policy acts within 1 s; give it 3 s worth of the daemon's ticks.
    c.wait_line(false, "daemon tick 15\"");
    let (o, e) = c.seen();
    assert!(own_messages(&e, "reparented").is_empty(), "{e}");
    assert!(!o.contains("daemon: got SIGTERM"), "{o}");
    let procs = c.procs();
    assert!(alive(&procs, "sleep 1000").is_some(), "{procs:#?}");
    assert!(
        alive(&procs, "/bin/sh /svc/bin/daemon").is_some(),
        "{procs:#?}"
    );
    assert!(c.stop() < STOP_LIMIT);
    assert_eq!(c.inspect("{{.State.ExitCode}}"), "0");
    let (o, e) = c.logs();
    json_records(&o);
    assert_eq!(
        own_messages(&e, "terminating reparented child process").len(),
        2,
        "{e}"
    );
}

/// HEALTHCHECK CMD ["/dinit", "check"]: healthy, unhealthy while `web`'s check script fails,
/// healthy again; `dinit restart web` restarts one service while the other runs on;
/// `sv status` works.
#[test]
fn healthcheck_restart_and_sv() {
    require_docker!("healthcheck_restart_and_sv");
    let img = images();
    let c = Container::start("health", &[], &img.health);
    let wait_health = |want: &str| c.wait_health(want);
    wait_health("healthy");
    assert_eq!(c.exec(&["/dinit", "check"]).code, 0);

    // web's check fails → unhealthy (the others are fine), and back.
    assert_eq!(c.exec(&["touch", "/tmp/web-broken"]).code, 0);
    let check = c.exec(&["/dinit", "check"]);
    assert_eq!(check.code, 1, "{check}");
    assert!(
        check.stdout.contains("web: check exited 1")
            || check.stderr.contains("web: check exited 1"),
        "{check}"
    );
    let db_only = c.exec(&["/dinit", "check", "db"]);
    assert_eq!(db_only.code, 0, "{db_only}");
    wait_health("unhealthy");
    assert!(c.running(), "unhealthy must not stop anything");
    assert_eq!(c.exec(&["rm", "/tmp/web-broken"]).code, 0);
    wait_health("healthy");

    // sv status, through the /usr/bin/sv link
    let st = c.exec(&["sv", "status", "web", "db"]);
    assert_eq!(st.code, 0, "{st}");
    let lines: Vec<&str> = st.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{st}");
    assert!(
        lines[0].starts_with("run: web: (pid ") && lines[1].starts_with("run: db: (pid "),
        "{st}"
    );
    let pid_of = |svc: &str| -> String {
        let o = c.exec(&["/dinit", "status", "--json", svc]);
        assert_eq!(o.code, 0, "{o}");
        let v: Value = serde_json::from_str(o.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {o}"));
        v["services"][0]["pid"].to_string()
    };
    let (web1, db1) = (pid_of("web"), pid_of("db"));

    // restart one service: it goes down (handler runs) and up again; db is untouched.
    let r = c.exec(&["/dinit", "restart", "web"]);
    assert_eq!(r.code, 0, "{r}");
    c.wait_logs("web started again", LONG, |o, _| {
        count(o, "web: started pid=") == 2
    });
    let (o, e) = c.seen();
    assert!(has_msg(&o, "web", "run", "web: got SIGTERM"), "{o}");
    assert!(
        e.contains("dinit: info: web/run: restart requested by uid 0"),
        "{e}"
    );
    assert!(!has_msg(&o, "db", "run", "db: got SIGTERM"), "{o}");
    assert!(c.running());
    let (web2, db2) = (pid_of("web"), pid_of("db"));
    assert_ne!(web1, web2, "web has the same pid after a restart");
    assert_eq!(db1, db2, "db was restarted too");
    let db_ticks = count(&c.seen().0, "db: tick ");
    c.wait_logs("db ticking on", LONG, |o, _| {
        count(o, "db: tick ") >= db_ticks + 2
    });
    wait_health("healthy");

    assert!(c.stop() < STOP_LIMIT);
    assert_eq!(c.inspect("{{.State.ExitCode}}"), "0");
    json_records(&c.logs().0);
}

/// The distroless image: no shell in it, `--version`, an empty /etc/service (warning, exit 0),
/// a static service, `sv status` through /usr/bin/sv, `dinit check`, `docker stop` → 0.
#[test]
fn distroless_image() {
    require_docker!("distroless_image");
    let img = images();
    let v = docker(&["run", "--rm", &img.distroless, "--version"]);
    assert_eq!(
        (v.code, v.stdout.as_str()),
        (0, format!("dinit {}\n", env!("CARGO_PKG_VERSION")).as_str()),
        "{v}"
    );
    let empty = docker(&["run", "--rm", &img.distroless]);
    assert_eq!(empty.code, 0, "{empty}");
    assert!(
        empty
            .stderr
            .contains("dinit: warning: no services found, exiting"),
        "{empty}"
    );
    let sh = docker(&[
        "run",
        "--rm",
        "--entrypoint",
        "/bin/sh",
        &img.distroless,
        "-c",
        "true",
    ]);
    assert_ne!(sh.code, 0, "the distroless image has a shell: {sh}");

    let c = Container::start("distroless", &[], &img.e2e_distroless);
    c.wait_line(false, "tick: tick 2");
    let st = c.exec(&["sv", "status", "tick"]);
    assert_eq!(st.code, 0, "{st}");
    assert!(st.stdout.starts_with("run: tick: (pid "), "{st}");
    let ck = c.exec(&["/dinit", "check"]);
    assert_eq!(ck.code, 0, "{ck}");
    // `dinit` is on PATH (/usr/bin/dinit -> /dinit), in the image without a shell too.
    let st = c.exec(&["dinit", "status"]);
    assert_eq!(st.code, 0, "{st}");
    assert!(st.stdout.starts_with("run: tick: (pid "), "{st}");
    assert!(c.stop() < STOP_LIMIT);
    assert_eq!(c.inspect("{{.State.ExitCode}}"), "0");
    let (o, _) = c.logs();
    json_records(&o);
    assert!(has_msg(&o, "tick", "run", "tick: got SIGTERM"), "{o}");
}

/// Image facts for the record: sizes, entrypoint, the sv link, the empty service directory,
/// and the .dockerignore keeping the build context small.
#[test]
fn images_are_as_documented() {
    require_docker!("images_are_as_documented");
    let img = images();
    let mut sizes = BTreeMap::new();
    for image in [&img.alpine, &img.distroless] {
        let ep = docker_ok(
            &[
                "image",
                "inspect",
                "-f",
                "{{json .Config.Entrypoint}} {{.Config.Cmd}} {{.Config.Volumes}}",
                image,
            ],
            LONG,
        );
        assert_eq!(ep.stdout.trim(), "[\"/dinit\"] [] map[]", "{image}: {ep}");
        let size = docker_ok(&["image", "inspect", "-f", "{{.Size}}", image], LONG);
        sizes.insert(image.as_str(), size.stdout.trim().to_string());
    }
    let o = docker_ok(
        &[
            "run",
            "--rm",
            "--entrypoint",
            "/bin/sh",
            &img.alpine,
            "-c",
            "readlink /usr/bin/sv; readlink /usr/bin/dinit; command -v dinit; \
             ls -A /etc/service | wc -l; ls -l /dinit | awk '{print $5}'; pwd",
        ],
        LONG,
    );
    let bin_size = fs::metadata(dinit_bin()).unwrap().len();
    assert_eq!(
        o.stdout,
        format!("/dinit\n/dinit\n/usr/bin/dinit\n0\n{bin_size}\n/\n"),
        "{o}"
    );
    let _ = writeln!(
        std::io::stderr().lock(),
        "tests/docker.rs: binary {bin_size} bytes; image sizes {sizes:?}"
    );
}

/// examples/user-image, the walk-through of docs/image.md: its own HEALTHCHECK (the interval
/// shortened at `docker run`) turns healthy, httpd serves, the worker logs JSON, `docker stop`
/// → 0 with the worker's last line.
#[test]
fn user_image_example() {
    require_docker!("user_image_example");
    let img = images();
    let c = Container::start("user-image", &["--health-interval", "1s"], &img.user_image);
    c.wait_health("healthy");
    let page = c.exec(&["wget", "-q", "-O", "-", "http://127.0.0.1:8080/"]);
    assert_eq!(page.code, 0, "{page}");
    assert!(page.stdout.contains("supervised by dinit"), "{page}");
    c.wait_line(true, "web/run: ");
    c.wait_line(
        false,
        "\"msg\":\"job done\",\"job\":1,\"service\":\"worker\",\"stage\":\"run\"",
    );
    // docs/image.md, "Control at runtime": every command of that block, in its order.
    let st = c.exec(&["sv", "status", "web", "worker"]);
    assert_eq!(st.code, 0, "{st}");
    let all = c.exec(&["dinit", "status"]);
    assert_eq!(all.code, 0, "{all}");
    let lines: Vec<&str> = all.stdout.lines().collect();
    assert!(
        lines.len() == 2
            && lines[0].starts_with("run: web: (pid ")
            && lines[1].starts_with("run: worker: (pid "),
        "{all}"
    );
    // runit's `sv status` wants service names: usage, exit 100 (as runit's own sv)
    let usage = c.exec(&["sv", "status"]);
    assert_eq!(usage.code, 100, "{usage}");
    assert!(usage.stderr.contains("usage: sv "), "{usage}");
    let r = c.exec(&["sv", "restart", "web"]);
    assert!(
        r.code == 0 && r.stdout.starts_with("ok: run: web: (pid "),
        "{r}"
    );
    let json = c.exec(&["dinit", "status", "--json"]);
    assert_eq!(json.code, 0, "{json}");
    let v: Value =
        serde_json::from_str(json.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(v["services"].as_array().map(Vec::len), Some(2), "{json}");
    let down = c.exec(&["dinit", "down", "worker"]);
    assert_eq!(down.code, 0, "{down}");
    c.wait_logs("the worker stopped on purpose", LONG, |o, _| {
        has_msg(o, "worker", "run", "worker stopped after")
    });
    assert!(c.running(), "dinit down stopped the container");
    let up = c.exec(&["dinit", "up", "worker"]);
    assert_eq!(up.code, 0, "{up}");
    c.wait_logs("the worker started again", LONG, |o, _| {
        count(o, "\"job\":1,\"service\":\"worker\"") == 2
    });
    assert!(c.stop() < STOP_LIMIT);
    assert_eq!(c.inspect("{{.State.ExitCode}}"), "0");
    let (o, e) = c.logs();
    json_records(&o);
    assert!(has_msg(&o, "worker", "run", "worker stopped after"), "{o}");
    assert!(
        e.contains("dinit: info: dinit exiting with status 0"),
        "{e}"
    );
    assert!(!e.contains("warning"), "{e}");
}

// =============================================================================================
// The same images under Podman and under containerd's `ctr` with runc (what Kubernetes nodes
// run: the kubelet talks to containerd, containerd starts runc), loaded from a `docker save`
// tarball, nothing pulled. Each runtime's test checks what the Docker tests above check, in
// that runtime's terms: the logs (stdout JSON, dinit's own lines on stderr), the stop (SIGTERM,
// every handler ran, exit 0, well within 10 s), exit codes 0, 3 and 0 for "all 115", the health
// check (Podman: the image's HEALTHCHECK through `podman healthcheck run`; ctr, which has no
// HEALTHCHECK: `/dinit check` through `ctr task exec`, which is what a Kubernetes exec probe
// does), and `dinit status` / `sv status` in the container. A runtime that is not installed is
// skipped by name (`common::skip`); one that is installed but cannot run a container fails.

/// `docker save` of the examples, e2e and e2e-health images, once per test binary.
fn saved_images() -> &'static Path {
    static TAR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let r = TAR.get_or_init(|| {
        let img = images();
        let tar = work_dir().join("images.tar");
        let o = docker_t(
            &[
                "save",
                "-o",
                tar.to_str().unwrap(),
                &img.examples,
                &img.e2e,
                &img.health,
            ],
            BUILD,
        );
        if o.code != 0 {
            return Err(format!("docker save: {o}"));
        }
        Ok(tar)
    });
    match r {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

/// The temporary directory of this test binary (made with the images).
fn work_dir() -> PathBuf {
    images();
    WORKDIR
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .expect("no work dir")
}

fn found_in_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            fs::metadata(d.join(program)).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
        })
    })
}

fn run_prog(program: &str, args: &[String], timeout: Duration) -> Out {
    let mut cmd = Command::new(program);
    cmd.args(args);
    run_cmd(cmd, timeout).unwrap_or_else(|e| panic!("{e}"))
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn note(s: &str) {
    let _ = writeln!(std::io::stderr().lock(), "tests/docker.rs: {s}");
}

enum RtKind {
    Podman,
    Ctr,
}

/// One runtime, with its own storage under the test's work dir (Podman: `--root`/`--runroot`;
/// containerd: its own daemon, root, state and socket, started here and stopped on drop), so
/// nothing touches the machine's own Podman or containerd.
struct Runtime {
    kind: RtKind,
    /// arguments before the subcommand: `podman --root …`, `ctr --address … --namespace …`
    base: Vec<String>,
    /// `podman run` options every container gets
    run_opts: Vec<String>,
    /// how the runtime names a loaded image: `localhost/<repo>` or `docker.io/<repo>`
    image_prefix: &'static str,
    daemon: Option<Child>,
    dir: PathBuf,
}

impl Runtime {
    fn program(&self) -> &'static str {
        match self.kind {
            RtKind::Podman => "podman",
            RtKind::Ctr => "ctr",
        }
    }

    fn cmd(&self, args: &[&str], timeout: Duration) -> Out {
        let mut all = self.base.clone();
        all.extend(strings(args));
        run_prog(self.program(), &all, timeout)
    }

    fn ok(&self, args: &[&str], timeout: Duration) -> Out {
        let o = self.cmd(args, timeout);
        assert_eq!(o.code, 0, "{} {}: {o}", self.program(), args.join(" "));
        o
    }

    fn image(&self, docker_name: &str) -> String {
        format!("{}{docker_name}", self.image_prefix)
    }

    fn load(&self) {
        let tar = saved_images().to_str().unwrap().to_string();
        let t = Instant::now();
        match self.kind {
            RtKind::Podman => self.ok(&["load", "-i", &tar], BUILD),
            RtKind::Ctr => self.ok(&["images", "import", &tar], BUILD),
        };
        note(&format!(
            "{} loaded the images from a docker save tarball in {:.1} s",
            self.program(),
            t.elapsed().as_secs_f64()
        ));
    }

    /// Podman, with the first OCI runtime of crun, runc that can run a container here.
    fn podman(test: &str) -> Option<Runtime> {
        if !found_in_path("podman") {
            common::skip(test, "podman not installed (Debian package podman)");
            return None;
        }
        let dir = work_dir().join("podman");
        fs::create_dir_all(&dir).unwrap();
        // Podman's default limits (nofile 1048576) may exceed this process's hard limits, and
        // an OCI runtime cannot raise them (`setrlimit RLIMIT_NOFILE: Operation not permitted`):
        // give the containers modest ones, below this process's own.
        let lim = |r, most: u64| {
            let mut l = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            unsafe { libc::getrlimit(r, &mut l) };
            l.rlim_max.min(most)
        };
        let (nofile, nproc) = (
            lim(libc::RLIMIT_NOFILE, 4096),
            lim(libc::RLIMIT_NPROC, 4096),
        );
        let mut rt = Runtime {
            kind: RtKind::Podman,
            base: strings(&[
                "--root",
                dir.join("root").to_str().unwrap(),
                "--runroot",
                dir.join("run").to_str().unwrap(),
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
                "--runtime",
                "crun",
            ]),
            run_opts: vec![
                "--network".into(),
                "none".into(),
                "--log-driver".into(),
                "k8s-file".into(),
                "--ulimit".into(),
                format!("nofile={nofile}:{nofile}"),
                "--ulimit".into(),
                format!("nproc={nproc}:{nproc}"),
            ],
            image_prefix: "localhost/",
            daemon: None,
            dir: dir.clone(),
        };
        rt.load();
        let mut tried = Vec::new();
        for oci in ["crun", "runc"] {
            if !found_in_path(oci) {
                tried.push(format!("{oci}: not installed"));
                continue;
            }
            *rt.base.last_mut().unwrap() = oci.to_string();
            let e2e = rt.image(&images().e2e);
            let mut args = vec!["run", "--rm"];
            let opts = rt.run_opts.clone();
            args.extend(opts.iter().map(String::as_str));
            args.extend([e2e.as_str(), "--version"]);
            let o = rt.cmd(&args, LONG);
            if o.code == 0 {
                let v = rt.cmd(&["--version"], LONG);
                note(&format!(
                    "{} with OCI runtime {oci}{}",
                    v.stdout.trim(),
                    if tried.is_empty() {
                        String::new()
                    } else {
                        format!(" (tried first: {})", tried.join("; "))
                    }
                ));
                return Some(rt);
            }
            tried.push(format!("{oci}: {}", one_line(&o.stderr)));
        }
        panic!(
            "podman is installed but runs no container here: {}",
            tried.join("; ")
        );
    }

    /// containerd, started here on its own socket, and `ctr` with containerd's default runtime
    /// io.containerd.runc.v2 (runc), as on a Kubernetes node.
    fn ctr(test: &str) -> Option<Runtime> {
        for (p, pkg) in [
            ("containerd", "containerd"),
            ("ctr", "containerd"),
            ("containerd-shim-runc-v2", "containerd"),
            ("runc", "runc"),
        ] {
            if !found_in_path(p) {
                common::skip(test, &format!("{p} not installed (Debian package {pkg})"));
                return None;
            }
        }
        let dir = work_dir().join("containerd");
        fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("containerd.sock");
        let config = dir.join("config.toml");
        fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{sock}\"\n\
                 [ttrpc]\n  address = \"{sock}.ttrpc\"\n\
                 [debug]\n  address = \"\"\n",
                root = dir.join("root").display(),
                state = dir.join("state").display(),
                sock = sock.display(),
            ),
        )
        .unwrap();
        let log = fs::File::create(dir.join("containerd.log")).unwrap();
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting containerd");
        let mut rt = Runtime {
            kind: RtKind::Ctr,
            base: strings(&[
                "--address",
                sock.to_str().unwrap(),
                "--namespace",
                "dinit-e2e",
            ]),
            run_opts: Vec::new(),
            image_prefix: "docker.io/",
            daemon: Some(daemon),
            dir: dir.clone(),
        };
        let mut last = String::new();
        let up = wait_until(LONG, || {
            let o = rt.cmd(&["version"], LONG);
            last = o.to_string();
            o.code == 0
        });
        if !up {
            let log = fs::read_to_string(dir.join("containerd.log")).unwrap_or_default();
            let _ = rt.daemon.as_mut().map(Child::kill);
            panic!("containerd did not come up: {last}\n--- containerd.log\n{log}");
        }
        let v = rt.cmd(&["version"], LONG);
        let runc = run_prog("runc", &strings(&["--version"]), LONG);
        note(&format!(
            "containerd {} (started by this test), ctr, {}",
            v.stdout
                .lines()
                .filter_map(|l| l.trim().strip_prefix("Version:"))
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" / "),
            runc.stdout.lines().next().unwrap_or("runc")
        ));
        rt.load();
        Some(rt)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        match self.kind {
            RtKind::Podman => {
                let _ = self.cmd(&["rm", "-af", "-t", "0"], LONG);
                let _ = self.cmd(&["rmi", "-af"], LONG);
            }
            RtKind::Ctr => {
                if let Some(mut d) = self.daemon.take() {
                    unsafe { libc::kill(d.id() as i32, libc::SIGTERM) };
                    let end = Instant::now() + Duration::from_secs(10);
                    while Instant::now() < end && d.try_wait().ok().flatten().is_none() {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    let _ = d.kill();
                    let _ = d.wait();
                }
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A container of a [`Runtime`]: Podman's run detached and its logs read with `podman logs`;
/// ctr's run in the foreground (`ctr run --rm`) as a child of the test, its stdout and stderr
/// read from the pipes, its exit code the container's.
struct RtContainer<'a> {
    rt: &'a Runtime,
    name: String,
    client: Option<Child>,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
    code: Option<i32>,
    execs: usize,
}

impl<'a> RtContainer<'a> {
    fn start(rt: &'a Runtime, name: &str, env: &[&str], image: &str) -> RtContainer<'a> {
        let name = format!("{}-{}", images().prefix, name);
        let image = rt.image(image);
        let out = Arc::new(Mutex::new(Vec::new()));
        let err = Arc::new(Mutex::new(Vec::new()));
        let mut client = None;
        match rt.kind {
            RtKind::Podman => {
                let mut args = vec!["run", "-d", "--name", &name];
                args.extend(rt.run_opts.iter().map(String::as_str));
                for e in env {
                    args.extend(["-e", e]);
                }
                args.push(&image);
                rt.ok(&args, LONG);
            }
            RtKind::Ctr => {
                let mut args = rt.base.clone();
                args.extend(strings(&["run", "--rm"]));
                for e in env {
                    args.extend(strings(&["--env", e]));
                }
                args.extend([image, name.clone()]);
                let mut c = Command::new("ctr")
                    .args(&args)
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("ctr run");
                reader(c.stdout.take().unwrap(), out.clone());
                reader(c.stderr.take().unwrap(), err.clone());
                client = Some(c);
            }
        }
        RtContainer {
            rt,
            name,
            client,
            out,
            err,
            code: None,
            execs: 0,
        }
    }

    /// (stdout, stderr) so far.
    fn logs(&self) -> (String, String) {
        match self.rt.kind {
            RtKind::Podman => {
                let o = self.rt.cmd(&["logs", &self.name], LONG);
                (o.stdout, o.stderr)
            }
            RtKind::Ctr => {
                let t = |b: &Arc<Mutex<Vec<u8>>>| {
                    String::from_utf8_lossy(&b.lock().unwrap()).into_owned()
                };
                (t(&self.out), t(&self.err))
            }
        }
    }

    fn wait_logs(&self, what: &str, cond: impl Fn(&str, &str) -> bool) {
        let ok = wait_until(LONG, || {
            let (o, e) = self.logs();
            cond(&o, &e)
        });
        if !ok {
            let (o, e) = self.logs();
            panic!(
                "{} {}: no {what} within {LONG:?}\n--- stdout\n{o}--- stderr\n{e}---",
                self.rt.program(),
                self.name
            );
        }
    }

    fn exec(&mut self, args: &[&str]) -> Out {
        self.execs += 1;
        match self.rt.kind {
            RtKind::Podman => {
                let mut all = vec!["exec", &self.name];
                all.extend_from_slice(args);
                self.rt.cmd(&all, LONG)
            }
            RtKind::Ctr => {
                let id = format!("exec{}", self.execs);
                let mut all = vec!["task", "exec", "--exec-id", &id, &self.name];
                all.extend_from_slice(args);
                self.rt.cmd(&all, LONG)
            }
        }
    }

    /// The container's exit code, once it ended on its own or after [`Self::stop`].
    fn exit_code(&mut self) -> i32 {
        if let Some(c) = self.code {
            return c;
        }
        let code = match self.rt.kind {
            RtKind::Podman => {
                let o = self.rt.ok(&["wait", &self.name], LONG + LONG);
                o.stdout
                    .trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("podman wait: {o}"))
            }
            RtKind::Ctr => {
                let c = self.client.as_mut().unwrap();
                let end = Instant::now() + LONG + LONG;
                loop {
                    if let Some(s) = c.try_wait().unwrap() {
                        break s.code().unwrap_or(-1);
                    }
                    assert!(Instant::now() < end, "{}: ctr run did not end", self.name);
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        };
        self.code = Some(code);
        code
    }

    /// SIGTERM, as `docker stop` and the kubelet send it: how long until the container ended.
    fn stop(&mut self) -> Duration {
        let t = Instant::now();
        match self.rt.kind {
            RtKind::Podman => {
                let timeout = STOP_TIMEOUT_S.to_string();
                self.rt
                    .ok(&["stop", "-t", &timeout, &self.name], LONG + LONG);
            }
            RtKind::Ctr => {
                self.rt
                    .ok(&["task", "kill", "--signal", "SIGTERM", &self.name], LONG);
            }
        }
        self.exit_code();
        t.elapsed()
    }
}

impl Drop for RtContainer<'_> {
    fn drop(&mut self) {
        match self.rt.kind {
            RtKind::Podman => {
                let _ = self.rt.cmd(&["rm", "-f", "-t", "0", &self.name], LONG);
            }
            RtKind::Ctr => {
                if let Some(mut c) = self.client.take() {
                    if c.try_wait().ok().flatten().is_none() {
                        let _ = self
                            .rt
                            .cmd(&["task", "kill", "--signal", "SIGKILL", &self.name], LONG);
                        let end = Instant::now() + LONG;
                        while Instant::now() < end && c.try_wait().ok().flatten().is_none() {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        let _ = c.kill();
                    }
                    let _ = c.wait();
                }
                let _ = self.rt.cmd(&["task", "rm", "-f", &self.name], LONG);
                let _ = self.rt.cmd(&["containers", "rm", &self.name], LONG);
            }
        }
    }
}

/// The checks every runtime gets (see the head of this section).
fn runtime_end_to_end(rt: &Runtime) {
    let img = images();
    let label = rt.program();
    // logs, control commands, stop
    let mut c = RtContainer::start(rt, "rt-examples", &["DINIT_LOG_LEVEL=info"], &img.examples);
    c.wait_logs("every example service's first lines", |o, e| {
        has_msg(o, "api", "run", "api listening on :8080")
            && e.contains("cache/run: warning: cache")
            && has_msg(o, "clock", "run", "#1 tick 1")
            && has_msg(o, "setup", "run", "setup: 3 migrations applied")
            && has_msg(o, "web", "run", "web: serving on :80")
            && has_msg(o, "worker", "run", "job 1: started")
    });
    let st = c.exec(&["dinit", "status"]);
    assert_eq!(st.code, 0, "{label}: dinit status: {st}");
    assert!(
        st.stdout.lines().any(|l| l.starts_with("run: web: (pid ")),
        "{label}: {st}"
    );
    let sv = c.exec(&["sv", "status", "web", "api"]);
    assert_eq!(sv.code, 0, "{label}: sv status: {sv}");
    let took = c.stop();
    assert!(took < STOP_LIMIT, "{label}: the stop took {took:?}");
    assert_eq!(c.exit_code(), 0, "{label}: exit code after SIGTERM");
    let (o, e) = c.logs();
    json_records(&o);
    for (service, stage, needle) in [
        ("api", "run", "api: got SIGTERM, shutting down"),
        ("web", "run", "web: got SIGTERM, closing connections"),
        ("worker", "term", "asking the worker (PID"),
        ("worker", "finish", "worker exited with code 0, cleaning up"),
    ] {
        assert!(
            has_msg(&o, service, stage, needle),
            "{label}: no {service}/{stage} {needle:?} in\n{o}"
        );
    }
    for needle in [
        "clock/log: clock logger: end of input after",
        "dinit: info: got signal 15, terminating services",
        "dinit: info: dinit exiting with status 0",
    ] {
        assert!(e.contains(needle), "{label}: no {needle:?} on stderr:\n{e}");
    }
    assert!(
        !e.contains("SIGKILL"),
        "{label}: something was killed:\n{e}"
    );
    note(&format!(
        "{label}: stop of the examples took {took:?}, exit 0"
    ));
    drop(c);

    // exit codes
    for (scenario, want) in [("exit0", 0), ("exit7", 3), ("all115", 0)] {
        let dir = format!("DINIT_DIR=/svc/{scenario}");
        let mut c = RtContainer::start(rt, &format!("rt-{scenario}"), &[&dir], &img.e2e);
        let code = c.exit_code();
        let (o, e) = c.logs();
        assert_eq!(code, want, "{label}: {scenario}\n{o}\n{e}");
        json_records(&o);
    }
    note(&format!(
        "{label}: exit codes 0, 3, 0 (exit 0, exit 7, all 115)"
    ));

    // health: web's check script fails while /tmp/web-broken exists
    let mut h = RtContainer::start(rt, "rt-health", &[], &img.health);
    h.wait_logs("web and db running", |o, _| {
        o.contains("web: started pid=") && o.contains("db: started pid=")
    });
    let health = |h: &mut RtContainer| -> (i32, String) {
        match rt.kind {
            RtKind::Podman => {
                let o = rt.cmd(&["healthcheck", "run", &h.name], LONG);
                let s = rt.ok(
                    &["inspect", "-f", "{{.State.Health.Status}}", &h.name],
                    LONG,
                );
                (o.code, s.stdout.trim().to_string())
            }
            RtKind::Ctr => {
                let o = h.exec(&["/dinit", "check"]);
                (o.code, format!("{}{}", o.stdout, o.stderr))
            }
        }
    };
    let ok = wait_until(LONG, || health(&mut h).0 == 0);
    assert!(ok, "{label}: never healthy: {:?}", health(&mut h));
    assert_eq!(h.exec(&["touch", "/tmp/web-broken"]).code, 0);
    let (code, said) = health(&mut h);
    assert_eq!(code, 1, "{label}: {said}");
    match rt.kind {
        // the image's HEALTHCHECK has --retries=2: unhealthy after the second failure
        RtKind::Podman => {
            let (code, status) = health(&mut h);
            assert_eq!((code, status.as_str()), (1, "unhealthy"), "{label}");
        }
        RtKind::Ctr => assert!(said.contains("web: check exited 1"), "{label}: {said}"),
    }
    assert_eq!(h.exec(&["rm", "/tmp/web-broken"]).code, 0);
    let (code, said) = health(&mut h);
    assert_eq!(code, 0, "{label}: {said}");
    if let RtKind::Podman = rt.kind {
        assert_eq!(said, "healthy", "{label}");
    }
    let took = h.stop();
    assert!(took < STOP_LIMIT, "{label}: the stop took {took:?}");
    assert_eq!(h.exit_code(), 0, "{label}");
    note(&format!(
        "{label}: health check healthy -> unhealthy -> healthy ({})",
        match rt.kind {
            RtKind::Podman => "podman healthcheck run, the image's HEALTHCHECK",
            RtKind::Ctr => "ctr task exec /dinit check, as a Kubernetes exec probe",
        }
    ));
}

/// The images under Podman (crun, or runc where crun cannot run here), loaded from a
/// `docker save` tarball: logs, stop, exit codes, health, control commands.
#[test]
fn podman_logs_stop_exit_codes_health() {
    require_docker!("podman_logs_stop_exit_codes_health");
    let Some(rt) = Runtime::podman("podman_logs_stop_exit_codes_health") else {
        return;
    };
    runtime_end_to_end(&rt);
}

/// The images under containerd's `ctr` with runc (a containerd started by this test), loaded
/// with `ctr images import` from a `docker save` tarball: logs, stop, exit codes, health
/// (`/dinit check` as an exec probe), control commands.
#[test]
fn containerd_ctr_runc_logs_stop_exit_codes_health() {
    require_docker!("containerd_ctr_runc_logs_stop_exit_codes_health");
    let Some(rt) = Runtime::ctr("containerd_ctr_runc_logs_stop_exit_codes_health") else {
        return;
    };
    runtime_end_to_end(&rt);
}

// ---------------------------------------------------------------------------------------------
// a main program from CMD (contract §14)

/// `<p>/e2e-main`: `ENTRYPOINT ["/dinit", "--"]`, `CMD ["sh", "-c", "exit 5"]`; `/svc/bin/
/// main-loop` runs until SIGTERM (`main: got SIGTERM`, exit 0); `/svc/main-sidecar/side` is a
/// long-running service.
fn main_image() -> &'static str {
    static IMAGE: OnceLock<Result<String, String>> = OnceLock::new();
    let r = IMAGE.get_or_init(|| {
        let img = images();
        let ctx = WORKDIR
            .lock()
            .unwrap()
            .clone()
            .expect("no work dir")
            .join("e2e-main");
        write_file(
            &ctx.join("Dockerfile"),
            &format!(
                "FROM {}\nCOPY svc /svc\nENTRYPOINT [\"/dinit\", \"--\"]\nCMD [\"sh\", \"-c\", \"exit 5\"]\n",
                img.alpine
            ),
            0o644,
        );
        write_file(
            &ctx.join("svc/main-sidecar/side/run"),
            &long_running("side", ""),
            0o755,
        );
        write_file(
            &ctx.join("svc/bin/main-loop"),
            "#!/bin/sh\n\
             trap 'echo \"main: got SIGTERM\"; exit 0' TERM\n\
             echo \"main: started pid=$$\"\n\
             while :; do sleep 0.25; done\n",
            0o755,
        );
        let tag = format!("{}/e2e-main:latest", img.prefix);
        build(&tag, &[], &ctx).map(|_| tag)
    });
    match r {
        Ok(t) => t,
        Err(e) => panic!("building the main-program image failed: {e}"),
    }
}

/// `ENTRYPOINT ["/dinit", "--"]` with the image's `CMD ["sh", "-c", "exit 5"]`: the container
/// exits 5. A `CMD` given at `docker run` replaces it: its output comes out as JSON records of
/// service `main` and its code is the container's (3); a program that is not there → 127 with
/// dinit's one error line.
#[test]
fn main_program_from_cmd_exit_code() {
    require_docker!("main_program_from_cmd_exit_code");
    let image = main_image();
    std::thread::scope(|s| {
        s.spawn(|| {
            let c = Container::start("main-cmd", &[], image);
            assert_eq!(c.exit_code(), 5);
            let (o, e) = c.logs();
            assert_eq!((o.as_str(), e.as_str()), ("", ""));
        });
        s.spawn(|| {
            let c = Container::start_cmd(
                "main-cmd-run",
                &[],
                image,
                &["sh", "-c", "echo hello from CMD; exit 3"],
            );
            assert_eq!(c.exit_code(), 3);
            let (o, e) = c.logs();
            let r = json_records(&o);
            assert_eq!(r.len(), 1, "{o}\n{e}");
            assert!(has_msg(&o, "main", "run", "hello from CMD"), "{o}");
        });
        s.spawn(|| {
            let c = Container::start_cmd("main-cmd-127", &[], image, &["no-such-program"]);
            assert_eq!(c.exit_code(), 127);
            let (_, e) = c.logs();
            assert_eq!(
                own_messages(
                    &e,
                    "exiting: main: no-such-program: no such file or directory"
                )
                .len(),
                1,
                "{e}"
            );
        });
    });
}

/// `docker run -it image sh` (driven through a pty, as a person at a terminal): the local
/// base has no bash, so busybox's `sh` (ash) is the shell. It is the main program under dinit
/// (PID 1), reads what is typed (`echo hi-$((1+2))` shows `hi-3`), Ctrl-C interrupts its
/// foreground `sleep` without ending the container, and `exit 7` ends the container with 7.
#[test]
fn main_program_interactive_docker_run_it() {
    require_docker!("main_program_interactive_docker_run_it");
    let image = main_image();
    let name = format!("{}-main-it", images().prefix);
    CONTAINERS.lock().unwrap().push(name.clone());
    let _ = docker(&["rm", "-f", &name]);
    struct Remove<'a>(&'a str);
    impl Drop for Remove<'_> {
        fn drop(&mut self) {
            let _ = docker(&["rm", "-f", self.0]);
        }
    }
    let _guard = Remove(&name);
    let env: Vec<(String, String)> = ["PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG"]
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut t = pty::Pty::spawn(
        &[
            "docker", "run", "-it", "--name", &name, "-e", "PS1=$ ", image, "sh",
        ],
        &env,
    );
    let at = t.wait_for(0, "$ ", LONG);
    let init = docker(&["exec", &name, "cat", "/proc/1/comm"]);
    assert_eq!(init.stdout.trim(), "dinit", "PID 1: {init}");
    t.type_in("echo hi-$((1+2))\n");
    let at = t.wait_for(at, "hi-3\r\n", LONG);
    let at = t.wait_for(at, "$ ", LONG);
    t.type_in("sleep 100\n");
    // (Debian's static busybox has no pgrep.)
    let sleeping = || {
        let find = "for d in /proc/[0-9]*; do [ \"$(cat $d/comm 2>/dev/null)\" = sleep ] && exit 0; done; exit 1";
        docker(&["exec", &name, "sh", "-c", find]).code == 0
    };
    assert!(wait_until(LONG, sleeping), "{}", t.seen());
    t.type_in("\x03");
    let at = t.wait_for(at, "$ ", LONG);
    assert!(wait_until(LONG, || !sleeping()), "{}", t.seen());
    t.type_in("echo alive\n");
    t.wait_for(at, "alive\r\n", LONG);
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Running}}", &name])
            .stdout
            .trim(),
        "true",
        "Ctrl-C ended the container:\n{}",
        t.seen()
    );
    t.type_in("exit 7\n");
    assert_eq!(t.wait_exit(LONG), 7, "{}", t.seen());
    let code = docker(&["inspect", "-f", "{{.State.ExitCode}}", &name]);
    assert_eq!(code.stdout.trim(), "7", "{code}");
}

/// `docker stop` of a main program with a sidecar service: dinit stops both gracefully (both
/// TERM handlers run, their lines in `docker logs`), well within the stop timeout, exit 0.
#[test]
fn main_program_and_sidecar_docker_stop() {
    require_docker!("main_program_and_sidecar_docker_stop");
    let image = main_image();
    let c = Container::start_cmd(
        "main-stop",
        &[
            "-e",
            "DINIT_DIR=/svc/main-sidecar",
            "-e",
            "DINIT_LOG_LEVEL=info",
        ],
        image,
        &["/svc/bin/main-loop"],
    );
    c.wait_logs("main and side started", LONG, |o, _| {
        has_msg(o, "main", "run", "main: started") && has_msg(o, "side", "run", "side: started")
    });
    let took = c.stop();
    assert!(took < STOP_LIMIT, "docker stop took {took:?}");
    assert_eq!(c.inspect("{{.State.ExitCode}}"), "0");
    let (o, e) = c.logs();
    json_records(&o);
    assert!(has_msg(&o, "main", "run", "main: got SIGTERM"), "{o}\n{e}");
    assert!(has_msg(&o, "side", "run", "side: got SIGTERM"), "{o}\n{e}");
    for needle in [
        "dinit: info: got signal 15, terminating services",
        "dinit: info: main/run: sending SIGTERM to PID ",
        "dinit: info: side/run: sending SIGTERM to PID ",
        "dinit: info: dinit exiting with status 0",
    ] {
        assert!(e.contains(needle), "no {needle:?} on stderr:\n{e}");
    }
    assert!(!e.contains("SIGKILL"), "something was killed:\n{e}");
}
