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

/// The processes whose parent is `pid` (from `/proc/*/stat`).
pub(crate) fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| {
            std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|stat| {
                // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                    == Some(pid)
            })
        })
        .collect()
}
