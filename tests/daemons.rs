//! Real daemons from Debian's packages as dinit services (issue "Reliability", point 3):
//! PostgreSQL (`postgresql`), Redis (`redis-server`, `redis-tools`) and nginx (`nginx`), each in
//! the foreground as a dinit service with dinit as PID 1 of a PID namespace. A load runs on
//! loopback while SIGTERM arrives; each daemon must report a clean shutdown in its own log, dinit
//! must exit 0, and a second dinit run on the same data directories must find the data written
//! before the stop.
//!
//! Nothing of the host's installation is used but the binaries: every data directory, socket,
//! pid file and log lives in the test's temp dir, every port is a free port on 127.0.0.1 (the
//! host's `/var/lib/postgresql`, `/var/run/postgresql`, `/etc/redis`, `/var/log/nginx` are never
//! touched). A test whose binary is missing is skipped (`common::skip`: one
//! `SKIPPED daemons::<test>: …` line naming the binary and the Debian package, recorded for
//! `scripts/test.sh`'s summary, which installs them). Figures are printed on stderr:
//!
//! ```sh
//! cargo test --release --test daemons -- --nocapture
//! ```
mod common;
use common::*;

use std::collections::HashSet;
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// helpers

/// `Some` when every `(path, package)` exists; else `None` after recording the skip (`skip`)
/// that names the first missing one.
fn need(test: &str, what: &[(&str, &str)]) -> Option<Vec<PathBuf>> {
    let mut v = Vec::new();
    for (path, package) in what {
        let p = PathBuf::from(path);
        if !p.exists() {
            skip(
                test,
                &format!(
                    "{path} not found (install Debian's `{package}` package: apt-get install \
                     --no-install-recommends {package}; scripts/test.sh does)"
                ),
            );
            return None;
        }
        v.push(p);
    }
    Some(v)
}

/// A TCP port on 127.0.0.1 that was free a moment ago (never handed out twice by this process).
fn free_port() -> u16 {
    static USED: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    loop {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let mut g = USED.lock().unwrap();
        if g.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
}

fn chown(p: &Path, uid: u32, gid: u32) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: chown(2) on a path we own.
    let r = unsafe { libc::chown(c.as_ptr(), uid, gid) };
    assert_eq!(
        r,
        0,
        "chown {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

/// uid and gid of a user from /etc/passwd (no NSS needed).
fn user_ids(name: &str) -> Option<(u32, u32)> {
    let pw = fs::read_to_string("/etc/passwd").ok()?;
    pw.lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 3 && f[0] == name).then(|| (f[2].parse().ok(), f[3].parse().ok()))
        })
        .and_then(|(u, g)| Some((u?, g?)))
}

/// A command with a clean environment (`PATH` only, plus `env`).
fn cmd(program: impl AsRef<std::ffi::OsStr>, env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(program);
    c.env_clear().env("PATH", PATH).envs(env.iter().copied());
    c
}

/// Runs a command to its end (deadline `LONG`) and returns its stdout; panics unless it exits 0.
fn ok_out(c: &mut Command, what: &str) -> String {
    let out = run_cmd(c, Duration::from_secs(60));
    assert_eq!(out.code, 0, "{what} failed: {out:?}");
    out.stdout
}

/// A background load generator, a child process with its output in a file; killed when
/// dropped.
struct Load {
    child: Child,
    out: PathBuf,
}

impl Load {
    fn start(c: &mut Command, out: PathBuf) -> Load {
        let f = fs::File::create(&out).unwrap();
        let child = c
            .stdin(Stdio::null())
            .stdout(Stdio::from(f.try_clone().unwrap()))
            .stderr(Stdio::from(f))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {c:?}: {e}"));
        Load { child, out }
    }
    /// Waits (up to `deadline`) for the load to end; its exit code (None: killed at the
    /// deadline) and output.
    fn finish(mut self, deadline: Duration) -> (Option<i32>, String) {
        let mut code = None;
        let ended = wait_until(deadline, || {
            if let Ok(Some(st)) = self.child.try_wait() {
                code = Some(st.code().unwrap_or(-1));
            }
            code.is_some()
        });
        if !ended {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        (code, fs::read_to_string(&self.out).unwrap_or_default())
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Text of every record of `service` on dinit's stdout (JSON mode) and stderr.
fn service_lines(r: &Dinit, service: &str) -> Vec<String> {
    let mut v: Vec<String> = r
        .json()
        .into_iter()
        .filter(|j| j.service() == service)
        .map(|j| j.msg().map(str::to_string).unwrap_or(j.raw.clone()))
        .collect();
    v.extend(
        r.stderr_records()
            .into_iter()
            .filter(|t| t.name == service)
            .map(|t| t.text()),
    );
    v
}

fn assert_clean_dinit(r: &Dinit) {
    let bad: Vec<String> = r
        .own()
        .into_iter()
        .filter(|o| o.level == "error" || o.level == "warning")
        .map(|o| format!("{}: {}", o.level, o.text))
        .collect();
    assert!(bad.is_empty(), "dinit complained: {bad:?}\n{}", r.dump());
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

/// The newest `/usr/lib/postgresql/<major>/bin` (Debian's layout).
fn pg_bin() -> Option<PathBuf> {
    let mut v: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            Some((n, e.path().join("bin")))
        })
        .collect();
    v.sort();
    v.pop().map(|x| x.1)
}

/// `psql` as a client of the test's server: one query, the unaligned result.
fn psql(bin: &Path, port: u16, sql: &str) -> String {
    ok_out(
        cmd(bin.join("psql"), &[])
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql]),
        &format!("psql {sql:?}"),
    )
    .trim()
    .to_string()
}

fn pg_ready(bin: &Path, port: u16) -> bool {
    run_cmd(
        cmd(bin.join("pg_isready"), &[]).args([
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            "2",
        ]),
        Duration::from_secs(10),
    )
    .code
        == 0
}

/// Expect: PostgreSQL (`postgres -D <temp datadir>`, run as user `postgres` through `setpriv`
/// after `initdb` in the test) as a dinit service whose stderr goes to a logger (`log/run` =
/// `svlogd`, its own log file) and whose `terminate` script asks for a fast shutdown (`kill -INT
/// $DINIT_PID`: SIGTERM would be a "smart" shutdown that waits for every client to leave).
/// `pgbench -i -s 1`, a marker row, then `pgbench -c 2 -T 60` on 127.0.0.1 while SIGTERM
/// reaches dinit:
/// - the log says `received fast shutdown request` and `database system is shut down`;
///   dinit exits 0 (the logger ends at end of input);
/// - a second dinit run on the same data dir starts without recovery (the log says `database
///   system was shut down at`, never `not properly shut down`), and finds the marker row, the
///   100,000 `pgbench_accounts` rows, and at least as many `pgbench_history` rows as were
///   committed before the SIGTERM; it too stops cleanly with exit 0.
#[test]
fn postgresql_under_load() {
    const T: &str = "postgresql_under_load";
    let Some(bin) = pg_bin() else {
        skip(
            T,
            "/usr/lib/postgresql/*/bin not found (install Debian's `postgresql` package; \
             scripts/test.sh does)",
        );
        return;
    };
    let tools: Vec<String> = ["postgres", "initdb", "pgbench", "psql", "pg_isready"]
        .iter()
        .map(|b| bin.join(b).display().to_string())
        .collect();
    let mut what: Vec<(&str, &str)> = tools.iter().map(|t| (t.as_str(), "postgresql")).collect();
    what[2].1 = "postgresql-contrib";
    what.push(("/usr/bin/setpriv", "util-linux"));
    what.push(("/usr/bin/svlogd", "runit"));
    if need(T, &what).is_none() {
        return;
    }
    let Some((uid, gid)) = user_ids("postgres") else {
        skip(
            T,
            "no user `postgres` (install Debian's `postgresql` package)",
        );
        return;
    };
    let d = TestDir::new();
    let pg = d.root().join("pg");
    let data = pg.join("data");
    let sockdir = pg.join("sock");
    let logdir = pg.join("log");
    for p in [&pg, &data, &sockdir] {
        fs::create_dir_all(p).unwrap();
        chown(p, uid, gid);
    }
    fs::create_dir_all(&logdir).unwrap();
    fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let t0 = Instant::now();
    ok_out(
        cmd("setpriv", &[("LANG", "C")])
            .args([
                "--reuid",
                &uid.to_string(),
                "--regid",
                &gid.to_string(),
                "--init-groups",
            ])
            .arg(bin.join("initdb"))
            .args([
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ])
            .args(["--locale=C", "--no-sync"]),
        "initdb",
    );
    let initdb_s = t0.elapsed().as_secs_f64();
    let port = free_port();
    d.svc("postgres")
        .run(&format!(
            "#!/bin/sh\nexec 2>&1\nexec setpriv --reuid {uid} --regid {gid} --init-groups {} -D {} \
             -k {} -p {port} -c listen_addresses=127.0.0.1 -c logging_collector=off\n",
            bin.join("postgres").display(),
            data.display(),
            sockdir.display()
        ))
        .terminate("#!/bin/sh\nkill -INT \"$DINIT_PID\"\n")
        .log_run(&format!(
            "#!/bin/sh\nexec svlogd -tt {}\n",
            logdir.display()
        ));
    // svlogd's log: rotated files (`@<tai64n>.s|u`, sorted by time) then `current`
    let log = || {
        let mut names: Vec<PathBuf> = fs::read_dir(&logdir)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        names.retain(|n| {
            let f = n.file_name().unwrap().to_string_lossy().into_owned();
            f.starts_with('@') || f == "current"
        });
        names.sort();
        names
            .iter()
            .map(|n| fs::read_to_string(n).unwrap_or_default())
            .collect::<String>()
    };

    // first run: data, load, SIGTERM during the load
    let mut r = launch(&d).info().spawn();
    let ok = wait_until(Duration::from_secs(60), || {
        pg_ready(&bin, port) || r.exited()
    });
    assert!(
        ok && !r.exited(),
        "postgres did not accept connections\nlog:\n{}\n{}",
        log(),
        r.dump()
    );
    let t_ready = t0.elapsed().as_secs_f64();
    psql(
        &bin,
        port,
        "create table marker (v text); insert into marker values ('before-stop')",
    );
    ok_out(
        cmd(bin.join("pgbench"), &[]).args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-i",
            "-s",
            "1",
            "-q",
            "postgres",
        ]),
        "pgbench -i",
    );
    let load = Load::start(
        cmd(bin.join("pgbench"), &[])
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
            .args(["-c", "2", "-j", "2", "-T", "60", "-n", "postgres"]),
        d.root().join("pgbench.out"),
    );
    let history = || {
        psql(&bin, port, "select count(*) from pgbench_history")
            .parse::<u64>()
            .unwrap()
    };
    let ok = wait_until(Duration::from_secs(60), || history() >= 300);
    assert!(ok, "pgbench made no progress\n{}", r.dump());
    let before = history();
    let t_stop = Instant::now();
    r.signal(libc::SIGTERM);
    let code = r.wait_exit(Duration::from_secs(60));
    let stop_s = t_stop.elapsed().as_secs_f64();
    let (load_code, load_out) = load.finish(Duration::from_secs(30));
    assert_eq!(code, 0, "log:\n{}\n{}", log(), r.dump());
    let l1 = log();
    assert!(l1.contains("received fast shutdown request"), "log:\n{l1}");
    assert!(l1.contains("database system is shut down"), "log:\n{l1}");
    assert!(
        r.own_contains("postgres/term: running with PID"),
        "{}",
        r.dump()
    );
    assert_clean_dinit(&r);
    drop(r);

    // second run: the data is there, no recovery
    let mut r = launch(&d).info().spawn();
    let ok = wait_until(Duration::from_secs(60), || {
        pg_ready(&bin, port) || r.exited()
    });
    assert!(
        ok && !r.exited(),
        "postgres did not come back\nlog:\n{}\n{}",
        log(),
        r.dump()
    );
    let ok = wait_until(LONG, || {
        log()
            .get(l1.len()..)
            .is_some_and(|l| l.contains("database system is ready to accept connections"))
    });
    assert!(
        ok,
        "no `ready to accept connections` after the restart\nlog:\n{}",
        log()
    );
    let l2 = log();
    let restart = &l2[l1.len()..];
    assert!(
        restart.contains("database system was shut down at"),
        "log after restart:\n{restart}"
    );
    assert!(
        !restart.contains("not properly shut down"),
        "log after restart:\n{restart}"
    );
    assert_eq!(psql(&bin, port, "select v from marker"), "before-stop");
    assert_eq!(
        psql(&bin, port, "select count(*) from pgbench_accounts"),
        "100000"
    );
    let after = history();
    assert!(
        after >= before,
        "{after} pgbench_history rows after the restart, {before} before the stop"
    );
    r.signal(libc::SIGTERM);
    assert_eq!(
        r.wait_exit(Duration::from_secs(60)),
        0,
        "log:\n{}\n{}",
        log(),
        r.dump()
    );
    assert!(log()[l2.len()..].contains("database system is shut down"));
    assert_clean_dinit(&r);
    eprintln!(
        "daemons: postgresql: initdb {initdb_s:.1} s, ready {t_ready:.1} s after initdb began; \
         SIGTERM under pgbench load ({before} transactions so far) -> dinit exit 0 after {stop_s:.2} s \
         (pgbench exit {load_code:?}: {}); after restart {after} history rows",
        load_out
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
    );
}

// ---------------------------------------------------------------------------------------------
// Redis

fn redis_cli(port: u16, args: &[&str]) -> String {
    ok_out(
        cmd("/usr/bin/redis-cli", &[])
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args),
        &format!("redis-cli {args:?}"),
    )
    .trim()
    .to_string()
}

fn redis_info(port: u16, field: &str) -> u64 {
    let info = redis_cli(port, &["INFO", "stats"]);
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Expect: `redis-server` in the foreground (`--dir <temp dir>`, `--save "3600 1"`, its log on
/// stdout, so as `redis/run` records) as a dinit service; a key `marker`, then `redis-benchmark
/// -q -n 20000 -r 1000000 -t set,incr,lpush,sadd,hset,get` (random keys, so that it writes
/// thousands) on 127.0.0.1, and SIGTERM reaches dinit after 30,000 of its commands:
/// - redis's log says `DB saved on disk` and `Redis is now ready to exit`; dinit exits 0;
/// - a second run on the same dir loads the dump (`DB loaded from disk`) and has `marker` and at
///   least the keys it had before the SIGTERM; it too stops cleanly with exit 0.
#[test]
fn redis_under_load() {
    const T: &str = "redis_under_load";
    if need(
        T,
        &[
            ("/usr/bin/redis-server", "redis-server"),
            ("/usr/bin/redis-cli", "redis-tools"),
            ("/usr/bin/redis-benchmark", "redis-tools"),
        ],
    )
    .is_none()
    {
        return;
    }
    let d = TestDir::new();
    let dir = d.root().join("redis");
    fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    d.svc("redis").run(&format!(
        "#!/bin/sh\nexec redis-server --port {port} --bind 127.0.0.1 --dir {} --dbfilename dump.rdb \
         --save '3600 1' --appendonly no --daemonize no --logfile '' --pidfile {}/redis.pid\n",
        dir.display(),
        dir.display()
    ));
    let ping = || {
        run_cmd(
            cmd("/usr/bin/redis-cli", &[]).args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "PING",
            ]),
            Duration::from_secs(10),
        )
        .stdout
        .trim()
            == "PONG"
    };

    let mut r = launch(&d).info().spawn();
    let ok = wait_until(LONG, || ping() || r.exited());
    assert!(ok && !r.exited(), "redis did not answer PING\n{}", r.dump());
    assert_eq!(redis_cli(port, &["SET", "marker", "before-stop"]), "OK");
    let cmds0 = redis_info(port, "total_commands_processed");
    let load = Load::start(
        cmd("/usr/bin/redis-benchmark", &[])
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-q",
                "-n",
                "20000",
            ])
            .args(["-r", "1000000", "-t", "set,incr,lpush,sadd,hset,get"]),
        d.root().join("bench.out"),
    );
    // SIGTERM in the middle of the benchmark: after the SET test, during the others
    let ok = wait_until(Duration::from_secs(60), || {
        redis_info(port, "total_commands_processed") >= cmds0 + 30_000
    });
    assert!(ok, "redis-benchmark made no progress\n{}", r.dump());
    let keys_before: u64 = redis_cli(port, &["DBSIZE"]).parse().unwrap();
    let done = redis_info(port, "total_commands_processed") - cmds0;
    let t_stop = Instant::now();
    r.signal(libc::SIGTERM);
    let code = r.wait_exit(LONG);
    let stop_s = t_stop.elapsed().as_secs_f64();
    let (bench_code, bench_out) = load.finish(Duration::from_secs(30));
    assert_eq!(code, 0, "{}", r.dump());
    let lines = service_lines(&r, "redis");
    for s in [
        "Received SIGTERM scheduling shutdown",
        "DB saved on disk",
        "Redis is now ready to exit",
    ] {
        assert!(
            lines.iter().any(|l| l.contains(s)),
            "redis did not log `{s}`\n{}",
            r.dump()
        );
    }
    assert!(dir.join("dump.rdb").exists());
    assert_clean_dinit(&r);
    drop(r);

    let mut r = launch(&d).info().spawn();
    let ok = wait_until(LONG, || ping() || r.exited());
    assert!(ok && !r.exited(), "redis did not come back\n{}", r.dump());
    assert_eq!(redis_cli(port, &["GET", "marker"]), "before-stop");
    let keys_after: u64 = redis_cli(port, &["DBSIZE"]).parse().unwrap();
    assert!(
        keys_after >= keys_before,
        "{keys_after} keys after the restart, {keys_before} before the stop"
    );
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
    let lines = service_lines(&r, "redis");
    assert!(
        lines.iter().any(|l| l.contains("DB loaded from disk")),
        "{}",
        r.dump()
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Redis is now ready to exit")),
        "{}",
        r.dump()
    );
    assert_clean_dinit(&r);
    eprintln!(
        "daemons: redis: SIGTERM after {done} benchmark commands ({keys_before} keys) -> dinit exit 0 \
         after {stop_s:.2} s (redis-benchmark exit {bench_code:?}, {} output lines); {keys_after} keys after restart",
        bench_out.lines().count()
    );
}

// ---------------------------------------------------------------------------------------------
// nginx

/// One HTTP/1.1 request with `Connection: close`; the status code, if any.
fn http(port: u16, method: &str, path: &str, body: &[u8]) -> Option<(u16, Vec<u8>)> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    s.write_all(&req).ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let head_end = find(&buf, b"\r\n\r\n")?;
    let status = std::str::from_utf8(&buf[..head_end])
        .ok()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((status, buf[head_end + 4..].to_vec()))
}

/// Expect: nginx with `daemon off;` (master and 2 workers, WebDAV `PUT` enabled, error log
/// `notice` in its own file) as a dinit service; a bounded HTTP loop on 127.0.0.1 (at most
/// 20,000 `PUT /data/f<n>` requests, at most 60 s) while SIGTERM reaches dinit:
/// - nginx's error log says `signal 15 (SIGTERM) received` … `exiting` and its workers `exit`;
///   dinit exits 0;
/// - a second run on the same prefix serves every file whose `PUT` was answered `201 Created`
///   before the stop, with its content; it too stops cleanly with exit 0.
#[test]
fn nginx_under_load() {
    const T: &str = "nginx_under_load";
    if need(T, &[("/usr/sbin/nginx", "nginx")]).is_none() {
        return;
    }
    let Some((nobody, nogroup)) = user_ids("nobody") else {
        skip(T, "no user `nobody`");
        return;
    };
    let d = TestDir::new();
    let pre = d.root().join("nginx");
    let html = pre.join("html");
    fs::create_dir_all(html.join("data")).unwrap();
    chown(&html, nobody, nogroup);
    chown(&html.join("data"), nobody, nogroup);
    fs::write(html.join("index.html"), "hello\n").unwrap();
    let p = pre.display().to_string();
    let port = free_port();
    let conf = pre.join("nginx.conf");
    fs::write(
        &conf,
        format!(
            "daemon off;\n\
             master_process on;\n\
             worker_processes 2;\n\
             user nobody nogroup;\n\
             error_log {p}/error.log notice;\n\
             pid {p}/nginx.pid;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n\
                 access_log {p}/access.log;\n\
                 client_body_temp_path {p}/body;\n\
                 proxy_temp_path {p}/proxy;\n\
                 fastcgi_temp_path {p}/fastcgi;\n\
                 uwsgi_temp_path {p}/uwsgi;\n\
                 scgi_temp_path {p}/scgi;\n\
                 server {{\n\
                     listen 127.0.0.1:{port};\n\
                     root {p}/html;\n\
                     location /data/ {{ dav_methods PUT; create_full_put_path on; dav_access user:rw all:r; }}\n\
                 }}\n\
             }}\n"
        ),
    )
    .unwrap();
    d.svc("nginx").run(&format!(
        "#!/bin/sh\nexec nginx -e {p}/error.log -p {p}/ -c {}\n",
        conf.display()
    ));
    let error_log = || fs::read_to_string(pre.join("error.log")).unwrap_or_default();

    let mut r = launch(&d).info().spawn();
    let ok = wait_until(LONG, || {
        http(port, "GET", "/", b"").map(|x| x.0) == Some(200) || r.exited()
    });
    assert!(
        ok && !r.exited(),
        "nginx did not answer\n{}\n{}",
        error_log(),
        r.dump()
    );

    // the load: PUTs until told to stop, or 20,000, or 60 s; records what was acknowledged
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<u32>>> = Arc::default();
    let (s2, a2) = (stop.clone(), acked.clone());
    let loader = std::thread::spawn(move || {
        let t0 = Instant::now();
        let mut failed = 0;
        for i in 0..20_000u32 {
            if t0.elapsed() > Duration::from_secs(60) {
                break;
            }
            match http(
                port,
                "PUT",
                &format!("/data/f{i}"),
                format!("content-{i}\n").as_bytes(),
            ) {
                Some((201, _)) | Some((204, _)) => a2.lock().unwrap().push(i),
                _ => {
                    failed += 1;
                    if s2.load(Ordering::SeqCst) {
                        break;
                    }
                }
            }
        }
        failed
    });
    let ok = wait_until(Duration::from_secs(60), || {
        acked.lock().unwrap().len() >= 500 || loader.is_finished()
    });
    assert!(
        ok && !loader.is_finished(),
        "the HTTP load made no progress\n{}\n{}",
        error_log(),
        r.dump()
    );
    let t_stop = Instant::now();
    stop.store(true, Ordering::SeqCst);
    r.signal(libc::SIGTERM);
    let code = r.wait_exit(LONG);
    let stop_s = t_stop.elapsed().as_secs_f64();
    let failed = loader.join().unwrap();
    assert_eq!(code, 0, "{}\n{}", error_log(), r.dump());
    let e1 = error_log();
    assert!(
        e1.contains("signal 15 (SIGTERM) received"),
        "error log:\n{e1}"
    );
    assert!(e1.contains("exiting"), "error log:\n{e1}");
    assert!(
        e1.lines().any(|l| l.ends_with(": exit")),
        "error log:\n{e1}"
    );
    assert_clean_dinit(&r);
    drop(r);

    let acked = acked.lock().unwrap().clone();
    let mut r = launch(&d).info().spawn();
    let ok = wait_until(LONG, || {
        http(port, "GET", "/", b"").map(|x| x.0) == Some(200) || r.exited()
    });
    assert!(
        ok && !r.exited(),
        "nginx did not come back\n{}\n{}",
        error_log(),
        r.dump()
    );
    for &i in &acked {
        let want = format!("content-{i}\n");
        let on_disk = fs::read_to_string(html.join(format!("data/f{i}"))).unwrap_or_default();
        assert_eq!(on_disk, want, "file f{i} acknowledged before the stop");
    }
    for &i in acked.iter().step_by((acked.len() / 20).max(1)) {
        let got = http(port, "GET", &format!("/data/f{i}"), b"");
        assert_eq!(
            got,
            Some((200, format!("content-{i}\n").into_bytes())),
            "GET /data/f{i} after the restart"
        );
    }
    r.signal(libc::SIGTERM);
    assert_eq!(r.wait_exit(LONG), 0, "{}", r.dump());
    assert!(error_log()[e1.len()..].contains("exiting"));
    assert_clean_dinit(&r);
    eprintln!(
        "daemons: nginx: SIGTERM after {} acknowledged PUTs -> dinit exit 0 after {stop_s:.2} s \
         ({failed} requests failed around the stop); all {} files served after restart",
        acked.len(),
        acked.len()
    );
}
