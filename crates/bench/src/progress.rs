//! Progress on stderr: an `indicatif` bar per step when stderr is a
//! terminal, one line per finished step otherwise (so logs of a CI run
//! still say what happened). Never on stdout, which carries the report.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a timed bar is redrawn.
const TICK: Duration = Duration::from_millis(200);

/// The run's progress display.
#[derive(Debug, Clone)]
pub struct Progress {
    bars: MultiProgress,
}

impl Progress {
    /// Draws on stderr (indicatif hides bars when it is not a terminal).
    pub fn new() -> Self {
        Self {
            bars: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
        }
    }

    /// Prints a line on stderr above any bar.
    pub fn note(&self, text: &str) {
        if self.bars.is_hidden() {
            eprintln!("bench: {text}");
        } else {
            let _ = self.bars.println(format!("bench: {text}"));
        }
    }

    /// A bar for a measurement of `total` that counts `finished` requests.
    pub fn timed(&self, label: &str, total: Duration, finished: Arc<AtomicU64>) -> TimedStep {
        let total_ms = u64::try_from(total.as_millis()).unwrap_or(u64::MAX);
        let bar = self.bars.add(ProgressBar::new(total_ms.max(1)));
        bar.set_style(style("{prefix:<34} [{bar:30}] {elapsed:>4} {msg}"));
        bar.set_prefix(label.to_owned());
        let ticking = bar.clone();
        let started = Instant::now();
        let ticker = tokio::spawn(async move {
            let mut interval = tokio::time::interval(TICK);
            loop {
                interval.tick().await;
                let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                ticking.set_position(elapsed.min(total_ms));
                ticking.set_message(format!("{} requests", finished.load(Ordering::Relaxed)));
            }
        });
        TimedStep {
            bar,
            ticker,
            progress: self.clone(),
        }
    }

    /// A bar for `total` discrete runs.
    pub fn counted(&self, label: &str, total: u64) -> CountedStep {
        let bar = self.bars.add(ProgressBar::new(total));
        bar.set_style(style("{prefix:<34} [{bar:30}] {pos}/{len} {msg}"));
        bar.set_prefix(label.to_owned());
        CountedStep {
            bar,
            progress: self.clone(),
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// A measurement in progress.
pub struct TimedStep {
    bar: ProgressBar,
    ticker: tokio::task::JoinHandle<()>,
    progress: Progress,
}

impl TimedStep {
    /// Ends the bar and prints `summary` as the step's line.
    pub fn finish(self, summary: &str) {
        let label = self.bar.prefix();
        self.bar.finish_and_clear();
        self.progress.note(&format!("{label}: {summary}"));
    }
}

impl Drop for TimedStep {
    fn drop(&mut self) {
        self.ticker.abort();
    }
}

/// Runs in progress.
pub struct CountedStep {
    bar: ProgressBar,
    progress: Progress,
}

impl CountedStep {
    /// One more run done.
    pub fn inc(&self) {
        self.bar.inc(1);
    }

    /// `done` runs done.
    pub fn set(&self, done: u64) {
        self.bar.set_position(done);
    }

    /// Ends the bar and prints `summary` as the step's line.
    pub fn finish(self, summary: &str) {
        let label = self.bar.prefix();
        self.bar.finish_and_clear();
        self.progress.note(&format!("{label}: {summary}"));
    }
}
