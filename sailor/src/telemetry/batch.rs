//! The worker's log lines reach stderr in batches: a busy worker logs a line per message, and
//! one `write` per line was the largest cost of logging (on a container's stderr, a pipe, each
//! write also wakes the log collector).
//!
//! Lines at `info` and below wait in a batch that is written when it is [`FLUSH_INTERVAL`] old
//! or [`BATCH_LIMIT`] bytes long, by a thread that sleeps while nothing waits. A `warn` or
//! `error` line is written at once, after the batch before it, so that a problem is never
//! held back and lines never change order. The [`FlushGuard`] writes what is left when the
//! worker returns, and a panic writes it before the panic message
//! ([`BatchedWriter::flush_before_panics`]). What a `SIGKILL` (an
//! out-of-memory kill) cuts off is at most the last [`FLUSH_INTERVAL`] of `info` lines.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// How long a line may wait in the batch.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(50);

/// A batch this long is written by the thread that filled it, without waiting.
pub const BATCH_LIMIT: usize = 32 * 1024;

/// Batches the lines written through it to `W` (stderr, in the worker).
pub struct BatchedWriter<W> {
    shared: Arc<Shared<W>>,
}

impl<W> Clone for BatchedWriter<W> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

struct Shared<W> {
    /// Lines not yet written.
    batch: Mutex<Vec<u8>>,
    /// Signalled when the batch stops being empty.
    filled: Condvar,
    /// The destination, locked around each write so that batches and urgent lines keep
    /// their order.
    out: Mutex<W>,
    /// False when the flushing thread could not be started: every line is then written at
    /// once.
    batching: AtomicBool,
}

impl<W: Write + Send + 'static> BatchedWriter<W> {
    /// A writer to `out`, with the thread that writes batches once they are
    /// [`FLUSH_INTERVAL`] old.
    pub fn new(out: W) -> Self {
        Self::with_interval(out, FLUSH_INTERVAL)
    }

    /// A writer to `out` whose batches wait `interval`.
    pub fn with_interval(out: W, interval: Duration) -> Self {
        let shared = Arc::new(Shared {
            batch: Mutex::new(Vec::new()),
            filled: Condvar::new(),
            out: Mutex::new(out),
            batching: AtomicBool::new(true),
        });
        let flusher = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("log-flush".into())
            .spawn(move || {
                loop {
                    flusher.wait_for_lines();
                    std::thread::sleep(interval);
                    flusher.write_now(None);
                }
            });
        if spawned.is_err() {
            shared.batching.store(false, Ordering::Relaxed);
        }
        Self { shared }
    }

    /// Writes what waits when the guard is dropped.
    pub fn flush_guard(&self) -> FlushGuard<W> {
        FlushGuard(self.shared.clone())
    }

    /// Makes every panic of the process write what waits before its message, so that the
    /// lines leading up to it are not lost if it ends the process.
    pub fn flush_before_panics(&self) {
        let shared = self.shared.clone();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            shared.flush_unless_busy();
            previous(info);
        }));
    }
}

impl<W: Write> Shared<W> {
    fn lock_batch(&self) -> MutexGuard<'_, Vec<u8>> {
        // A panic while appending leaves whole lines behind: the batch is still usable.
        self.batch.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Blocks until some line waits.
    fn wait_for_lines(&self) {
        let mut batch = self.lock_batch();
        while batch.is_empty() {
            batch = self
                .filled
                .wait(batch)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Writes the batch, then `line` if given, in that order.
    fn write_out(&self, out: &mut W, line: Option<&[u8]>) {
        let batch = std::mem::take(&mut *self.lock_batch());
        // Nowhere to report a failed write to stderr: the lines are dropped, as before.
        let _ = out.write_all(&batch);
        if let Some(line) = line {
            let _ = out.write_all(line);
        }
        let _ = out.flush();
    }

    /// Writes the batch, then `line` if given.
    fn write_now(&self, line: Option<&[u8]>) {
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        self.write_out(&mut out, line);
    }

    /// Writes the batch unless a write is under way (a panic may have come from it).
    fn flush_unless_busy(&self) {
        if let Ok(mut out) = self.out.try_lock() {
            self.write_out(&mut out, None);
        }
    }

    /// Adds `line` to the batch, writing the batch when it is full.
    fn append(&self, line: &[u8]) {
        if !self.batching.load(Ordering::Relaxed) {
            return self.write_now(Some(line));
        }
        let full = {
            let mut batch = self.lock_batch();
            if batch.is_empty() {
                self.filled.notify_one();
            }
            batch.extend_from_slice(line);
            batch.len() >= BATCH_LIMIT
        };
        if full {
            self.write_now(None);
        }
    }
}

/// Writes what waits when dropped; see [`BatchedWriter::flush_guard`].
#[must_use = "the lines still waiting are written when the guard is dropped"]
pub struct FlushGuard<W: Write>(Arc<Shared<W>>);

impl<W: Write> Drop for FlushGuard<W> {
    fn drop(&mut self) {
        self.0.write_now(None);
    }
}

impl<W: Write> std::fmt::Debug for FlushGuard<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlushGuard").finish_non_exhaustive()
    }
}

/// One line on its way: batched, or written at once when `urgent`.
pub struct LineWriter<'a, W> {
    shared: &'a Shared<W>,
    urgent: bool,
}

impl<W: Write> Write for LineWriter<'_, W> {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        if self.urgent {
            self.shared.write_now(Some(line));
        } else {
            self.shared.append(line);
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a, W: Write + 'a> MakeWriter<'a> for BatchedWriter<W> {
    type Writer = LineWriter<'a, W>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            shared: &self.shared,
            urgent: true,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        LineWriter {
            shared: &self.shared,
            urgent: *meta.level() <= Level::WARN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::logs::{LineFormat, LogFormat, subscriber};

    /// Each write the destination received, in order.
    #[derive(Clone, Default)]
    struct Writes(Arc<Mutex<Vec<String>>>);

    impl Writes {
        fn taken(&self) -> Vec<String> {
            self.0.lock().unwrap().clone()
        }
    }

    impl Write for Writes {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if !buf.is_empty() {
                self.0
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(buf).into_owned());
            }
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Runs `log` with a subscriber writing JSON lines through a [`BatchedWriter`].
    fn logging(writer: &BatchedWriter<Writes>, log: impl FnOnce()) {
        let subscriber = subscriber(
            LineFormat::new(LogFormat::Json, [("HOSTNAME", "test")]),
            tracing_subscriber::EnvFilter::new("info"),
            writer.clone(),
        );
        tracing::subscriber::with_default(subscriber, log);
    }

    /// An interval no test waits for: what they see was written for another reason.
    const LONG: Duration = Duration::from_secs(600);

    fn messages(writes: &[String]) -> Vec<String> {
        writes
            .concat()
            .lines()
            .map(|line| {
                let line: serde_json::Value = serde_json::from_str(line).unwrap();
                line["fields"]["message"].as_str().unwrap().to_owned()
            })
            .collect()
    }

    #[test]
    fn info_lines_wait_for_the_interval_then_go_out_in_one_write() {
        let writes = Writes::default();
        let interval = Duration::from_millis(500);
        let writer = BatchedWriter::with_interval(writes.clone(), interval);
        logging(&writer, || {
            for n in 1..=3 {
                tracing::info!(message = "Message settled.", n);
            }
        });
        assert!(
            writes.taken().is_empty(),
            "nothing written before the interval"
        );
        let waited = std::time::Instant::now();
        while writes.taken().is_empty() && waited.elapsed() < interval * 20 {
            std::thread::sleep(interval / 10);
        }
        let taken = writes.taken();
        assert_eq!(taken.len(), 1, "one write for the batch: {taken:?}");
        assert_eq!(messages(&taken), ["Message settled."; 3]);
    }

    #[test]
    fn a_warning_goes_out_at_once_after_the_lines_before_it() {
        let writes = Writes::default();
        let writer = BatchedWriter::with_interval(writes.clone(), LONG);
        logging(&writer, || {
            tracing::info!(message = "first");
            tracing::info!(message = "second");
            tracing::warn!(message = "third");
        });
        let taken = writes.taken();
        assert_eq!(messages(&taken), ["first", "second", "third"]);
        assert_eq!(taken.len(), 2, "the batch, then the warning: {taken:?}");
    }

    #[test]
    fn a_full_batch_is_written_without_waiting() {
        let writes = Writes::default();
        let writer = BatchedWriter::with_interval(writes.clone(), LONG);
        let filler = "x".repeat(1024);
        logging(&writer, || {
            for _ in 0..BATCH_LIMIT / 1024 + 1 {
                tracing::info!(message = "filler", filler = %filler);
            }
        });
        let taken = writes.taken();
        assert_eq!(taken.len(), 1, "written as soon as the batch was full");
        assert!(taken[0].len() >= BATCH_LIMIT);
    }

    #[test]
    fn a_panic_writes_what_waits_before_its_message() {
        let writes = Writes::default();
        let writer = BatchedWriter::with_interval(writes.clone(), LONG);
        writer.flush_before_panics();
        logging(&writer, || tracing::info!(message = "before the panic"));
        assert!(writes.taken().is_empty());
        let panicked = std::panic::catch_unwind(|| panic!("the test's own panic"));
        assert!(panicked.is_err());
        assert_eq!(messages(&writes.taken()), ["before the panic"]);
    }

    #[test]
    fn dropping_the_guard_writes_what_waits() {
        let writes = Writes::default();
        let writer = BatchedWriter::with_interval(writes.clone(), LONG);
        let guard = writer.flush_guard();
        logging(&writer, || tracing::info!(message = "last words"));
        assert!(writes.taken().is_empty());
        drop(guard);
        assert_eq!(messages(&writes.taken()), ["last words"]);
    }
}
