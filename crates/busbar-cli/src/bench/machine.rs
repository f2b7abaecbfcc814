//! The machine the figures come from, printed above the table and included in the JSON.

use std::fmt;

use serde::Serialize;

/// What ran the bench: enough to tell two tables apart.
#[derive(Debug, Serialize)]
pub(super) struct Machine {
    /// Logical CPUs this process may use (`nproc`).
    cpus: usize,
    /// The CPU model from `/proc/cpuinfo`.
    cpu_model: String,
    /// The kernel release.
    kernel: String,
    /// The 1, 5 and 15 minute load averages when the bench started: other work on the machine.
    load_average: String,
    /// `release` or `debug`: a debug build's figures say nothing about busbar.
    build: &'static str,
    /// `full` or `quick`.
    run: &'static str,
}

impl Machine {
    pub(super) fn detect(quick: bool) -> Machine {
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            cpu_model: cpu_model().unwrap_or_else(|| "unknown CPU".to_owned()),
            kernel: read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".to_owned()),
            load_average: read_trimmed("/proc/loadavg")
                .map(|line| line.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
                .unwrap_or_else(|| "unknown".to_owned()),
            build: if cfg!(debug_assertions) { "debug" } else { "release" },
            run: if quick { "quick" } else { "full" },
        }
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} run, {} build\nmachine: {} logical CPUs, {}, Linux {}, load average {} at start",
            self.run, self.build, self.cpus, self.cpu_model, self.kernel, self.load_average
        )?;
        if self.build == "debug" {
            write!(f, "\nwarning: a debug build; measure with `cargo run --release -p busbar-cli -- bench`")?;
        }
        Ok(())
    }
}

fn cpu_model() -> Option<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_owned())
    })
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|text| text.trim().to_owned())
}
