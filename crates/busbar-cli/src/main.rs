//! The `busbar` command: `busbar demo` tours the event bus.

fn main() {}
