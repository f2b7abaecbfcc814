//! Reading a cmd event's data into a validated [`CommandSpec`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde_json::{Map, Value};

/// The fields a cmd event's data may have, in the order error messages list them.
const FIELDS: [&str; 7] = ["executable", "args", "cwd", "env", "stdin", "stdout_file", "stderr_file"];

/// The longest piece of user input quoted back in an error message, in characters.
const QUOTE_LIMIT: usize = 64;

/// A program to run, as a cmd event's data describes it, checked field by field.
///
/// Every string is free of NUL bytes (which the OS cannot pass on), the executable and paths are
/// non-empty and environment names are valid. Whether the program, directory and files exist is
/// only known when the command runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CommandSpec {
    /// The program: a name looked up in `PATH` (the child's, if `env` sets one), or a path.
    /// Whether a relative path is taken from the bus's directory or from `cwd` is up to the
    /// platform (std does not promise either), so events should use absolute paths.
    pub(super) executable: String,
    /// Arguments, passed verbatim: no shell ever sees them.
    pub(super) args: Vec<String>,
    /// The working directory; the bus's own when `None`.
    pub(super) cwd: Option<PathBuf>,
    /// Variables added to (or replacing those of) the inherited environment.
    pub(super) env: BTreeMap<String, String>,
    /// Bytes fed to the program's stdin, which is `/dev/null` when `None`.
    pub(super) stdin: Option<String>,
    /// A file that receives stdout instead of the result; relative to `cwd`.
    pub(super) stdout_file: Option<PathBuf>,
    /// A file that receives stderr instead of the result; relative to `cwd`.
    pub(super) stderr_file: Option<PathBuf>,
}

impl CommandSpec {
    /// Reads and validates a cmd event's data.
    ///
    /// The data must be an object with a non-empty `executable` string and may have `args`
    /// (array of strings), `cwd` (string), `env` (object of strings), `stdin` (string),
    /// `stdout_file` and `stderr_file` (strings). An optional field set to `null` counts as
    /// absent. Any other field is an error, so that a typo such as `arg` is reported rather
    /// than silently ignored.
    ///
    /// # Errors
    ///
    /// Returns an error naming the first field found wrong and what was expected of it. Any
    /// JSON value is accepted as input; none makes this panic.
    pub(crate) fn from_value(data: &Value) -> Result<CommandSpec, CommandSpecError> {
        let Value::Object(map) = data else {
            return Err(CommandSpecError::new(None, SpecErrorKind::NotAnObject { found: type_name(data) }));
        };
        if let Some(name) = map.keys().find(|name| !FIELDS.contains(&name.as_str())) {
            return Err(CommandSpecError::new(None, SpecErrorKind::UnknownField { name: quote(name) }));
        }
        let executable = match field(map, "executable") {
            Some(value) => non_empty(text(value, "executable")?, "executable")?,
            None => return Err(CommandSpecError::new(Some("executable"), SpecErrorKind::Missing)),
        };
        Ok(CommandSpec {
            executable,
            args: field(map, "args").map(args).transpose()?.unwrap_or_default(),
            cwd: path(map, "cwd")?,
            env: field(map, "env").map(env).transpose()?.unwrap_or_default(),
            // Bytes for a pipe, so NUL is fine here.
            stdin: field(map, "stdin").map(|value| string(value, "stdin").map(str::to_owned)).transpose()?,
            stdout_file: path(map, "stdout_file")?,
            stderr_file: path(map, "stderr_file")?,
        })
    }

    /// Returns the program to run, as given.
    pub(crate) fn executable(&self) -> &str {
        &self.executable
    }
}

/// Returns the value of `name` in `map`, treating `null` as absent.
fn field<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    map.get(name).filter(|value| !value.is_null())
}

/// Reads a string field that the OS will see, so it must not contain NUL.
fn text(value: &Value, name: &'static str) -> Result<String, CommandSpecError> {
    let text = string(value, name)?;
    if text.contains('\0') {
        return Err(CommandSpecError::new(Some(name), SpecErrorKind::Nul { at: None }));
    }
    Ok(text.to_owned())
}

/// Reads a string field.
fn string<'a>(value: &'a Value, name: &'static str) -> Result<&'a str, CommandSpecError> {
    value.as_str().ok_or_else(|| {
        CommandSpecError::new(
            Some(name),
            SpecErrorKind::WrongType { expected: "a string", found: type_name(value) },
        )
    })
}

/// Rejects an empty string.
fn non_empty(text: String, name: &'static str) -> Result<String, CommandSpecError> {
    if text.is_empty() {
        return Err(CommandSpecError::new(Some(name), SpecErrorKind::Empty));
    }
    Ok(text)
}

/// Reads an optional, non-empty path field.
fn path(map: &Map<String, Value>, name: &'static str) -> Result<Option<PathBuf>, CommandSpecError> {
    field(map, name).map(|value| Ok(PathBuf::from(non_empty(text(value, name)?, name)?))).transpose()
}

/// Reads `args`: an array of strings without NUL.
fn args(value: &Value) -> Result<Vec<String>, CommandSpecError> {
    const EXPECTED: &str = "an array of strings";
    let Value::Array(items) = value else {
        return Err(CommandSpecError::new(
            Some("args"),
            SpecErrorKind::WrongType { expected: EXPECTED, found: type_name(value) },
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let at = Location::Index(index);
            let Value::String(arg) = item else {
                return Err(CommandSpecError::new(
                    Some("args"),
                    SpecErrorKind::WrongItem { expected: EXPECTED, found: type_name(item), at },
                ));
            };
            if arg.contains('\0') {
                return Err(CommandSpecError::new(Some("args"), SpecErrorKind::Nul { at: Some(at) }));
            }
            Ok(arg.clone())
        })
        .collect()
}

/// Reads `env`: an object whose keys are variable names and whose values are strings.
fn env(value: &Value) -> Result<BTreeMap<String, String>, CommandSpecError> {
    const EXPECTED: &str = "an object of strings";
    let Value::Object(vars) = value else {
        return Err(CommandSpecError::new(
            Some("env"),
            SpecErrorKind::WrongType { expected: EXPECTED, found: type_name(value) },
        ));
    };
    vars.iter()
        .map(|(name, item)| {
            // The OS stores variables as "NAME=value" C strings: '=' would end the name early
            // and NUL would end the whole entry.
            if name.is_empty() || name.contains(['=', '\0']) {
                return Err(CommandSpecError::new(
                    Some("env"),
                    SpecErrorKind::BadEnvName { name: quote(name) },
                ));
            }
            let at = Location::Key(quote(name));
            let Value::String(text) = item else {
                return Err(CommandSpecError::new(
                    Some("env"),
                    SpecErrorKind::WrongItem { expected: EXPECTED, found: type_name(item), at },
                ));
            };
            if text.contains('\0') {
                return Err(CommandSpecError::new(Some("env"), SpecErrorKind::Nul { at: Some(at) }));
            }
            Ok((name.clone(), text.clone()))
        })
        .collect()
}

/// Names a JSON value's type the way error messages say it.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Shortens user input for an error message, so a huge key cannot make a huge message.
fn quote(text: &str) -> String {
    match text.char_indices().nth(QUOTE_LIMIT) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// Invalid data in a cmd event: says which field was wrong and what was expected.
///
/// Always a permanent failure: the same data fails the same way on every attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CommandSpecError {
    /// The field at fault, or `None` when the problem is the data as a whole.
    field: Option<&'static str>,
    /// What was wrong with it.
    kind: SpecErrorKind,
}

/// What was wrong with a cmd event's data.
#[derive(Clone, Debug, PartialEq, Eq)]
enum SpecErrorKind {
    /// The data is not a JSON object.
    NotAnObject {
        /// The JSON type found instead.
        found: &'static str,
    },
    /// The data has a field busbar does not know.
    UnknownField {
        /// The field's name, shortened.
        name: String,
    },
    /// A required field is absent or null.
    Missing,
    /// A field has the wrong JSON type.
    WrongType {
        /// What the field must be.
        expected: &'static str,
        /// The JSON type found instead.
        found: &'static str,
    },
    /// An element of an array or object field has the wrong JSON type.
    WrongItem {
        /// What the field must be.
        expected: &'static str,
        /// The JSON type of the offending element.
        found: &'static str,
        /// Where the element is.
        at: Location,
    },
    /// A field that must say something is empty.
    Empty,
    /// A string the OS would see contains a NUL byte.
    Nul {
        /// Where in an array or object field; `None` for a plain string field.
        at: Option<Location>,
    },
    /// An `env` key that cannot be an environment variable name.
    BadEnvName {
        /// The key, shortened.
        name: String,
    },
}

/// Where an element sits in an array or object field.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Location {
    /// A position in an array.
    Index(usize),
    /// A key of an object, shortened.
    Key(String),
}

impl CommandSpecError {
    /// Creates an error about `field` (or the whole data when `None`).
    fn new(field: Option<&'static str>, kind: SpecErrorKind) -> CommandSpecError {
        CommandSpecError { field, kind }
    }

    /// Returns the name of the field at fault, or `None` if the data as a whole was wrong
    /// (not an object, or an unknown field).
    #[cfg(test)]
    pub(crate) fn field(&self) -> Option<&'static str> {
        self.field
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Index(index) => write!(f, "at index {index}"),
            Location::Key(key) => write!(f, "at key `{key}`"),
        }
    }
}

impl fmt::Display for CommandSpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cmd event data: ")?;
        let field = self.field.unwrap_or("data");
        match &self.kind {
            SpecErrorKind::NotAnObject { found } => {
                write!(f, "expected an object with at least an `executable` string, found {found}")
            }
            SpecErrorKind::UnknownField { name } => {
                write!(f, "unknown field `{name}`, expected one of ")?;
                for (i, known) in FIELDS.iter().enumerate() {
                    let separator = if i == 0 { "" } else { ", " };
                    write!(f, "{separator}`{known}`")?;
                }
                Ok(())
            }
            SpecErrorKind::Missing => write!(
                f,
                "`{field}` is missing; expected the program to run, as a name looked up in PATH \
                 or a path"
            ),
            SpecErrorKind::WrongType { expected, found } => {
                write!(f, "`{field}` must be {expected}, found {found}")
            }
            SpecErrorKind::WrongItem { expected, found, at } => {
                write!(f, "`{field}` must be {expected}, found {found} {at}")
            }
            SpecErrorKind::Empty => write!(f, "`{field}` must not be empty"),
            SpecErrorKind::Nul { at: None } => {
                write!(f, "`{field}` must not contain NUL bytes")
            }
            SpecErrorKind::Nul { at: Some(at) } => {
                write!(f, "`{field}` must not contain NUL bytes, found one {at}")
            }
            SpecErrorKind::BadEnvName { name } => write!(
                f,
                "`{field}` key `{name}` is not a variable name; names must be non-empty and \
                 contain no `=` or NUL"
            ),
        }
    }
}

impl std::error::Error for CommandSpecError {}
