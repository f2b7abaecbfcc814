//! busbar

// Cmd mode's runner; the lead wires it into the attempt loop at integration.
#[allow(dead_code, unused_imports)]
#[path = "mode/cmd/mod.rs"]
mod cmd;
mod sys;
