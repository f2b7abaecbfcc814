//! Steps about cmd mode: the event's data names a program, and no handler is needed.

use busbar::{ErrorKind, Event, EventBus, ExecutionMode};
use serde_json::{json, Value};

use super::report::{describe, StepResult, Tour};

/// A cmd event whose data is `spec`.
fn command(spec: Value) -> Event {
    Event::new("run.command").with_mode(ExecutionMode::Cmd).with_data(spec)
}

/// A program that succeeds, one that fails and one that does not exist.
pub(super) fn run(tour: &mut Tour, bus: &EventBus) -> StepResult {
    // No shell: `$USER` and `*` reach echo verbatim, unexpanded.
    let spec = json!({"executable": "echo", "args": ["hello", "$USER", "*"]});
    tour.say(format!("cmd event {spec}"));
    let result = bus.publish(command(spec))?.wait();
    tour.say(format!(
        "-> success {}, returncode {}, stdout {}",
        result.success, result.data["returncode"], result.data["stdout"]
    ));
    tour.check(result.success && result.data["returncode"] == 0, "exit code 0 is a success");
    tour.check(
        result.data["stdout"] == "hello $USER *\n",
        "stdout is captured, and no shell expanded `$USER` or `*`",
    );

    let spec = json!({"executable": "ls", "args": ["/no/such/directory"]});
    tour.say(format!("cmd event {spec}"));
    let result = bus.publish(command(spec))?.wait();
    tour.say(format!("-> {}", describe(&result).lines().next().unwrap_or_default()));
    tour.say(format!("   returncode {}, stderr {}", result.data["returncode"], result.data["stderr"]));
    tour.check(
        result.error_kind == Some(ErrorKind::CommandFailed)
            && result.data["returncode"].as_i64().is_some_and(|code| code != 0),
        "a non-zero exit is a command_failed result that keeps returncode and stderr",
    );

    let spec = json!({"executable": "no-such-program-busbar-demo"});
    tour.say(format!("cmd event {spec}, retry_count 3"));
    let result = bus.publish(command(spec).with_retry_count(3))?.wait();
    tour.say(format!("-> {}", describe(&result)));
    tour.check(
        result.error_kind == Some(ErrorKind::InvalidInput) && result.attempts == 1,
        "a program that cannot run is a permanent invalid_input failure: not retried",
    );
    Ok(())
}
