//! The fuzz targets of `fuzz/` (libFuzzer, coverage-instrumented on stable
//! Rust): built with a nested cargo into `target/fuzz`, then each run for a
//! bounded number of inputs from its committed corpus (`fuzz/corpus/<target>`)
//! with a fixed seed, and every input of `fuzz/regressions/<target>` replayed.
//! A crash fails the test with the crashing input's path and libFuzzer's
//! output. `scripts/fuzz_long.sh` is the long run (not part of the tests).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use support::*;

/// Every target of `fuzz/Cargo.toml`.
const TARGETS: &[&str] = &[
    "manifest",
    "component",
    "token",
    "credentials",
    "sdk_router",
    "sdk_query",
    "orchestrator",
    "clusters",
    "provisioning",
    "pgo",
];

/// Inputs each target runs: mutations of its corpus, a few seconds each.
const RUNS: u32 = 20_000;
/// A bound on one run's time, should a target become slow (not the measure).
const MAX_SECONDS: u32 = 120;

/// The host's target triple (the fuzz build passes it explicitly, so that
/// the instrumentation flags reach the targets' code only).
fn host_triple() -> String {
    let out = Command::new("rustc")
        .arg("-vV")
        .current_dir(root())
        .output()
        .expect("running rustc -vV");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .to_string()
}

/// Builds every target once per test process; the folder of the binaries.
fn built() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let triple = host_triple();
        let target_dir = root().join("target/fuzz");
        let mut cmd = cargo();
        // Inside fuzz/, so that fuzz/.cargo/config.toml (the flags) applies.
        cmd.current_dir(root().join("fuzz"))
            .args(["build", "--locked", "--release", "--bins", "--target"])
            .arg(&triple)
            .arg("--target-dir")
            .arg(&target_dir);
        clean_cargo_env(&mut cmd);
        let out = cmd.output().expect("running cargo build for fuzz/");
        assert!(
            out.status.success(),
            "building the fuzz targets failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        target_dir.join(triple).join("release")
    })
}

/// What one libFuzzer run printed and how it ended.
struct Run {
    ok: bool,
    output: String,
}

fn libfuzzer(target: &str, args: &[&std::ffi::OsStr]) -> Run {
    let out = Command::new(built().join(target))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running the {target} fuzz target: {e}"));
    Run {
        ok: out.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// The `cov:` figure of the first status line starting with `#N\t<event>`.
fn coverage(output: &str, event: &str) -> Option<u64> {
    output
        .lines()
        .filter(|l| l.starts_with('#') && l.contains(event))
        .find_map(|l| {
            l.split("cov: ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
}

fn the_last_lines(output: &str) -> String {
    let lines: Vec<&str> = output.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Fuzzes `target` from its corpus for [`RUNS`] inputs, seed 1.
fn fuzz(target: &str) {
    let fuzz = root().join("fuzz");
    let corpus = fuzz.join("corpus").join(target);
    assert!(
        std::fs::read_dir(&corpus).is_ok_and(|mut d| d.next().is_some()),
        "{target} has no seed corpus in {}",
        corpus.display()
    );
    let work = tempfile::tempdir().expect("a temporary directory");
    let crashes = work.path().join("crashes");
    std::fs::create_dir(&crashes).unwrap();
    let new_inputs = work.path().join("corpus");
    std::fs::create_dir(&new_inputs).unwrap();
    let dict = fuzz.join("dict").join(format!("{target}.dict"));
    let arg = |s: String| std::ffi::OsString::from(s);
    let mut args = vec![
        arg(format!("-runs={RUNS}")),
        arg(format!("-max_total_time={MAX_SECONDS}")),
        arg("-seed=1".into()),
        arg(format!("-artifact_prefix={}/", crashes.display())),
    ];
    if dict.exists() {
        args.push(arg(format!("-dict={}", dict.display())));
    }
    // New inputs go to the first folder: the committed corpus stays as it is.
    args.push(new_inputs.into_os_string());
    args.push(corpus.into_os_string());
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let run = libfuzzer(target, &refs);
    let found: Vec<PathBuf> = std::fs::read_dir(&crashes)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    if !run.ok || !found.is_empty() {
        // Keep the input where it can be read after the temporary folder goes.
        let keep = root().join("target/fuzz/crashes").join(target);
        std::fs::create_dir_all(&keep).unwrap();
        let kept: Vec<String> = found
            .iter()
            .map(|f| {
                let dest = keep.join(f.file_name().unwrap());
                std::fs::copy(f, &dest).unwrap();
                dest.display().to_string()
            })
            .collect();
        panic!(
            "the {target} fuzz target crashed on {kept:?} (add it to fuzz/regressions/{target}/ \
             once fixed):\n{}",
            the_last_lines(&run.output)
        );
    }
    // The build is instrumented: libFuzzer sees coverage from the start.
    let start = coverage(&run.output, "INITED").unwrap_or(0);
    let end = coverage(&run.output, "DONE").unwrap_or(start);
    assert!(
        start > 0,
        "{target}: libFuzzer reported no coverage; is the build instrumented?\n{}",
        the_last_lines(&run.output)
    );
    eprintln!("{target}: {RUNS} runs, coverage {start} → {end}");
}

/// Replays every input of `fuzz/regressions/<target>/` (crashes found and
/// fixed), each once.
fn replay(target: &str) -> usize {
    let dir = root().join("fuzz/regressions").join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return 0;
    };
    let files: Vec<std::ffi::OsString> = entries
        .map(|e| e.unwrap().path().into_os_string())
        .collect();
    if files.is_empty() {
        return 0;
    }
    let refs: Vec<&std::ffi::OsStr> = files.iter().map(|a| a.as_os_str()).collect();
    let run = libfuzzer(target, &refs);
    assert!(
        run.ok,
        "a fixed crash of {target} is back ({}):\n{}",
        dir.display(),
        the_last_lines(&run.output)
    );
    files.len()
}

#[test]
fn every_regression_input_is_replayed_without_a_crash() {
    let regressions = root().join("fuzz/regressions");
    for entry in std::fs::read_dir(&regressions).expect("fuzz/regressions") {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            TARGETS.contains(&name.as_str()),
            "fuzz/regressions/{name} names no fuzz target"
        );
    }
    let replayed: usize = TARGETS.iter().map(|t| replay(t)).sum();
    assert!(replayed > 0, "no regression input was replayed");
}

#[test]
fn every_fuzz_target_is_listed_here() {
    let manifest = std::fs::read_to_string(root().join("fuzz/Cargo.toml")).unwrap();
    let bins = manifest.matches("[[bin]]").count();
    assert_eq!(bins, TARGETS.len(), "fuzz/Cargo.toml has {bins} targets");
    for t in TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{t}\"")),
            "{t} is not a target"
        );
    }
}

macro_rules! fuzz_tests {
    ($($name:ident => $target:literal,)*) => {
        $(
            #[test]
            fn $name() {
                fuzz($target);
            }
        )*
    };
}

fuzz_tests! {
    fuzz_manifest => "manifest",
    fuzz_component => "component",
    fuzz_token => "token",
    fuzz_credentials => "credentials",
    fuzz_sdk_router => "sdk_router",
    fuzz_sdk_query => "sdk_query",
    fuzz_orchestrator => "orchestrator",
    fuzz_clusters => "clusters",
    fuzz_provisioning => "provisioning",
    fuzz_pgo => "pgo",
}
