//! busbar
