//! [`KeepAlivePolicy`]: how long an action's enclave stays provisioned after
//! it was last used, and when to provision it again ahead of the next
//! invocation.
//!
//! This is the hybrid histogram policy of Shahrad et al., *Serverless in
//! the Wild* (USENIX ATC 2020), without its time-series (ARIMA) branch:
//!
//! * per action, an [`IdleHistory`] counts *idle times* — from the moment
//!   the action's last activation ended to the arrival of the next one — in
//!   buckets of [`KeepAliveConfig::bucket`] up to [`KeepAliveConfig::range`];
//!   longer idle times are only counted as out of range;
//! * when the histogram is representative (at least
//!   [`min_samples`](KeepAliveConfig::min_samples), at most
//!   [`max_out_of_range`](KeepAliveConfig::max_out_of_range) of them out of
//!   range, and bucket counts concentrated: coefficient of variation at least
//!   [`min_cv`](KeepAliveConfig::min_cv)), the [`Window`] is cut from it: the
//!   enclave may be unloaded after a run and provisioned again at the 5th
//!   percentile idle time (less a 10% margin), and stays until the 99th
//!   percentile (plus a 10% margin), but at least
//!   [`min_keep_alive`](KeepAliveConfig::min_keep_alive): the paper's
//!   buckets are a minute wide, so its shortest keep-alive is a minute;
//!   ours are finer, and without a floor a busy action (idle times all
//!   near zero) would lose its enclave, compiled code and sessions in any
//!   pause over a second;
//! * otherwise a fixed keep-alive applies, as on today's FaaS platforms.
//!
//! Everything here is pure: time comes in as arguments, so the policy is
//! tested without clocks.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Percentile of idle times before which the enclave need not be loaded.
const HEAD_PERCENTILE: u64 = 5;
/// Percentile of idle times until which the enclave stays loaded.
const TAIL_PERCENTILE: u64 = 99;
/// Safety margin: the head is lowered and the tail raised by this share.
const MARGIN: f64 = 0.10;

/// The policy's parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct KeepAliveConfig {
    /// Keep-alive when an action's histogram is not representative (new,
    /// rarely used or irregular actions): how long after its last activation
    /// an idle enclave stays provisioned. Default 10 minutes.
    pub fixed_keep_alive: Duration,
    /// Width of one histogram bucket: the resolution of the windows (and
    /// the shortest keep-alive the histogram can yield). Default 1 s.
    pub bucket: Duration,
    /// Idle times up to this are counted in buckets; longer ones only as
    /// out of range. Default 1 hour.
    pub range: Duration,
    /// Idle times an action needs before its histogram is used. Default 10.
    pub min_samples: u64,
    /// Largest share of out-of-range idle times for the histogram to be
    /// used (0.0 to 1.0). Default 0.5.
    pub max_out_of_range: f64,
    /// Smallest coefficient of variation of the bucket counts for the
    /// histogram to be used: below it idle times are spread flat over the
    /// range and predict nothing. Default 2.0.
    pub min_cv: f64,
    /// A pre-warm window shorter than this keeps the enclave loaded
    /// instead: unloading it and provisioning again would cost more than
    /// it saves. Default 30 s.
    pub min_unload: Duration,
    /// The shortest keep-alive cut from a histogram, for the same reason:
    /// an action used again within it keeps its enclave (and its clients'
    /// sessions). Never above `fixed_keep_alive`: a node told to keep
    /// enclaves for less keeps them for less. Default 30 s.
    pub min_keep_alive: Duration,
}

impl Default for KeepAliveConfig {
    fn default() -> Self {
        Self {
            fixed_keep_alive: Duration::from_secs(10 * 60),
            bucket: Duration::from_secs(1),
            range: Duration::from_secs(60 * 60),
            min_samples: 10,
            max_out_of_range: 0.5,
            min_cv: 2.0,
            min_unload: Duration::from_secs(30),
            min_keep_alive: Duration::from_secs(30),
        }
    }
}

/// The idle times of one action.
#[derive(Debug, Clone, Default)]
pub struct IdleHistory {
    /// When the action's last activation ended, if it ever ran.
    idle_since: Option<Instant>,
    /// Bucket index → idle times counted in it.
    buckets: BTreeMap<u64, u64>,
    in_range: u64,
    out_of_range: u64,
}

impl IdleHistory {
    /// An action never seen.
    pub fn new() -> Self {
        Self::default()
    }

    /// When the action's last activation ended, if it ever ran.
    pub fn idle_since(&self) -> Option<Instant> {
        self.idle_since
    }

    /// Idle times recorded, in and out of range.
    pub fn samples(&self) -> u64 {
        self.in_range + self.out_of_range
    }
}

/// Why a window is what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WindowBasis {
    /// Cut from the action's histogram.
    Histogram,
    /// Fixed: fewer idle times than `min_samples`.
    TooFewSamples,
    /// Fixed: too many idle times beyond the histogram's range.
    OutOfRange,
    /// Fixed: idle times spread too evenly to predict the next arrival.
    Flat,
}

/// How one action's enclave is kept, counted from when it went idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Zero: stay provisioned from the end of the last run. Otherwise:
    /// unload after the run, and provision again this long after it ended
    /// (shortly before the next invocation is expected).
    pub prewarm: Duration,
    /// Unload once the action has been idle this long.
    pub keep_alive: Duration,
    /// Where the window comes from.
    pub basis: WindowBasis,
}

/// The hybrid histogram keep-alive policy; see the module docs.
#[derive(Debug, Clone)]
pub struct KeepAlivePolicy {
    config: KeepAliveConfig,
}

impl KeepAlivePolicy {
    /// A policy with `config`.
    pub fn new(config: KeepAliveConfig) -> Self {
        Self { config }
    }

    /// Its parameters.
    pub fn config(&self) -> &KeepAliveConfig {
        &self.config
    }

    /// An activation arrived at `now` while no other activation of the
    /// action was running: records the idle time since the last one ended.
    pub fn record_arrival(&self, history: &mut IdleHistory, now: Instant) {
        let Some(since) = history.idle_since else {
            return; // the first arrival: no idle time yet
        };
        let idle = now.saturating_duration_since(since);
        if idle > self.config.range {
            history.out_of_range += 1;
            return;
        }
        let bucket = bucket_of(idle, self.config.bucket);
        *history.buckets.entry(bucket).or_default() += 1;
        history.in_range += 1;
    }

    /// The action's last running activation ended at `now`.
    pub fn record_idle(&self, history: &mut IdleHistory, now: Instant) {
        history.idle_since = Some(now);
    }

    /// The window for an action without history: the fixed keep-alive.
    pub fn fixed(&self, basis: WindowBasis) -> Window {
        Window {
            prewarm: Duration::ZERO,
            keep_alive: self.config.fixed_keep_alive,
            basis,
        }
    }

    /// The action's window.
    pub fn window(&self, history: &IdleHistory) -> Window {
        let config = &self.config;
        let samples = history.samples();
        if samples == 0 || samples < config.min_samples {
            return self.fixed(WindowBasis::TooFewSamples);
        }
        if history.out_of_range as f64 > config.max_out_of_range * samples as f64
            || history.in_range == 0
        {
            return self.fixed(WindowBasis::OutOfRange);
        }
        if coefficient_of_variation(history, self.bucket_count()) < config.min_cv {
            return self.fixed(WindowBasis::Flat);
        }
        let width = config.bucket.max(Duration::from_nanos(1));
        // Lower edge of the head bucket, upper edge of the tail bucket.
        let head = scale(width, percentile_bucket(history, HEAD_PERCENTILE));
        let tail = scale(width, percentile_bucket(history, TAIL_PERCENTILE) + 1);
        let prewarm = head.mul_f64(1.0 - MARGIN);
        let floor = config.min_keep_alive.min(config.fixed_keep_alive);
        let keep_alive = tail.mul_f64(1.0 + MARGIN).max(floor);
        Window {
            prewarm: if prewarm < config.min_unload {
                Duration::ZERO
            } else {
                prewarm
            },
            keep_alive,
            basis: WindowBasis::Histogram,
        }
    }

    /// Buckets in the histogram's range (at least one).
    fn bucket_count(&self) -> u64 {
        let width = self.config.bucket.as_nanos().max(1);
        let count = self.config.range.as_nanos().div_ceil(width).max(1);
        u64::try_from(count).unwrap_or(u64::MAX)
    }
}

/// The bucket holding `idle`.
fn bucket_of(idle: Duration, width: Duration) -> u64 {
    let index = idle.as_nanos() / width.as_nanos().max(1);
    u64::try_from(index).unwrap_or(u64::MAX)
}

/// `width × buckets`, saturating.
fn scale(width: Duration, buckets: u64) -> Duration {
    width
        .checked_mul(u32::try_from(buckets).unwrap_or(u32::MAX))
        .unwrap_or(Duration::MAX)
}

/// The bucket where the `percent`th percentile of in-range idle times falls.
fn percentile_bucket(history: &IdleHistory, percent: u64) -> u64 {
    let rank = (history.in_range * percent).div_ceil(100).max(1);
    let mut seen = 0;
    for (&bucket, &count) in &history.buckets {
        seen += count;
        if seen >= rank {
            return bucket;
        }
    }
    history.buckets.keys().next_back().copied().unwrap_or(0)
}

/// Standard deviation over mean of the counts of all `bins` buckets (empty
/// ones included): high when idle times concentrate in a few buckets.
fn coefficient_of_variation(history: &IdleHistory, bins: u64) -> f64 {
    let n = bins as f64;
    let mean = history.in_range as f64 / n;
    if mean <= 0.0 {
        return 0.0;
    }
    let sum_of_squares: f64 = history
        .buckets
        .values()
        .map(|&count| (count as f64) * (count as f64))
        .sum();
    let variance = (sum_of_squares / n - mean * mean).max(0.0);
    variance.sqrt() / mean
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default policy without the keep-alive floor, so the windows
    /// show the percentiles themselves.
    fn policy() -> KeepAlivePolicy {
        KeepAlivePolicy::new(KeepAliveConfig {
            min_keep_alive: Duration::ZERO,
            ..KeepAliveConfig::default()
        })
    }

    /// Runs `idle_times` through the history: each activation arrives that
    /// long after the previous one ended, and runs for 10 ms.
    fn history_of(policy: &KeepAlivePolicy, idle_times: &[Duration]) -> IdleHistory {
        let mut history = IdleHistory::new();
        let mut now = Instant::now();
        policy.record_arrival(&mut history, now);
        now += Duration::from_millis(10);
        policy.record_idle(&mut history, now);
        for idle in idle_times {
            now += *idle;
            policy.record_arrival(&mut history, now);
            now += Duration::from_millis(10);
            policy.record_idle(&mut history, now);
        }
        history
    }

    #[test]
    fn uniform_arrivals_keep_the_enclave_until_just_past_the_99th_percentile() {
        let policy = policy();
        let every = Duration::from_millis(10_400);
        let history = history_of(&policy, &[every; 50]);
        let window = policy.window(&history);
        assert_eq!(window.basis, WindowBasis::Histogram);
        // The idle time, rounded up to its bucket, plus 10%.
        assert_eq!(window.keep_alive, Duration::from_secs(11).mul_f64(1.1));
        assert!(window.keep_alive > every);
        // A 9 s pre-warm window is below `min_unload`: stay loaded.
        assert_eq!(window.prewarm, Duration::ZERO);
    }

    #[test]
    fn a_rare_long_idle_time_does_not_move_the_window() {
        let policy = policy();
        let mut idle = vec![Duration::from_secs(5); 200];
        idle.push(Duration::from_secs(1800));
        let window = policy.window(&history_of(&policy, &idle));
        assert_eq!(window.basis, WindowBasis::Histogram);
        assert_eq!(window.keep_alive, Duration::from_secs(6).mul_f64(1.1));
    }

    #[test]
    fn too_few_samples_fall_back_to_the_fixed_keep_alive() {
        let policy = policy();
        assert_eq!(
            policy.window(&IdleHistory::new()),
            policy.fixed(WindowBasis::TooFewSamples)
        );
        let history = history_of(&policy, &[Duration::from_secs(5); 9]);
        let window = policy.window(&history);
        assert_eq!(window.basis, WindowBasis::TooFewSamples);
        assert_eq!(window.keep_alive, Duration::from_secs(600));
        assert_eq!(window.prewarm, Duration::ZERO);
    }

    #[test]
    fn idle_times_mostly_out_of_range_fall_back_to_the_fixed_keep_alive() {
        let policy = policy();
        let mut idle = vec![Duration::from_secs(2 * 3600); 12];
        idle.extend([Duration::from_secs(5); 8]);
        let history = history_of(&policy, &idle);
        assert_eq!(history.samples(), 20);
        let window = policy.window(&history);
        assert_eq!(window.basis, WindowBasis::OutOfRange);
        assert_eq!(window.keep_alive, policy.config().fixed_keep_alive);
    }

    #[test]
    fn idle_times_spread_over_the_range_fall_back_to_the_fixed_keep_alive() {
        let policy = policy();
        // One idle time in each of 3600 one-second buckets: flat.
        let idle: Vec<Duration> = (0..3600).map(Duration::from_secs).collect();
        let window = policy.window(&history_of(&policy, &idle));
        assert_eq!(window.basis, WindowBasis::Flat);
        assert_eq!(window.keep_alive, policy.config().fixed_keep_alive);
    }

    #[test]
    fn long_regular_idle_times_unload_and_prewarm_shortly_before_the_next_arrival() {
        let policy = policy();
        let history = history_of(&policy, &[Duration::from_millis(60_500); 30]);
        let window = policy.window(&history);
        assert_eq!(window.basis, WindowBasis::Histogram);
        // Head: the bucket's lower edge (60 s) less 10%.
        assert_eq!(window.prewarm, Duration::from_secs(54));
        // Tail: its upper edge (61 s) plus 10%.
        assert_eq!(window.keep_alive, Duration::from_secs(61).mul_f64(1.1));
        assert!(window.prewarm < Duration::from_millis(60_500));
        assert!(window.keep_alive > Duration::from_millis(60_500));
    }

    #[test]
    fn the_head_is_the_5th_percentile_and_the_tail_the_99th() {
        let policy = policy();
        // 100 idle times: 5 at 40 s, 94 at 100 s, 1 at 200 s.
        let mut idle = vec![Duration::from_secs(40); 5];
        idle.extend([Duration::from_secs(100); 94]);
        idle.push(Duration::from_secs(200));
        let window = policy.window(&history_of(&policy, &idle));
        assert_eq!(window.basis, WindowBasis::Histogram);
        assert_eq!(window.prewarm, Duration::from_secs(36));
        assert_eq!(window.keep_alive, Duration::from_secs(101).mul_f64(1.1));
    }

    #[test]
    fn a_busy_action_keeps_its_enclave_for_the_floor_not_a_second() {
        let policy = KeepAlivePolicy::new(KeepAliveConfig::default());
        // Back-to-back activations: every idle time is in the first bucket.
        let mut idle = vec![Duration::from_millis(1); 10_000];
        idle.extend([Duration::from_secs(2); 20]);
        let window = policy.window(&history_of(&policy, &idle));
        assert_eq!(window.basis, WindowBasis::Histogram);
        assert_eq!(window.prewarm, Duration::ZERO);
        assert_eq!(window.keep_alive, policy.config().min_keep_alive);
        // Without the floor it would be the first bucket's edge plus 10%.
        assert_eq!(
            policy_without_floor_keep_alive(&idle),
            Duration::from_secs(1).mul_f64(1.1)
        );
        // A shorter fixed keep-alive lowers the floor with it.
        let short = KeepAlivePolicy::new(KeepAliveConfig {
            fixed_keep_alive: Duration::from_secs(5),
            ..KeepAliveConfig::default()
        });
        let window = short.window(&history_of(&short, &idle));
        assert_eq!(window.keep_alive, Duration::from_secs(5));
    }

    fn policy_without_floor_keep_alive(idle: &[Duration]) -> Duration {
        let policy = policy();
        policy.window(&history_of(&policy, idle)).keep_alive
    }

    #[test]
    fn no_idle_time_is_recorded_before_the_action_first_went_idle() {
        let policy = policy();
        let mut history = IdleHistory::new();
        let now = Instant::now();
        policy.record_arrival(&mut history, now);
        policy.record_arrival(&mut history, now + Duration::from_secs(1));
        assert_eq!(history.samples(), 0);
        policy.record_idle(&mut history, now + Duration::from_secs(2));
        policy.record_arrival(&mut history, now + Duration::from_secs(5));
        assert_eq!(history.samples(), 1);
        assert_eq!(history.idle_since(), Some(now + Duration::from_secs(2)));
    }
}
