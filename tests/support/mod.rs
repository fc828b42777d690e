//! Shared by the black-box tests: build test components, start the real
//! `baton` binary on an ephemeral port, talk to it over real HTTP.
#![allow(dead_code)]

pub mod clusters;
pub mod postgres;

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

/// The default manifest's (`host/baton.toml`) `[[handler]]` block for
/// `name`: from its `[[handler]]` line to the next one or the end of the
/// file. Tests build their manifests on it so that they serve the shipped
/// routes, policies and capabilities rather than a copy that can drift.
pub fn shipped_handler(name: &str) -> String {
    let default = std::fs::read_to_string(root().join("host/baton.toml")).unwrap();
    let at = default
        .find(&format!("\nname = \"{name}\"\n"))
        .unwrap_or_else(|| panic!("no handler `{name}` in host/baton.toml"));
    let start = default[..at].rfind("[[handler]]").unwrap();
    let block = &default[start..];
    let end = block[1..]
        .find("\n[[handler]]")
        .map_or(block.len(), |i| i + 2);
    block[..end].to_string()
}

/// [`shipped_handler`] without its `[handler.config]` table (the last
/// table of every shipped handler), for tests that bring their own.
pub fn shipped_handler_without_config(name: &str) -> String {
    let block = shipped_handler(name);
    let at = block
        .find("\n[handler.config]\n")
        .unwrap_or_else(|| panic!("no [handler.config] for `{name}` in host/baton.toml"));
    block[..=at].to_string()
}

/// Longest a test waits for something the server does in the background
/// (generous: a hang fails the test; no timing is asserted).
pub const POLL_DEADLINE: Duration = Duration::from_secs(60);

/// Calls `check` until it gives `Ok`, returning that; `Err` carries what
/// was seen instead, named in the failure after [`POLL_DEADLINE`].
pub fn poll<T>(what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let end = Instant::now() + POLL_DEADLINE;
    loop {
        match check() {
            Ok(v) => return v,
            Err(seen) => assert!(
                Instant::now() < end,
                "timed out waiting for {what}; last seen: {seen}"
            ),
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Builds tests/components once per test binary; returns the folder holding the `.wasm` files.
pub fn test_components() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        ensure_target("wasm32-wasip2");
        let target = root().join("target/test-components");
        let mut cmd = cargo();
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
        clean_cargo_env(&mut cmd);
        let status = cmd.status().expect("running cargo for the test components");
        assert!(status.success(), "building tests/components failed");
        target.join("wasm32-wasip2/release")
    })
    .clone()
}

/// The bootstrap admin's password in every test server.
pub const ADMIN_PASSWORD: &str = "test-admin-password";

/// `tests/components/<name>` built as a `wasm32-wasip1` core module (once
/// per test binary): what authors on the older WASI target deploy.
pub fn wasip1_module(name: &str) -> Vec<u8> {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        ensure_target("wasm32-wasip1");
        let target = root().join("target/test-components-p1");
        let mut cmd = cargo();
        cmd.args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip1",
            "--manifest-path",
        ])
        .arg(root().join("tests/components/Cargo.toml"))
        .args(["-p", "greeter-v1", "--target-dir"])
        .arg(&target);
        clean_cargo_env(&mut cmd);
        let status = cmd.status().expect("running cargo for wasm32-wasip1");
        assert!(
            status.success(),
            "building tests/components for wasm32-wasip1 failed"
        );
        target.join("wasm32-wasip1/release")
    });
    std::fs::read(dir.join(format!("{name}.wasm"))).unwrap()
}

/// `bytes` with a custom section named `tag` appended: the same component
/// behaviour under a new sha256 (a new version for the hot-swap tests).
pub fn with_custom_section(bytes: &[u8], tag: &str) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let mut payload = vec![tag.len() as u8];
    payload.extend_from_slice(tag.as_bytes());
    out.push(0);
    out.push(payload.len() as u8);
    out.extend_from_slice(&payload);
    out
}

/// An in-process app (for benches) serving `manifest_text`, with its
/// runtime and the temporary folder holding its data; keep all three alive.
pub fn app_in_process(
    manifest_text: &str,
) -> (
    tokio::runtime::Runtime,
    tempfile::TempDir,
    Arc<baton::app::App>,
) {
    // SAFETY: the benches call this from their main thread before any
    // runtime or worker thread exists, as `baton`'s own `main` does.
    unsafe { baton::disable_library_backtraces() };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let manifest =
        baton::manifest::Manifest::parse(manifest_text, "bench.toml", dir.path()).unwrap();
    let app = rt
        .block_on(baton::app::App::start(manifest, dir.path().join("data")))
        .unwrap();
    (rt, dir, app)
}

/// The listener's service for `app` as a plain-HTTP listener on
/// 127.0.0.1:8143 serving every mount runs it (for the benches).
pub fn listener_service(app: &Arc<baton::app::App>) -> baton::server::ListenerService {
    baton::server::ListenerService::new(
        Arc::new(baton::server::ListenerCtx {
            app: app.clone(),
            mounts: None,
            exclude: Vec::new(),
            scheme: "http",
            local_addr: "127.0.0.1:8143".parse().unwrap(),
            public_url: None,
        }),
        true,
    )
}

/// A GET as a client on 127.0.0.1 would send it, with `token` (for the
/// benches, which call the listener's service in process).
pub fn http_get(path: &str, token: &str) -> axum::http::Request<axum::body::Body> {
    axum::http::Request::get(path)
        .header("host", "127.0.0.1:8143")
        .header("x-authentication", token)
        .body(axum::body::Body::empty())
        .unwrap()
}

/// Installs the standard library of `target` (a wasm target the tests
/// build for) unless it is there, as `host/build.rs` does for the shipped
/// handlers; fails saying what to run when it cannot.
pub fn ensure_target(target: &str) {
    static LOCK: Mutex<()> = Mutex::new(());
    let _one_at_a_time = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    if let Err(e) = baton::wasm_target::ensure(&rustc, target) {
        panic!("{e}");
    }
}

/// `cargo` as the outer build found it.
pub fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Removes the outer cargo's variables so that a nested cargo build behaves
/// as if run by hand.
pub fn clean_cargo_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if (k.starts_with("CARGO_") && k != "CARGO_HOME")
            || k.starts_with("RUSTC")
            || k == "RUSTFLAGS"
        {
            cmd.env_remove(k.as_ref());
        }
    }
}

/// A running `baton serve`, killed on drop.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT` or `https://…`.
    pub base: String,
    stderr: Arc<Mutex<String>>,
    /// The manifest file served (None: the embedded one).
    pub manifest: Option<PathBuf>,
    /// The data directory.
    pub data: PathBuf,
    admin_token: OnceLock<String>,
    /// Every `listening on URL` line so far, in manifest order.
    listeners: Arc<Mutex<Vec<String>>>,
}

/// A manifest listening on an ephemeral port with the given handler tables.
pub fn manifest(handlers: &str) -> String {
    format!("[[listener]]\naddress = \"127.0.0.1:0\"\n\n{handlers}")
}

/// Writes `manifest` into `dir/baton.toml`; the `baton serve` command for
/// it with data in `dir/data` (for a test to add environment to, then
/// [`Server::spawn`]).
pub fn serve_command(dir: &Path, manifest: &str) -> Command {
    let path = dir.join("baton.toml");
    std::fs::write(&path, manifest).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_baton"));
    cmd.arg("serve")
        .arg("--manifest")
        .arg(&path)
        .arg("--data")
        .arg(dir.join("data"));
    cmd
}

/// The orchestrator handler table.
pub const ORCHESTRATOR: &str = "[[handler]]\nname = \"orchestrator\"\nwasm = \"builtin:orchestrator\"\nmount = \"/orchestrator/v1\"\nerrors = \"puppet\"\n";

impl Server {
    /// Writes `manifest` into `dir/baton.toml` and serves it with data in `dir/data`.
    pub fn start(dir: &Path, manifest: &str) -> Server {
        let mut server = Server::spawn(serve_command(dir, manifest), dir.join("data"));
        server.manifest = Some(dir.join("baton.toml"));
        server
    }

    /// Spawns `cmd` (a `baton serve …`) and waits for its `listening on` line.
    // The child moves into `Server`, whose `Drop` kills and waits for it.
    #[allow(clippy::zombie_processes)]
    pub fn spawn(mut cmd: Command, data: PathBuf) -> Server {
        cmd.env("BATON_ADMIN_PASSWORD", ADMIN_PASSWORD);
        Server::spawn_without_admin_password(cmd, data)
    }

    /// Like [`Server::spawn`], leaving the admin password to the server.
    #[allow(clippy::zombie_processes)]
    pub fn spawn_without_admin_password(mut cmd: Command, data: PathBuf) -> Server {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        // `info` unless the test chose a level.
        if !cmd.get_envs().any(|(k, _)| k == "BATON_LOG") {
            cmd.env("BATON_LOG", "info");
        }
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
                let listeners = Arc::new(Mutex::new(vec![base.clone()]));
                let seen = listeners.clone();
                std::thread::spawn(move || {
                    for line in out.lines().map_while(Result::ok) {
                        if let Some(url) = line.trim().strip_prefix("listening on ") {
                            seen.lock().unwrap().push(url.to_string());
                        }
                    }
                });
                return Server {
                    listeners,
                    child,
                    base,
                    stderr,
                    manifest: None,
                    data,
                    admin_token: OnceLock::new(),
                };
            }
        }
    }

    /// The URL of the manifest's `i`-th listener (0 is [`Server::base`]),
    /// waiting (bounded) for its `listening on` line.
    pub fn listener_url(&self, i: usize) -> String {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(url) = self.listeners.lock().unwrap().get(i) {
                return url.clone();
            }
            assert!(
                Instant::now() < end,
                "listener {i} never said `listening on`; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the server wrote to stderr so far.
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until the log contains `needle` (bounded), returning the log.
    pub fn wait_log(&self, needle: &str) -> String {
        self.wait_log_line(&format!("`{needle}`"), |l| l.contains(needle))
    }

    /// Waits until a log line satisfies `matches` (bounded: stderr is read
    /// by another thread, so a line can arrive after the reply that caused
    /// it), returning the log.
    pub fn wait_log_line(&self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            let log = self.log();
            if log.lines().any(&matches) {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{what} never appeared in the log:\n{}", self.log());
    }

    /// Sends `SIGHUP` (reload the manifest).
    pub fn hangup(&self) {
        let ok = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -HUP failed");
    }

    /// Stops the server with `SIGTERM` (a clean shutdown) and waits for
    /// it; returns its whole log, read to the end.
    pub fn terminate(mut self) -> String {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM failed");
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "baton exited with {status}; log:\n{}",
            self.log()
        );
        // stderr closed with the process: wait until its reader has seen the end.
        let end = Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&self.stderr) > 1 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.log()
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

    /// The same deployment, for CLI commands.
    pub fn offline_view(&self) -> Offline {
        Offline {
            manifest: self.manifest.clone(),
            data: self.data.clone(),
        }
    }

    /// `baton <args> --manifest M --data D` for this server; (success, stdout, stderr).
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        self.offline_view().cli(args, stdin)
    }

    /// A token for `user` from `baton token`.
    pub fn token(&self, user: &str) -> String {
        self.offline_view().token(user)
    }

    /// The deployment in `dir` (as [`Server::start`] lays it out), not running.
    pub fn offline(dir: &Path) -> Offline {
        let manifest = dir.join("baton.toml");
        Offline {
            manifest: manifest.exists().then_some(manifest),
            data: dir.join("data"),
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's resident memory now, in KiB (from /proc).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// The bootstrap admin's token (cached).
    pub fn admin_token(&self) -> String {
        self.admin_token.get_or_init(|| self.token("admin")).clone()
    }

    /// A client trusting this server's generated CA, without credentials.
    pub fn anonymous(&self) -> reqwest::blocking::Client {
        self.client_builder().build().unwrap()
    }

    /// A client sending the admin token with every request.
    pub fn client(&self) -> reqwest::blocking::Client {
        self.client_with_token(&self.admin_token())
    }

    /// Creates or updates the user `name` through the admin API, as the
    /// admin; `body` as `PUT /admin/v1/users/{name}` takes it. The reply.
    pub fn put_user(&self, name: &str, body: serde_json::Value) -> serde_json::Value {
        let resp = self
            .client()
            .put(self.url(&format!("/admin/v1/users/{name}")))
            .json(&body)
            .send()
            .unwrap();
        assert!(resp.status().is_success(), "{:?}", resp.text());
        resp.json().unwrap()
    }

    /// A client sending `token` (as `X-Authentication`) with every request.
    pub fn client_with_token(&self, token: &str) -> reqwest::blocking::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-authentication", token.parse().unwrap());
        self.client_builder()
            .default_headers(headers)
            .build()
            .unwrap()
    }

    /// A client builder trusting this server's generated CA (if it has one).
    pub fn client_builder(&self) -> reqwest::blocking::ClientBuilder {
        let mut b = reqwest::blocking::Client::builder()
            .use_rustls_tls()
            .timeout(Duration::from_secs(30));
        let ca = self.data.join("tls/ca.pem");
        if let Ok(pem) = std::fs::read(&ca) {
            b = b.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
        }
        b
    }

    /// The status of `GET path` as the admin.
    pub fn get_status(&self, path: &str) -> u16 {
        self.client()
            .get(self.url(path))
            .send()
            .unwrap()
            .status()
            .as_u16()
    }

    /// The JSON body of `GET path` as the admin.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        self.client()
            .get(self.url(path))
            .send()
            .unwrap()
            .json()
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A deployment's manifest and data directory, for `baton` CLI commands.
pub struct Offline {
    /// The manifest (None: the embedded one).
    pub manifest: Option<PathBuf>,
    /// The data directory.
    pub data: PathBuf,
}

impl Offline {
    /// `baton <args> --manifest M --data D`; (success, stdout, stderr).
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_baton"));
        cmd.args(args).arg("--data").arg(&self.data);
        if let Some(m) = &self.manifest {
            cmd.arg("--manifest").arg(m);
        }
        run_cli(cmd, stdin)
    }

    /// A token for `user` from `baton token`.
    pub fn token(&self, user: &str) -> String {
        let (ok, out, err) = self.cli(&["token", "--user", user], None);
        assert!(ok, "baton token failed: {err}");
        let token = out.trim().to_string();
        assert!(
            !token.is_empty() && !token.contains(char::is_whitespace),
            "{out:?}"
        );
        token
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

/// Runs a prepared `baton` command, feeding `stdin`; (success, stdout, stderr).
pub fn run_cli(mut cmd: Command, stdin: Option<&str>) -> (bool, String, String) {
    use std::io::Write;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("BATON_LOG", "warn");
    let mut child = cmd.spawn().expect("spawning baton");
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(pipe);
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A blocking HTTP client with a generous timeout, no credentials, plain HTTP.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}
