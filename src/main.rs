//! The `dinit` binary; everything is in the library (`src/lib.rs`), so that the pure parts can be
//! fuzzed and benchmarked on their own.

fn main() -> std::process::ExitCode {
    dinit::main()
}
