//! The results: one [`Row`] per measured figure, printed as a table or as JSON.

use serde::Serialize;

use super::machine::Machine;

/// One line of the results: busbar's figure beside its floor's, and the verdict.
#[derive(Debug, Serialize)]
pub(super) struct Row {
    /// The scenario's name on the command line (`--scenario`).
    pub(super) scenario: &'static str,
    /// What the row measures, as the table shows it.
    pub(super) title: String,
    pub(super) unit: Unit,
    pub(super) busbar: Figure,
    pub(super) floor: Option<Figure>,
    /// What the floor column is: `"floor"`, or for scaling busbar's own reference size.
    pub(super) reference: &'static str,
    /// busbar ÷ floor (for scaling: the large queue ÷ the small one).
    pub(super) ratio: Option<f64>,
    pub(super) target: Target,
    /// `None` for rows without a target.
    pub(super) met: Option<bool>,
    /// How many repetitions the medians are taken over.
    pub(super) reps: usize,
    /// How large one repetition is, e.g. "200 000 events".
    pub(super) size: String,
    /// What a reader needs to interpret the figure, printed under the table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) note: Option<String>,
}

impl Row {
    /// A row comparing busbar with its floor (or reference) under `target`.
    pub(super) fn new(
        scenario: &'static str,
        title: impl Into<String>,
        unit: Unit,
        busbar: Figure,
        floor: Figure,
        target: Target,
    ) -> Row {
        let ratio = (floor.value > 0.0).then(|| busbar.value / floor.value);
        Row {
            scenario,
            title: title.into(),
            unit,
            busbar,
            floor: Some(floor),
            reference: "floor",
            ratio,
            target,
            met: target.is_met(busbar.value, ratio),
            reps: 0,
            size: String::new(),
            note: None,
        }
    }

    /// Says how many repetitions of what size the medians come from.
    pub(super) fn runs(mut self, reps: usize, size: String) -> Row {
        self.reps = reps;
        self.size = size;
        self
    }

    /// Adds a note printed under the table.
    pub(super) fn note(mut self, note: String) -> Row {
        self.note = Some(note);
        self
    }

    /// Names what the floor column holds when it is not a hand-written floor.
    pub(super) fn reference(mut self, reference: &'static str) -> Row {
        self.reference = reference;
        self
    }
}

/// A median, with the median p99 for latencies.
#[derive(Clone, Copy, Debug, Serialize)]
pub(super) struct Figure {
    pub(super) value: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) p99: Option<f64>,
}

impl Figure {
    pub(super) fn of(value: f64) -> Figure {
        Figure { value, p99: None }
    }

    pub(super) fn latency(latency: super::stats::Latency) -> Figure {
        Figure { value: latency.p50, p99: Some(latency.p99) }
    }
}

/// The unit of a row's figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub(super) enum Unit {
    #[serde(rename = "ns/event")]
    NsPerEvent,
    #[serde(rename = "events/s")]
    EventsPerSecond,
    #[serde(rename = "µs")]
    Micros,
    #[serde(rename = "runs/s")]
    RunsPerSecond,
    #[serde(rename = "ms")]
    Millis,
    #[serde(rename = "bytes/event")]
    BytesPerEvent,
}

impl Unit {
    fn format(self, value: f64) -> String {
        match self {
            Unit::NsPerEvent => format!("{value:.0} ns/event"),
            Unit::EventsPerSecond => format!("{} events/s", si_rate(value)),
            Unit::Micros => format!("{value:.1} µs"),
            Unit::RunsPerSecond => format!("{value:.0} runs/s"),
            Unit::Millis => format!("{value:.3} ms"),
            Unit::BytesPerEvent => format!("{value:.0} B/event"),
        }
    }

    fn format_figure(self, figure: Figure) -> String {
        match figure.p99 {
            Some(p99) => format!("{} (p99 {p99:.1})", self.format(figure.value)),
            None => self.format(figure.value),
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Unit::NsPerEvent => "ns",
            Unit::EventsPerSecond => "events/s",
            Unit::Micros => "µs",
            Unit::RunsPerSecond => "runs/s",
            Unit::Millis => "ms",
            Unit::BytesPerEvent => "B",
        }
    }
}

/// What a row must show to meet issue 5's target.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "check", content = "bound", rename_all = "snake_case")]
pub(super) enum Target {
    /// busbar ÷ floor ≤ bound (times, latencies, memory).
    RatioAtMost(f64),
    /// busbar ÷ floor ≥ bound (throughputs).
    RatioAtLeast(f64),
    /// busbar's own figure ≤ bound, in the row's unit.
    AtMost(f64),
    /// No target: the figure is for information.
    None,
}

impl Target {
    fn is_met(self, value: f64, ratio: Option<f64>) -> Option<bool> {
        match self {
            Target::RatioAtMost(bound) => Some(ratio.is_some_and(|ratio| ratio <= bound)),
            Target::RatioAtLeast(bound) => Some(ratio.is_some_and(|ratio| ratio >= bound)),
            Target::AtMost(bound) => Some(value <= bound),
            Target::None => None,
        }
    }

    fn describe(self, unit: Unit, reference: &str) -> String {
        match self {
            Target::RatioAtMost(bound) => format!("≤ {bound}× {reference}"),
            Target::RatioAtLeast(bound) => format!("≥ {bound}× {reference}"),
            Target::AtMost(bound) => format!("≤ {bound} {}", unit.symbol()),
            Target::None => "(none)".to_owned(),
        }
    }
}

/// Prints what ran where, before the scenarios start.
pub(super) fn print_header(machine: &Machine) {
    println!("busbar {} bench: {machine}", env!("CARGO_PKG_VERSION"));
    println!();
}

/// Prints the rows as an aligned table, then how to read it.
pub(super) fn print_table(rows: &[Row]) {
    let mut lines = vec![[
        "scenario".to_owned(),
        "busbar".to_owned(),
        "floor".to_owned(),
        "ratio".to_owned(),
        "target".to_owned(),
        "result".to_owned(),
        "runs".to_owned(),
    ]];
    for row in rows {
        lines.push([
            row.title.clone(),
            row.unit.format_figure(row.busbar),
            match (row.floor, row.reference) {
                (Some(floor), "floor") => row.unit.format_figure(floor),
                (Some(floor), reference) => format!("{} ({reference})", row.unit.format_figure(floor)),
                (None, _) => "-".to_owned(),
            },
            row.ratio.map_or_else(|| "-".to_owned(), |ratio| format!("{ratio:.2}×")),
            row.target.describe(row.unit, row.reference),
            match row.met {
                Some(true) => "met".to_owned(),
                Some(false) => "NOT MET".to_owned(),
                None => "info".to_owned(),
            },
            format!("{} × {}", row.reps, row.size),
        ]);
    }
    let mut widths = [0; 7];
    for line in &lines {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for line in &lines {
        let cells: Vec<String> =
            line.iter().zip(widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        println!("{}", cells.join("  ").trim_end());
    }
    let notes: Vec<&Row> = rows.iter().filter(|row| row.note.is_some()).collect();
    if !notes.is_empty() {
        println!();
        for row in notes {
            let text = format!("{}: {}", row.title, row.note.as_deref().unwrap_or_default());
            for line in wrap(&text, NOTE_WIDTH) {
                println!("{line}");
            }
        }
    }
    println!();
    println!("{}", LEGEND.trim());
}

/// Width the notes under the table are wrapped to.
const NOTE_WIDTH: usize = 100;

/// Splits `text` into lines of at most `width` characters at spaces, indenting continuations.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::replace(&mut line, "  ".to_owned()));
        }
        if !line.is_empty() && line != "  " {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.trim().is_empty() {
        lines.push(line);
    }
    lines
}

/// How to read the table, printed under it.
const LEGEND: &str = "
Figures are medians over the repetitions in `runs`; busbar and its floor alternate within one
process, so their ratio (busbar ÷ floor) is steadier than either figure. Latencies show p50 with
the median p99 in brackets; sync times chunks of 1 000 events and cmd single runs, taking medians,
so that moments when other processes held the CPU drop out. On a machine shared with other work,
expect absolute figures to move by 10-20 % between runs and ratios by less; throughputs that need
both cores (thread throughput, corelet throughput) move most. Floors (hand-written, no busbar code;
the round-trip floors wait as busbar does: they watch for 50 µs, yielding, before they sleep):
  sync               build the same Event, call the same handler through &dyn
  thread throughput  Mutex<BinaryHeap> + Condvar pool, same worker count, same handler
  thread round trip  one bare worker thread fed by a channel, reply on a oneshot
  corelet            a child process echoing a request-sized frame over pipes
  cmd                std::process::Command::new(\"true\"), own process group, spawn + wait
  timer              a thread sleeping until each scheduled instant (target is absolute)
  memory             the thread-throughput floor's queue holding the same events (target absolute)
  scaling            busbar itself with 1 000 events queued (ratio = 1 000 000 queued ÷ 1 000)";

/// The JSON document `--json` prints.
#[derive(Serialize)]
struct Report<'a> {
    busbar_version: &'static str,
    machine: &'a Machine,
    results: &'a [Row],
    errors: &'a [String],
}

/// Prints the results as one JSON document on stdout.
pub(super) fn print_json(machine: &Machine, rows: &[Row], errors: &[String]) {
    let report = Report { busbar_version: env!("CARGO_PKG_VERSION"), machine, results: rows, errors };
    match serde_json::to_string_pretty(&report) {
        Ok(json) => println!("{json}"),
        Err(error) => eprintln!("error: cannot encode the results as JSON: {error}"),
    }
}

/// Formats a rate with a k or M suffix.
pub(super) fn si_rate(value: f64) -> String {
    if value >= 1e6 {
        format!("{:.2}M", value / 1e6)
    } else if value >= 1e3 {
        format!("{:.1}k", value / 1e3)
    } else {
        format!("{value:.0}")
    }
}

/// Groups digits by thousands with spaces, as issue 5 writes sizes: `1 000 000`.
pub(super) fn grouped(count: usize) -> String {
    let digits = count.to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(' ');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn grouping() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000), "1 000");
        assert_eq!(grouped(1_000_000), "1 000 000");
    }

    #[test]
    fn wrapping() {
        assert_eq!(wrap("a bb ccc dddd", 6), ["a bb", "  ccc", "  dddd"]);
        assert_eq!(wrap("short", 80), ["short"]);
    }

    #[test]
    fn targets() {
        assert_eq!(Target::RatioAtMost(3.0).is_met(1.0, Some(2.9)), Some(true));
        assert_eq!(Target::RatioAtLeast(0.5).is_met(1.0, Some(0.4)), Some(false));
        assert_eq!(Target::AtMost(1.0).is_met(1.2, None), Some(false));
        assert_eq!(Target::None.is_met(1.0, Some(1.0)), None);
        assert_eq!(Target::RatioAtLeast(0.7).describe(Unit::EventsPerSecond, "at 1 000"), "≥ 0.7× at 1 000");
    }
}
