//! `exec`: run an allow-listed program as an argv vector (never a shell
//! string), in its own process group, with only the environment it is given,
//! a deadline, and capped output; cancel or timeout kills the whole group.
//! Files it is given live in a private directory for exactly as long as it
//! runs ([`super::exec_files`]).

use super::exec_files::{ExecFile, FilesError, PrivateDir};
use super::model::LiveProcess;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::sync::Notify;

/// Lines of output that become job events, per exec and stream.
const MAX_LINE_EVENTS: usize = 1000;
/// Longest line kept in an event.
const MAX_EVENT_LINE: usize = 4096;
/// How long output is still read after the process ended.
const DRAIN_GRACE: Duration = Duration::from_millis(200);

/// A flag a running job watches; set by cancel.
#[derive(Debug, Default)]
pub struct CancelFlag {
    set: AtomicBool,
    notify: Notify,
}

impl CancelFlag {
    /// Sets the flag and wakes every waiter.
    pub fn cancel(&self) {
        self.set.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Whether the flag is set.
    pub fn is_cancelled(&self) -> bool {
        self.set.load(Ordering::SeqCst)
    }

    /// Resolves once the flag is set.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    /// The program as the guest named it.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// The complete environment of the process.
    pub env: Vec<(String, String)>,
    /// Bytes written to its stdin (closed right after).
    pub stdin: Option<Vec<u8>>,
    /// Killed after this long.
    pub timeout: Duration,
    /// stdout and stderr kept, each.
    pub output_cap: usize,
    /// Files written for the command; `{file:NAME}` in args and env values
    /// becomes a file's path.
    pub files: Vec<ExecFile>,
    /// Where the private directory for `files` is made.
    pub files_root: PathBuf,
}

/// How it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// `None` when killed by a signal (timeout and cancel included).
    pub exit_code: Option<i32>,
    /// Captured stdout, at most the cap.
    pub stdout: Vec<u8>,
    /// Captured stderr, at most the cap.
    pub stderr: Vec<u8>,
    /// Some output was dropped for the cap.
    pub truncated: bool,
    /// It ran past its timeout and was killed.
    pub timed_out: bool,
}

/// Why a command did not run, or was stopped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExecError {
    /// The program is not in the handler's allow-list.
    #[error("`{0}` is not in this handler's [handler.capabilities] exec allow-list")]
    NotAllowed(String),
    /// The program could not be found or started.
    #[error("`{0}` could not be started: {1}")]
    Spawn(String, String),
    /// The job was cancelled while the command ran; its process group was killed.
    #[error("cancelled; the command's process group was killed")]
    Cancelled,
    /// The command's files or placeholders are wrong.
    #[error("{0}")]
    Invalid(String),
    /// The command's files could not be written.
    #[error("{0}")]
    Io(String),
}

impl From<FilesError> for ExecError {
    fn from(e: FilesError) -> Self {
        match e {
            FilesError::Invalid(m) => ExecError::Invalid(m),
            io @ FilesError::Io(_) => ExecError::Io(io.to_string()),
        }
    }
}

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// The executable `program` names, if `allow` lists it: an allow-list entry
/// equal to the program (bare names are looked up on the server's `PATH`).
pub fn resolve(program: &str, allow: &[String]) -> Result<PathBuf, ExecError> {
    if !allow.iter().any(|a| a == program) {
        return Err(ExecError::NotAllowed(program.to_string()));
    }
    if program.contains('/') {
        return Ok(PathBuf::from(program));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
        .ok_or_else(|| ExecError::Spawn(program.into(), "not found on the server's PATH".into()))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The start time of `pid` (field 22 of `/proc/<pid>/stat`), if it runs.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields resume after ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// Kills process group `pid` if its leader is still the process recorded.
pub fn kill_stale(p: LiveProcess) -> bool {
    let same_machine = p.boot == 0 || p.boot == this_boot();
    if same_machine && process_start_time(p.pid) == Some(p.start_time) {
        kill_group(p.pid);
        true
    } else {
        false
    }
}

/// This machine's boot, as 64 bits of its boot id
/// (`/proc/sys/kernel/random/boot_id`); 0 when it cannot be read.
pub fn this_boot() -> u64 {
    static BOOT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *BOOT.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .and_then(|id| {
                let hex = id.trim().replace('-', "");
                u64::from_str_radix(hex.get(..16)?, 16).ok()
            })
            .unwrap_or(0)
    })
}

fn kill_group(pgid: i32) {
    use nix::sys::signal::{Signal, killpg};
    use nix::unistd::Pid;
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
}

/// Runs `req` (already resolved to `path`). `on_start` gets the live process
/// (to persist it), `on_line` each output line (for job events).
pub async fn run(
    path: &Path,
    req: ExecRequest,
    cancel: Arc<CancelFlag>,
    on_start: impl FnOnce(LiveProcess),
    on_line: impl Fn(Stream, &str) + Send + Sync + 'static,
) -> Result<ExecOutput, ExecError> {
    // Removed when this function returns, or when its future is dropped.
    let files = PrivateDir::create(&req.files_root, &req.files)?;
    let args = req
        .args
        .iter()
        .map(|a| files.substitute(a))
        .collect::<Result<Vec<_>, _>>()?;
    let env = req
        .env
        .iter()
        .map(|(k, v)| Ok((k.clone(), files.substitute(v)?)))
        .collect::<Result<Vec<_>, FilesError>>()?;
    let mut cmd = tokio::process::Command::new(path);
    cmd.args(&args)
        .env_clear()
        .envs(env)
        .stdin(if req.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| ExecError::Spawn(req.program.clone(), e.to_string()))?;
    let pid = child.id().map(|p| p as i32).unwrap_or(0);
    if pid > 0 {
        on_start(LiveProcess {
            pid,
            start_time: process_start_time(pid).unwrap_or(0),
            boot: this_boot(),
        });
    }
    if let (Some(mut pipe), Some(bytes)) = (child.stdin.take(), req.stdin) {
        tokio::spawn(async move {
            let _ = pipe.write_all(&bytes).await;
        });
    }
    let on_line = Arc::new(on_line);
    let out = tokio::spawn(capture(
        child.stdout.take(),
        Stream::Stdout,
        req.output_cap,
        on_line.clone(),
    ));
    let err = tokio::spawn(capture(
        child.stderr.take(),
        Stream::Stderr,
        req.output_cap,
        on_line,
    ));

    let mut timed_out = false;
    let mut cancelled = false;
    let status = tokio::select! {
        s = child.wait() => s.ok(),
        _ = tokio::time::sleep(req.timeout) => { timed_out = true; None }
        _ = cancel.cancelled() => { cancelled = true; None }
    };
    // Whatever happened, nothing the command started outlives it.
    if pid > 0 {
        kill_group(pid);
    }
    let status = match status {
        Some(s) => Some(s),
        None => child.wait().await.ok(),
    };
    let collect = |h: tokio::task::JoinHandle<(Vec<u8>, bool)>| async move {
        tokio::time::timeout(DRAIN_GRACE * 5, h)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default()
    };
    let (stdout, t1) = collect(out).await;
    let (stderr, t2) = collect(err).await;
    drop(files);
    if cancelled {
        return Err(ExecError::Cancelled);
    }
    Ok(ExecOutput {
        exit_code: if timed_out {
            None
        } else {
            status.and_then(|s| s.code())
        },
        stdout,
        stderr,
        truncated: t1 || t2,
        timed_out,
    })
}

/// Reads a stream to its end (or until it stays silent past the grace once
/// the group is dead), keeping at most `cap` bytes and reporting lines.
async fn capture<R: AsyncRead + Unpin>(
    pipe: Option<R>,
    stream: Stream,
    cap: usize,
    on_line: Arc<impl Fn(Stream, &str) + Send + Sync>,
) -> (Vec<u8>, bool) {
    let Some(pipe) = pipe else {
        return (Vec::new(), false);
    };
    let mut reader = BufReader::new(pipe);
    let mut kept = Vec::new();
    let mut truncated = false;
    let mut lines = 0usize;
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let room = cap.saturating_sub(kept.len());
        if line.len() > room {
            truncated = true;
        }
        kept.extend_from_slice(&line[..line.len().min(room)]);
        if lines < MAX_LINE_EVENTS {
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\n', '\r']);
            let cut = text
                .char_indices()
                .nth(MAX_EVENT_LINE)
                .map_or(text, |(i, _)| &text[..i]);
            on_line(stream, cut);
        }
        lines += 1;
    }
    (kept, truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(program: &str, args: &[&str]) -> ExecRequest {
        ExecRequest {
            program: program.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec![("GREETING".into(), "hi".into())],
            stdin: None,
            timeout: Duration::from_secs(10),
            output_cap: 1024,
            files: Vec::new(),
            files_root: std::env::temp_dir(),
        }
    }

    async fn exec(r: ExecRequest, cancel: Arc<CancelFlag>) -> Result<ExecOutput, ExecError> {
        let path = resolve(&r.program, &["sh".to_string()])?;
        run(&path, r, cancel, |_| {}, |_, _| {}).await
    }

    #[test]
    fn only_allow_listed_programs_resolve() {
        assert_eq!(
            resolve("rm", &["sh".into()]),
            Err(ExecError::NotAllowed("rm".into()))
        );
        assert!(resolve("sh", &["sh".into()]).unwrap().is_absolute());
        assert!(matches!(
            resolve("no-such-program-x", &["no-such-program-x".into()]),
            Err(ExecError::Spawn(..))
        ));
    }

    #[tokio::test]
    async fn exit_code_output_and_only_the_given_environment() {
        let out = exec(
            req(
                "sh",
                &["-c", "echo $GREETING; echo ${HOME:-nohome} >&2; exit 3"],
            ),
            Arc::default(),
        )
        .await
        .unwrap();
        assert_eq!(out.exit_code, Some(3));
        assert_eq!(out.stdout, b"hi\n");
        assert_eq!(out.stderr, b"nohome\n");
    }

    #[tokio::test]
    async fn output_past_the_cap_is_truncated_not_fatal() {
        let out = exec(req("sh", &["-c", "yes | head -c 100000"]), Arc::default())
            .await
            .unwrap();
        assert_eq!(out.stdout.len(), 1024);
        assert!(out.truncated);
        assert_eq!(out.exit_code, Some(0));
    }

    #[tokio::test]
    async fn timeout_and_cancel_kill_the_whole_group() {
        let mut r = req("sh", &["-c", "sleep 30 & sleep 30"]);
        r.timeout = Duration::from_millis(200);
        let out = exec(r, Arc::default()).await.unwrap();
        assert!(out.timed_out);
        assert_eq!(out.exit_code, None);

        let cancel = Arc::new(CancelFlag::default());
        let c2 = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            c2.cancel();
        });
        let err = exec(req("sh", &["-c", "sleep 30"]), cancel)
            .await
            .unwrap_err();
        assert_eq!(err, ExecError::Cancelled);
    }

    #[tokio::test]
    async fn a_file_is_private_named_by_path_in_argv_and_gone_after() {
        let root = tempfile::tempdir().unwrap();
        let mut r = req(
            "sh",
            &[
                "-c",
                "stat -c '%a' \"$1\"; stat -c '%a' \"$(dirname \"$1\")\"; echo \"$1\"; cat \"$1\"; echo; echo \"$KEYFILE\"",
                "sh",
                "{file:key}",
            ],
        );
        r.env = vec![("KEYFILE".into(), "path={file:key}".into())];
        r.files = vec![ExecFile {
            name: "key".into(),
            contents: b"-----BEGIN KEY----- s3cret".to_vec(),
        }];
        r.files_root = root.path().to_path_buf();
        let path = resolve("sh", &["sh".to_string()]).unwrap();
        let out = run(&path, r, Arc::default(), |_| {}, |_, _| {})
            .await
            .unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines[0], "600", "{stdout}");
        assert_eq!(lines[1], "700", "{stdout}");
        let file = Path::new(lines[2]);
        assert!(file.starts_with(root.path()), "{stdout}");
        assert_eq!(lines[3], "-----BEGIN KEY----- s3cret");
        assert_eq!(lines[4], format!("path={}", file.display()));
        assert!(!lines[2].contains("s3cret"));
        assert!(!file.exists(), "the file outlived the command");
        assert!(!file.parent().unwrap().exists());
    }

    #[tokio::test]
    async fn files_are_removed_after_a_timeout_and_unknown_placeholders_are_invalid() {
        let root = tempfile::tempdir().unwrap();
        let mut r = req("sh", &["-c", "echo \"$0\"; sleep 30", "{file:key}"]);
        r.files = vec![ExecFile {
            name: "key".into(),
            contents: b"k".to_vec(),
        }];
        r.files_root = root.path().to_path_buf();
        r.timeout = Duration::from_millis(300);
        let out = exec(r, Arc::default()).await.unwrap();
        assert!(out.timed_out);
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);

        let mut r = req("sh", &["-c", "true", "{file:nope}"]);
        r.files_root = root.path().to_path_buf();
        let err = exec(r, Arc::default()).await.unwrap_err();
        assert!(
            matches!(err, ExecError::Invalid(ref m) if m.contains("{file:nope}")),
            "{err}"
        );
    }
}
