//! The shipped handlers' own unit tests (routing, validation, planning, body
//! parsing…), run natively with a nested cargo: `handlers/` is a workspace
//! of its own (built for wasm32-wasip2 by host/build.rs), so `cargo test
//! --workspace` would not reach them otherwise.

mod support;

use support::*;

#[test]
fn every_shipped_handlers_unit_tests_pass() {
    let mut cmd = cargo();
    cmd.args(["test", "--locked", "--workspace", "--manifest-path"])
        .arg(root().join("handlers/Cargo.toml"))
        // A target directory of its own: the outer cargo holds `target/debug`.
        .arg("--target-dir")
        .arg(root().join("target/handler-unit-tests"));
    clean_cargo_env(&mut cmd);
    let out = cmd.output().expect("running cargo test for handlers/");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the handlers' unit tests failed:\n{stdout}\n{stderr}"
    );
    // Every handler crate ran tests (a crate with none would print 0 passed).
    let ran: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("test result: ok.") && !l.contains(" 0 passed"))
        .collect();
    assert!(
        ran.len() >= 4,
        "expected tests from the four shipped handlers:\n{stdout}"
    );
}
