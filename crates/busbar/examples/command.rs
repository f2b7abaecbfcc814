//! Documentation scenario: `EXECUTION_MODE_CMD` — "execute command-line process".
//!
//! Cmd events need no handler: the event's data names the program, and the result carries its
//! exit code and output. No shell is involved, so arguments reach the program as they are.
//! The example runs `uname -a` and `ls` of this crate's directory, a command that fails, one
//! that runs past its timeout (its process group is killed), and one whose data is wrong.
//!
//! The documentation names the mode but shows no example of it; the data fields are busbar's
//! (`executable`, `args`, `cwd`, `env`, `stdin`, `stdout_file`, `stderr_file`).
//!
//! Run with `cargo run -p busbar --example command`.

use std::time::{Duration, Instant};

use busbar::{ErrorKind, Event, EventBus, EXECUTION_MODE_CMD};
use serde_json::{json, Value};

/// A cmd event of type `system.command` running what `data` describes.
fn command(data: Value) -> Event {
    Event::new("system.command").with_mode(EXECUTION_MODE_CMD).with_data(data)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bus = EventBus::new();

    // A command that succeeds: exit code 0.
    let result = bus.publish(command(json!({"executable": "uname", "args": ["-a"]})))?.wait();
    println!(
        "uname -a → returncode {}: {}",
        result.data["returncode"],
        result.data["stdout"].as_str().unwrap_or_default().trim_end()
    );
    assert!(result.success);
    assert_eq!(result.data["returncode"], 0);
    assert!(result.data["stdout"].as_str().is_some_and(|out| out.starts_with("Linux")));

    // In another directory; publish returns at once, `wait` blocks for the result.
    let crate_dir = env!("CARGO_MANIFEST_DIR");
    let handle = bus.publish(command(json!({"executable": "ls", "cwd": crate_dir})))?;
    let listing = handle.wait().into_result()?;
    let files: Vec<&str> = listing["stdout"].as_str().unwrap_or_default().lines().collect();
    println!("ls {crate_dir} → {}", files.join(" "));
    assert!(files.contains(&"Cargo.toml") && files.contains(&"examples"));

    // A command that fails: a non-zero exit code is a `CommandFailed` result that still
    // carries the output; the message quotes the first line of stderr.
    let result = bus.publish(command(json!({"executable": "ls", "args": ["/no/such/dir"]})))?.wait();
    println!(
        "ls /no/such/dir → returncode {}: {}",
        result.data["returncode"],
        result.error_message.as_deref().unwrap_or_default()
    );
    assert!(!result.success);
    assert_eq!(result.error_kind, Some(ErrorKind::CommandFailed));
    assert!(result.data["returncode"].as_i64().is_some_and(|code| code != 0));
    assert!(result.data["stderr"].as_str().is_some_and(|err| err.contains("/no/such/dir")));

    // A command past its timeout: its process group gets SIGTERM (then SIGKILL after a grace
    // period), and the result is a timeout.
    let started = Instant::now();
    let timeout = Duration::from_millis(300);
    let slow = command(json!({"executable": "sleep", "args": ["10"]})).with_timeout(timeout);
    let result = bus.publish(slow)?.wait();
    let elapsed = started.elapsed();
    println!(
        "sleep 10 with a {} ms timeout → {} ({}), returned after {} ms",
        timeout.as_millis(),
        result.error_kind.map(|kind| kind.as_str()).unwrap_or_default(),
        result.error_message.as_deref().unwrap_or_default(),
        elapsed.as_millis()
    );
    assert!(result.is_timeout());
    assert!(elapsed >= timeout && elapsed < Duration::from_secs(10));

    // Wrong data is a permanent failure: no retry can fix it.
    let typo = command(json!({"executable": "ls", "arg": ["-l"]})).with_retry_count(3);
    let result = bus.publish(typo)?.wait();
    println!("a typo in the data → {}", result.error_message.as_deref().unwrap_or_default());
    assert_eq!(result.error_kind, Some(ErrorKind::InvalidInput));
    assert_eq!(result.attempts, 1);

    bus.shutdown();
    Ok(())
}
