//! The probe path as Kubernetes drives it (issue 22, "What it must show", point 3; contract
//! §15; docs/kubernetes.md): the image run under containerd with runc, as a node runs it (the
//! kubelet talks to containerd, containerd starts runc), probed over HTTP from outside the
//! container (the kubelet's `httpGet` probes) and by exec (`ctr task exec … /dinit check
//! --ready`, the kubelet's `exec` probes), then stopped as the kubelet stops a pod: SIGTERM,
//! then SIGKILL only if the grace period (`terminationGracePeriodSeconds`) runs out.
//!
//! - The image is made as tests/docker.rs makes its images: `docker/make-bases.sh` (a
//!   `FROM scratch` busybox base), `Dockerfile.alpine` with the binary under test, and one more
//!   layer with the services and `ENV DINIT_HTTP_LISTEN=:9090`; then `docker save`, and
//!   `ctr images import` of that tarball. Nothing is pulled.
//! - containerd is started by the test on its own root, state and socket under a temp folder
//!   (CI's machine runs no containerd; the machine's own one, if any, is not touched), and
//!   stopped at the end. The container gets a network namespace of its own (loopback only, as
//!   runc makes it); the HTTP probes connect from a thread that joined it, as the kubelet
//!   connects to the pod's address.
//! - Skipped by name (`common::skip`) where docker, a static busybox, containerd, ctr,
//!   containerd-shim-runc-v2 or runc is missing. Another test binary may run the images under
//!   ctr for tests/docker.rs's end-to-end checks: this one is about the probes and the stop.
mod common;
#[path = "common/http.rs"]
mod web;

use common::*;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use web::*;

/// `docker build`, `docker save`, `ctr images import`.
const BUILD: Duration = Duration::from_secs(300);
/// The pod's `terminationGracePeriodSeconds`: SIGKILL after it.
const GRACE: Duration = Duration::from_secs(10);
/// `DINIT_STOP_TIMEOUT` in the image: less than the grace period, so that dinit, not the
/// kubelet's SIGKILL, ends what does not stop.
const STOP_TIMEOUT_S: u64 = 3;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn in_path(prog: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
}

fn cmd(prog: &str, args: &[&str], timeout: Duration) -> CmdOut {
    let mut c = Command::new(prog);
    c.args(args);
    run_cmd(&mut c, timeout)
}

fn ok(o: CmdOut, what: &str) -> CmdOut {
    assert_eq!(o.code, 0, "{what}: {o:?}");
    o
}

/// Why this machine cannot run the test, if it cannot.
fn unavailable() -> Option<String> {
    for (p, pkg) in [
        ("docker", "docker.io"),
        ("containerd", "containerd"),
        ("ctr", "containerd"),
        ("containerd-shim-runc-v2", "containerd"),
        ("runc", "runc"),
    ] {
        if !in_path(p) {
            return Some(format!("{p} not installed (Debian package {pkg})"));
        }
    }
    let o = cmd("docker", &["info", "--format", "{{.ServerVersion}}"], LONG);
    if o.code != 0 {
        return Some(format!(
            "no Docker engine (`docker info` exited {})",
            o.code
        ));
    }
    let busybox = std::env::var("BUSYBOX")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| "/bin/busybox".into());
    match fs::read(&busybox) {
        Ok(elf) if !has_interpreter(&elf) => None,
        Ok(_) => Some(format!(
            "{busybox} is dynamically linked: the image needs a static busybox (Debian's \
             busybox-static, or set BUSYBOX)"
        )),
        Err(e) => Some(format!(
            "{busybox}: {e}: the image needs a static busybox (Debian's busybox-static, or set \
             BUSYBOX)"
        )),
    }
}

/// A 64-bit little-endian ELF file with a `PT_INTERP` program header: dynamically linked (it
/// cannot run in a `FROM scratch` image). As tests/docker.rs decides it.
fn has_interpreter(b: &[u8]) -> bool {
    let at = |o: usize, n: usize| -> Option<usize> {
        let s = b.get(o..o + n)?;
        Some(s.iter().rev().fold(0usize, |a, &x| (a << 8) | x as usize))
    };
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 || b[5] != 1 {
        return false;
    }
    let (Some(phoff), Some(size), Some(num)) = (at(0x20, 8), at(0x36, 2), at(0x38, 2)) else {
        return false;
    };
    (0..num).any(|i| at(phoff + i * size, 4) == Some(3))
}

// ---------------------------------------------------------------------------------------------
// the image

/// The image's services (under `/etc/service`) and a second scenario under `/svc/stubborn`:
///
/// - `web`: s6's `notification-fd`: ready once the test creates `/tmp/go` (so "not ready while
///   starting" is seen for sure); on SIGTERM it says so and waits for `/tmp/release` (so
///   "503 while stopping" is seen for sure), then `web: bye`, exit 0;
/// - `db`: a `check` that passes once `/tmp/db.ok` exists (its run creates it at once);
/// - `tick`: a line every 0.2 s (the log lines a node ships), exit 0 on SIGTERM;
/// - `/svc/stubborn/stuck`: ignores SIGTERM (dinit's `DINIT_STOP_TIMEOUT` must end it).
const FILES: &[(&str, &str, u32)] = &[
    ("etc/service/web/notification-fd", "3\n", 0o644),
    (
        "etc/service/web/run",
        "#!/bin/sh\n\
         trap 'echo \"web: got SIGTERM\"; while [ ! -e /tmp/release ]; do sleep 0.05; done; \
         echo \"web: bye\"; exit 0' TERM\n\
         echo \"web: starting\"\n\
         while [ ! -e /tmp/go ]; do sleep 0.05; done\n\
         echo >&3\n\
         echo \"web: ready\"\n\
         while :; do sleep 0.1; done\n",
        0o755,
    ),
    (
        "etc/service/db/run",
        "#!/bin/sh\ntrap 'exit 0' TERM\ntouch /tmp/db.ok\nwhile :; do sleep 0.1; done\n",
        0o755,
    ),
    (
        "etc/service/db/check",
        "#!/bin/sh\n[ -e /tmp/db.ok ]\n",
        0o755,
    ),
    (
        "etc/service/tick/run",
        "#!/bin/sh\ntrap 'echo \"tick: got SIGTERM\"; exit 0' TERM\n\
         i=0\nwhile :; do i=$((i + 1)); echo \"tick $i\"; sleep 0.2; done\n",
        0o755,
    ),
    (
        "svc/stubborn/stuck/run",
        "#!/bin/sh\ntrap 'echo \"stuck: ignoring SIGTERM\"' TERM\n\
         while :; do sleep 0.1; done\n",
        0o755,
    ),
];

/// The images built for this run; removed on drop.
struct Image {
    tags: Vec<String>,
    /// `<prefix>/k8s:latest`.
    tag: String,
    tarball: PathBuf,
}

impl Drop for Image {
    fn drop(&mut self) {
        if std::env::var_os("DINIT_E2E_KEEP").is_none_or(|v| v.is_empty()) {
            let mut args = vec!["rmi", "-f"];
            args.extend(self.tags.iter().rev().map(String::as_str));
            let _ = Command::new("docker")
                .args(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn build_image(work: &Path) -> Image {
    let prefix = format!("dinit-k8s-{}", std::process::id());
    let mut img = Image {
        tags: vec![
            format!("{prefix}/busybox:latest"),
            format!("{prefix}/static:latest"),
        ],
        tag: format!("{prefix}/k8s:latest"),
        tarball: work.join("k8s.tar"),
    };
    ok(
        cmd(
            "bash",
            &[
                repo().join("docker/make-bases.sh").to_str().unwrap(),
                &prefix,
            ],
            BUILD,
        ),
        "docker/make-bases.sh",
    );
    // Dockerfile.alpine's context: the binary under test where `cargo build --release` puts it.
    let ctx = work.join("ctx");
    fs::create_dir_all(ctx.join("target/release")).unwrap();
    fs::create_dir_all(ctx.join("docker/rootfs/usr/bin")).unwrap();
    for f in ["Dockerfile.alpine", ".dockerignore"] {
        fs::copy(repo().join(f), ctx.join(f)).unwrap();
    }
    fs::copy(bin(), ctx.join("target/release/dinit")).unwrap();
    std::os::unix::fs::symlink("/dinit", ctx.join("docker/rootfs/usr/bin/sv")).unwrap();
    let alpine = format!("{prefix}/dinit:alpine");
    img.tags.push(alpine.clone());
    let base = format!("BASE={prefix}/busybox:latest");
    let dockerfile = ctx.join("Dockerfile.alpine");
    ok(
        cmd(
            "docker",
            &[
                "build",
                "--network",
                "none",
                "-f",
                dockerfile.to_str().unwrap(),
                "--build-arg",
                &base,
                "-t",
                &alpine,
                ctx.to_str().unwrap(),
            ],
            BUILD,
        ),
        "docker build Dockerfile.alpine",
    );
    // The services, and what a Kubernetes user sets.
    let k8s = work.join("k8s");
    for (path, body, mode) in FILES {
        let p = k8s.join("root").join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, body).unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).unwrap();
    }
    fs::write(
        k8s.join("Dockerfile"),
        format!(
            "FROM {alpine}\nCOPY root/ /\n\
             ENV DINIT_HTTP_LISTEN=:9090 DINIT_CHECK_INTERVAL=0.5 \
             DINIT_STOP_TIMEOUT={STOP_TIMEOUT_S} DINIT_LOG_LEVEL=info\n"
        ),
    )
    .unwrap();
    img.tags.push(img.tag.clone());
    ok(
        cmd(
            "docker",
            &[
                "build",
                "--network",
                "none",
                "-t",
                &img.tag,
                k8s.to_str().unwrap(),
            ],
            BUILD,
        ),
        "docker build (the services)",
    );
    ok(
        cmd(
            "docker",
            &["save", "-o", img.tarball.to_str().unwrap(), &img.tag],
            BUILD,
        ),
        "docker save",
    );
    img
}

// ---------------------------------------------------------------------------------------------
// containerd

/// A containerd of this test's own; killed, its mounts undone and its folder removed on drop.
struct Containerd {
    dir: PathBuf,
    sock: PathBuf,
    daemon: Child,
}

const NAMESPACE: &str = "dinit-k8s";

impl Containerd {
    fn start(dir: &Path) -> Containerd {
        fs::create_dir_all(dir).unwrap();
        let sock = dir.join("containerd.sock");
        let config = dir.join("config.toml");
        fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{sock}\"\n\
                 [ttrpc]\n  address = \"{sock}.ttrpc\"\n\
                 [debug]\n  address = \"\"\n\
                 [metrics]\n  address = \"\"\n",
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
        let c = Containerd {
            dir: dir.to_path_buf(),
            sock,
            daemon,
        };
        let mut last = None;
        let up = wait_until(LONG, || {
            let o = c.ctr(&["version"], LONG);
            let up = o.code == 0;
            last = Some(o);
            up
        });
        assert!(
            up,
            "containerd did not come up: {last:?}\n--- containerd.log\n{}",
            fs::read_to_string(dir.join("containerd.log")).unwrap_or_default()
        );
        c
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ctr");
        c.arg("--address")
            .arg(&self.sock)
            .args(["--namespace", NAMESPACE])
            .args(args);
        c
    }

    fn ctr(&self, args: &[&str], timeout: Duration) -> CmdOut {
        run_cmd(&mut self.command(args), timeout)
    }

    /// The host pid of a running task, from `ctr task ls`.
    fn task_pid(&self, id: &str) -> Option<i32> {
        let o = self.ctr(&["task", "ls"], LONG);
        o.stdout.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3 && f[0] == id && f[2] == "RUNNING")
                .then(|| f[1].parse().ok())
                .flatten()
        })
    }

    /// The kubelet's exec probe: a process in the container, its exit code and output.
    fn exec(&self, id: &str, n: &mut u32, argv: &[&str]) -> CmdOut {
        *n += 1;
        let exec_id = format!("probe-{n}");
        let mut args = vec!["task", "exec", "--exec-id", &exec_id, id];
        args.extend_from_slice(argv);
        self.ctr(&args, LONG)
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        // A test that failed half-way may leave a task's root file system mounted.
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let dir = self.dir.display().to_string();
        let mut points: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&dir))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for m in points {
            let _ = Command::new("umount").args(["-l", m]).status();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// `ctr run` in the foreground as a child of the test (its stdout and stderr are the
/// container's, read into memory); the task is killed and the container removed on drop.
struct Task<'a> {
    cd: &'a Containerd,
    id: String,
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
    code: Option<i32>,
}

fn read_into(mut r: impl Read + Send + 'static, buf: Arc<Mutex<Vec<u8>>>) {
    std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        loop {
            match r.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.lock().unwrap().extend_from_slice(&chunk[..n]),
            }
        }
    });
}

impl<'a> Task<'a> {
    fn run(cd: &'a Containerd, image: &str, id: &str, env: &[&str]) -> Task<'a> {
        let mut args = vec!["run", "--rm", "--runtime", "io.containerd.runc.v2"];
        for e in env {
            args.extend(["--env", e]);
        }
        args.extend([image, id]);
        let mut child = cd
            .command(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ctr run");
        let (out, err) = (Arc::default(), Arc::default());
        read_into(child.stdout.take().unwrap(), Arc::clone(&out));
        read_into(child.stderr.take().unwrap(), Arc::clone(&err));
        Task {
            cd,
            id: id.to_string(),
            child,
            out,
            err,
            code: None,
        }
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.err.lock().unwrap()).into_owned()
    }
    fn dump(&self) -> String {
        format!(
            "--- container stdout\n{}--- container stderr\n{}---",
            self.stdout(),
            self.stderr()
        )
    }

    /// Has `ctr run` ended (the container's exit code then)?
    fn ended(&mut self) -> Option<i32> {
        if self.code.is_none()
            && let Ok(Some(st)) = self.child.try_wait()
        {
            self.code = Some(st.code().unwrap_or(-1));
        }
        self.code
    }

    /// The host pid of the container's PID 1 once it runs.
    fn pid(&mut self) -> i32 {
        let mut pid = None;
        let ok = wait_until(LONG, || {
            pid = self.cd.task_pid(&self.id);
            pid.is_some() || self.ended().is_some()
        });
        assert!(ok && pid.is_some(), "the task never ran\n{}", self.dump());
        pid.unwrap()
    }

    /// What the kubelet does to stop a pod: SIGTERM, then SIGKILL after the grace period.
    /// Returns the exit code and how long it took, or `None` when SIGKILL was needed.
    fn stop_as_kubelet(&mut self, grace: Duration) -> Option<(i32, Duration)> {
        let t0 = Instant::now();
        ok(
            self.cd
                .ctr(&["task", "kill", "--signal", "SIGTERM", &self.id], LONG),
            "ctr task kill SIGTERM",
        );
        self.wait_end(t0, grace)
    }

    fn wait_end(&mut self, t0: Instant, grace: Duration) -> Option<(i32, Duration)> {
        let left = grace.saturating_sub(t0.elapsed());
        if wait_until(left, || self.ended().is_some()) {
            return Some((self.code.unwrap(), t0.elapsed()));
        }
        let _ = self
            .cd
            .ctr(&["task", "kill", "--signal", "SIGKILL", &self.id], LONG);
        wait_until(LONG, || self.ended().is_some());
        None
    }
}

impl Drop for Task<'_> {
    fn drop(&mut self) {
        if self.ended().is_none() {
            let _ = self
                .cd
                .ctr(&["task", "kill", "--signal", "SIGKILL", &self.id], LONG);
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = self.cd.ctr(&["task", "delete", "--force", &self.id], LONG);
        let _ = self.cd.ctr(&["container", "delete", &self.id], LONG);
    }
}

// ---------------------------------------------------------------------------------------------

/// The image under containerd + runc: the HTTP probes (`/livez` 200 while starting, `/readyz`
/// 503 `web: not ready` until `web` writes its notification, then 200; `/metrics` and
/// `/status`, where dinit is PID 1) and the exec probes (`/dinit check --ready`: exit 1 then
/// 0; `/dinit check`: 0) agree. Stopped as the kubelet does (SIGTERM, 10 s grace): while `web`
/// is still stopping, `/readyz` is 503 `dinit: stopping` and the exec probe exits 1; then dinit
/// exits 0 well within the grace period, after `web: bye`, with every stdout line a JSON record
/// (what a node's log shipper reads). A second run whose service ignores SIGTERM ends at
/// `DINIT_STOP_TIMEOUT` (3 s), still within the grace period: dinit, not the kubelet's
/// SIGKILL, ends it.
#[test]
fn kubernetes_probes_and_stop_under_containerd() {
    let test = "kubernetes_probes_and_stop_under_containerd";
    if let Some(why) = unavailable() {
        skip(test, &why);
        return;
    }
    let work = std::env::temp_dir().join(format!("dinit-k8s-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).unwrap();
    struct Rm(PathBuf);
    impl Drop for Rm {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
    let _rm = Rm(work.clone());
    let t0 = Instant::now();
    let img = build_image(&work);
    let cd = Containerd::start(&work.join("containerd"));
    ok(
        cd.ctr(&["images", "import", img.tarball.to_str().unwrap()], BUILD),
        "ctr images import",
    );
    let image = format!("docker.io/{}", img.tag);
    let listed = cd.ctr(&["images", "ls", "-q"], LONG).stdout;
    assert!(
        listed.lines().any(|l| l == image),
        "{image} not in {listed}"
    );
    eprintln!(
        "image built, saved and imported in {:.1} s; {}",
        t0.elapsed().as_secs_f64(),
        cmd("runc", &["--version"], LONG)
            .stdout
            .lines()
            .next()
            .unwrap_or("")
    );

    let id = format!("dinit-k8s-{}", std::process::id());
    let mut task = Task::run(&cd, &image, &id, &[]);
    let pid = task.pid();
    let mut n = 0;
    let addr = "127.0.0.1:9090";
    let (code, took) = in_netns_of(pid, || {
        // Starting: alive, not ready.
        let mut last = String::new();
        let up = wait_until(LONG, || match request(addr, "GET", "/livez") {
            Ok(r) => r.code == 200,
            Err(e) => {
                last = e;
                false
            }
        });
        assert!(up, "no /livez 200 from the pod: {last}\n{}", task.dump());
        let r = get(addr, "/readyz");
        assert_eq!(r.code, 503, "{r}");
        assert!(r.text().contains("web: not ready\n"), "{r}");
        let c = cd.exec(&id, &mut n, &["/dinit", "check", "--ready"]);
        assert_eq!(c.code, 1, "exec probe while starting: {c:?}");
        assert!(c.stdout.contains("web: not ready"), "{c:?}");
        let c = cd.exec(&id, &mut n, &["/dinit", "check"]);
        assert_eq!(
            (c.code, c.stdout.as_str()),
            (0, ""),
            "liveness by exec: {c:?}"
        );

        // Ready.
        ok(
            cd.exec(&id, &mut n, &["/bin/touch", "/tmp/go"]),
            "touch /tmp/go",
        );
        let ready = wait_until(LONG, || get(addr, "/readyz").code == 200);
        assert!(ready, "never ready\n{}", task.dump());
        let c = cd.exec(&id, &mut n, &["/dinit", "check", "--ready"]);
        assert_eq!(
            (c.code, c.stdout.as_str()),
            (0, ""),
            "exec probe when ready: {c:?}"
        );
        let m = get(addr, "/metrics").text();
        for s in ["web", "db", "tick"] {
            let series = format!("dinit_service_ready{{service=\"{s}\"}}");
            assert_eq!(sample(&m, &series), Some(1.0), "{series}:\n{m}");
        }
        let st = get(addr, "/status").json();
        assert_eq!(st["dinit"]["pid"], 1, "dinit is not PID 1: {st}");

        // Stopping, as the kubelet stops a pod.
        let t_stop = Instant::now();
        ok(
            cd.ctr(&["task", "kill", "--signal", "SIGTERM", &id], LONG),
            "ctr task kill SIGTERM",
        );
        let seen = wait_until(LONG, || task.stdout().contains("web: got SIGTERM"));
        assert!(seen, "web never got SIGTERM\n{}", task.dump());
        let r = get(addr, "/readyz");
        assert_eq!(
            (r.code, r.text().as_str()),
            (503, "dinit: stopping\n"),
            "{r}"
        );
        let c = cd.exec(&id, &mut n, &["/dinit", "check", "--ready"]);
        assert_eq!(
            (c.code, c.stdout.as_str()),
            (1, "dinit: stopping\n"),
            "exec probe while stopping: {c:?}"
        );
        ok(
            cd.exec(&id, &mut n, &["/bin/touch", "/tmp/release"]),
            "touch /tmp/release",
        );
        task.wait_end(t_stop, GRACE)
            .unwrap_or_else(|| panic!("SIGKILL needed after {GRACE:?}\n{}", task.dump()))
    });
    eprintln!("graceful stop: exit {code} after {took:?} (grace {GRACE:?})");
    assert_eq!(code, 0, "{}", task.dump());
    let out = task.stdout();
    assert!(out.contains("web: bye"), "{}", task.dump());
    for l in out.lines() {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        for k in ["service", "stage", "logged"] {
            assert!(v[k].is_string(), "no {k} in {l}");
        }
    }
    assert!(
        out.lines().any(|l| l.contains("\"msg\":\"tick 1\"")),
        "{}",
        task.dump()
    );
    drop(task);

    // A service that ignores SIGTERM: dinit's DINIT_STOP_TIMEOUT ends it, within the grace.
    let id2 = format!("{id}-stubborn");
    let mut task = Task::run(&cd, &image, &id2, &["DINIT_DIR=/svc/stubborn"]);
    let _ = task.pid();
    let seen = wait_until(LONG, || {
        task.stderr().contains("stuck/run: running with PID")
    });
    assert!(seen, "stuck never ran\n{}", task.dump());
    let (code, took) = task
        .stop_as_kubelet(GRACE)
        .unwrap_or_else(|| panic!("SIGKILL needed after {GRACE:?}\n{}", task.dump()));
    eprintln!("stubborn stop: exit {code} after {took:?} (DINIT_STOP_TIMEOUT={STOP_TIMEOUT_S})");
    assert!(
        took >= Duration::from_secs(STOP_TIMEOUT_S) && took < GRACE,
        "stopped after {took:?}\n{}",
        task.dump()
    );
    assert!(
        task.stdout().contains("stuck: ignoring SIGTERM"),
        "{}",
        task.dump()
    );
}
