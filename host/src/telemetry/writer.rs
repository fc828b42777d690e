//! The log writer: a logging thread appends its formatted line to one shared
//! buffer and returns; one thread writes the buffer out to stderr. A line
//! that finds the writer idle is written at once; while lines keep coming
//! they gather for [`WriterLimits::interval`] (less for a warning or an
//! error, or once [`WriterLimits::batch`] bytes wait). Under load one
//! `write` then carries hundreds of lines and no line wakes a thread, as
//! nginx's buffered access log does (`access_log … buffer= flush=`).
//!
//! Nothing is dropped: past [`WriterLimits::max_pending`] bytes waiting,
//! loggers wait for the writer. [`flush`] writes out what waits (call it
//! before `process::exit`); dropping the [`WriterGuard`] writes the rest and
//! stops the thread.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// When the writer thread writes.
#[derive(Debug, Clone, Copy)]
pub struct WriterLimits {
    /// How long lines gather after a write while lines keep coming: the
    /// longest a line waits.
    pub interval: Duration,
    /// Bytes waiting that make the writer write at once.
    pub batch: usize,
    /// Bytes waiting past which loggers wait for the writer.
    pub max_pending: usize,
}

impl Default for WriterLimits {
    fn default() -> Self {
        WriterLimits {
            interval: Duration::from_millis(50),
            batch: 256 * 1024,
            max_pending: 16 * 1024 * 1024,
        }
    }
}

/// The buffer loggers append to, and what the writer thread is doing.
struct Shared {
    state: Mutex<State>,
    /// Wakes the writer: a line arrived while it was idle, or it is wanted
    /// at once.
    wake_writer: Condvar,
    /// Wakes loggers waiting for room and [`flush`] callers.
    written: Condvar,
    limits: WriterLimits,
}

#[derive(Default)]
struct State {
    pending: Vec<u8>,
    /// Bytes ever appended, and ever written (taken off `pending`).
    appended: u64,
    taken: u64,
    /// The writer sleeps until a line arrives.
    idle: bool,
    /// The writer was asked to write at once.
    urgent: bool,
    closing: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A logger cannot panic while holding the lock (it only copies
        // bytes), so poisoning would come from a bug; keep logging anyway.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn append(&self, line: &[u8], urgent: bool) {
        let mut st = self.lock();
        while st.pending.len() >= self.limits.max_pending && !st.closing {
            if !st.urgent {
                st.urgent = true;
                self.wake_writer.notify_one();
            }
            st = self.written.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        st.pending.extend_from_slice(line);
        st.appended += line.len() as u64;
        let wanted_now = urgent || st.pending.len() >= self.limits.batch;
        if st.idle || (wanted_now && !st.urgent) {
            st.idle = false;
            st.urgent |= wanted_now;
            self.wake_writer.notify_one();
        }
    }

    /// Waits until everything appended before the call is written.
    fn flush(&self) {
        let mut st = self.lock();
        let target = st.appended;
        if st.taken >= target {
            return;
        }
        st.urgent = true;
        st.idle = false;
        self.wake_writer.notify_one();
        while st.taken < target && !st.closing {
            st = self.written.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The writer thread's loop: a line arriving while it is idle is
    /// written at once; then, for an interval (less when a line is wanted at
    /// once), the lines that follow gather into one write. So a quiet server
    /// writes each line as it comes and a busy one about 20 times a second.
    fn run(&self, out: &mut dyn Write) {
        let mut batch = Vec::new();
        loop {
            let mut st = self.lock();
            if st.pending.is_empty() && !st.closing {
                st.idle = true;
                st = self
                    .wake_writer
                    .wait_while(st, |s| s.idle && !s.closing)
                    .unwrap_or_else(|p| p.into_inner());
            }
            std::mem::swap(&mut st.pending, &mut batch);
            st.urgent = false;
            let closing = st.closing;
            drop(st);
            // A closed or broken stderr loses the lines; nothing else can
            // take them, and the server must not stop over it.
            let _ = out.write_all(&batch).and_then(|()| out.flush());
            let mut st = self.lock();
            st.taken += batch.len() as u64;
            batch.clear();
            self.written.notify_all();
            if closing && st.pending.is_empty() {
                return;
            }
            drop(
                self.wake_writer
                    .wait_timeout_while(st, self.limits.interval, |s| !s.urgent && !s.closing)
                    .unwrap_or_else(|p| p.into_inner()),
            );
        }
    }
}

/// Hands each log line to the writer thread (`MakeWriter` for the fmt
/// layer).
#[derive(Clone)]
pub struct LogWriter {
    shared: Arc<Shared>,
}

impl LogWriter {
    /// Appends `line` (whole lines, each ending in a newline), written out
    /// with the next batch.
    pub fn append(&self, line: &[u8]) {
        self.shared.append(line, false);
    }
}

/// Stops the writer thread when dropped, after it wrote every line.
pub struct WriterGuard {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.wake_writer.notify_one();
        self.shared.written.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The process's writer, for [`flush`].
static PROCESS_WRITER: OnceLock<Arc<Shared>> = OnceLock::new();

/// Starts a writer thread writing to `out`; with `for_process`, [`flush`]
/// reaches it.
pub fn start(
    out: Box<dyn Write + Send>,
    limits: WriterLimits,
    for_process: bool,
) -> std::io::Result<(LogWriter, WriterGuard)> {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        wake_writer: Condvar::new(),
        written: Condvar::new(),
        limits,
    });
    let thread = {
        let shared = shared.clone();
        let mut out = out;
        std::thread::Builder::new()
            .name("baton-log".into())
            .spawn(move || shared.run(&mut out))?
    };
    if for_process {
        let _ = PROCESS_WRITER.set(shared.clone());
    }
    Ok((
        LogWriter {
            shared: shared.clone(),
        },
        WriterGuard {
            shared,
            thread: Some(thread),
        },
    ))
}

/// Writes out every line logged so far (before `process::exit`, which
/// skips the guard's drop). Returns at once when no writer was started.
pub fn flush() {
    if let Some(shared) = PROCESS_WRITER.get() {
        shared.flush();
    }
}

/// One line on its way: the fmt layer writes it whole with `write_all`.
pub struct Line<'a> {
    shared: &'a Shared,
    urgent: bool,
}

impl Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.shared.append(buf, self.urgent);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line {
            shared: &self.shared,
            urgent: false,
        }
    }

    /// Warnings and errors are written at once.
    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line<'a> {
        Line {
            shared: &self.shared,
            urgent: *meta.level() <= Level::WARN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    use crate::telemetry::TestSink as Sink;

    fn limits(interval_ms: u64, batch: usize, max_pending: usize) -> WriterLimits {
        WriterLimits {
            interval: Duration::from_millis(interval_ms),
            batch,
            max_pending,
        }
    }

    /// A writer whose interval is an hour: only a wake-up gets lines out.
    fn hourly(sink: &Sink) -> (LogWriter, WriterGuard) {
        start(
            Box::new(sink.clone()),
            limits(3_600_000, 1 << 20, 1 << 24),
            false,
        )
        .unwrap()
    }

    /// Waits (bounded) until the sink holds `needle`.
    fn wait_for(sink: &Sink, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sink.text().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "{needle:?} waited: {:?}",
                sink.text()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn info_line(w: &LogWriter, text: &str) {
        w.make_writer().write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn every_line_of_many_threads_is_written_whole_and_in_each_threads_order() {
        let sink = Sink::default();
        // A tiny pending limit, so that loggers wait for the writer often.
        let (w, guard) = start(Box::new(sink.clone()), limits(5, 256, 512), false).unwrap();
        std::thread::scope(|s| {
            for t in 0..4 {
                let w = w.clone();
                s.spawn(move || {
                    for i in 0..5_000 {
                        info_line(&w, &format!("t{t} line {i}\n"));
                    }
                });
            }
        });
        drop(guard);
        let text = sink.text();
        let mut next = [0usize; 4];
        for line in text.lines() {
            let (t, i) = line.split_once(" line ").unwrap();
            let t: usize = t[1..].parse().unwrap();
            assert_eq!(i.parse::<usize>().unwrap(), next[t], "{line}");
            next[t] += 1;
        }
        assert_eq!(next, [5_000; 4]);
    }

    #[test]
    fn lines_are_written_in_batches_not_one_write_each() {
        let sink = Sink::default();
        let (w, guard) =
            start(Box::new(sink.clone()), limits(200, 1 << 20, 1 << 24), false).unwrap();
        for i in 0..1_000 {
            info_line(&w, &format!("line {i}\n"));
        }
        drop(guard);
        assert_eq!(sink.text().lines().count(), 1_000);
        assert!(
            sink.writes() < 10,
            "{} writes for 1,000 lines",
            sink.writes()
        );
    }

    #[test]
    fn a_warning_is_written_without_waiting_for_the_interval() {
        use tracing_subscriber::layer::SubscriberExt as _;
        let sink = Sink::default();
        // Only the warning's urgency can get it out.
        let (w, _guard) = hourly(&sink);
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .without_time()
            .with_writer(w);
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            tracing::info!("first, at info");
            tracing::warn!("then a warning");
        });
        wait_for(&sink, "then a warning");
        let text = sink.text();
        assert!(
            text.find("first, at info") < text.find("then a warning"),
            "{text}"
        );
    }

    #[test]
    fn a_line_on_a_quiet_server_is_written_at_once() {
        let sink = Sink::default();
        // Only the idle writer's wake-up can get it out.
        let (w, _guard) = hourly(&sink);
        info_line(&w, "alone\n");
        wait_for(&sink, "alone");
        assert_eq!(sink.text(), "alone\n");
    }

    #[test]
    fn flush_returns_once_every_earlier_line_is_written() {
        let sink = Sink::default();
        let (w, guard) = hourly(&sink);
        for i in 0..100 {
            info_line(&w, &format!("line {i}\n"));
        }
        guard.shared.flush();
        assert_eq!(sink.text().lines().count(), 100);
        // Nothing waiting: flush returns at once.
        guard.shared.flush();
    }
}
