//! The progress bar on stderr: which scenario runs and which repetition.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// One step per scenario; the message names the scenario and its repetition.
///
/// Hidden with `--json` and when stderr is not a terminal. It redraws only when told (no
/// ticker thread), so it adds no wake-ups to the measurements.
#[derive(Debug)]
pub(super) struct Progress {
    bar: ProgressBar,
    scenario: std::cell::Cell<&'static str>,
}

impl Progress {
    pub(super) fn new(scenarios: usize, visible: bool) -> Progress {
        let bar = if visible && std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(scenarios as u64);
            let style = ProgressStyle::with_template("[{bar:24}] {pos}/{len} scenarios, {elapsed}: {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            bar.set_style(style);
            bar
        } else {
            ProgressBar::hidden()
        };
        Progress { bar, scenario: std::cell::Cell::new("") }
    }

    pub(super) fn start(&self, scenario: &'static str) {
        self.scenario.set(scenario);
        self.bar.set_message(scenario);
    }

    /// Shows the repetition under way (1-based).
    pub(super) fn rep(&self, rep: usize, reps: usize) {
        self.bar.set_message(format!("{}, repetition {rep} of {reps}", self.scenario.get()));
    }

    pub(super) fn finish_scenario(&self) {
        self.bar.inc(1);
    }

    pub(super) fn clear(&self) {
        self.bar.finish_and_clear();
    }
}
