//! A private PostgreSQL server for the tests: initdb into a temporary
//! directory (as the `postgres` user when the tests run as root, since the
//! server refuses to run as root), started on a free loopback port, one
//! server per test process and one database per test.
//!
//! The server is watched by a small shell that holds a pipe from this
//! process: when the test process ends, however it ends, the pipe closes
//! and the shell stops the server and removes its directory. No step by
//! hand; if PostgreSQL's server is not installed, the first test that
//! needs it fails with the command that installs it.

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The command that installs PostgreSQL's server on Debian and Ubuntu.
pub const INSTALL: &str = "sudo apt-get install -y postgresql";

/// A running private server.
pub struct PgServer {
    /// Its loopback port.
    pub port: u16,
    bin: PathBuf,
    /// Run commands as this user (`postgres` when the tests are root).
    user: Option<String>,
    dir: PathBuf,
    /// The watching shell; its stdin is the pipe that keeps the server up.
    watch: Mutex<(Child, Option<ChildStdin>)>,
}

static SERVER: OnceLock<PgServer> = OnceLock::new();
static DATABASES: AtomicU32 = AtomicU32::new(0);

/// The process's server, started on first use.
pub fn server() -> &'static PgServer {
    SERVER.get_or_init(PgServer::start)
}

/// A new, empty database on the process's server: its url.
pub fn database() -> String {
    server().create_database()
}

/// The directory of the newest installed PostgreSQL server's programs.
fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BATON_TEST_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    if let Some((_, bin)) = found.pop() {
        return bin;
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let bin = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if bin.join("initdb").exists() {
            return bin;
        }
    }
    panic!(
        "these tests need PostgreSQL's server (initdb and postgres), which is not installed: \
         install it with `{INSTALL}` (or point BATON_TEST_PG_BIN at its bin directory) \
         and run them again"
    );
}

fn is_root() -> bool {
    let out = Command::new("id")
        .arg("-u")
        .output()
        .expect("running `id -u`");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl PgServer {
    fn start() -> PgServer {
        let bin = bin_dir();
        let user = is_root().then(|| "postgres".to_string());
        let dir = tempfile::Builder::new()
            .prefix("baton-pg-")
            .tempdir()
            .unwrap()
            .keep();
        if let Some(u) = &user {
            run(Command::new("chown").arg(u).arg(&dir));
        }
        let data = dir.join("data");
        run(as_user(&user, bin.join("initdb"))
            .args([
                "--username=postgres",
                "--auth=trust",
                "--no-sync",
                "--encoding=UTF8",
            ])
            .args(["--locale=C", "-D"])
            .arg(&data));
        for _ in 0..5 {
            let port = free_port();
            let (child, stdin) = watch(&bin, &user, &dir, port);
            let server = PgServer {
                port,
                bin: bin.clone(),
                user: user.clone(),
                dir: dir.clone(),
                watch: Mutex::new((child, Some(stdin))),
            };
            if server.wait_ready(Duration::from_secs(60)) {
                return server;
            }
            let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
            server.stop();
            if !log.contains("could not bind") && !log.contains("Address already in use") {
                panic!("the test PostgreSQL server did not start:\n{log}");
            }
        }
        panic!("the test PostgreSQL server found no free port in five tries");
    }

    /// Waits until the server accepts connections.
    fn wait_ready(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self
                .watch
                .lock()
                .unwrap()
                .0
                .try_wait()
                .ok()
                .flatten()
                .is_some()
            {
                return false;
            }
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-U", "postgres", "-p"])
                .arg(self.port.to_string())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    fn stop(&self) {
        let mut watch = self.watch.lock().unwrap();
        drop(watch.1.take());
        let _ = watch.0.wait();
    }

    /// The url of database `name` as the superuser.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates a new empty database; its url.
    pub fn create_database(&self) -> String {
        let name = format!(
            "t{}_{}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::Relaxed)
        );
        run(Command::new(self.bin.join("createdb"))
            .args(["-h", "127.0.0.1", "-U", "postgres", "-p"])
            .arg(self.port.to_string())
            .arg(&name));
        self.url(&name)
    }

    /// Stops the server (fast shutdown: connections are cut) and returns
    /// once it is down. Only for a test process of its own: every test of
    /// the process shares the server.
    pub fn stop_for_a_while(&self) {
        let state = self.dir.join("state");
        let _ = std::fs::remove_file(&state);
        self.tell("stop");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !state.exists() {
            assert!(
                Instant::now() < deadline,
                "the test PostgreSQL server did not stop"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server again after [`PgServer::stop_for_a_while`].
    pub fn start_again(&self) {
        self.tell("start");
        assert!(
            self.wait_ready(Duration::from_secs(60)),
            "the test PostgreSQL server did not start again:\n{}",
            self.log()
        );
    }

    fn tell(&self, command: &str) {
        use std::io::Write;
        let mut watch = self.watch.lock().unwrap();
        let stdin = watch.1.as_mut().expect("the server is running");
        writeln!(stdin, "{command}").unwrap();
        stdin.flush().unwrap();
    }

    /// The server's log so far (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }
}

/// `program`, run as `user` when given.
fn as_user(user: &Option<String>, program: PathBuf) -> Command {
    match user {
        Some(u) => {
            let mut c = Command::new("runuser");
            c.args(["-u", u, "--"]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts the server under a shell that stops it (fast shutdown) and
/// removes `dir` once its stdin closes; meanwhile the lines `stop` and
/// `start` on its stdin stop and start the server again.
fn watch(bin: &Path, user: &Option<String>, dir: &Path, port: u16) -> (Child, ChildStdin) {
    const SCRIPT: &str = r#"
bin=$0 dir=$1 port=$2
start() {
    "$bin" -D "$dir/data" -p "$port" -k "$dir" -c listen_addresses=127.0.0.1 \
        -c fsync=off -c full_page_writes=off \
        -c max_connections=400 -c shared_buffers=64MB >>"$dir/log" 2>&1 &
    pg=$!
}
start
while read -r cmd; do
    case "$cmd" in
        stop) kill -INT "$pg" 2>/dev/null; wait "$pg"; echo stopped >"$dir/state";;
        start) start;;
    esac
done
kill -INT "$pg" 2>/dev/null
wait "$pg"
rm -rf "$dir"
"#;
    let mut cmd = as_user(user, PathBuf::from("sh"));
    let mut child = cmd
        .arg("-c")
        .arg(SCRIPT)
        .arg(bin.join("postgres"))
        .arg(dir)
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting the test PostgreSQL server: {e}"));
    let stdin = child.stdin.take().unwrap();
    (child, stdin)
}
