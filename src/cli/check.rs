//! runit's `check` scripts, as `dinit check` and `sv check` run them: in the client, never in
//! PID 1. The client is an ordinary short-lived process, so it may wait and sleep here.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::client::io_text;

/// How a `check` script ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// Exit 0, or no executable `check` in the directory.
    Passed,
    Exited(i32),
    Killed(i32),
    TimedOut,
    /// It could not be started (or waited for): the error line's text.
    Error(String),
    /// Not run: this script, or a directory it is in, could be changed by someone the client
    /// does not trust (see [`untrusted`]).
    Untrusted(PathBuf),
}

impl Checked {
    pub fn passed(&self) -> bool {
        *self == Checked::Passed
    }
}

/// `<dir>/check` if it is an executable file (runit runs it; a plain file is ignored).
fn check_script(dir: &Path) -> Option<PathBuf> {
    // No directory (the main program's): nothing to run, not `./check`.
    if dir.as_os_str().is_empty() {
        return None;
    }
    let path = dir.join("check");
    let m = std::fs::metadata(&path).ok()?;
    (m.is_file() && m.permissions().mode() & 0o111 != 0).then_some(path)
}

/// What makes the client refuse to run `script` (the check of service directory `dir`): the
/// first of the script, the directory it really is in (symlinks followed) and the service
/// directory that is owned by a uid other than 0 and the client's (`me`), or writable by its
/// group or by everyone. As ssh's StrictModes: a `check` runs with the client's rights (root's,
/// for a Docker HEALTHCHECK), so only those who have them already may write it.
pub fn untrusted(dir: &Path, script: &Path, me: u32) -> Option<PathBuf> {
    let real = std::fs::canonicalize(script).unwrap_or_else(|_| script.to_path_buf());
    let real_dir = real.parent().map(Path::to_path_buf);
    [
        Some(script.to_path_buf()),
        real_dir,
        Some(dir.to_path_buf()),
    ]
    .into_iter()
    .flatten()
    .find(|p| {
        std::fs::metadata(p)
            .map(|m| (m.uid() != 0 && m.uid() != me) || m.mode() & 0o022 != 0)
            .unwrap_or(true)
    })
}

/// A `check` script on its way.
pub enum CheckRun {
    Done(Checked),
    Running(Child),
}

/// Starts `<dir>/check` as runit's `sv` does: cwd the service directory, argv[0] `./check`,
/// the client's environment plus `DINIT_PID`, stdin `/dev/null`. It gets its own process
/// group so that a timeout kills what it started too (a `sleep` left behind would hold the
/// caller's pipes open).
pub fn start_check(dir: &Path, pid: Option<u32>, stdout: Stdio) -> CheckRun {
    let Some(path) = check_script(dir) else {
        return CheckRun::Done(Checked::Passed);
    };
    if let Some(p) = untrusted(dir, &path, nix::unistd::geteuid().as_raw()) {
        return CheckRun::Done(Checked::Untrusted(p));
    }
    let mut cmd = Command::new(&path);
    cmd.arg0("./check")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .process_group(0);
    if let Some(pid) = pid {
        cmd.env("DINIT_PID", pid.to_string());
    }
    match cmd.spawn() {
        Ok(child) => CheckRun::Running(child),
        Err(e) => CheckRun::Done(Checked::Error(format!(
            "{}: {}",
            path.display(),
            io_text(&e)
        ))),
    }
}

/// Waits for every started script until `deadline`; what is still running then is killed
/// (with its process group) and reported as timed out.
pub fn finish_checks(runs: Vec<CheckRun>, deadline: Instant) -> Vec<Checked> {
    let mut results: Vec<Option<Checked>> = Vec::with_capacity(runs.len());
    let mut children: Vec<(usize, Child)> = Vec::new();
    for (i, run) in runs.into_iter().enumerate() {
        match run {
            CheckRun::Done(c) => results.push(Some(c)),
            CheckRun::Running(child) => {
                results.push(None);
                children.push((i, child));
            }
        }
    }
    // The client is an ordinary short-lived process: a short sleep between polls is simpler
    // than a pidfd per script and costs nothing that matters here.
    let mut nap = Duration::from_millis(1);
    while !children.is_empty() {
        children.retain_mut(|(i, child)| match child.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                results[*i] = Some(match (status.code(), status.signal()) {
                    (Some(0), _) => Checked::Passed,
                    (Some(code), _) => Checked::Exited(code),
                    (None, Some(sig)) => Checked::Killed(sig),
                    (None, None) => Checked::Exited(-1),
                });
                false
            }
            Err(e) => {
                kill_check(child);
                results[*i] = Some(Checked::Error(format!("wait: {}", io_text(&e))));
                false
            }
        });
        if children.is_empty() {
            break;
        }
        let now = Instant::now();
        if now >= deadline {
            for (i, child) in &mut children {
                kill_check(child);
                results[*i] = Some(Checked::TimedOut);
            }
            break;
        }
        std::thread::sleep(nap.min(deadline - now));
        nap = (nap * 2).min(Duration::from_millis(20));
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or(Checked::Passed))
        .collect()
}

fn kill_check(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // The group first (its leader is the script); then the script itself, in case it left
        // the group.
        let _ =
            nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_scripts() {
        let dir = std::env::temp_dir().join(format!("dinit-check-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let script = |body: &str, mode: u32| {
            let p = dir.join("check");
            std::fs::write(&p, body).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        let run = |timeout_ms: u64| {
            let r = start_check(&dir, Some(42), Stdio::null());
            finish_checks(vec![r], Instant::now() + Duration::from_millis(timeout_ms)).remove(0)
        };
        assert_eq!(run(1000), Checked::Passed); // none
        script("#!/bin/sh\nexit 3\n", 0o644);
        assert_eq!(run(1000), Checked::Passed); // not executable: ignored
        script("#!/bin/sh\nexit 3\n", 0o755);
        assert_eq!(run(5000), Checked::Exited(3));
        script(
            "#!/bin/sh\n[ \"$DINIT_PID\" = 42 ] && [ \"$(pwd -P)\" = \"$(cd \"$(dirname \"$0\")\" && pwd -P)\" ]\n",
            0o755,
        );
        assert_eq!(run(5000), Checked::Passed);
        script("#!/bin/sh\nkill -9 $$\n", 0o755);
        assert_eq!(run(5000), Checked::Killed(9));
        script("#!/bin/sh\nsleep 100\nexit 0\n", 0o755);
        let t = Instant::now();
        assert_eq!(run(200), Checked::TimedOut);
        assert!(t.elapsed() < Duration::from_secs(5));
        // Writable by others than the owner: not run (the marker shows it).
        let marker = dir.with_extension("ran");
        let _ = std::fs::remove_file(&marker);
        let body = format!("#!/bin/sh\necho x > '{}'\n", marker.display());
        script(&body, 0o775);
        assert_eq!(run(1000), Checked::Untrusted(dir.join("check")));
        script(&body, 0o757);
        assert_eq!(run(1000), Checked::Untrusted(dir.join("check")));
        script(&body, 0o755);
        let set_dir =
            |mode| std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
        set_dir(0o777);
        assert_eq!(run(1000), Checked::Untrusted(dir.clone()));
        set_dir(0o1777);
        assert_eq!(run(1000), Checked::Untrusted(dir.clone()));
        set_dir(0o755);
        // A symlink to a script in a folder others may write.
        let elsewhere = dir.with_extension("elsewhere");
        let _ = std::fs::remove_dir_all(&elsewhere);
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("c"), &body).unwrap();
        std::fs::set_permissions(elsewhere.join("c"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::remove_file(dir.join("check")).unwrap();
        std::os::unix::fs::symlink(elsewhere.join("c"), dir.join("check")).unwrap();
        assert_eq!(
            run(1000),
            Checked::Untrusted(std::fs::canonicalize(&elsewhere).unwrap())
        );
        std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(run(5000), Checked::Passed);
        assert!(marker.exists());
        std::fs::remove_file(&marker).unwrap();
        std::fs::remove_file(dir.join("check")).unwrap();
        let me = nix::unistd::geteuid().as_raw();
        if me == 0 {
            // Owned by another user: not run by root; run by that user, whose own it is.
            script(&body, 0o755);
            let nobody = nix::unistd::Uid::from_raw(65534);
            nix::unistd::chown(&dir.join("check"), Some(nobody), None).unwrap();
            assert_eq!(run(1000), Checked::Untrusted(dir.join("check")));
            assert_eq!(untrusted(&dir, &dir.join("check"), 65534), None);
            nix::unistd::chown(
                &dir.join("check"),
                Some(nix::unistd::Uid::from_raw(0)),
                None,
            )
            .unwrap();
        }
        let _ = std::fs::remove_dir_all(&elsewhere);
        assert!(!marker.exists(), "an untrusted check ran");
        script("#!/nonexistent/interpreter\n", 0o755);
        assert!(
            matches!(run(1000), Checked::Error(e) if e.ends_with("check: no such file or directory"))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
