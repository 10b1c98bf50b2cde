//! dinit as its own client: `dinit status|check|up|down|restart|signal|shutdown` (`client`),
//! and runit's `sv` when invoked under that name (`sv`). Both talk to the running dinit over
//! the control socket; neither is PID 1, so they may block and sleep.

mod client;
mod sv;

use std::ffi::{OsStr, OsString};

/// Runs the client when the command line asks for it and returns its exit code; `None` means
/// "not a client invocation, run as init".
pub fn main(argv0: &OsStr, args: &[OsString]) -> Option<u8> {
    if client::program_name(argv0) == Some(OsStr::new("sv")) {
        return Some(sv::main(args));
    }
    let cmd = args.first()?.to_str()?;
    client::COMMANDS
        .contains(&cmd)
        .then(|| client::main(cmd, &args[1..]))
}
