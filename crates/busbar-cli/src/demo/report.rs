//! How the tour prints: numbered steps, indented lines, checks, and the final verdict.

use std::error::Error;
use std::fmt::Display;
use std::process::ExitCode;
use std::time::Duration;

use busbar::EventResult;

/// What a step returns: `Err` is something the step could not even try, an unexpected outcome.
pub(crate) type StepResult = Result<(), Box<dyn Error>>;

/// The tour's progress: the current step and everything unexpected so far.
#[derive(Debug, Default)]
pub(crate) struct Tour {
    steps: usize,
    unexpected: Vec<String>,
}

impl Tour {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Runs one numbered step; an error it returns counts as unexpected.
    pub(crate) fn step(&mut self, title: &str, step: impl FnOnce(&mut Tour) -> StepResult) {
        self.steps += 1;
        println!("\n{}. {title}", self.steps);
        if let Err(error) = step(self) {
            self.unexpected(format!("the step stopped: {error}"));
        }
    }

    /// Prints a line of the current step.
    pub(crate) fn say(&self, line: impl Display) {
        println!("   {line}");
    }

    /// Prints what was checked: `✓` if it held, otherwise records it as unexpected.
    pub(crate) fn check(&mut self, held: bool, what: impl Display) {
        if held {
            println!("   ✓ {what}");
        } else {
            self.unexpected(format!("expected {what}"));
        }
    }

    fn unexpected(&mut self, what: String) {
        eprintln!("   ✗ UNEXPECTED: {what}");
        self.unexpected.push(format!("step {}: {what}", self.steps));
    }

    /// Prints the verdict and returns the exit code: failure if anything was unexpected.
    pub(crate) fn finish(self) -> ExitCode {
        if self.unexpected.is_empty() {
            println!("\nAll {} steps behaved as expected.", self.steps);
            ExitCode::SUCCESS
        } else {
            eprintln!("\n{} unexpected outcome(s):", self.unexpected.len());
            for what in &self.unexpected {
                eprintln!("  - {what}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Describes a result in one line: outcome, data or error, attempts and duration.
pub(crate) fn describe(result: &EventResult) -> String {
    let attempts = match result.attempts {
        1 => "1 attempt".to_owned(),
        n => format!("{n} attempts"),
    };
    let took = millis(result.duration);
    if result.success {
        format!("success, data {}, {attempts}, {took}", result.data)
    } else {
        let kind = result.error_kind.map_or_else(|| "failure".to_owned(), |kind| kind.to_string());
        let message = result.error_message.as_deref().unwrap_or("no message");
        format!("failed ({kind}) after {attempts}, {took}: {message}")
    }
}

/// A duration for people: `850 µs` below a millisecond, `12.3 ms` above.
pub(crate) fn millis(duration: Duration) -> String {
    if duration < Duration::from_millis(1) {
        format!("{} µs", duration.as_micros())
    } else {
        format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
    }
}
