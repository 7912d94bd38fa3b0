//! CPU time: how busy the rest of the machine was while each scenario ran
//! (CPU time of every process but this one and its children, such as the
//! peer, from `/proc/stat` and `/proc/self/stat`: figures taken while
//! something else used the CPU are not worth much, and the report says how
//! much it did), and how this process's own CPU splits between the node
//! and the load generator.
//!
//! The split: the load generator runs on the main runtime, whose threads
//! are named [`CLIENT_THREAD`], and on the main thread; each node runs on
//! a runtime of its own (see `scenarios::Node`), and its other threads
//! (store writer, compilers, enclaves) have names of their own. So the
//! clients' CPU is the sum over the threads named so
//! (`/proc/self/task/*/stat`), and the node's is the process's less that.
//! A client thread that exits inside a window takes its ticks with it
//! (they then count as the node's); the main runtime's workers live as
//! long as the run.

use std::time::Instant;

use serde::Serialize;

/// Clock ticks per second of `/proc` CPU times (Linux's `USER_HZ`, 100 on
/// every architecture the kernel exports it for).
pub const USER_HZ: f64 = 100.0;

/// The name of the load generator's threads (the main runtime's).
pub const CLIENT_THREAD: &str = "bench-client";

/// CPU use by other processes during one scenario.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OtherLoad {
    /// The scenario.
    pub scenario: String,
    /// Seconds it ran.
    pub seconds: f64,
    /// Other processes' CPU time over that time, in % of one core.
    pub others_pct: f64,
}

/// CPU counters at one moment.
#[derive(Debug, Clone, Copy)]
pub struct CpuWatch {
    at: Instant,
    busy: u64,
    own: u64,
}

impl CpuWatch {
    /// Starts watching; `None` where `/proc` cannot be read.
    pub fn start() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        Some(Self {
            at: Instant::now(),
            busy: busy_ticks(&stat)?,
            own: own_ticks_now()?,
        })
    }

    /// Other processes' CPU since [`start`](Self::start).
    pub fn stop(self, scenario: &str) -> Option<OtherLoad> {
        let end = Self::start()?;
        let seconds = end.at.duration_since(self.at).as_secs_f64();
        Some(OtherLoad {
            scenario: scenario.to_owned(),
            seconds,
            others_pct: others_pct(
                end.busy.saturating_sub(self.busy),
                end.own.saturating_sub(self.own),
                seconds,
            ),
        })
    }
}

/// Busy ticks of all CPUs from `/proc/stat` text: user, nice, system, irq,
/// softirq and steal (not idle or iowait; guest time is already in user).
pub fn busy_ticks(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|line| line.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let field = |index: usize| fields.get(index).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal
    Some(field(0) + field(1) + field(2) + field(5) + field(6) + field(7))
}

/// This process's CPU ticks, with its waited-for children's, from
/// `/proc/self/stat` text (utime, stime, cutime, cstime).
pub fn own_ticks(stat: &str) -> Option<u64> {
    // The command name may hold spaces and parentheses: fields start after
    // the last ')'. Then state is field 3; utime is field 14.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |index: usize| fields.get(index)?.parse::<u64>().ok();
    Some(tick(11)? + tick(12)? + tick(13)? + tick(14)?)
}

/// This process's CPU ticks now (with its waited-for children's); `None`
/// where `/proc` cannot be read.
pub fn own_ticks_now() -> Option<u64> {
    own_ticks(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// The CPU ticks of this process's client threads now: the main thread
/// and those named [`CLIENT_THREAD`]. `None` where `/proc` cannot be read.
pub fn client_ticks_now() -> Option<u64> {
    let main = std::process::id().to_string();
    let mut total: u64 = 0;
    for entry in std::fs::read_dir("/proc/self/task").ok()? {
        let Ok(entry) = entry else { continue };
        // A thread that exited since the listing has no stat to read.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let is_main = entry.file_name().to_str() == Some(main.as_str());
        if let Some(ticks) = thread_ticks(&stat, is_main) {
            total = total.saturating_add(ticks);
        }
    }
    Some(total)
}

/// A thread's CPU ticks (utime + stime) from its `/proc/…/task/TID/stat`
/// text, if it is a client thread: `main`, or named [`CLIENT_THREAD`].
pub fn thread_ticks(stat: &str, main: bool) -> Option<u64> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?;
    if !main && !name.starts_with(CLIENT_THREAD) {
        return None;
    }
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    let tick = |index: usize| fields.get(index)?.parse::<u64>().ok();
    Some(tick(11)?.saturating_add(tick(12)?))
}

/// Others' busy ticks over `seconds`, in % of one core.
pub fn others_pct(busy: u64, own: u64, seconds: f64) -> f64 {
    if seconds <= 0.0 {
        return 0.0;
    }
    busy.saturating_sub(own) as f64 / USER_HZ / seconds * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_ticks_leave_out_idle_and_iowait() {
        let stat = "cpu  100 5 50 9000 40 3 2 1 0 0\ncpu0 50 2 25 4500 20 1 1 0 0 0\n";
        assert_eq!(busy_ticks(stat), Some(100 + 5 + 50 + 3 + 2 + 1));
        assert_eq!(busy_ticks("cpu0 1 2 3\n"), None, "the total line only");
        assert_eq!(busy_ticks("cpu  1 x 3\n"), None);
    }

    #[test]
    fn own_ticks_survive_odd_command_names() {
        let stat = "4242 (clem (my) s) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    700 300 20 10 20 0 12 0 100 0 0";
        assert_eq!(own_ticks(stat), Some(700 + 300 + 20 + 10));
        assert_eq!(own_ticks("4242 (x) S 1"), None);
        assert_eq!(own_ticks("no parenthesis"), None);
    }

    #[test]
    fn client_threads_are_the_main_one_and_those_named_so() {
        let stat =
            |name: &str| format!("77 ({name}) S 1 4242 4242 0 -1 4194560 100 0 0 0 70 30 5 5");
        assert_eq!(thread_ticks(&stat("bench-client"), false), Some(100));
        assert_eq!(thread_ticks(&stat("bench-node"), false), None);
        assert_eq!(thread_ticks(&stat("store-writer"), false), None);
        assert_eq!(thread_ticks(&stat("clemmys-bench"), true), Some(100));
        assert_eq!(thread_ticks("77 (bench-client) S", false), None);
        assert!(client_ticks_now().is_some() || !std::path::Path::new("/proc").exists());
    }

    #[test]
    fn others_are_what_this_process_did_not_use() {
        // 300 busy ticks in 2 s, 250 of them ours: 50 ticks = 0.25 core.
        assert!((others_pct(300, 250, 2.0) - 25.0).abs() < 1e-9);
        assert_eq!(others_pct(100, 200, 1.0), 0.0, "never negative");
        assert_eq!(others_pct(100, 0, 0.0), 0.0);
    }

    #[test]
    fn this_process_can_be_watched() {
        if let Some(watch) = CpuWatch::start() {
            let load = watch.stop("test").expect("stop");
            assert!(load.seconds >= 0.0 && load.others_pct >= 0.0);
        }
    }
}
