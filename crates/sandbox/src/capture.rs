//! The guest's stdout and stderr: in-memory streams that never block the
//! guest and never fail its writes, but keep only what the limits allow.
//!
//! * stdout is the action's result: [`ResultBuffer`] keeps up to the result
//!   limit and counts everything, so an oversized result is reported with its
//!   real size.
//! * stderr is the action's log: [`LogBuffer`] splits it into lines, stamps
//!   each line with the time its first byte was written, formats it as
//!   OpenWhisk does (`<RFC 3339 time> stderr: <line>`) and silently drops
//!   whatever exceeds the log limit, ending the log with OpenWhisk's
//!   truncation notice. The limit counts the log as formatted: each line
//!   costs its prefix as well as its text, so a flood of empty lines cannot
//!   make millions of small strings out of a few megabytes.
//!
//! [`Capture`] adapts either buffer to the traits wasmtime-wasi wants for a
//! stdio stream; the run keeps one handle and reads the buffer afterwards.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use humantime::format_rfc3339_nanos;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// What each log line's `<time> stderr: ` prefix costs against the limit:
/// its length for any time in years 0 to 9999 (longer ones are charged when
/// the line is formatted).
const LINE_PREFIX_BYTES: u64 = "2026-01-01T00:00:00.000000000Z stderr: ".len() as u64;

/// What `check_write` grants: writes are never refused, so any large number
/// will do (WASI p1 writes in 4 KiB chunks anyway).
const WRITE_PERMIT: usize = 1 << 20;

/// A destination for guest output.
pub(crate) trait Buffer: Send + 'static {
    /// Takes `data`; never fails, may drop it.
    fn accept(&mut self, data: &[u8]);
}

/// A shared handle to a [`Buffer`], usable as a WASI stdout/stderr.
pub(crate) struct Capture<B>(Arc<Mutex<B>>);

impl<B> Clone for Capture<B> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<B: Buffer> Capture<B> {
    /// A handle to a new buffer.
    pub(crate) fn new(buffer: B) -> Self {
        Self(Arc::new(Mutex::new(buffer)))
    }

    /// The buffer. Nothing panics while holding the lock, so a poisoned lock
    /// still holds consistent data.
    pub(crate) fn lock(&self) -> MutexGuard<'_, B> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<B> IsTerminal for Capture<B> {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl<B: Buffer> StdoutStream for Capture<B> {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl<B: Buffer> Pollable for Capture<B> {
    async fn ready(&mut self) {}
}

impl<B: Buffer> OutputStream for Capture<B> {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.lock().accept(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

impl<B: Buffer> AsyncWrite for Capture<B> {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.lock().accept(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The guest's stdout: the first `max` bytes, and how many were written.
#[derive(Debug, Default)]
pub(crate) struct ResultBuffer {
    kept: Vec<u8>,
    max: usize,
    written: u64,
}

impl ResultBuffer {
    /// Keeps at most `max` bytes (allocated as they arrive).
    pub(crate) fn new(max: usize) -> Self {
        Self {
            kept: Vec::new(),
            max,
            written: 0,
        }
    }

    /// Whether the guest wrote more than `max` bytes.
    pub(crate) fn overflowed(&self) -> bool {
        self.written > self.max as u64
    }

    /// Bytes the guest wrote, including dropped ones.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// The kept bytes, leaving the buffer empty.
    pub(crate) fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.kept)
    }
}

impl Buffer for ResultBuffer {
    fn accept(&mut self, data: &[u8]) {
        self.written = self.written.saturating_add(data.len() as u64);
        let room = self.max.saturating_sub(self.kept.len());
        let (kept, _dropped) = data.split_at(data.len().min(room));
        self.kept.extend_from_slice(kept);
    }
}

/// The guest's stderr as formatted log lines, at most `limit` bytes of them
/// (the one line the limit cuts may be longer by what formatting adds to
/// its text, such as replacement characters for invalid UTF-8).
#[derive(Debug)]
pub(crate) struct LogBuffer {
    limit: u64,
    /// Bytes of the formatted log so far, the unfinished line included;
    /// never less than the formatted lines' total length.
    used: u64,
    truncated: bool,
    lines: Vec<String>,
    /// The unfinished last line and when its first byte was written.
    partial: Vec<u8>,
    partial_since: Option<SystemTime>,
}

/// The log of one run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Logs {
    /// Formatted lines, the truncation notice last if any.
    pub(crate) lines: Vec<String>,
    /// Whether some output was dropped.
    pub(crate) truncated: bool,
}

impl LogBuffer {
    /// Keeps at most `limit` bytes of formatted lines.
    pub(crate) fn new(limit: u64) -> Self {
        Self {
            limit,
            used: 0,
            truncated: false,
            lines: Vec::new(),
            partial: Vec::new(),
            partial_since: None,
        }
    }

    /// Takes bytes written at `now`. Once something is dropped, everything
    /// after it is too: the log is always a prefix of the output.
    pub(crate) fn write_at(&mut self, data: &[u8], now: SystemTime) {
        for piece in data.split_inclusive(|&byte| byte == b'\n') {
            if self.truncated {
                return;
            }
            let since = match self.partial_since {
                Some(since) => since,
                None if self.room() < LINE_PREFIX_BYTES => {
                    self.truncated = true;
                    return;
                }
                None => {
                    self.used += LINE_PREFIX_BYTES;
                    *self.partial_since.insert(now)
                }
            };
            let (text, ends_line) = match piece.strip_suffix(b"\n") {
                Some(text) => (text, true),
                None => (piece, false),
            };
            let room = usize::try_from(self.room()).unwrap_or(usize::MAX);
            let (kept, dropped) = text.split_at(text.len().min(room));
            self.used += kept.len() as u64;
            if !dropped.is_empty() {
                // `finish_at` flushes the cut line.
                self.truncated = true;
                self.partial.extend_from_slice(kept);
            } else if !ends_line {
                self.partial.extend_from_slice(kept);
            } else if self.partial.is_empty() {
                self.push_line(since, kept);
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(kept);
                self.push_line(since, &line);
                // Keep the allocation for the next partial line.
                line.clear();
                self.partial = line;
            }
        }
    }

    /// Bytes the limit still allows.
    fn room(&self) -> u64 {
        self.limit.saturating_sub(self.used)
    }

    /// Ends the log at `now`: flushes an unfinished line and appends the
    /// truncation notice if output was dropped.
    pub(crate) fn finish_at(&mut self, now: SystemTime) -> Logs {
        if let Some(since) = self.partial_since {
            let line = std::mem::take(&mut self.partial);
            self.push_line(since, &line);
        }
        if self.truncated {
            let notice = format!(
                "Logs were truncated because the total bytes size exceeds the limit of {} bytes.",
                self.limit
            );
            self.push_line(now, notice.as_bytes());
        }
        Logs {
            lines: std::mem::take(&mut self.lines),
            truncated: self.truncated,
        }
    }

    /// Formats and keeps a line whose text (`line`) and prefix are charged.
    fn push_line(&mut self, since: SystemTime, line: &[u8]) {
        let charged = LINE_PREFIX_BYTES + line.len() as u64;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let text = String::from_utf8_lossy(line);
        let formatted = format!("{} stderr: {text}", format_rfc3339_nanos(since));
        // Replacement characters (and years past 9999) are longer than what
        // was charged: charge the difference, so that later lines see it.
        self.used += (formatted.len() as u64).saturating_sub(charged);
        self.lines.push(formatted);
        self.partial_since = None;
    }
}

impl Buffer for LogBuffer {
    fn accept(&mut self, data: &[u8]) {
        self.write_at(data, SystemTime::now());
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000 + seconds)
    }

    fn stamp(seconds: u64) -> String {
        format_rfc3339_nanos(at(seconds)).to_string()
    }

    #[test]
    fn lines_are_stamped_with_the_time_their_first_byte_was_written() {
        let mut log = LogBuffer::new(1 << 20);
        log.write_at(b"one\ntw", at(1));
        log.write_at(b"o\nthree\n", at(2));
        log.write_at(b"four", at(3));
        let logs = log.finish_at(at(9));
        assert_eq!(
            logs.lines,
            [
                format!("{} stderr: one", stamp(1)),
                format!("{} stderr: two", stamp(1)),
                format!("{} stderr: three", stamp(2)),
                format!("{} stderr: four", stamp(3)),
            ]
        );
        assert!(!logs.truncated);
        assert!(logs.lines[0].starts_with("2026-"), "{}", logs.lines[0]);
        assert!(
            logs.lines[0].contains(".000000000Z stderr: "),
            "{}",
            logs.lines[0]
        );
    }

    #[test]
    fn empty_lines_crlf_and_invalid_utf8_are_kept_readably() {
        let mut log = LogBuffer::new(1 << 20);
        log.write_at(b"\nwin\r\n\xff!\n", at(1));
        let lines = log.finish_at(at(2)).lines;
        assert_eq!(
            lines,
            [
                format!("{} stderr: ", stamp(1)),
                format!("{} stderr: win", stamp(1)),
                format!("{} stderr: \u{fffd}!", stamp(1)),
            ]
        );
    }

    /// The bytes of `lines` but the last (the truncation notice).
    fn kept_bytes(logs: &Logs) -> u64 {
        let kept = logs.lines.split_last().map_or(&[][..], |(_, kept)| kept);
        kept.iter().map(|line| line.len() as u64).sum()
    }

    #[test]
    fn the_prefix_is_as_long_as_formatting_makes_it() {
        let line = format!("{} stderr: ", format_rfc3339_nanos(SystemTime::now()));
        assert_eq!(line.len() as u64, LINE_PREFIX_BYTES);
    }

    #[test]
    fn output_past_the_limit_is_dropped_and_a_notice_appended() {
        // Room for two lines of five characters and one of three.
        let limit = 3 * LINE_PREFIX_BYTES + 13;
        let mut log = LogBuffer::new(limit);
        log.write_at(b"12345\n", at(1));
        log.write_at(b"6789\nabc\n", at(2));
        log.write_at(b"more\n", at(3));
        let logs = log.finish_at(at(4));
        assert!(logs.truncated);
        assert_eq!(
            logs.lines,
            [
                format!("{} stderr: 12345", stamp(1)),
                format!("{} stderr: 6789", stamp(2)),
                format!("{} stderr: abc", stamp(2)),
                format!(
                    "{} stderr: Logs were truncated because the total bytes size exceeds the limit of {limit} bytes.",
                    stamp(4)
                ),
            ]
        );
        assert_eq!(kept_bytes(&logs), limit - 1);
    }

    #[test]
    fn a_line_cut_by_the_limit_is_kept_up_to_the_limit() {
        let mut log = LogBuffer::new(LINE_PREFIX_BYTES + 4);
        log.write_at(b"abcdef\n", at(1));
        let logs = log.finish_at(at(2));
        assert_eq!(logs.lines.len(), 2);
        assert_eq!(logs.lines[0], format!("{} stderr: abcd", stamp(1)));
        assert_eq!(kept_bytes(&logs), LINE_PREFIX_BYTES + 4);
    }

    #[test]
    fn empty_lines_are_charged_their_prefix() {
        // 1 MB of bare newlines against 64 KiB: about 1,700 lines, not a
        // million.
        let limit = 64 * 1024;
        let mut log = LogBuffer::new(limit);
        for _ in 0..256 {
            log.write_at(&[b'\n'; 4096], at(1));
        }
        let logs = log.finish_at(at(2));
        assert!(logs.truncated);
        assert_eq!(logs.lines.len() as u64, limit / LINE_PREFIX_BYTES + 1);
        assert!(kept_bytes(&logs) <= limit, "{}", kept_bytes(&logs));
    }

    #[test]
    fn replacement_characters_count_against_the_limit() {
        // Each invalid byte becomes three bytes of U+FFFD: the line is kept
        // whole, but nothing fits after it.
        let mut log = LogBuffer::new(LINE_PREFIX_BYTES + 100);
        log.write_at(&[0xff; 60], at(1));
        log.write_at(b"\nok\n", at(1));
        let logs = log.finish_at(at(2));
        assert!(logs.truncated);
        assert_eq!(logs.lines.len(), 2);
        assert_eq!(kept_bytes(&logs), LINE_PREFIX_BYTES + 180);
    }

    #[test]
    fn valid_utf8_never_exceeds_the_limit() {
        // xorshift64*: writes of random lengths, newline density and limits.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        };
        for _ in 0..300 {
            let limit = next() % 4096;
            let mut log = LogBuffer::new(limit);
            let newline_every = next() % 64 + 1;
            for _ in 0..next() % 40 {
                let write: Vec<u8> = (0..next() % 300)
                    .map(|_| match next() % newline_every {
                        0 => b'\n',
                        _ => b'x',
                    })
                    .collect();
                log.write_at(&write, at(1));
            }
            let logs = log.finish_at(at(2));
            let kept = if logs.truncated {
                kept_bytes(&logs)
            } else {
                logs.lines.iter().map(|line| line.len() as u64).sum()
            };
            assert!(kept <= limit, "kept {kept} of {limit}");
            assert!(logs.truncated || logs.lines.len() as u64 <= limit / LINE_PREFIX_BYTES);
        }
    }

    #[test]
    fn a_zero_limit_keeps_only_the_notice_and_only_if_something_was_written() {
        let mut quiet = LogBuffer::new(0);
        assert_eq!(quiet.finish_at(at(1)), Logs::default());
        let mut log = LogBuffer::new(0);
        log.write_at(b"x", at(1));
        let logs = log.finish_at(at(2));
        assert!(logs.truncated);
        assert_eq!(logs.lines.len(), 1);
        assert!(logs.lines[0].ends_with("exceeds the limit of 0 bytes."));
    }

    #[test]
    fn result_buffer_keeps_up_to_max_and_counts_everything() {
        let mut result = ResultBuffer::new(4);
        result.accept(b"ab");
        result.accept(b"cdef");
        assert!(result.overflowed());
        assert_eq!(result.written(), 6);
        assert_eq!(result.take(), b"abcd");

        let mut exact = ResultBuffer::new(4);
        exact.accept(b"abcd");
        assert!(!exact.overflowed());
    }

    #[test]
    fn capture_never_refuses_writes() {
        let capture = Capture::new(ResultBuffer::new(2));
        let mut stream = capture.p2_stream();
        for _ in 0..3 {
            assert_eq!(stream.check_write().expect("room"), WRITE_PERMIT);
            stream.write(Bytes::from_static(b"xyz")).expect("write");
        }
        assert_eq!(capture.lock().written(), 9);
        assert_eq!(capture.lock().take(), b"xy");
    }
}
