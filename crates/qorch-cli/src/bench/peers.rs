//! The peer actor frameworks' ask round trip in `qorch bench runtime`: actix, ractor and kameo,
//! measured by the `qorch-peers` binary (crate `qorch-bench-peers`), which this module runs as
//! a child process. The `qorch` binary does not depend on that crate, so it links neither
//! ractor nor kameo; where the binary is missing or fails, the figures are `None` (null in the
//! JSON report) and one line on stderr says why.
//!
//! The binary is looked for in `QORCH_PEERS_BIN` if set, else next to the running `qorch`
//! (`cargo build --release -p qorch-bench-peers` puts it there).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde::Serialize;

/// The variable that names the `qorch-peers` binary, overriding the one next to `qorch`.
const BIN_VAR: &str = "QORCH_PEERS_BIN";

#[derive(clap::Args, Debug)]
pub(crate) struct PeersArgs {
    /// Skip the peer frameworks' ask round trip (actix, ractor, kameo; the `qorch-peers`
    /// binary next to `qorch`, or `$QORCH_PEERS_BIN`).
    #[arg(long)]
    no_peers: bool,
    /// Timed ask round trips per peer framework.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
    peers_samples: u64,
}

/// The ask round trip's 50th and 99th percentiles per framework, in microseconds; `None` where
/// they were not measured. The field names are the JSON keys (of `qorch-peers` and of `qorch
/// bench runtime`'s report). `qorch bench runtime` measures actix's itself, in its own
/// process, so the child's actix figures are shown in the table line only, not repeated in
/// the JSON.
#[derive(Serialize, Debug, Default, Clone, Copy, PartialEq)]
#[allow(
    clippy::struct_field_names,
    reason = "the field names are the JSON keys users rely on"
)]
pub(crate) struct PeersReport {
    #[serde(skip)]
    actix_ask_p50_us: Option<f64>,
    #[serde(skip)]
    actix_ask_p99_us: Option<f64>,
    pub(crate) ractor_ask_p50_us: Option<f64>,
    ractor_ask_p99_us: Option<f64>,
    pub(crate) kameo_ask_p50_us: Option<f64>,
    kameo_ask_p99_us: Option<f64>,
    /// Both actors on one multi-thread runtime (tokio places them; often one thread).
    ractor_shared_ask_p50_us: Option<f64>,
    kameo_shared_ask_p50_us: Option<f64>,
}

impl PeersReport {
    /// The figures `qorch-peers` printed (one JSON object); a key missing or not a number
    /// stays `None`.
    fn parse(stdout: &str) -> Result<PeersReport, serde_json::Error> {
        let v: serde_json::Value = serde_json::from_str(stdout.trim())?;
        let key = |k: &str| v.get(k).and_then(serde_json::Value::as_f64);
        Ok(PeersReport {
            actix_ask_p50_us: key("actix_ask_p50_us"),
            actix_ask_p99_us: key("actix_ask_p99_us"),
            ractor_ask_p50_us: key("ractor_ask_p50_us"),
            ractor_ask_p99_us: key("ractor_ask_p99_us"),
            kameo_ask_p50_us: key("kameo_ask_p50_us"),
            kameo_ask_p99_us: key("kameo_ask_p99_us"),
            ractor_shared_ask_p50_us: key("ractor_shared_ask_p50_us"),
            kameo_shared_ask_p50_us: key("kameo_shared_ask_p50_us"),
        })
    }

    /// The table's line: p50 / p99 per framework, `-` where not measured.
    pub(crate) fn table_line(&self) -> String {
        let pair = |p50: Option<f64>, p99: Option<f64>| {
            let f = |x: Option<f64>| x.map_or("-".to_owned(), |v| format!("{v:.1}"));
            format!("{} / {}", f(p50), f(p99))
        };
        let one = |x: Option<f64>| x.map_or("-".to_owned(), |v| format!("{v:.1}"));
        format!(
            "peers' ask p50 / p99 (two threads): actix {} us, ractor {} us, kameo {} us; on one shared runtime p50: ractor {} us, kameo {} us",
            pair(self.actix_ask_p50_us, self.actix_ask_p99_us),
            pair(self.ractor_ask_p50_us, self.ractor_ask_p99_us),
            pair(self.kameo_ask_p50_us, self.kameo_ask_p99_us),
            one(self.ractor_shared_ask_p50_us),
            one(self.kameo_shared_ask_p50_us),
        )
    }
}

/// Where `qorch-peers` is: `$QORCH_PEERS_BIN`, else next to the running executable.
fn locate() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(BIN_VAR).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the qorch executable: {e}"))?;
    let mut name = OsString::from("qorch-peers");
    name.push(std::env::consts::EXE_SUFFIX);
    let path = exe
        .parent()
        .ok_or("the qorch executable has no directory")?
        .join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found (build it with `cargo build --release -p qorch-bench-peers`, or set {BIN_VAR})",
            path.display()
        ))
    }
}

/// Runs `qorch-peers` (its stderr passes through) and reads its figures.
fn run_peers(samples: u64) -> Result<PeersReport, String> {
    let bin = locate()?;
    let out = Command::new(&bin)
        .arg("--samples")
        .arg(samples.to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if !out.status.success() {
        return Err(format!("{} failed ({})", bin.display(), out.status));
    }
    PeersReport::parse(&String::from_utf8_lossy(&out.stdout))
        .map_err(|e| format!("{} printed no JSON object: {e}", bin.display()))
}

/// The peer frameworks' figures, unless `--no-peers`; never fails: a missing or failing
/// `qorch-peers` gives `None` figures and one line on stderr.
pub(crate) fn measure(args: &PeersArgs) -> PeersReport {
    if args.no_peers {
        return PeersReport::default();
    }
    run_peers(args.peers_samples).unwrap_or_else(|why| {
        eprintln!("note: peer frameworks' ask round trip not measured: {why}");
        PeersReport::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_reads_the_six_keys_and_leaves_the_missing_ones_none() {
        let r = PeersReport::parse(
            r#"{"actix_ask_p50_us": 12.5, "actix_ask_p99_us": 30, "ractor_ask_p50_us": 4.0,
                "kameo_ask_p99_us": "x", "samples": 10, "ractor_version": "0.16.5"}"#,
        )
        .unwrap();
        assert_eq!(r.actix_ask_p50_us, Some(12.5));
        assert_eq!(r.actix_ask_p99_us, Some(30.0));
        assert_eq!(r.ractor_ask_p50_us, Some(4.0));
        assert_eq!(
            (r.ractor_ask_p99_us, r.kameo_ask_p50_us, r.kameo_ask_p99_us),
            (None, None, None)
        );
        assert!(PeersReport::parse("not json").is_err());
    }

    #[test]
    fn the_report_serializes_missing_figures_as_null() {
        let v = serde_json::to_value(PeersReport::default()).unwrap();
        // actix's figures are not repeated (`qorch` measures its own).
        assert_eq!(v.as_object().unwrap().len(), 6);
        assert!(v.get("actix_ask_p50_us").is_none());
        assert!(
            v.as_object()
                .unwrap()
                .values()
                .all(serde_json::Value::is_null)
        );
    }

    #[test]
    fn the_table_line_shows_dashes_for_missing_figures() {
        let r = PeersReport {
            actix_ask_p50_us: Some(10.04),
            actix_ask_p99_us: Some(20.0),
            ..PeersReport::default()
        };
        assert_eq!(
            r.table_line(),
            "peers' ask p50 / p99 (two threads): actix 10.0 / 20.0 us, ractor - / - us, kameo - / - us; on one shared runtime p50: ractor - us, kameo - us"
        );
    }
}
