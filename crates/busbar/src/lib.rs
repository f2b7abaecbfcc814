//! busbar

// Cmd mode's runner; the lead wires it into the attempt loop at integration.
#[allow(dead_code, unused_imports)]
#[path = "mode/cmd/mod.rs"]
mod cmd;
mod sys;

// Corelet mode's process mechanics; the lead wires it to the attempt loop at integration.
mod corelet;
