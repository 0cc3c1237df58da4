//! `qorch sweep`: one scenario over a grid of values and seeds, runs in parallel, tables of
//! every run and of each configuration, plots with confidence bands; an interrupted sweep
//! resumes.
//!
//! Each run is a `qorch simulate RUN/sweep-run.toml --out RUN` child process of this very
//! binary, `--jobs` of them at a time. Processes rather than threads: a run's memory is
//! given back when it ends, a run that fails (or aborts) takes no other down, and each run
//! gets thread pools of its own size (its runtime's workers, 1 unless `workers` is swept,
//! and as many rayon threads through `RAYON_NUM_THREADS`), where threads of one process
//! would share one rayon pool over all the runs. Starting a process costs milliseconds; a
//! run costs seconds.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args as ClapArgs;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use qorch_sim::{RunRecord, Scenario, SummaryRow, SweepParam};

/// The most runs one sweep may plan: 10,000 (each is a process and a directory of about
/// 200 KB of reports and plots).
pub(crate) const MAX_RUNS: u64 = 10_000;

/// The recorded configuration of a run, beside its outputs: what it ran with.
const RUN_FILE: &str = "sweep-run.toml";

/// Runs a scenario over a grid of parameter values and seeds.
#[derive(ClapArgs, Debug)]
pub(crate) struct Args {
    /// Scenario file (TOML).
    pub(crate) scenario: PathBuf,
    /// A swept key of the scenario (dotted, as in its TOML: `topology.agents`,
    /// `pools.count`, `behaviour.message_work`, ...) and its values; repeat for a grid. The
    /// first key is the plots' x axis.
    #[arg(long = "set", value_name = "KEY=V1,V2,...")]
    pub(crate) sets: Vec<String>,
    /// Seeds: `N`, or `A..B` (inclusive: `1..10` is ten seeds). Default: the scenario's.
    #[arg(long, value_name = "A..B")]
    pub(crate) seeds: Option<String>,
    /// Runs at a time (default: one per core; at most 4 per core).
    #[arg(long)]
    pub(crate) jobs: Option<usize>,
    /// Output directory: one directory per run under `runs/`, `runs.csv`, `summary.csv`
    /// and the plots. Runs already finished there with the same configuration are skipped.
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Metrics of `report.json` (dotted names) to plot against the first swept key.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "unmet_demand,allocation_efficiency,churn"
    )]
    pub(crate) plot: Vec<String>,
    /// Print one JSON object (runs, skipped, seconds, paths, the summary rows) instead of
    /// the table; no progress bar.
    #[arg(long)]
    pub(crate) json: bool,
}

/// The runs of a sweep, checked.
pub(crate) struct Plan {
    /// The swept keys.
    pub(crate) keys: Vec<String>,
    /// Every run: configurations in the order of the values (the first key slowest), seeds
    /// within.
    pub(crate) runs: Vec<PlannedRun>,
}

/// One run of a plan.
pub(crate) struct PlannedRun {
    /// The values of the swept keys (labels).
    params: Vec<String>,
    seed: u64,
    /// Its directory.
    dir: PathBuf,
    /// The scenario, as TOML: what `RUN_FILE` records.
    toml: String,
    /// The rayon threads it gets (its workers).
    threads: usize,
}

/// What running a plan did.
pub(crate) struct Done {
    /// Runs started.
    pub(crate) ran: usize,
    /// Runs skipped (finished before, same configuration).
    pub(crate) skipped: usize,
    /// Runs that failed: directory and the end of its error output.
    pub(crate) failed: Vec<(PathBuf, String)>,
    /// Wall time.
    pub(crate) seconds: f64,
}

/// Seeds from `N`, `A..B` or `A..=B` (both inclusive).
pub(crate) fn parse_seeds(text: &str) -> anyhow::Result<Vec<u64>> {
    let quoted = || qorch_qubo::quote(text);
    let num = |s: &str| -> anyhow::Result<u64> {
        let v: u64 = s.trim().parse().map_err(|_| {
            anyhow::anyhow!(
                "--seeds `{}`: `{}` is not a seed (a whole number)",
                quoted(),
                qorch_qubo::quote(s.trim())
            )
        })?;
        // Scenarios are TOML, whose integers are signed 64-bit.
        anyhow::ensure!(
            i64::try_from(v).is_ok(),
            "--seeds: {v} is above the largest seed, {}",
            i64::MAX
        );
        Ok(v)
    };
    let (a, b) = match text.split_once("..") {
        None => {
            let v = num(text)?;
            (v, v)
        }
        Some((a, b)) => {
            let b = b.strip_prefix('=').unwrap_or(b);
            anyhow::ensure!(
                !a.trim().is_empty() && !b.trim().is_empty(),
                "--seeds `{}` is an empty range: give A..B, both ends included (1..10 is ten \
                 seeds)",
                quoted()
            );
            (num(a)?, num(b)?)
        }
    };
    anyhow::ensure!(
        a <= b,
        "--seeds {a}..{b} is reversed (empty): the first seed must not exceed the last"
    );
    anyhow::ensure!(
        b - a < MAX_RUNS,
        "--seeds {a}..{b} is {} seeds, above the limit of {MAX_RUNS} runs a sweep",
        u128::from(b - a) + 1
    );
    Ok((a..=b).collect())
}

/// The plan of the arguments: every check made before any run starts.
pub(crate) fn plan(
    base: &Scenario,
    sets: &[String],
    seeds: &[u64],
    out: &Path,
) -> anyhow::Result<Plan> {
    let params = sets
        .iter()
        .map(|s| SweepParam::parse(s).context("--set"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut seen = HashSet::new();
    for p in &params {
        anyhow::ensure!(
            p.key != "seed",
            "--set seed: the seed is swept with --seeds (A..B), not --set"
        );
        anyhow::ensure!(
            seen.insert(p.key.as_str()),
            "--set {}: the key is given twice; give its values in one list",
            p.key
        );
        let labels = p.labels();
        if let Some(twice) = labels
            .iter()
            .enumerate()
            .find_map(|(i, l)| labels[..i].contains(l).then_some(l))
        {
            anyhow::bail!(
                "--set {}: the value {} is given twice (two runs would share a directory)",
                p.key,
                qorch_qubo::quote(twice)
            );
        }
    }
    let configs = params
        .iter()
        .try_fold(1_u64, |n, p| n.checked_mul(p.values.len() as u64))
        .unwrap_or(u64::MAX);
    let total = configs.saturating_mul(seeds.len() as u64);
    anyhow::ensure!(
        total <= MAX_RUNS,
        "the sweep is {configs} configurations x {} seeds = {total} runs, above the limit of \
         {MAX_RUNS}",
        seeds.len()
    );
    // Each value alone first, so that an error names its key.
    for p in &params {
        for v in &p.values {
            base.with_overrides(&[(&p.key, v)]).context("--set")?;
        }
    }
    let workers_swept = params.iter().any(|p| p.key == "workers");
    let keys: Vec<String> = params.iter().map(|p| p.key.clone()).collect();
    let mut runs = Vec::new();
    let mut index = vec![0_usize; params.len()];
    for _ in 0..configs {
        let sets: Vec<(&str, &toml::Value)> = params
            .iter()
            .zip(&index)
            .map(|(p, &i)| (p.key.as_str(), &p.values[i]))
            .collect();
        let mut s = base.with_overrides(&sets).context("--set")?;
        if !workers_swept {
            s.workers = 1;
        }
        let labels: Vec<String> = params
            .iter()
            .zip(&index)
            .map(|(p, &i)| p.labels().swap_remove(i))
            .collect();
        let config_dir = out.join("runs").join(config_name(&keys, &labels));
        for &seed in seeds {
            s.seed = seed;
            runs.push(PlannedRun {
                params: labels.clone(),
                seed,
                dir: config_dir.join(format!("seed-{seed}")),
                toml: s.to_toml(),
                threads: s.worker_threads(),
            });
        }
        // The next configuration: the last key fastest.
        for k in (0..params.len()).rev() {
            index[k] += 1;
            if index[k] < params[k].values.len() {
                break;
            }
            index[k] = 0;
        }
    }
    Ok(Plan { keys, runs })
}

/// A directory name for a configuration: `key=value,...` in safe characters, with a hash
/// of the whole when characters were replaced or it was cut.
fn config_name(keys: &[String], labels: &[String]) -> String {
    if keys.is_empty() {
        return "base".to_owned();
    }
    let whole = keys
        .iter()
        .zip(labels)
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let safe: String = whole
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._=,-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe == whole && safe.len() <= 100 {
        return safe;
    }
    // FNV-1a, stable across builds (the name must not change between invocations).
    let hash = whole.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let cut: String = safe.chars().take(80).collect();
    format!("{cut}-{hash:016x}")
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let base = Scenario::from_path(&args.scenario)
        .with_context(|| format!("the scenario {}", args.scenario.display()))?;
    let seeds = match &args.seeds {
        Some(text) => parse_seeds(text)?,
        None => vec![base.seed],
    };
    let jobs = match args.jobs {
        Some(j) => j,
        None => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
    };
    crate::limits::check_threads("--jobs", jobs)?;
    let plan = plan(&base, &args.sets, &seeds, &args.out)?;
    qorch_sim::prepare_output_dir(&args.out)
        .with_context(|| format!("the output directory {}", args.out.display()))?;
    let done = execute(&plan, jobs, !args.json)?;
    let records = records(&plan)?;
    let rows = qorch_sim::summarize(&records);
    qorch_sim::write_runs_csv(&args.out, &plan.keys, &records)?;
    qorch_sim::write_summary_csv(&args.out, &plan.keys, &rows)?;
    let plots = qorch_sim::write_sweep_plots(&args.out, &plan.keys, &rows, &args.plot)?;
    let path = |name: &str| args.out.join(name).display().to_string();
    if args.json {
        let summary: Vec<serde_json::Value> =
            rows.iter().map(|r| summary_json(&plan.keys, r)).collect();
        let v = serde_json::json!({
            "runs": plan.runs.len(),
            "ran": done.ran,
            "skipped": done.skipped,
            "failed": done.failed.len(),
            "jobs": jobs,
            "seconds": done.seconds,
            "out": args.out.display().to_string(),
            "runs_csv": path("runs.csv"),
            "summary_csv": path("summary.csv"),
            "plots": plots.iter().map(|p| path(p)).collect::<Vec<_>>(),
            "summary": summary,
        });
        crate::print_line(&v.to_string())?;
    } else {
        crate::print_line(table(&plan, &done, &rows, &args.plot, &args.out).trim_end())?;
    }
    let unknown: Vec<&String> = args
        .plot
        .iter()
        .filter(|m| !rows.iter().any(|r| r.stats.contains_key(*m)))
        .collect();
    if !unknown.is_empty() && !rows.is_empty() {
        let mut known: Vec<&String> = rows.iter().flat_map(|r| r.stats.keys()).collect();
        known.sort();
        known.dedup();
        anyhow::bail!(
            "--plot {}: not a numeric scalar of the reports (the tables are written; rerun \
             with other metrics, every run is skipped); they are: {}",
            unknown
                .iter()
                .map(|m| qorch_qubo::quote(m))
                .collect::<Vec<_>>()
                .join(", "),
            known
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some((dir, tail)) = done.failed.first() {
        anyhow::bail!(
            "{} of {} runs failed (their rows are missing from the tables); the first, in {}:\n{tail}",
            done.failed.len(),
            plan.runs.len(),
            dir.display()
        );
    }
    Ok(())
}

/// A summary row as JSON: the settings by key, the run count, the statistics.
fn summary_json(keys: &[String], r: &SummaryRow) -> serde_json::Value {
    let settings: serde_json::Map<String, serde_json::Value> = keys
        .iter()
        .zip(&r.params)
        .map(|(k, v)| (k.clone(), v.clone().into()))
        .collect();
    serde_json::json!({ "settings": settings, "runs": r.runs, "stats": r.stats })
}

/// The table printed at the end: per configuration, the plotted metrics' means and
/// intervals.
fn table(plan: &Plan, done: &Done, rows: &[SummaryRow], metrics: &[String], out: &Path) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "sweep of {} runs: {} ran, {} skipped (finished before), {} failed, {:.1} s",
        plan.runs.len(),
        done.ran,
        done.skipped,
        done.failed.len(),
        done.seconds
    );
    for r in rows {
        let settings = plan
            .keys
            .iter()
            .zip(&r.params)
            .map(|(k, v)| format!("{k} = {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            s,
            "  {} ({} runs)",
            if settings.is_empty() {
                "base"
            } else {
                &settings
            },
            r.runs
        );
        for m in metrics {
            if let Some(st) = r.stats.get(m) {
                let ci = st
                    .ci95
                    .map(|(lo, hi)| format!("  95% CI [{lo:.4}, {hi:.4}]"))
                    .unwrap_or_default();
                let _ = writeln!(s, "    {m:<28} {:.4}{ci}", st.mean);
            }
        }
    }
    let _ = writeln!(s, "  runs.csv, summary.csv and plots in {}", out.display());
    s
}

/// Whether a run finished before with the same configuration.
fn finished(run: &PlannedRun) -> bool {
    run.dir.join("report.json").is_file()
        && std::fs::read_to_string(run.dir.join(RUN_FILE)).is_ok_and(|t| t == run.toml)
}

/// Runs the plan's unfinished runs, `jobs` at a time; a progress bar on stderr when `bar`
/// (and stderr is a terminal).
pub(crate) fn execute(plan: &Plan, jobs: usize, bar: bool) -> anyhow::Result<Done> {
    let start = Instant::now();
    let exe = std::env::current_exe().context("cannot find this program to start the runs")?;
    let todo: Vec<&PlannedRun> = plan.runs.iter().filter(|r| !finished(r)).collect();
    let skipped = plan.runs.len() - todo.len();
    let target = if bar {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let progress = ProgressBar::with_draw_target(Some(todo.len() as u64), target);
    progress.set_style(
        ProgressStyle::with_template(
            "{spinner} [{bar:30}] {pos}/{len} runs done, {msg}, ETA {eta}, {elapsed}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    progress.set_message(format!("{} left", todo.len()));
    progress.enable_steady_tick(Duration::from_millis(200));
    let (tx, rx) = crossbeam_channel::unbounded::<&PlannedRun>();
    for r in &todo {
        let _ = tx.send(r);
    }
    drop(tx);
    let (done_tx, done_rx) = crossbeam_channel::unbounded();
    let mut failed = Vec::new();
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(todo.len()) {
            let (rx, done_tx, exe) = (rx.clone(), done_tx.clone(), &exe);
            scope.spawn(move || {
                for r in rx {
                    let result = run_one(exe, r);
                    if done_tx.send((r, result)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        for (count, (r, result)) in done_rx.into_iter().enumerate() {
            if let Err(e) = result {
                failed.push((r.dir.clone(), format!("{e:#}")));
            }
            progress.inc(1);
            progress.set_message(format!("{} left", todo.len() - count - 1));
        }
    });
    progress.finish_and_clear();
    Ok(Done {
        ran: todo.len(),
        skipped,
        failed,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// One run: its recorded configuration, then `qorch simulate` as a child process.
fn run_one(exe: &Path, r: &PlannedRun) -> anyhow::Result<()> {
    let dir = &r.dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // An old report must not vouch for the new configuration if this run fails.
    match std::fs::remove_file(dir.join("report.json")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("removing {}/report.json", dir.display()));
        }
        _ => {}
    }
    let tmp = dir.join(format!(".{RUN_FILE}.tmp"));
    std::fs::write(&tmp, &r.toml)
        .and_then(|()| std::fs::rename(&tmp, dir.join(RUN_FILE)))
        .with_context(|| format!("writing {}/{RUN_FILE}", dir.display()))?;
    let out = std::process::Command::new(exe)
        .arg("simulate")
        .arg(dir.join(RUN_FILE))
        .arg("--out")
        .arg(dir)
        .env("RAYON_NUM_THREADS", r.threads.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .context("cannot start `qorch simulate`")?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let tail = lines[lines.len().saturating_sub(5)..].join("\n");
    anyhow::bail!("`qorch simulate` exited with {}: {tail}", out.status)
}

/// The records of the plan's finished runs, in the plan's order: `report.json`'s scalars,
/// and `timings.json`'s as `timings.NAME`.
fn records(plan: &Plan) -> anyhow::Result<Vec<RunRecord>> {
    let read = |path: &Path| -> anyhow::Result<serde_json::Value> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    };
    let mut records = Vec::new();
    for r in plan.runs.iter().filter(|r| finished(r)) {
        let mut scalars = qorch_sim::scalars(&read(&r.dir.join("report.json"))?);
        if let Ok(t) = read(&r.dir.join("timings.json")) {
            scalars.extend(
                qorch_sim::scalars(&t)
                    .into_iter()
                    .map(|(k, v)| (format!("timings.{k}"), v)),
            );
        }
        records.push(RunRecord {
            params: r.params.clone(),
            seed: r.seed,
            scalars,
        });
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_ranges() {
        assert_eq!(parse_seeds("1..3").unwrap(), [1, 2, 3]);
        assert_eq!(parse_seeds("4..=5").unwrap(), [4, 5]);
        assert_eq!(parse_seeds("7").unwrap(), [7]);
        for (bad, why) in [
            ("3..1", "reversed"),
            ("..", "empty range"),
            ("1..", "empty range"),
            ("", "not a seed"),
            ("a..b", "not a seed"),
            ("1..100000", "above the limit"),
            ("18446744073709551615", "above the largest seed"),
        ] {
            let e = parse_seeds(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn configuration_names_are_safe_and_distinct() {
        let k = ["a.b".to_owned()];
        assert_eq!(config_name(&k, &["1".into()]), "a.b=1");
        let odd = config_name(&k, &["x/y".into()]);
        assert!(odd.starts_with("a.b=x_y-") && !odd.contains('/'), "{odd}");
        assert_ne!(odd, config_name(&k, &["x y".into()]));
        assert!(config_name(&k, &["z".repeat(500)]).len() < 120);
        assert_eq!(config_name(&[], &[]), "base");
    }
}
