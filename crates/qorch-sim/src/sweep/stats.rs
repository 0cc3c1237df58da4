//! The sweep's tables: every run's scalars, and their statistics per configuration.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use statrs::distribution::{ContinuousCDF, StudentsT};

use crate::error::SimError;

/// One finished run of a sweep: its settings, its seed and its report's scalars.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// The swept keys' values (labels), in the order of the keys.
    pub params: Vec<String>,
    /// The seed.
    pub seed: u64,
    /// Every scalar of the run's report (see [`scalars`]).
    pub scalars: BTreeMap<String, serde_json::Value>,
}

/// The statistics of one scalar over a configuration's runs.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Stat {
    /// Runs with a number for it (`null`s left out).
    pub n: usize,
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (`None` with one run).
    pub sd: Option<f64>,
    /// 95% confidence interval of the mean, `mean -+ t(0.975, n - 1) sd / sqrt(n)`
    /// (`None` with one run).
    pub ci95: Option<(f64, f64)>,
}

/// One configuration of a sweep: its settings and the statistics of every numeric scalar.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SummaryRow {
    /// The swept keys' values (labels), in the order of the keys.
    pub params: Vec<String>,
    /// Finished runs (seeds) of this configuration.
    pub runs: usize,
    /// Per scalar.
    pub stats: BTreeMap<String, Stat>,
}

/// Every scalar (number, string, boolean, `null`) of a JSON object, nested objects
/// flattened with dotted names (`messages.handled`); arrays are left out.
///
/// ```
/// let v = serde_json::json!({"a": 1, "m": {"b": 2.5, "c": [1, 2]}, "s": "x"});
/// let s = qorch_sim::scalars(&v);
/// assert_eq!(s.keys().collect::<Vec<_>>(), ["a", "m.b", "s"]);
/// ```
pub fn scalars(report: &serde_json::Value) -> BTreeMap<String, serde_json::Value> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, serde_json::Value>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            serde_json::Value::Array(_) => {}
            other => {
                out.insert(prefix.to_owned(), other.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", report, &mut out);
    out
}

/// Groups runs by their settings (in the order first seen) and computes, for every
/// numeric scalar but `seed`, its [`Stat`].
pub fn summarize(runs: &[RunRecord]) -> Vec<SummaryRow> {
    let mut order: Vec<&Vec<String>> = Vec::new();
    let mut groups: BTreeMap<&Vec<String>, Vec<&RunRecord>> = BTreeMap::new();
    for r in runs {
        let g = groups.entry(&r.params).or_default();
        if g.is_empty() {
            order.push(&r.params);
        }
        g.push(r);
    }
    order
        .into_iter()
        .map(|params| {
            let group = &groups[params];
            let mut values: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
            for r in group {
                for (k, v) in &r.scalars {
                    if let Some(x) = v.as_f64().filter(|_| k != "seed") {
                        values.entry(k).or_default().push(x);
                    }
                }
            }
            SummaryRow {
                params: params.clone(),
                runs: group.len(),
                stats: values
                    .into_iter()
                    .map(|(k, xs)| (k.to_owned(), stat(&xs)))
                    .collect(),
            }
        })
        .collect()
}

/// Mean, sample standard deviation and the Student-t 95% interval of `xs` (not empty).
fn stat(xs: &[f64]) -> Stat {
    let n = xs.len();
    let mean = xs.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return Stat {
            n,
            mean,
            sd: None,
            ci95: None,
        };
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let sd = var.sqrt();
    let t = StudentsT::new(0.0, 1.0, (n - 1) as f64).map_or(f64::NAN, |d| d.inverse_cdf(0.975));
    let half = t * sd / (n as f64).sqrt();
    Stat {
        n,
        mean,
        sd: Some(sd),
        ci95: Some((mean - half, mean + half)),
    }
}

/// Writes `dir/runs.csv` whole: a header, then one row per run: the swept keys, `seed`,
/// then every scalar any run has (sorted by name; empty where a run lacks it or it is
/// `null`).
///
/// # Errors
///
/// [`SimError::Io`] naming the file.
pub fn write_runs_csv(dir: &Path, keys: &[String], runs: &[RunRecord]) -> Result<(), SimError> {
    let mut columns: Vec<&str> = runs
        .iter()
        .flat_map(|r| r.scalars.keys().map(String::as_str))
        .collect();
    columns.sort_unstable();
    columns.dedup();
    let mut text = String::new();
    let header = keys.iter().map(String::as_str).chain(["seed"]).chain(
        columns
            .iter()
            .map(|c| if *c == "seed" { "report.seed" } else { c }),
    );
    line(&mut text, header.map(field));
    for r in runs {
        let values = columns.iter().map(|c| match r.scalars.get(*c) {
            None | Some(serde_json::Value::Null) => String::new(),
            Some(serde_json::Value::String(s)) => field(s),
            Some(other) => other.to_string(),
        });
        line(
            &mut text,
            r.params
                .iter()
                .map(|p| field(p))
                .chain([r.seed.to_string()])
                .chain(values),
        );
    }
    write_text(dir, "runs.csv", &text)
}

/// Writes `dir/summary.csv` whole: a header, then one row per configuration: the swept
/// keys, `runs`, then for every numeric scalar (sorted by name) `NAME.mean`, `NAME.sd`,
/// `NAME.ci95_low`, `NAME.ci95_high` (the last three empty with one run).
///
/// # Errors
///
/// [`SimError::Io`] naming the file.
pub fn write_summary_csv(dir: &Path, keys: &[String], rows: &[SummaryRow]) -> Result<(), SimError> {
    let mut columns: Vec<&str> = rows
        .iter()
        .flat_map(|r| r.stats.keys().map(String::as_str))
        .collect();
    columns.sort_unstable();
    columns.dedup();
    let mut text = String::new();
    let header = keys
        .iter()
        .map(|k| field(k))
        .chain(["runs".to_owned()])
        .chain(columns.iter().flat_map(|c| {
            ["mean", "sd", "ci95_low", "ci95_high"].map(|s| field(&format!("{c}.{s}")))
        }));
    line(&mut text, header);
    let num = |x: Option<f64>| x.map(|x| format!("{x}")).unwrap_or_default();
    for r in rows {
        let stats = columns.iter().flat_map(|c| match r.stats.get(*c) {
            Some(s) => [
                num(Some(s.mean)),
                num(s.sd),
                num(s.ci95.map(|c| c.0)),
                num(s.ci95.map(|c| c.1)),
            ],
            None => Default::default(),
        });
        line(
            &mut text,
            r.params
                .iter()
                .map(|p| field(p))
                .chain([r.runs.to_string()])
                .chain(stats),
        );
    }
    write_text(dir, "summary.csv", &text)
}

/// One CSV line.
fn line(text: &mut String, fields: impl Iterator<Item = String>) {
    let fields: Vec<String> = fields.collect();
    let _ = writeln!(text, "{}", fields.join(","));
}

/// A CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180).
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn write_text(dir: &Path, name: &str, text: &str) -> Result<(), SimError> {
    crate::write_whole(dir, name, &mut |tmp| std::fs::write(tmp, text.as_bytes())).map_err(
        |(path, source)| SimError::Io {
            path: path.display().to_string(),
            source,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(params: &[&str], seed: u64, x: f64) -> RunRecord {
        let report = serde_json::json!({"seed": seed, "x": x, "name": "a,b", "t": null});
        RunRecord {
            params: params.iter().map(|p| (*p).to_owned()).collect(),
            seed,
            scalars: scalars(&report),
        }
    }

    #[test]
    fn statistics_per_configuration() {
        let runs = [
            run(&["1"], 1, 1.0),
            run(&["2"], 1, 5.0),
            run(&["1"], 2, 2.0),
            run(&["1"], 3, 3.0),
        ];
        let rows = summarize(&runs);
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].params[0].as_str(), rows[0].runs), ("1", 3));
        let s = rows[0].stats["x"];
        assert_eq!((s.n, s.mean, s.sd), (3, 2.0, Some(1.0)));
        // t(0.975, 2) = 4.302653.
        let (lo, hi) = s.ci95.unwrap();
        assert!((hi - 2.0 - 4.302_653 / 3f64.sqrt()).abs() < 1e-5, "{hi}");
        assert!((2.0 - lo - (hi - 2.0)).abs() < 1e-12);
        assert!(!rows[0].stats.contains_key("seed") && !rows[0].stats.contains_key("t"));
        let one = rows[1].stats["x"];
        assert_eq!((one.n, one.sd, one.ci95), (1, None, None));
    }

    #[test]
    fn tables_quote_and_leave_nulls_empty() {
        let dir = tempfile::tempdir().unwrap();
        let runs = [run(&["p,q"], 1, 1.5), run(&["p,q"], 2, 2.5)];
        let keys = ["k".to_owned()];
        write_runs_csv(dir.path(), &keys, &runs).unwrap();
        let text = std::fs::read_to_string(dir.path().join("runs.csv")).unwrap();
        assert_eq!(
            text,
            "k,seed,name,report.seed,t,x\n\"p,q\",1,\"a,b\",1,,1.5\n\"p,q\",2,\"a,b\",2,,2.5\n"
        );
        write_summary_csv(dir.path(), &keys, &summarize(&runs)).unwrap();
        let text = std::fs::read_to_string(dir.path().join("summary.csv")).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("k,runs,x.mean,x.sd,x.ci95_low,x.ci95_high")
        );
        assert!(
            lines
                .next()
                .unwrap()
                .starts_with("\"p,q\",2,2,0.7071067811865476,")
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 2, "no temporary file left");
    }
}
