//! Shared by the black-box tests: build test components, start the real
//! `baton` binary on an ephemeral port, talk to it over real HTTP.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Builds tests/components once per test binary; returns the folder holding the `.wasm` files.
pub fn test_components() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let target = root().join("target/test-components");
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ])
        .arg(root().join("tests/components/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target);
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if (k.starts_with("CARGO_") && k != "CARGO_HOME")
                || k.starts_with("RUSTC")
                || k == "RUSTFLAGS"
            {
                cmd.env_remove(k.as_ref());
            }
        }
        let status = cmd.status().expect("running cargo for the test components");
        assert!(status.success(), "building tests/components failed");
        target.join("wasm32-wasip2/release")
    })
    .clone()
}

/// A running `baton serve`, killed on drop.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    stderr: Arc<Mutex<String>>,
}

/// A manifest listening on an ephemeral port with the given handler tables.
pub fn manifest(handlers: &str) -> String {
    format!("[[listener]]\naddress = \"127.0.0.1:0\"\n\n{handlers}")
}

/// The orchestrator handler table.
pub const ORCHESTRATOR: &str = "[[handler]]\nname = \"orchestrator\"\nwasm = \"builtin:orchestrator\"\nmount = \"/orchestrator/v1\"\nerrors = \"puppet\"\n";

impl Server {
    /// Writes `manifest` into `dir/baton.toml` and serves it with data in `dir/data`.
    pub fn start(dir: &Path, manifest: &str) -> Server {
        let path = dir.join("baton.toml");
        std::fs::write(&path, manifest).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_baton"));
        cmd.arg("serve")
            .arg("--manifest")
            .arg(&path)
            .arg("--data")
            .arg(dir.join("data"));
        Server::spawn(cmd)
    }

    /// Spawns `cmd` (a `baton serve …`) and waits for its `listening on` line.
    // The child moves into `Server`, whose `Drop` kills and waits for it.
    #[allow(clippy::zombie_processes)]
    pub fn spawn(mut cmd: Command) -> Server {
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("BATON_LOG", "info");
        let mut child = cmd.spawn().expect("spawning baton");
        let stderr = Arc::new(Mutex::new(String::new()));
        let err_pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err_pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            if out.read_line(&mut line).unwrap_or(0) == 0 {
                let _ = child.wait();
                panic!(
                    "baton exited before listening; stderr:\n{}",
                    stderr.lock().unwrap()
                );
            }
            if let Some(url) = line.trim().strip_prefix("listening on ") {
                let base = url.to_string();
                std::thread::spawn(move || for _ in out.lines() {});
                return Server {
                    child,
                    base,
                    stderr,
                };
            }
        }
    }

    /// Everything the server wrote to stderr so far.
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until the log contains `needle` (bounded), returning the log.
    pub fn wait_log(&self, needle: &str) -> String {
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("`{needle}` never appeared in the log:\n{}", self.log());
    }

    /// `kill -9` the server and wait for it to die.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The status of `GET path`.
    pub fn get_status(&self, path: &str) -> u16 {
        client()
            .get(self.url(path))
            .send()
            .unwrap()
            .status()
            .as_u16()
    }

    /// The JSON body of `GET path`.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        client().get(self.url(path)).send().unwrap().json().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `baton serve` with `args` expecting it to fail; returns its stderr.
pub fn serve_fails(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_baton"))
        .arg("serve")
        .args(args)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "baton serve {args:?} should have failed"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `baton serve` on the manifest file `name` in `dir` (data in `dir/d`),
/// expecting it to fail; returns its stderr.
pub fn serve_manifest_fails(dir: &Path, name: &str) -> String {
    let manifest = dir.join(name);
    let data = dir.join("d");
    serve_fails(&[
        "--manifest",
        manifest.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ])
}

/// A blocking HTTP client with a generous timeout.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}
