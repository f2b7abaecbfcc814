//! busbar

// Used by the cmd and corelet modes; the lead wires it in at integration.
#[allow(dead_code, unused_imports)]
mod sys;

// Corelet mode's process mechanics; the lead wires it to the attempt loop at integration.
mod corelet;
