//! SVG plots of a report: utilization and unmet demand, round latency, solver energies
//! against the bound, cluster sizes, message rates per priority.

use std::path::Path;

use plotters::prelude::*;

use crate::error::SimError;
use crate::report::{Report, RoundRecord, Timings};

type DrawResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;
type Draw<'a> = &'a dyn Fn(&Path) -> DrawResult;

const SIZE: (u32, u32) = (800, 480);

/// Writes the plots into `dir`, each whole (drawn under a temporary name, then renamed);
/// returns the file names.
///
/// # Errors
///
/// [`SimError::Plot`] naming the plot that could not be drawn.
pub fn write_plots(
    dir: &Path,
    report: &Report,
    timings: &Timings,
) -> Result<Vec<String>, SimError> {
    let plots: [(&str, Draw<'_>); 5] = [
        ("utilization.svg", &|p| utilization(p, report)),
        ("round_latency.svg", &|p| latency(p, timings)),
        ("solver_energy.svg", &|p| energy(p, report)),
        ("cluster_sizes.svg", &|p| sizes(p, report)),
        ("message_rates.svg", &|p| messages(p, report)),
    ];
    let mut written = Vec::new();
    for (name, draw) in plots {
        crate::write_whole(dir, name, &mut |tmp| draw(tmp)).map_err(|(path, source)| {
            SimError::Plot {
                file: path.display().to_string(),
                source,
            }
        })?;
        written.push(name.to_owned());
    }
    Ok(written)
}

fn rounds_axis(n: usize) -> std::ops::Range<f64> {
    0.5..(n.max(1) as f64 + 0.5)
}

/// Labels for an axis of whole numbers (rounds, counts): a tick between two whole numbers
/// gets no label, so that no label repeats or shows a fraction.
#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "plotters' label formatters take the value by reference"
)]
fn whole(x: &f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        format!("{x:.0}")
    } else {
        String::new()
    }
}

/// The range of `values` (finite ones), padded by 5%, or a unit range around a single value.
fn padded_range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(v), h.max(v)));
    let (lo, hi) = if lo > hi {
        (0.0, 1.0)
    } else if lo < hi {
        (lo, hi)
    } else {
        (lo - 1.0, lo + 1.0)
    };
    let pad = 0.05 * (hi - lo);
    (lo - pad)..(hi + pad)
}

/// Two panels, each with its own scale: the allocation's energy against the bound (top),
/// and the sub-solves' energies (bottom; they are far smaller, and on one scale with the
/// allocation they would lie flat on zero).
fn energy(path: &Path, r: &Report) -> DrawResult {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(SIZE.1 * 11 / 20);
    let x = rounds_axis(r.per_round.len());
    let y = padded_range(r.per_round.iter().flat_map(|x| [-x.objective, -x.bound]));
    let mut chart = ChartBuilder::on(&top)
        .caption(
            "Energy per round: the allocation against the bound (lower is better)",
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(80)
        .build_cartesian_2d(x.clone(), y)?;
    chart
        .configure_mesh()
        .x_label_formatter(&whole)
        .y_desc("energy = -objective")
        .draw()?;
    chart
        .draw_series(LineSeries::new(
            r.per_round.iter().map(|x| (x.round as f64, -x.objective)),
            BLUE.stroke_width(2),
        ))?
        .label("solver's allocation")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart
        .draw_series(LineSeries::new(
            r.per_round.iter().map(|x| (x.round as f64, -x.bound)),
            BLACK.stroke_width(1),
        ))?
        .label("bound (no allocation does better)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    let y = padded_range(r.per_round.iter().flat_map(|x| x.energies.iter().copied()));
    let mut chart = ChartBuilder::on(&bottom)
        .caption(
            "Sub-solve energies (levels, clusters; QUBO units)",
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(80)
        .build_cartesian_2d(x, y)?;
    chart
        .configure_mesh()
        .x_desc("round")
        .x_label_formatter(&whole)
        .y_desc("energy")
        .draw()?;
    chart.draw_series(r.per_round.iter().flat_map(|x| {
        x.energies
            .iter()
            .filter(|e| e.is_finite())
            .map(move |&e| Circle::new((x.round as f64, e), 2, RED.mix(0.5).filled()))
    }))?;
    root.present()?;
    Ok(())
}

fn sizes(path: &Path, r: &Report) -> DrawResult {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let max = r
        .cluster_sizes
        .initial
        .iter()
        .chain(&r.cluster_sizes.last)
        .copied()
        .max()
        .unwrap_or(1)
        .max(1);
    let bins = 30_u32;
    let width = max.div_ceil(bins).max(1);
    let hist = |v: &[u32]| -> Vec<u32> {
        let mut h = vec![0_u32; bins as usize + 1];
        for &s in v {
            h[(s / width).min(bins) as usize] += 1;
        }
        h
    };
    let (a, b) = (hist(&r.cluster_sizes.initial), hist(&r.cluster_sizes.last));
    let top = a.iter().chain(&b).copied().max().unwrap_or(1).max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Leaf sizes: at the start and at the end",
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(
            0.0..f64::from((bins + 1) * width),
            0_u32..top + top / 10 + 1,
        )?;
    chart
        .configure_mesh()
        .x_desc("agents in the leaf")
        .y_desc("leaves")
        .draw()?;
    // Each bin holds two bars side by side: the start's, then the end's.
    let w = f64::from(width);
    for (h, color, label, shift) in [(&a, BLUE, "start", 0.0), (&b, RED, "end", 0.5)] {
        chart
            .draw_series(h.iter().enumerate().map(|(i, &c)| {
                let x0 = i as f64 * w + shift * w;
                Rectangle::new([(x0, 0), (x0 + 0.45 * w, c)], color.mix(0.7).filled())
            }))?
            .label(label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}

/// One line of a chart over rounds: label, colour, `(round, value)` points.
type Line = (&'static str, RGBColor, Vec<(f64, f64)>);

/// A line chart over rounds `1..=rounds`, values from 0 to `y_max` (whole numbers on the
/// value axis too with `counts`).
#[expect(
    clippy::too_many_arguments,
    reason = "one call per chart, each naming every part"
)]
fn line_chart(
    path: &Path,
    title: &str,
    y_desc: &str,
    rounds: usize,
    y_max: f64,
    counts: bool,
    lines: Vec<Line>,
    legend: SeriesLabelPosition,
) -> DrawResult {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(rounds_axis(rounds), 0.0..y_max)?;
    let mut mesh = chart.configure_mesh();
    mesh.x_desc("round")
        .x_label_formatter(&whole)
        .y_desc(y_desc);
    if counts {
        mesh.y_label_formatter(&whole);
    }
    mesh.draw()?;
    for (label, color, points) in lines {
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(legend)
        .draw()?;
    root.present()?;
    Ok(())
}

fn utilization(path: &Path, r: &Report) -> DrawResult {
    // Rounds without a value (the unmet demand of the first round: nothing was in force)
    // leave no point.
    let line = |label, color, f: fn(&RoundRecord) -> Option<f64>| -> Line {
        let points = r
            .per_round
            .iter()
            .filter_map(|x| f(x).map(|v| (x.round as f64, v.clamp(0.0, 1.05))));
        (label, color, points.collect())
    };
    line_chart(
        path,
        "Utilization and unmet demand per round",
        "share",
        r.per_round.len(),
        1.05,
        false,
        vec![
            line("utilization", BLUE, |x| Some(x.utilization)),
            line("unmet demand (against the grants in force)", RED, |x| {
                x.unmet_demand
            }),
            line("efficiency (objective / bound)", GREEN, |x| {
                Some(x.efficiency)
            }),
            line("fairness (Jain)", MAGENTA, |x| Some(x.fairness)),
        ],
        SeriesLabelPosition::LowerRight,
    )
}

fn latency(path: &Path, t: &Timings) -> DrawResult {
    let max = t.round_latency_seconds.iter().copied().fold(1e-3, f64::max);
    let pts = |v: &[f64]| -> Vec<(f64, f64)> {
        v.iter()
            .enumerate()
            .map(|(i, &s)| ((i + 1) as f64, s))
            .collect()
    };
    line_chart(
        path,
        "Round latency",
        "seconds",
        t.round_latency_seconds.len(),
        max * 1.1,
        false,
        vec![
            (
                "round (collect, solve, deliver)",
                BLUE,
                pts(&t.round_latency_seconds),
            ),
            ("of which solving", RED, pts(&t.round_solve_seconds)),
        ],
        SeriesLabelPosition::UpperRight,
    )
}

fn messages(path: &Path, r: &Report) -> DrawResult {
    let max = r
        .per_round
        .iter()
        .flat_map(|x| x.messages_by_priority)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let lanes = [
        ("control", BLACK),
        ("high", RED),
        ("normal", BLUE),
        ("low", GREEN),
    ];
    let lines = lanes
        .into_iter()
        .enumerate()
        .map(|(lane, (label, color))| {
            let points = r
                .per_round
                .iter()
                .map(|x| (x.round as f64, x.messages_by_priority[lane] as f64));
            (label, color, points.collect())
        })
        .collect();
    line_chart(
        path,
        "Agent messages handled per round and priority lane",
        "messages handled",
        r.per_round.len(),
        max * 1.1,
        true,
        lines,
        SeriesLabelPosition::UpperRight,
    )
}
