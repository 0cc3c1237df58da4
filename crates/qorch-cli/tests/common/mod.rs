//! What the CLI tests share: running the `qorch` binary that Cargo built for them.

#![allow(
    dead_code,
    reason = "every test binary compiles this module and uses only some of it"
)]

use std::process::{Command, Output};

/// A command for the `qorch` binary built for these tests.
pub(crate) fn command() -> Command {
    Command::new(env!("CARGO_BIN_EXE_qorch"))
}

/// Runs `qorch args` to the end and returns its output.
pub(crate) fn qorch(args: &[&str]) -> Output {
    command().args(args).output().expect("qorch runs")
}
