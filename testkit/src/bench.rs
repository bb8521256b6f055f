//! What the workspace's benchmarks share: their two modes, the measures they take, and the
//! verdict on a ratio against a peer measured in the same run.
//!
//! A bench target is a plain `main` (`harness = false`) with `test = true`, so it runs twice
//! over. `cargo bench` passes `--bench`: the full run, on realistic sizes, for a person to read.
//! `cargo test` passes nothing: a check of a few seconds on small sizes, which CI runs with the
//! rest of the suite and which fails (exit 1) when a ratio misses its goal by more than the noise
//! margin. `--check` asks for the check under `cargo bench` too. Absolute figures move with the
//! machine; ratios against a peer that ran on the same machine in the same minute do not, which
//! is why every goal is one.

use std::time::Duration;

/// How long and how hard a bench runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `cargo bench`: the full measurement; goals missed are reported, not fatal.
    Full,
    /// `cargo test` or `--check`: small sizes, and a missed goal fails the run.
    Check,
}

impl Mode {
    /// The mode this process was started in (see the module docs).
    pub fn from_args() -> Self {
        Self::of(std::env::args().skip(1))
    }

    fn of(args: impl IntoIterator<Item = String>) -> Self {
        let args: Vec<String> = args.into_iter().collect();
        if args.iter().any(|a| a == "--check") || !args.iter().any(|a| a == "--bench") {
            Mode::Check
        } else {
            Mode::Full
        }
    }

    /// `full` in a full run, `check` in a check.
    pub fn pick<T>(self, full: T, check: T) -> T {
        match self {
            Mode::Full => full,
            Mode::Check => check,
        }
    }
}

/// Which way a ratio of ours over the peer's is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// Throughput-like: ours ÷ peer must reach the goal.
    Higher,
    /// Cost-like: ours ÷ peer must stay under the goal.
    Lower,
}

/// One figure of ours against the same figure of a peer, and the ratio it must meet.
#[derive(Debug, Clone)]
pub struct Goal {
    /// What is compared, with its unit (`frames per CPU-second`).
    pub what: String,
    pub ours: f64,
    pub peer: f64,
    /// The peer's name (`ffmpeg`, `nginx-rtmp`).
    pub peer_name: String,
    pub better: Better,
    /// The ratio ours ÷ peer the full run is held to.
    pub goal: f64,
    /// The relative slack a check allows for noise on a short run (0.25: a higher-is-better goal
    /// of 0.9 fails a check below 0.675).
    pub margin: f64,
}

impl Goal {
    pub fn ratio(&self) -> f64 {
        self.ours / self.peer
    }

    /// The ratio a check must meet: the goal moved by the margin in the forgiving direction.
    pub fn check_bound(&self) -> f64 {
        match self.better {
            Better::Higher => self.goal * (1.0 - self.margin),
            Better::Lower => self.goal * (1.0 + self.margin),
        }
    }

    fn met(&self, bound: f64) -> bool {
        let ratio = self.ratio();
        ratio.is_finite()
            && match self.better {
                Better::Higher => ratio >= bound,
                Better::Lower => ratio <= bound,
            }
    }
}

/// Prints every goal with its ratio; in a check, exits the process with 1 when one is missed by
/// more than its margin (so `cargo test` fails), after printing all of them.
pub fn judge(mode: Mode, goals: &[Goal]) {
    let mut missed = Vec::new();
    for goal in goals {
        let sign = match goal.better {
            Better::Higher => ">=",
            Better::Lower => "<=",
        };
        let (bound, verdict) = match mode {
            Mode::Full => (
                goal.goal,
                if goal.met(goal.goal) {
                    "met"
                } else {
                    "NOT met"
                },
            ),
            Mode::Check => {
                let bound = goal.check_bound();
                (bound, if goal.met(bound) { "passed" } else { "FAILED" })
            }
        };
        println!(
            "{}: ours {:.3}, {} {:.3}: ratio {:.3} (goal {sign} {:.3}{}) {verdict}",
            goal.what,
            goal.ours,
            goal.peer_name,
            goal.peer,
            goal.ratio(),
            bound,
            if mode == Mode::Check {
                format!(", {:.0} % noise margin", goal.margin * 100.0)
            } else {
                String::new()
            },
        );
        if !goal.met(bound) {
            missed.push(goal.what.clone());
        }
    }
    if mode == Mode::Check && !missed.is_empty() {
        eprintln!("bench check failed: {}", missed.join(", "));
        std::process::exit(1);
    }
}

/// `name` from the environment parsed as `T`, or `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Whose CPU time [`cpu_time`] reads.
#[derive(Debug, Clone, Copy)]
pub enum Who {
    /// This process.
    Myself,
    /// Its children that were waited for.
    Children,
}

/// User + system CPU time of this process or of its waited-for children.
pub fn cpu_time(who: Who) -> Duration {
    let who = match who {
        Who::Myself => libc::RUSAGE_SELF,
        Who::Children => libc::RUSAGE_CHILDREN,
    };
    // SAFETY: getrusage fills the struct we pass.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(who, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Peak resident memory of this process so far, in MiB.
pub fn peak_rss_mib() -> f64 {
    // SAFETY: getrusage fills the struct we pass.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    usage.ru_maxrss as f64 / 1024.0
}

/// The median of `values` (the upper one of an even count); NaN when empty.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn cargo_bench_runs_in_full_and_cargo_test_or_check_in_check_mode() {
        assert_eq!(Mode::of(args(&["--bench"])), Mode::Full);
        assert_eq!(Mode::of(args(&[])), Mode::Check);
        assert_eq!(Mode::of(args(&["--bench", "--check"])), Mode::Check);
    }

    fn goal(ours: f64, better: Better) -> Goal {
        Goal {
            what: "x".into(),
            ours,
            peer: 100.0,
            peer_name: "peer".into(),
            better,
            goal: 0.8,
            margin: 0.25,
        }
    }

    #[test]
    fn a_check_allows_the_margin_in_the_forgiving_direction_only() {
        assert!((goal(0.0, Better::Higher).check_bound() - 0.6).abs() < 1e-12);
        assert!(goal(61.0, Better::Higher).met(0.6));
        assert!(!goal(59.0, Better::Higher).met(0.6));
        assert!((goal(0.0, Better::Lower).check_bound() - 1.0).abs() < 1e-12);
        assert!(goal(99.0, Better::Lower).met(1.0));
        assert!(!goal(101.0, Better::Lower).met(1.0));
        assert!(
            !goal(f64::NAN, Better::Lower).met(1.0),
            "no figure is no pass"
        );
    }

    #[test]
    fn the_median_takes_the_middle_value() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 3.0);
        assert!(median(Vec::new()).is_nan());
    }
}
