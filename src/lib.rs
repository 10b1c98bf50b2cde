//! dinit: a container init. PID 1 (or a child subreaper) that runs a runit-style service
//! directory, multiplexes every program's output into its own, and stops everything cleanly.
//!
//! Two paths, each flowing one way, on one thread around one `mio::Poll`:
//!
//! ```text
//! output:  pipe --read--> LineSplitter --> record (JSON / text) --> queue fd 1|2 --write--> docker logs
//! control: sources --> events --> Supervisor::on (state machines) --> effects --> the loop carries them out
//!          (SIGCHLD, signals, timers, control requests, exec-status pipes)     (spawn, kill, arm, say, reply)
//! ```
//!
//! The parts: [`event_loop`] owns the poll and every source and carries out effects;
//! [`output`] is the output path; [`supervise`] holds the state machines (a service's
//! processes, orphans and adoption, dinit's own phase) and never touches a file descriptor;
//! [`control`] is the control socket and its protocol; [`cli`] is dinit as its own client.
//! `docs/architecture.md` says where a feature goes.
//!
//! `main -> run -> exit code`. Before the loop the first failure prints one line and exits with
//! the contract's code; once services run, PID 1 must not die: handlers log and carry on.

pub mod cli;
pub mod config;
pub mod control;
pub mod error;
pub mod event_loop;
pub mod http;
pub mod log;
pub mod output;
pub mod signals;
pub mod supervise;
pub mod timers;

use std::process::ExitCode;

use mio::unix::SourceFd;
use mio::{Interest, Poll};
use signal_hook_mio::v1_0::Signals;

use config::Config;
use event_loop::{Loop, ServiceIo};
use log::Level;
use output::sink;
use output::{Output, Stream};
use supervise::supervisor::Supervisor;

const HELP: &str = "\
dinit: a container init (PID 1) for runit-style service directories.

usage: dinit            run every <DINIT_DIR>/<service>/run (arguments are ignored)
       dinit -- PROGRAM [ARG...]
                        the same, and PROGRAM as the service `main`: its end ends the
                        container with its exit code (tini's use)
       dinit --version  print the version
       dinit --help     print this text

As a client of the running dinit (over its control socket):
       dinit status [--json] [SERVICE...]   runit-style status lines, or JSON
       dinit check [SERVICE...]             health check: exit 0 when healthy
       dinit up|down|restart [-w SEC] SERVICE...
       dinit signal SIG SERVICE...
       dinit shutdown
Invoked as `sv` (a link to this binary), it is runit's `sv`.

Configuration is read from the environment:
  DINIT_DIR                 service directory (default /etc/service)
  DINIT_LOG_LEVEL           none, error, warn, info, debug (default warn)
  DINIT_JSON_STDOUT         1/true/yes/on (default) or 0/false/no/off
  DINIT_KILL_TIMEOUT        seconds before SIGKILL for orphans and finish scripts (default 30)
  DINIT_STOP_TIMEOUT        seconds after which a shutdown kills what is left (default 0: never)
  DINIT_REPARENTING_POLICY  terminate (default), adopt or ignore
  DINIT_CONTROL_SOCKET      control socket: a path (default /run/dinit/control.sock), @name, none
  DINIT_CHECK_TIMEOUT       seconds a check script may take in `dinit check` (default 5)
  DINIT_MAIN_EXIT_ZERO      exit codes of the main program that count as 0, e.g. 143 (tini's -e)
  DINIT_CHECK_INTERVAL      seconds between dinit's runs of a service's check (default 5; 0: never)
  DINIT_HTTP_LISTEN         serve /livez, /readyz, /status, /metrics on [HOST]:PORT (default off)
";

/// The whole program: `main.rs` calls only this.
pub fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        sink::restore_flags();
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_owned());
        output::early(Level::Error, format_args!("internal error: {what}{at}"));
        std::process::exit(supervise::exit::INTERNAL as i32);
    }));
    let mut argv = std::env::args_os();
    let argv0 = argv.next().unwrap_or_default();
    let args: Vec<std::ffi::OsString> = argv.collect();
    if let Some(code) = cli::main(&argv0, &args) {
        return ExitCode::from(code);
    }
    if args.len() == 1 {
        match args[0].to_str() {
            Some("--version") => {
                println!("dinit {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            Some("--help") => {
                print!("{HELP}");
                return ExitCode::SUCCESS;
            }
            _ => {}
        }
    }
    // `dinit -- PROGRAM [ARG...]`: a main program (contract §14); other arguments are ignored
    // (base images' `CMD ["bash"]`).
    let main = match args.split_first() {
        Some((dashes, argv)) if dashes == "--" => match argv.is_empty() {
            true => {
                output::early(
                    Level::Error,
                    format_args!("invalid command line: -- needs a program to run"),
                );
                return ExitCode::from(supervise::exit::DINIT_FAILED);
            }
            false => Some(argv),
        },
        _ => None,
    };
    let code = run(main);
    sink::restore_flags();
    ExitCode::from(code)
}

fn run(main: Option<&[std::ffi::OsString]>) -> u8 {
    // Before anything is opened: fds 0-2 exist, and nothing inherited leaks into services.
    let closed = sink::ensure_std_fds();
    supervise::spawn::cloexec_inherited_fds();
    supervise::spawn::raise_nofile_limit();
    supervise::spawn::fixed_mmap_threshold();
    let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
    let cfg = match Config::from_env(&cwd) {
        Ok(c) => c,
        Err(e) => {
            output::early(Level::Error, format_args!("{e}"));
            return supervise::exit::DINIT_FAILED;
        }
    };
    // Registered before the first fork: a signal that arrives during start-up waits in the pipe.
    let mut signals = match Signals::new(signals::HANDLED) {
        Ok(s) => s,
        Err(e) => return early_fail(format_args!("exiting: signal handlers: {e}")),
    };
    let caught = match signals::caught_flag() {
        Ok(f) => f,
        Err(e) => return early_fail(format_args!("exiting: signal handlers: {e}")),
    };
    // A mask inherited from whoever started dinit would hold back the signals it lives on.
    // Lifted only now that the handlers are in place: a SIGTERM that was pending (blocked)
    // when dinit started is a shutdown request, not death by the default action.
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    );
    supervise::spawn::ignore_signals(signals::IGNORED, 32..=supervise::spawn::KERNEL_SIGRTMAX);
    let child = match signals::child_signal() {
        Ok(s) => s,
        Err(e) => return early_fail(format_args!("exiting: signalfd: {}", error::errno_text(e))),
    };
    let poll = match Poll::new() {
        Ok(p) => p,
        Err(e) => return early_fail(format_args!("exiting: epoll: {e}")),
    };
    let mut out = Output::new(cfg.log_level, cfg.json_stdout, closed);
    let registry = poll.registry();
    if let Err(e) = registry.register(&mut signals, event_loop::SIGNALS, Interest::READABLE) {
        return early_fail(format_args!("exiting: signal handlers: {e}"));
    }
    let child_fd = std::os::fd::AsRawFd::as_raw_fd(&child);
    if let Err(e) = registry.register(
        &mut SourceFd(&child_fd),
        event_loop::CHILD,
        Interest::READABLE,
    ) {
        return early_fail(format_args!("exiting: signalfd: {e}"));
    }
    for (stream, token) in [
        (Stream::Stdout, event_loop::STDOUT),
        (Stream::Stderr, event_loop::STDERR),
    ] {
        let sink = out.sink_mut(stream);
        if let Some(fd) = sink.poll_fd()
            && registry
                .register(&mut SourceFd(&fd), token, Interest::WRITABLE)
                .is_err()
        {
            sink.not_pollable();
        }
    }

    let pid = std::process::id();
    if pid != 1 {
        info!(
            out,
            "not running as a PID 1, but PID {pid}, registering as a process subreaper"
        );
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            error!(out, "exiting: {}", error::errno_text(e));
            flush_blocking(&mut out);
            return supervise::exit::DINIT_FAILED;
        }
    }
    // The control socket is there before any service starts (a health check may come early).
    let (control, warning) =
        control::server::Control::setup(&cfg.control_socket, registry, event_loop::CONTROL);
    if let Some(w) = warning {
        warn!(out, "{w}");
    }
    let http = match cfg.http_listen {
        Some(addr) => {
            let (http, warning) = http::server::Http::setup(addr, registry, event_loop::HTTP);
            if let Some(w) = warning {
                warn!(out, "{w}");
            }
            http
        }
        None => http::server::Http::off(),
    };
    let dir = cfg.dir.clone();
    let now = std::time::Instant::now();
    let sig = event_loop::SignalSources {
        signals,
        caught,
        child,
    };
    let mut lp = Loop::new(poll, sig, out, control, Supervisor::new(cfg, now));
    lp.http = http;
    let (defs, scan_error) = services(&dir, main, &cwd, &mut lp.out);
    let effects = lp.sup.start(defs, scan_error, now);
    lp.io = lp
        .sup
        .services
        .iter()
        .map(|s| ServiceIo::new(&s.def))
        .collect();
    for e in effects {
        if let Some(ev) = lp.perform(e) {
            lp.queue.push_back(ev);
        }
    }
    lp.drain_queue();

    // ---- From here on PID 1 must not die: handlers log and carry on; only poll failing ends
    // ---- the loop, and even then dinit reports and exits with the internal-error code.
    match lp.run() {
        Ok(code) => code,
        Err(e) => {
            error!(lp.out, "exiting: poll: {e}");
            flush_blocking(&mut lp.out);
            supervise::exit::INTERNAL
        }
    }
}

/// The services to start: `dir`'s, and the main program's when there is one (then `dir` may
/// be missing; a service of its own named `main` gives way, with a warning).
fn services(
    dir: &std::path::Path,
    main: Option<&[std::ffi::OsString]>,
    cwd: &std::path::Path,
    out: &mut Output,
) -> (Vec<supervise::scan::ServiceDef>, Option<error::Error>) {
    use supervise::scan::{MAIN, MainProgram, ServiceDef};
    let main = main.and_then(|argv| {
        let terminal = nix::unistd::isatty(std::io::stdin()).unwrap_or(false);
        MainProgram::new(argv, std::env::var_os("PATH").as_deref(), terminal)
    });
    let (mut defs, scan_error) = match (supervise::scan::scan(dir), &main) {
        (Ok(scan), _) => (scan.services, scan.error),
        (Err(e), Some(_)) if e.errno == nix::errno::Errno::ENOENT => (Vec::new(), None),
        (Err(e), _) => (Vec::new(), Some(e)),
    };
    if let Some(main) = main {
        if let Some(i) = defs.iter().position(|d| d.name == MAIN.as_bytes()) {
            warn!(
                out,
                "{}/{MAIN}: not starting: the name is the main program's (dinit --)",
                dir.display()
            );
            defs.remove(i);
        }
        defs.push(ServiceDef::main_program(main, cwd));
    }
    (defs, scan_error)
}

fn early_fail(msg: std::fmt::Arguments<'_>) -> u8 {
    output::early(Level::Error, msg);
    supervise::exit::DINIT_FAILED
}

/// Last words when the loop cannot run: write what is queued, waiting if need be.
fn flush_blocking(out: &mut Output) {
    for _ in 0..1000 {
        out.flush();
        if out.is_drained() {
            return;
        }
        out.sink_mut(Stream::Stdout).set_writable();
        out.sink_mut(Stream::Stderr).set_writable();
        let _ = nix::poll::poll(&mut [], nix::poll::PollTimeout::from(10u8));
    }
}
