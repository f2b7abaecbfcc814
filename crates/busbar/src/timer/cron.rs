//! Cron expressions for [`EventBus::schedule_cron`](crate::EventBus::schedule_cron), parsed
//! and evaluated by the `croner` crate, in UTC.
//!
//! `croner` was chosen over the `cron` crate because it reads the standard five-field crontab
//! syntax (`*/5 * * * *`) as cron users write it, with an optional leading seconds field,
//! where `cron` insists on a seconds field.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

/// A parsed cron expression.
pub(crate) struct CronSchedule {
    expression: String,
    cron: croner::Cron,
}

impl CronSchedule {
    /// Parses `expression` and checks that it matches some time in the future.
    pub(crate) fn parse(expression: &str) -> Result<Self, CronError> {
        let cron = croner::Cron::from_str(expression).map_err(|error| CronError::new(expression, &error))?;
        let schedule = CronSchedule { expression: expression.to_owned(), cron };
        if schedule.next_after(Utc::now()).is_none() {
            return Err(CronError {
                expression: expression.to_owned(),
                reason: "it matches no time in the future".to_owned(),
            });
        }
        Ok(schedule)
    }

    /// Returns the first time strictly after `after` that the expression matches.
    pub(crate) fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&after, false).ok()
    }

    pub(crate) fn expression(&self) -> &str {
        &self.expression
    }
}

impl fmt::Debug for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CronSchedule").field(&self.expression).finish()
    }
}

/// The error of [`EventBus::schedule_cron`](crate::EventBus::schedule_cron): the expression
/// is not a cron expression, or never matches.
///
/// # Examples
///
/// ```
/// use busbar::{Event, EventBus};
///
/// let bus = EventBus::new();
/// let err = bus.schedule_cron("* * *", Event::new("report.daily")).unwrap_err();
/// assert_eq!(err.expression(), "* * *");
/// assert!(err.to_string().starts_with("invalid cron expression `* * *`: "), "{err}");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronError {
    expression: String,
    reason: String,
}

impl CronError {
    fn new(expression: &str, error: &croner::errors::CronError) -> Self {
        CronError { expression: expression.to_owned(), reason: reason(expression, error) }
    }

    /// Returns the expression that was refused.
    pub fn expression(&self) -> &str {
        &self.expression
    }
}

impl fmt::Display for CronError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid cron expression `{}`: {}", self.expression, self.reason)
    }
}

impl std::error::Error for CronError {}

/// The names of the fields of a cron expression with 5, 6 or 7 fields.
const FIELDS: [&str; 7] = ["second", "minute", "hour", "day-of-month", "month", "day-of-week", "year"];

/// Restates `croner`'s message in busbar's style (lowercase start, no trailing period), names
/// the field at fault when it can, and says what a valid expression looks like.
fn reason(expression: &str, error: &croner::errors::CronError) -> String {
    const EXPECTED: &str = "expected five fields (minute hour day-of-month month day-of-week), \
                            optionally preceded by seconds, such as `*/5 * * * *`";
    if expression.trim().is_empty() {
        return format!("the expression is empty; {EXPECTED}");
    }
    let message = error.to_string();
    // "Invalid pattern: Pattern must …" becomes "invalid pattern: pattern must …"; a name such
    // as "CronPattern" keeps its capitals.
    let message = message.trim_end_matches('.').split(": ").map(decapitalize).collect::<Vec<_>>().join(": ");
    match field_at_fault(expression) {
        Some((name, field)) => format!("{message} in the {name} field (`{field}`)"),
        None => format!("{message}; {EXPECTED}"),
    }
}

/// Lowercases the first letter of `text` if it begins an ordinary word (not `CronPattern`).
fn decapitalize(text: &str) -> String {
    let word = text.split_whitespace().next().unwrap_or_default();
    if word.chars().skip(1).any(char::is_uppercase) {
        return text.to_owned();
    }
    let mut chars = text.chars();
    chars.next().map(|first| first.to_lowercase().chain(chars).collect()).unwrap_or_default()
}

/// Finds the field that makes `expression` invalid: the first whose replacement by `*` makes
/// it parse. `None` if the number of fields is wrong or no single field is to blame.
fn field_at_fault(expression: &str) -> Option<(&'static str, &str)> {
    let fields: Vec<&str> = expression.split_whitespace().collect();
    let names = match fields.len() {
        5 => &FIELDS[1..6],
        6 => &FIELDS[..6],
        7 => &FIELDS[..],
        _ => return None,
    };
    (0..fields.len()).find_map(|index| {
        let mut repaired = fields.clone();
        repaired[index] = "*";
        croner::Cron::from_str(&repaired.join(" ")).is_ok().then(|| (names[index], fields[index]))
    })
}
