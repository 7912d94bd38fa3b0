//! The guest's stdout and stderr: in-memory streams that never block the
//! guest and never fail its writes, but keep only what the limits allow.
//!
//! The guest follows OpenWhisk's action contract for native actions: the
//! **last line of stdout is the result**; every earlier stdout line and every
//! stderr line is a log line.
//!
//! * stdout goes to [`StdoutBuffer`], which splits it into lines, holds back
//!   the latest one (the result, should nothing follow it) and hands each
//!   earlier line to the log. Each line keeps at most the result limit and
//!   counts everything, so an oversized result is reported with its real
//!   size. Blank lines after the result are not part of it (a trailing
//!   newline is fine).
//! * stderr, and stdout's earlier lines, go to [`LogBuffer`], which stamps
//!   each line with the time its first byte was written, formats it as
//!   OpenWhisk does (`<RFC 3339 time> stderr: <line>`, or `stdout: `) and
//!   silently drops whatever exceeds the log limit, ending the log with
//!   OpenWhisk's truncation notice. The limit counts the log as formatted:
//!   each line costs its prefix as well as its text, so a flood of empty
//!   lines cannot make millions of small strings out of a few megabytes.
//!
//! [`Capture`] adapts either buffer to the traits wasmtime-wasi wants for a
//! stdio stream; the run keeps one handle and reads the buffer afterwards.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use humantime::format_rfc3339_nanos;

/// The latest time a log line is stamped at: the last an RFC 3339 time
/// (four-digit years) can write, 9999-12-31T23:59:59.999999999Z.
const LATEST_STAMP: Duration = Duration::new(253_402_300_799, 999_999_999);
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

/// The stream a log line came from, as its prefix names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    /// A stdout line before the result line.
    Stdout,
    /// A stderr line.
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}

/// One stdout line: its first `max` bytes, its real size, and when its
/// first byte was written.
#[derive(Debug, Default)]
struct Line {
    kept: Vec<u8>,
    size: u64,
    since: Option<SystemTime>,
}

impl Line {
    fn push(&mut self, text: &[u8], now: SystemTime, max: usize) {
        self.since.get_or_insert(now);
        self.size = self.size.saturating_add(text.len() as u64);
        let room = max.saturating_sub(self.kept.len());
        let (kept, _dropped) = text.split_at(text.len().min(room));
        self.kept.extend_from_slice(kept);
    }

    /// Whether the line holds nothing but white space (a line cut by the
    /// limit never does: what was cut is not known to be blank).
    fn is_blank(&self) -> bool {
        self.size == self.kept.len() as u64 && self.kept.iter().all(u8::is_ascii_whitespace)
    }
}

/// The guest's stdout: the last line is the result, every earlier line goes
/// to the log (see the module docs).
pub(crate) struct StdoutBuffer {
    max: usize,
    written: u64,
    log: Capture<LogBuffer>,
    /// The latest complete line that is not blank: the result, unless a
    /// line that is not blank follows it.
    last_line: Option<Line>,
    /// Blank lines written after `last_line` (logged only if a line that is
    /// not blank follows), and when the first of them was written.
    blank_lines: u64,
    blank_since: Option<SystemTime>,
    /// The line being written.
    current: Line,
}

/// The result line of a run.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ResultLine {
    /// Its first `max` bytes.
    pub(crate) kept: Vec<u8>,
    /// Its real size.
    pub(crate) size: u64,
}

impl StdoutBuffer {
    /// Keeps at most `max` bytes of each line; earlier lines go to `log`.
    pub(crate) fn new(max: usize, log: Capture<LogBuffer>) -> Self {
        Self {
            max,
            written: 0,
            log,
            last_line: None,
            blank_lines: 0,
            blank_since: None,
            current: Line::default(),
        }
    }

    /// Bytes the guest wrote, including dropped ones.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// Takes bytes written at `now`.
    pub(crate) fn write_at(&mut self, data: &[u8], now: SystemTime) {
        self.written = self.written.saturating_add(data.len() as u64);
        for piece in data.split_inclusive(|&byte| byte == b'\n') {
            let (text, ends_line) = match piece.strip_suffix(b"\n") {
                Some(text) => (text, true),
                None => (piece, false),
            };
            self.current.push(text, now, self.max);
            if ends_line {
                let line = std::mem::take(&mut self.current);
                if !line.is_blank() {
                    self.log_held_lines();
                    self.last_line = Some(line);
                } else if self.last_line.is_some() {
                    // Leading blank lines are dropped, as OpenWhisk strips
                    // the output before it splits it.
                    self.blank_lines = self.blank_lines.saturating_add(1);
                    self.blank_since.get_or_insert(line.since.unwrap_or(now));
                }
            }
        }
    }

    /// Sends the held line, and the blank lines after it, to the log: a
    /// line that is not blank followed them.
    fn log_held_lines(&mut self) {
        let Some(line) = self.last_line.take() else {
            return;
        };
        let mut log = self.log.lock();
        let since = line.since.unwrap_or(SystemTime::UNIX_EPOCH);
        log.write_line_at(Stream::Stdout, &line.kept, since);
        let blank_since = self.blank_since.take().unwrap_or(since);
        for _ in 0..std::mem::take(&mut self.blank_lines) {
            if log.is_truncated() {
                break;
            }
            log.write_line_at(Stream::Stdout, b"", blank_since);
        }
    }

    /// Ends the output: the result line, after logging every line before
    /// it. Empty if the guest wrote nothing but blank lines.
    pub(crate) fn finish(&mut self) -> ResultLine {
        let current = std::mem::take(&mut self.current);
        let result = if current.is_blank() {
            self.last_line.take().unwrap_or_default()
        } else {
            self.log_held_lines();
            current
        };
        ResultLine {
            kept: result.kept,
            size: result.size,
        }
    }
}

impl Buffer for StdoutBuffer {
    fn accept(&mut self, data: &[u8]) {
        self.write_at(data, SystemTime::now());
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
    /// Formatted lines and when their first byte was written.
    lines: Vec<(SystemTime, String)>,
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
                self.push_line(Stream::Stderr, since, kept);
                self.partial_since = None;
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(kept);
                self.push_line(Stream::Stderr, since, &line);
                self.partial_since = None;
                // Keep the allocation for the next partial line.
                line.clear();
                self.partial = line;
            }
        }
    }

    /// Takes one whole line of `stream` whose first byte was written at
    /// `since`, leaving an unfinished stderr line as it is.
    pub(crate) fn write_line_at(&mut self, stream: Stream, line: &[u8], since: SystemTime) {
        if self.truncated {
            return;
        }
        if self.room() < LINE_PREFIX_BYTES {
            self.truncated = true;
            return;
        }
        self.used += LINE_PREFIX_BYTES;
        let room = usize::try_from(self.room()).unwrap_or(usize::MAX);
        let (kept, dropped) = line.split_at(line.len().min(room));
        self.used += kept.len() as u64;
        self.truncated = !dropped.is_empty();
        self.push_line(stream, since, kept);
    }

    /// Whether output has been dropped: nothing more will be kept.
    pub(crate) fn is_truncated(&self) -> bool {
        self.truncated
    }

    /// Bytes the limit still allows.
    fn room(&self) -> u64 {
        self.limit.saturating_sub(self.used)
    }

    /// Ends the log at `now`: flushes an unfinished line, orders the lines
    /// by the time their first byte was written (stdout lines reach the log
    /// only once the next one shows they are not the result) and appends
    /// the truncation notice if output was dropped.
    pub(crate) fn finish_at(&mut self, now: SystemTime) -> Logs {
        if let Some(since) = self.partial_since.take() {
            let line = std::mem::take(&mut self.partial);
            self.push_line(Stream::Stderr, since, &line);
        }
        self.lines.sort_by_key(|(since, _)| *since);
        if self.truncated {
            let notice = format!(
                "Logs were truncated because the total bytes size exceeds the limit of {} bytes.",
                self.limit
            );
            self.push_line(Stream::Stderr, now, notice.as_bytes());
        }
        Logs {
            lines: std::mem::take(&mut self.lines)
                .into_iter()
                .map(|(_, line)| line)
                .collect(),
            truncated: self.truncated,
        }
    }

    /// Formats and keeps a line whose text (`line`) and prefix are charged.
    fn push_line(&mut self, stream: Stream, since: SystemTime, line: &[u8]) {
        let charged = LINE_PREFIX_BYTES + line.len() as u64;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let text = String::from_utf8_lossy(line);
        // The host's clock is the provider's: set before 1970 or after
        // 9999, it would panic the formatter, and with it every run that
        // logs.
        let since = since.clamp(
            SystemTime::UNIX_EPOCH,
            SystemTime::UNIX_EPOCH + LATEST_STAMP,
        );
        let formatted = format!("{} {}: {text}", format_rfc3339_nanos(since), stream.name());
        // Replacement characters are longer than what was charged: charge
        // the difference, so that later lines see it.
        self.used += (formatted.len() as u64).saturating_sub(charged);
        self.lines.push((since, formatted));
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
    fn a_clock_set_before_1970_or_after_9999_stamps_lines_within_them() {
        let before_1970 = SystemTime::UNIX_EPOCH - Duration::from_secs(86_400);
        let after_9999 = SystemTime::UNIX_EPOCH + LATEST_STAMP + Duration::from_secs(86_400);
        for (clock, stamp) in [
            (before_1970, "1970-01-01T00:00:00.000000000Z"),
            (after_9999, "9999-12-31T23:59:59.999999999Z"),
        ] {
            let mut log = LogBuffer::new(1 << 20);
            log.write_at(b"one\ntwo", clock);
            let logs = log.finish_at(clock);
            assert_eq!(
                logs.lines,
                [
                    format!("{stamp} stderr: one"),
                    format!("{stamp} stderr: two")
                ]
            );
        }
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

    fn stdout(max: usize) -> (StdoutBuffer, Capture<LogBuffer>) {
        let log = Capture::new(LogBuffer::new(1 << 20));
        (StdoutBuffer::new(max, log.clone()), log)
    }

    #[test]
    fn the_last_stdout_line_is_the_result_and_earlier_ones_are_logs() {
        let (mut out, log) = stdout(1 << 20);
        out.write_at(b"starting\nhalf", at(1));
        out.write_at(b" way\n", at(2));
        log.lock().write_at(b"a warning\n", at(3));
        out.write_at(b"{\"ok\":true}\n\n", at(4));
        let result = out.finish();
        assert_eq!(result.kept, b"{\"ok\":true}");
        assert_eq!(result.size, 11);
        assert_eq!(out.written(), 31);
        assert_eq!(
            log.lock().finish_at(at(9)).lines,
            [
                format!("{} stdout: starting", stamp(1)),
                format!("{} stdout: half way", stamp(1)),
                format!("{} stderr: a warning", stamp(3)),
            ]
        );
    }

    #[test]
    fn a_result_without_a_newline_follows_the_logged_lines() {
        let (mut out, log) = stdout(1 << 20);
        out.write_at(b"\n\nfirst\n\n\nsecond\n{}", at(1));
        assert_eq!(out.finish().kept, b"{}");
        let lines = log.lock().finish_at(at(2)).lines;
        let texts: Vec<&str> = lines
            .iter()
            .filter_map(|line| line.split_once(" stdout: ").map(|(_, text)| text))
            .collect();
        assert_eq!(
            texts,
            ["first", "", "", "second"],
            "leading blank lines dropped"
        );
    }

    #[test]
    fn only_blank_output_leaves_an_empty_result() {
        let (mut out, log) = stdout(1 << 20);
        out.write_at(b" \n\r\n", at(1));
        assert_eq!(out.finish(), ResultLine::default());
        assert!(log.lock().finish_at(at(2)).lines.is_empty());
    }

    #[test]
    fn each_line_keeps_up_to_max_and_counts_everything() {
        let (mut out, log) = stdout(4);
        out.write_at(b"abcdefgh\nab", at(1));
        out.write_at(b"cdef", at(1));
        let result = out.finish();
        assert_eq!(result.kept, b"abcd");
        assert_eq!(result.size, 6);
        assert_eq!(
            log.lock().finish_at(at(2)).lines,
            [format!("{} stdout: abcd", stamp(1))]
        );
    }

    #[test]
    fn a_stdout_line_does_not_split_an_unfinished_stderr_line() {
        let log = Capture::new(LogBuffer::new(1 << 20));
        let mut out = StdoutBuffer::new(1 << 20, log.clone());
        log.lock().write_at(b"part", at(1));
        out.write_at(b"log\nresult", at(2));
        out.finish();
        log.lock().write_at(b" two\n", at(3));
        assert_eq!(
            log.lock().finish_at(at(4)).lines,
            [
                format!("{} stderr: part two", stamp(1)),
                format!("{} stdout: log", stamp(2)),
            ]
        );
    }

    #[test]
    fn stdout_lines_count_against_the_log_limit() {
        let log = Capture::new(LogBuffer::new(LINE_PREFIX_BYTES + 3));
        let mut out = StdoutBuffer::new(1 << 20, log.clone());
        out.write_at(b"abcdef\nmore\nresult", at(1));
        assert_eq!(out.finish().kept, b"result");
        let logs = log.lock().finish_at(at(2));
        assert!(logs.truncated);
        assert_eq!(logs.lines.len(), 2);
        assert_eq!(logs.lines[0], format!("{} stdout: abc", stamp(1)));
    }

    #[test]
    fn capture_never_refuses_writes() {
        let log = Capture::new(LogBuffer::new(1 << 20));
        let capture = Capture::new(StdoutBuffer::new(2, log));
        let mut stream = capture.p2_stream();
        for _ in 0..3 {
            assert_eq!(stream.check_write().expect("room"), WRITE_PERMIT);
            stream.write(Bytes::from_static(b"xyz")).expect("write");
        }
        assert_eq!(capture.lock().written(), 9);
        let result = capture.lock().finish();
        assert_eq!(result.kept, b"xy");
        assert_eq!(result.size, 9);
    }
}
