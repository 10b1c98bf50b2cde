//! dinit as its own client: `dinit status|check|up|down|restart|signal|shutdown`, and runit's
//! `sv` when invoked under that name. Talks to the running dinit over the control socket.

use std::ffi::OsString;

/// Runs the client when the command line asks for it; `None` means "not a client invocation,
/// run as init".
pub fn main(_argv0: &std::ffi::OsStr, _args: &[OsString]) -> Option<u8> {
    None
}
