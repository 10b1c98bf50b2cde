//! The service directory -> service definitions (contract §2, reference §3).
//!
//! Entries in byte order; dot-entries skipped; each other entry `stat`ed through symlinks: a
//! directory is a service named after the entry, anything else is skipped, and an entry that
//! cannot be `stat`ed (a dangling link) ends the listing with an error, keeping the services
//! before it (they are started and then stopped, as tozd/dinit does). Nothing is written.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::error::Error;

#[derive(Debug, Clone)]
pub struct ServiceDef {
    /// The entry's name (bytes: names need not be UTF-8).
    pub name: Vec<u8>,
    /// `<DINIT_DIR>/<name>`, through the entry (not its link target).
    pub dir: PathBuf,
    /// A `log/run` exists (a dangling link counts as absent).
    pub has_logger: bool,
    /// runit's `down` file: not started.
    pub down: bool,
    /// Not a directory's `run` but the main program of `dinit -- PROGRAM ARG...`.
    pub main: Option<MainProgram>,
    /// How dinit learns that `run` is ready (contract §15).
    pub readiness: Readiness,
}

/// How a service tells that it is ready (contract §15).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// As soon as `run` has been executed.
    Executed,
    /// s6's `notification-fd`: `run` gets the write end of a pipe as this fd and writes a
    /// newline when it is ready.
    Notify(i32),
    /// runit's `check`: ready when its last run exited 0.
    Check,
}

impl Readiness {
    /// `notification-fd` (a number from 3 to 255) wins over an executable `check`. A file that
    /// does not hold such a number is ignored, as s6-supervise refuses it.
    pub fn of(dir: &Path) -> Readiness {
        use std::os::unix::fs::PermissionsExt;
        let fd = std::fs::read_to_string(dir.join("notification-fd"))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .filter(|n| (3..=255).contains(n));
        if let Some(n) = fd {
            return Readiness::Notify(n);
        }
        match std::fs::metadata(dir.join("check")) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Readiness::Check,
            _ => Readiness::Executed,
        }
    }
}

/// The main program (contract §14): the service `main`, whose end ends the container with its
/// exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MainProgram {
    /// As given: argv[0], and its name in messages.
    pub name: OsString,
    /// Where `PATH` found it, or why not (ENOENT: exit 127, anything else: 126, as a shell).
    pub path: Result<PathBuf, Errno>,
    pub args: Vec<OsString>,
    /// dinit's stdin is a terminal: the program gets dinit's stdin, stdout and stderr and the
    /// terminal's foreground process group.
    pub terminal: bool,
}

/// The name of the main program's service.
pub const MAIN: &str = "main";

impl MainProgram {
    /// `argv` (at least the program) with `PATH` looked up as `execvp` does.
    pub fn new(argv: &[OsString], path_var: Option<&OsStr>, terminal: bool) -> Option<MainProgram> {
        let (name, args) = argv.split_first()?;
        Some(MainProgram {
            path: lookup(name, path_var),
            name: name.clone(),
            args: args.to_vec(),
            terminal,
        })
    }

    /// The exit code for a program that could not be started, as a shell gives it.
    pub fn exec_failure_code(e: Errno) -> u8 {
        if e == Errno::ENOENT { 127 } else { 126 }
    }
}

/// A name with a `/` is a path; else the first executable file of that name in `PATH`
/// (`/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin` when unset). A file that is
/// there but not executable is EACCES, nothing at all ENOENT.
pub fn lookup(name: &OsStr, path_var: Option<&OsStr>) -> Result<PathBuf, Errno> {
    use std::os::unix::fs::PermissionsExt;
    if name.as_bytes().contains(&b'/') {
        return Ok(PathBuf::from(name));
    }
    if name.is_empty() {
        return Err(Errno::ENOENT);
    }
    let path_var = path_var.unwrap_or(OsStr::new(
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ));
    let mut found = Errno::ENOENT;
    for dir in path_var.as_bytes().split(|b| *b == b':') {
        let dir = if dir.is_empty() { &b"."[..] } else { dir };
        let candidate = Path::new(OsStr::from_bytes(dir)).join(name);
        match std::fs::metadata(&candidate) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => return Ok(candidate),
            Ok(_) => found = Errno::EACCES,
            Err(_) => {}
        }
    }
    Err(found)
}

impl ServiceDef {
    pub fn run_path(&self) -> PathBuf {
        self.dir.join("run")
    }
    pub fn log_dir(&self) -> PathBuf {
        self.dir.join("log")
    }
    pub fn log_run_path(&self) -> PathBuf {
        self.dir.join("log/run")
    }
    pub fn terminate_path(&self) -> PathBuf {
        self.dir.join("terminate")
    }
    pub fn finish_path(&self) -> PathBuf {
        self.dir.join("finish")
    }
    pub fn check_path(&self) -> PathBuf {
        self.dir.join("check")
    }
    /// The main program's service: named `main`, run in dinit's working directory, without
    /// a logger, `finish` or `terminate`.
    pub fn main_program(main: MainProgram, cwd: &Path) -> ServiceDef {
        ServiceDef {
            name: MAIN.as_bytes().to_vec(),
            dir: cwd.to_path_buf(),
            has_logger: false,
            down: false,
            main: Some(main),
            readiness: Readiness::Executed,
        }
    }

    /// The name for messages: control characters and invalid UTF-8 escaped.
    pub fn display(&self) -> String {
        crate::log::escaped(&self.name)
    }

    /// The name as it is when it is UTF-8 (the metrics' label; escaped there), else lossy.
    pub fn name_str(&self) -> &str {
        std::str::from_utf8(&self.name).unwrap_or("(not UTF-8)")
    }

    /// The name as text for the status (invalid UTF-8 as U+FFFD; JSON escapes the rest).
    pub fn name_text(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

#[derive(Debug)]
pub struct Scan {
    pub services: Vec<ServiceDef>,
    /// The entry that ended the listing, if one did.
    pub error: Option<Error>,
}

/// Lists `dir`. Failing to read it at all is an error (`open <dir>: ...`).
pub fn scan(dir: &Path) -> Result<Scan, Error> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::path(Some("open"), dir, &e))?;
    let mut names: Vec<OsString> = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| Error::path(Some("open"), dir, &e))?;
        names.push(entry.file_name());
    }
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));

    let mut services = Vec::new();
    for name in names {
        if name.as_bytes().first() == Some(&b'.') {
            continue;
        }
        let path = dir.join(&name);
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => {
                let has_logger = match std::fs::metadata(path.join("log/run")) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
                    // Anything else (a directory, no permission): try to start it and report that.
                    _ => true,
                };
                // runit's rule: `stat("down")`, through symlinks, so a link to a flag file that
                // does not exist (yet) leaves the service up.
                let down = std::fs::metadata(path.join("down")).is_ok();
                let readiness = Readiness::of(&path);
                services.push(ServiceDef {
                    name: name.into_vec(),
                    dir: path,
                    has_logger,
                    down,
                    main: None,
                    readiness,
                });
            }
            Ok(_) => {}
            Err(e) => {
                return Ok(Scan {
                    services,
                    error: Some(Error::path(Some("stat"), &path, &e)),
                });
            }
        }
    }
    Ok(Scan {
        services,
        error: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dinit-scan-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn rules() {
        let d = tmp("rules");
        for s in ["b", "a", ".hidden", "c"] {
            std::fs::create_dir(d.join(s)).unwrap();
        }
        std::fs::write(d.join("file"), "").unwrap();
        std::fs::create_dir_all(d.join("c/log")).unwrap();
        std::fs::write(d.join("c/log/run"), "").unwrap();
        std::fs::write(d.join("b/down"), "").unwrap();
        symlink(d.join("a"), d.join("link")).unwrap();
        let s = scan(&d).unwrap();
        assert!(s.error.is_none());
        let names: Vec<String> = s.services.iter().map(|s| s.display()).collect();
        assert_eq!(names, ["a", "b", "c", "link"]);
        assert_eq!(s.services[3].dir, d.join("link"));
        assert!(s.services[1].down && !s.services[0].down);
        assert!(s.services[2].has_logger && !s.services[0].has_logger);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn dangling_link_ends_listing() {
        let d = tmp("dangling");
        std::fs::create_dir(d.join("a")).unwrap();
        std::fs::create_dir(d.join("c")).unwrap();
        symlink(d.join("nowhere"), d.join("b")).unwrap();
        let s = scan(&d).unwrap();
        assert_eq!(s.services.len(), 1);
        let e = s.error.unwrap().to_string();
        assert_eq!(
            e,
            format!("stat {}/b: no such file or directory", d.display())
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn path_lookup() {
        let d = tmp("lookup");
        std::fs::write(d.join("plain"), "").unwrap();
        std::fs::write(d.join("tool"), "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d.join("tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("/nonexistent:{}", d.display());
        let p = Some(OsStr::new(path.as_str()));
        assert_eq!(lookup(OsStr::new("tool"), p), Ok(d.join("tool")));
        assert_eq!(lookup(OsStr::new("plain"), p), Err(Errno::EACCES));
        assert_eq!(lookup(OsStr::new("nope"), p), Err(Errno::ENOENT));
        assert_eq!(lookup(OsStr::new("./x"), p), Ok(PathBuf::from("./x")));
        assert_eq!(
            lookup(OsStr::new("sh"), None),
            Ok(PathBuf::from("/usr/bin/sh"))
        );
        assert_eq!(MainProgram::exec_failure_code(Errno::ENOENT), 127);
        assert_eq!(MainProgram::exec_failure_code(Errno::EACCES), 126);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn missing_dir() {
        let e = scan(Path::new("/nonexistent-dinit"))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "open /nonexistent-dinit: no such file or directory");
    }
}
