//! Validation of cmd event data: every bad input gets a clear error, none a panic.

use serde_json::json;

use super::*;

#[test]
fn bad_data() {
    let cases = [
        (json!(null), "expected an object with at least an `executable` string, found null"),
        (json!([1]), "expected an object with at least an `executable` string, found array"),
        (json!("ls"), "expected an object with at least an `executable` string, found string"),
        (json!({}), "`executable` is missing; expected the program to run, as a name looked up in PATH or a path"),
        (json!({"executable": null}), "`executable` is missing"),
        (json!({"executable": ""}), "`executable` must not be empty"),
        (json!({"executable": 5}), "`executable` must be a string, found number"),
        (json!({"executable": "a\0b"}), "`executable` must not contain NUL bytes"),
        (json!({"executable": "ls", "args": "-l"}), "`args` must be an array of strings, found string"),
        (json!({"executable": "ls", "args": ["-l", 1]}), "`args` must be an array of strings, found number at index 1"),
        (json!({"executable": "ls", "args": ["\0"]}), "`args` must not contain NUL bytes, found one at index 0"),
        (json!({"executable": "ls", "cwd": 7}), "`cwd` must be a string, found number"),
        (json!({"executable": "ls", "cwd": ""}), "`cwd` must not be empty"),
        (json!({"executable": "ls", "env": ["A=1"]}), "`env` must be an object of strings, found array"),
        (json!({"executable": "ls", "env": {"A": 1}}), "`env` must be an object of strings, found number at key `A`"),
        (json!({"executable": "ls", "env": {"A=B": "x"}}), "`env` key `A=B` is not a variable name"),
        (json!({"executable": "ls", "env": {"": "x"}}), "`env` key `` is not a variable name"),
        (json!({"executable": "ls", "env": {"A": "x\0"}}), "`env` must not contain NUL bytes, found one at key `A`"),
        (json!({"executable": "ls", "stdin": 5}), "`stdin` must be a string, found number"),
        (json!({"executable": "ls", "stdout_file": true}), "`stdout_file` must be a string, found boolean"),
        (json!({"executable": "ls", "stderr_file": ""}), "`stderr_file` must not be empty"),
        (json!({"executable": "ls", "arg": ["-l"]}), "unknown field `arg`, expected one of `executable`, `args`, `cwd`, `env`, `stdin`, `stdout_file`, `stderr_file`"),
    ];
    for (data, expected) in cases {
        let message = spec_error(data.clone());
        assert!(message.starts_with("cmd event data: "), "{message}");
        assert!(message.contains(expected), "{data}: {message}");
    }
    // Input quoted back is shortened.
    let long = "k".repeat(10_000);
    assert!(spec_error(json!({"executable": "ls", long.clone(): 1})).len() < 300);
    assert_eq!(
        CommandSpec::from_value(&json!({"executable": "ls", "args": 1})).map_err(|e| e.field()),
        Err(Some("args"))
    );
}

#[test]
fn any_json_is_safe() {
    let values = [
        json!(null),
        json!(true),
        json!(-1),
        json!(1.5),
        json!(""),
        json!("\0"),
        json!("x"),
        json!([]),
        json!([null]),
        json!(["a", ["b"]]),
        json!({}),
        json!({"": {"": null}}),
    ];
    for field in ["executable", "args", "cwd", "env", "stdin", "stdout_file", "stderr_file", ""] {
        for value in &values {
            let mut data = json!({"executable": "ls"});
            data[field] = value.clone();
            // Ok or a clear error, never a panic.
            if let Err(error) = CommandSpec::from_value(&data) {
                assert!(error.to_string().starts_with("cmd event data: "));
            }
        }
    }
    let ok = spec(json!({"executable": "ls", "args": null, "env": {}, "stdin": "a\0b"}));
    assert_eq!(ok.executable(), "ls");
}
