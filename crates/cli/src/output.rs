//! How the CLI prints: `ok:` lines and tables for people, one JSON document
//! per command with `--json`, and `error: …` (or a JSON error) on stderr.
//!
//! Formats follow the Go `wsk` CLI where it has one (4-space indented JSON,
//! the activation list columns, Go-style durations) so that habits and
//! scripts carry over.

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

use clemmys_client::ClientError;
use serde::Serialize;
use serde_json::Value;

/// Set once a reader closed stdout (`clemmys … | head`).
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes formatted text to stdout. A closed pipe (`clemmys … | head`) is
/// not an error and does not panic, as `print!` does: later output is
/// dropped, the command finishes (so that what it must keep, such as the
/// keys of a confidential answer, is written) and the process ends with
/// status 141, as the default `SIGPIPE` action would have ended it.
pub fn write_stdout(args: fmt::Arguments<'_>) {
    if stdout_closed() {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            return;
        }
        // Anything else (a full disk) is as fatal as `print!` makes it,
        // but reported without a backtrace.
        let _ = writeln!(std::io::stderr(), "error: writing to stdout: {error}");
        std::process::exit(1);
    }
}

/// Whether a reader closed stdout: a command that would go on printing
/// (`activation poll`) stops, and the process ends with status 141.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// `print!` that survives a closed pipe; see [`write_stdout`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!($($arg)*))
    };
}

/// `println!` that survives a closed pipe; see [`write_stdout`].
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {out, outln};

/// Where output goes and in which form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Output {
    json: bool,
}

impl Output {
    /// Human output, or machine-readable JSON when `json`.
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    /// Whether `--json` was given.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// `ok: {message}` on stdout in human mode; nothing with `--json`.
    pub fn ok(&self, message: impl fmt::Display) {
        if !self.json {
            outln!("ok: {message}");
        }
    }

    /// A line of text on stdout in human mode; nothing with `--json`.
    pub fn line(&self, text: impl fmt::Display) {
        if !self.json {
            outln!("{text}");
        }
    }

    /// A hint for people on stderr (never mixed into stdout).
    pub fn hint(&self, text: impl fmt::Display) {
        if !self.json {
            eprintln!("{text}");
        }
    }

    /// A warning on stderr in either mode: what a user must not miss, as
    /// that what is shown is the node's word and nothing verified it.
    pub fn warn(&self, text: impl fmt::Display) {
        eprintln!("warning: {text}");
    }

    /// Prints `value` as indented JSON on stdout, in either mode.
    pub fn print_json(&self, value: &impl Serialize) -> anyhow::Result<()> {
        outln!("{}", to_pretty_json(value)?);
        Ok(())
    }

    /// Prints an error on stderr: `error: a: b: c` in human mode (with a
    /// hint when the server was unreachable), or
    /// `{"error": …, "status": …, "code": …}` with `--json`.
    pub fn print_error(&self, error: &anyhow::Error) {
        let api = error
            .chain()
            .find_map(|cause| cause.downcast_ref::<ClientError>());
        let mut stderr = std::io::stderr().lock();
        let message = error_chain(error);
        if self.json {
            let mut body = serde_json::json!({ "error": message });
            if let Some(ClientError::Api { status, code, .. }) = api {
                body["status"] = Value::from(*status);
                if let Some(code) = code {
                    body["code"] = Value::from(code.as_str());
                }
            }
            let _ = writeln!(stderr, "{body}");
            return;
        }
        let _ = writeln!(stderr, "error: {message}");
        if let Some(ClientError::Transport { .. }) = api {
            let _ = writeln!(
                stderr,
                "hint: is the server running? `clemmys serve` starts one on this machine"
            );
        }
    }
}

/// `error` and its causes, `: `-separated as `{error:#}` prints them, but
/// without a cause that the message before it already ends with (many
/// errors print their source in their own message too).
fn error_chain(error: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if message.ends_with(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}

/// `value` as JSON indented by four spaces, as `wsk` prints it.
pub fn to_pretty_json(value: &impl Serialize) -> anyhow::Result<String> {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    value.serialize(&mut serializer)?;
    Ok(String::from_utf8(out)?)
}

/// A table whose columns are padded to their widest cell; the last column is
/// not padded, so lines carry no trailing spaces.
#[derive(Debug, Clone)]
pub struct Table {
    header: Option<Vec<String>>,
    rows: Vec<Vec<String>>,
    gap: usize,
}

impl Table {
    /// A table with a header row, columns separated by one space (as `wsk`).
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Self {
        Self {
            header: Some(header.into_iter().map(Into::into).collect()),
            rows: Vec::new(),
            gap: 1,
        }
    }

    /// A table without a header row.
    pub fn headless() -> Self {
        Self {
            header: None,
            rows: Vec::new(),
            gap: 1,
        }
    }

    /// Separates columns by `gap` spaces.
    pub fn gap(mut self, gap: usize) -> Self {
        self.gap = gap;
        self
    }

    /// Appends a row.
    pub fn push<S: Into<String>>(&mut self, row: impl IntoIterator<Item = S>) {
        self.rows.push(row.into_iter().map(Into::into).collect());
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as lines, each ending in `\n`.
    pub fn render(&self) -> String {
        let all_rows = || self.header.iter().chain(self.rows.iter());
        let columns = all_rows().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0usize; columns];
        for row in all_rows() {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in all_rows() {
            let mut line = String::new();
            for (index, (cell, width)) in row.iter().zip(&widths).enumerate() {
                if index > 0 {
                    line.push_str(&" ".repeat(self.gap));
                }
                line.push_str(cell);
                if index + 1 < row.len() {
                    let pad = width.saturating_sub(cell.chars().count());
                    line.push_str(&" ".repeat(pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

/// Epoch milliseconds as `YYYY-MM-DD HH:MM:SS` in UTC.
pub fn format_datetime(epoch_ms: u64) -> String {
    let seconds = epoch_ms / 1000;
    let (year, month, day) = civil_from_days(seconds / 86_400);
    let rest = seconds % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        (rest % 3600) / 60,
        rest % 60
    )
}

/// Days since 1970-01-01 as a proleptic Gregorian (year, month, day);
/// Howard Hinnant's `civil_from_days`, for non-negative day counts.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Milliseconds as Go prints a `time.Duration`: `0s`, `12ms`, `1.5s`,
/// `2m3.25s`, `1h0m0s`.
pub fn format_duration_ms(ms: u64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let seconds = |ms: u64| {
        let whole = ms / 1000;
        let fraction = ms % 1000;
        if fraction == 0 {
            format!("{whole}s")
        } else {
            let digits = format!("{fraction:03}");
            format!("{whole}.{}s", digits.trim_end_matches('0'))
        }
    };
    let hours = ms / 3_600_000;
    let minutes = (ms % 3_600_000) / 60_000;
    let rest = ms % 60_000;
    let mut out = String::new();
    if hours > 0 {
        let _ = write!(out, "{hours}h{minutes}m");
    } else if minutes > 0 {
        let _ = write!(out, "{minutes}m");
    }
    out.push_str(&seconds(rest));
    out
}

/// Shortens `text` to `max` characters with `...` in the middle, as `wsk`
/// does for long entity names in the activation list.
pub fn truncate_middle(text: &str, max: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= max {
        return text.to_owned();
    }
    let mut head = max / 2;
    let tail_start = (chars.len() + 3).saturating_sub(head).min(chars.len());
    if !max.is_multiple_of(2) {
        head += 1;
    }
    let head: String = chars.iter().take(head).collect();
    let tail: String = chars.iter().skip(tail_start).collect();
    format!("{head}...{tail}")
}

/// A log line without its `2024-01-01T00:00:00.000Z stdout: ` prefix (as
/// `wsk activation logs --strip`); lines without one are kept whole.
pub fn strip_log_prefix(line: &str) -> &str {
    strip_log_prefix_checked(line).unwrap_or(line)
}

fn strip_log_prefix_checked(line: &str) -> Option<&str> {
    // YYYY-MM-DDTHH:MM:SS
    let shape = "dddd-dd-ddTdd:dd:dd";
    let (stamp, rest) = (line.get(..shape.len())?, line.get(shape.len()..)?);
    let shape_ok = stamp.chars().zip(shape.chars()).all(|(c, s)| match s {
        'd' => c.is_ascii_digit(),
        other => c == other,
    });
    if !shape_ok {
        return None;
    }
    let rest = match rest.strip_prefix('.') {
        Some(fraction) => fraction.trim_start_matches(|c: char| c.is_ascii_digit()),
        None => rest,
    };
    let rest = rest.strip_prefix('Z')?;
    let trimmed = rest.trim_start_matches(' ');
    let rest = trimmed
        .strip_prefix("stdout:")
        .or_else(|| trimmed.strip_prefix("stderr:"))
        .unwrap_or(rest);
    let mut chars = rest.chars();
    match chars.next() {
        Some(c) if c.is_whitespace() => Some(chars.as_str()),
        None => Some(""),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_cause_its_message_already_ends_with_is_printed_once() {
        #[derive(Debug)]
        struct Root;
        impl fmt::Display for Root {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("disk on fire")
            }
        }
        impl std::error::Error for Root {}
        /// Prints its source in its own message, as many errors do.
        #[derive(Debug)]
        struct Repeats(Root);
        impl fmt::Display for Repeats {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "reading cc/x.pem: {}", self.0)
            }
        }
        impl std::error::Error for Repeats {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let error = anyhow::Error::new(Repeats(Root)).context("connecting");
        assert_eq!(
            error_chain(&error),
            "connecting: reading cc/x.pem: disk on fire"
        );
        let plain = anyhow::Error::new(Root).context("a").context("b");
        assert_eq!(error_chain(&plain), "b: a: disk on fire");
    }

    #[test]
    fn tables_align_columns_without_trailing_spaces() {
        let mut table = Table::new(["Name", "Kind", "Status"]);
        table.push(["hello", "wasm", "success"]);
        table.push(["a-much-longer-name", "sequence", "application error"]);
        assert_eq!(
            table.render(),
            "Name               Kind     Status\n\
             hello              wasm     success\n\
             a-much-longer-name sequence application error\n"
        );
        let mut headless = Table::headless().gap(2);
        headless.push(["/guest/hello", "private", "wasm"]);
        headless.push(["/guest/x", "shared", ""]);
        assert_eq!(
            headless.to_string(),
            "/guest/hello  private  wasm\n/guest/x      shared\n"
        );
        assert_eq!(Table::headless().render(), "");
    }

    #[test]
    fn json_is_indented_like_wsk() {
        let text = to_pretty_json(&json!({"a": [1], "b": "<x>"})).expect("json");
        assert_eq!(
            text,
            "{\n    \"a\": [\n        1\n    ],\n    \"b\": \"<x>\"\n}"
        );
    }

    #[test]
    fn formats_datetimes_in_utc() {
        assert_eq!(format_datetime(0), "1970-01-01 00:00:00");
        assert_eq!(format_datetime(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(format_datetime(1_700_000_000_123), "2023-11-14 22:13:20");
    }

    #[test]
    fn formats_durations_like_go() {
        assert_eq!(format_duration_ms(0), "0s");
        assert_eq!(format_duration_ms(12), "12ms");
        assert_eq!(format_duration_ms(1000), "1s");
        assert_eq!(format_duration_ms(1500), "1.5s");
        assert_eq!(format_duration_ms(1234), "1.234s");
        assert_eq!(format_duration_ms(60_000), "1m0s");
        assert_eq!(format_duration_ms(123_250), "2m3.25s");
        assert_eq!(format_duration_ms(3_600_000), "1h0m0s");
    }

    #[test]
    fn truncates_in_the_middle_like_wsk() {
        assert_eq!(truncate_middle("short", 20), "short");
        assert_eq!(truncate_middle("abcdefghijkl", 10), "abcde...kl");
        assert_eq!(truncate_middle("abcdefghijkl", 9), "abcde...l");
    }

    #[test]
    fn strips_log_prefixes() {
        assert_eq!(
            strip_log_prefix("2024-05-01T10:00:00.123456Z stdout: hello world"),
            "hello world"
        );
        assert_eq!(
            strip_log_prefix("2024-05-01T10:00:00.1Z  stderr: oops"),
            "oops"
        );
        assert_eq!(strip_log_prefix("2024-05-01T10:00:00Z plain"), "plain");
        assert_eq!(strip_log_prefix("no prefix here"), "no prefix here");
        assert_eq!(strip_log_prefix("2024"), "2024");
    }
}
