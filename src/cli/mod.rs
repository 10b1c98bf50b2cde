//! dinit as its own client: `dinit status|check|up|down|restart|signal|shutdown` (`commands`),
//! and runit's `sv` when invoked under that name (`sv`). Both build on `client` (the
//! connection), `check` (running `check` scripts) and `lines` (what is printed). Neither is
//! PID 1, so they may block and sleep.

mod check;
mod client;
mod commands;
mod lines;
mod sv;

use std::ffi::{OsStr, OsString};
use std::path::Path;

/// Runs the client when the command line asks for it and returns its exit code; `None` means
/// "not a client invocation, run as init".
pub fn main(argv0: &OsStr, args: &[OsString]) -> Option<u8> {
    if Path::new(argv0).file_name() == Some(OsStr::new("sv")) {
        return Some(sv::main(args));
    }
    let cmd = args.first()?.to_str()?;
    commands::COMMANDS
        .contains(&cmd)
        .then(|| commands::main(cmd, &args[1..]))
}
