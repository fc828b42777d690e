//! The `baton` binary: see [`baton::cli`].

fn main() -> std::process::ExitCode {
    match baton::cli::main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("baton: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
