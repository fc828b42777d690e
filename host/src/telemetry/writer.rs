//! The log writer: threads that log queue their formatted line and return;
//! one thread writes the lines out.
//!
//! tracing-appender's writer thread (used before) blocks on its queue each
//! time it has drained it, so under load nearly every line a request logs
//! had to wake it (a futex call and a context switch on a 2-core machine),
//! which cost more than formatting the line. This thread blocks only when
//! it is idle: while lines keep coming it drains the queue, writes them in
//! one buffered write, and pauses [`BUSY_PAUSE`] before looking again, so a
//! logging thread wakes it only on the first line after a quiet spell. A
//! line waits at most that pause longer to be written. The queue is bounded
//! and never drops a line: when it is full, loggers wait.

use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the busy writer waits for more lines before writing again.
pub const BUSY_PAUSE: Duration = Duration::from_millis(1);

/// Lines the queue holds before loggers wait.
const QUEUE_LINES: usize = 128 * 1024;

enum Msg {
    Line(Vec<u8>),
    Shutdown,
}

/// Where loggers put lines (a `MakeWriter`; cheap to clone).
#[derive(Clone)]
pub struct LineQueue {
    tx: SyncSender<Msg>,
}

/// Writes out what is queued and stops the writer thread when dropped.
pub struct WriterGuard {
    tx: SyncSender<Msg>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the writer thread `name`, writing to `out` through a buffer of
/// `buffer` bytes.
pub fn spawn<W: Write + Send + 'static>(
    name: &str,
    out: W,
    buffer: usize,
) -> io::Result<(LineQueue, WriterGuard)> {
    let (tx, rx) = sync_channel(QUEUE_LINES);
    let thread = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || write_lines(rx, io::BufWriter::with_capacity(buffer, out)))?;
    Ok((
        LineQueue { tx: tx.clone() },
        WriterGuard {
            tx,
            thread: Some(thread),
        },
    ))
}

/// The writer thread: block while idle, drain and pause while busy.
fn write_lines<W: Write>(rx: Receiver<Msg>, mut out: io::BufWriter<W>) {
    while let Ok(first) = rx.recv() {
        // Busy: write what came, drain, flush, pause; idle again once a
        // pause brought nothing.
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            let Msg::Line(line) = msg else {
                let _ = out.flush();
                return;
            };
            let _ = out.write_all(&line);
            loop {
                match rx.try_recv() {
                    Ok(Msg::Line(line)) => {
                        let _ = out.write_all(&line);
                    }
                    Ok(Msg::Shutdown) | Err(TryRecvError::Disconnected) => {
                        let _ = out.flush();
                        return;
                    }
                    Err(TryRecvError::Empty) => break,
                }
            }
            let _ = out.flush();
            std::thread::sleep(BUSY_PAUSE);
            match rx.try_recv() {
                Ok(msg) => next = Some(msg),
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => return,
            }
        }
    }
    let _ = out.flush();
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One line on its way to the queue.
pub struct QueuedLine<'a>(&'a SyncSender<Msg>);

impl Write for QueuedLine<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .send(Msg::Line(buf.to_vec()))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the log writer has stopped"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LineQueue {
    type Writer = QueuedLine<'a>;

    fn make_writer(&'a self) -> QueuedLine<'a> {
        QueuedLine(&self.tx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_from_every_thread_is_written_in_its_threads_order_by_the_time_the_guard_drops() {
        use tracing_subscriber::fmt::MakeWriter as _;
        let out = Shared::default();
        let (queue, guard) = spawn("test-log", out.clone(), 256).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let q = queue.clone();
                std::thread::spawn(move || {
                    for i in 0..5000 {
                        q.make_writer()
                            .write_all(format!("t{t} line {i}\n").as_bytes())
                            .unwrap();
                        if i % 1000 == 0 {
                            // Quiet spells: the writer goes idle and is woken again.
                            std::thread::sleep(BUSY_PAUSE * 3);
                        }
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        drop(guard);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 20_000);
        for t in 0..4 {
            let mine: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with(&format!("t{t} ")))
                .collect();
            let want: Vec<String> = (0..5000).map(|i| format!("t{t} line {i}")).collect();
            assert_eq!(mine, want);
        }
        // After the guard: writing fails instead of blocking or panicking.
        assert!(queue.make_writer().write_all(b"late\n").is_err());
    }

    #[test]
    fn a_line_after_a_quiet_spell_is_written_without_waiting_for_more() {
        use tracing_subscriber::fmt::MakeWriter as _;
        let out = Shared::default();
        let (queue, _guard) = spawn("test-log", out.clone(), 64 * 1024).unwrap();
        for n in 1..=3 {
            queue.make_writer().write_all(b"one\n").unwrap();
            let end = std::time::Instant::now() + Duration::from_secs(10);
            while out.0.lock().unwrap().len() < 4 * n {
                assert!(
                    std::time::Instant::now() < end,
                    "line {n} was never written"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}
