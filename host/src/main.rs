//! The `baton` binary: see [`baton::cli`].

fn main() -> std::process::ExitCode {
    // SAFETY: first thing in `main`, before any thread is spawned.
    unsafe { baton::disable_library_backtraces() };
    match baton::cli::main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("baton: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
