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
//!   truncation notice.
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

/// The guest's stderr as formatted log lines, at most `limit` bytes of it.
#[derive(Debug)]
pub(crate) struct LogBuffer {
    limit: u64,
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
    /// Keeps at most `limit` bytes of guest output (newlines included).
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

    /// Takes bytes written at `now`.
    pub(crate) fn write_at(&mut self, data: &[u8], now: SystemTime) {
        let room = usize::try_from(self.limit.saturating_sub(self.used)).unwrap_or(usize::MAX);
        if data.len() > room {
            self.truncated = true;
        }
        let (kept, _dropped) = data.split_at(data.len().min(room));
        self.used += kept.len() as u64;

        for piece in kept.split_inclusive(|&byte| byte == b'\n') {
            let since = *self.partial_since.get_or_insert(now);
            match piece.strip_suffix(b"\n") {
                Some(end) if self.partial.is_empty() => self.push_line(since, end),
                Some(end) => {
                    let mut line = std::mem::take(&mut self.partial);
                    line.extend_from_slice(end);
                    self.push_line(since, &line);
                    // Keep the allocation for the next partial line.
                    line.clear();
                    self.partial = line;
                }
                None => self.partial.extend_from_slice(piece),
            }
        }
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

    fn push_line(&mut self, since: SystemTime, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let text = String::from_utf8_lossy(line);
        self.lines
            .push(format!("{} stderr: {text}", format_rfc3339_nanos(since)));
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

    #[test]
    fn output_past_the_limit_is_dropped_and_a_notice_appended() {
        let mut log = LogBuffer::new(10);
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
                format!(
                    "{} stderr: Logs were truncated because the total bytes size exceeds the limit of 10 bytes.",
                    stamp(4)
                ),
            ]
        );
    }

    #[test]
    fn a_line_cut_by_the_limit_is_kept_up_to_the_limit() {
        let mut log = LogBuffer::new(4);
        log.write_at(b"abcdef\n", at(1));
        let logs = log.finish_at(at(2));
        assert_eq!(logs.lines.len(), 2);
        assert_eq!(logs.lines[0], format!("{} stderr: abcd", stamp(1)));
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
