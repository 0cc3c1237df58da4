//! The sweep's SVG plots: a metric's mean against the first swept key, one line per
//! setting of the other keys, with the 95% confidence band.

use std::path::Path;

use plotters::prelude::*;

use super::stats::SummaryRow;
use crate::error::SimError;

type DrawResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const SIZE: (u32, u32) = (800, 480);
const COLORS: [RGBColor; 6] = [BLUE, RED, GREEN, MAGENTA, BLACK, CYAN];

/// Writes `METRIC.svg` into `dir` for each metric (dots in its name made `_`), each drawn
/// whole under a temporary name and renamed; returns the file names. Metrics no row has
/// are skipped. `keys` are the swept keys; the first is the x axis (numeric when every
/// value is a number, else one position per value in the order given), and each setting of
/// the others is a line.
///
/// # Errors
///
/// [`SimError::Plot`] naming the plot that could not be drawn.
pub fn write_sweep_plots(
    dir: &Path,
    keys: &[String],
    rows: &[SummaryRow],
    metrics: &[String],
) -> Result<Vec<String>, SimError> {
    let mut written = Vec::new();
    for metric in metrics {
        if !rows.iter().any(|r| r.stats.contains_key(metric)) {
            continue;
        }
        let name = format!("{}.svg", metric.replace('.', "_"));
        crate::write_whole(dir, &name, &mut |tmp| draw(tmp, keys, rows, metric)).map_err(
            |(path, source)| SimError::Plot {
                file: path.display().to_string(),
                source,
            },
        )?;
        written.push(name);
    }
    Ok(written)
}

/// A line: its label and `(x, mean, low, high)` points in x order.
type Series = (String, Vec<(f64, f64, f64, f64)>);

fn draw(path: &Path, keys: &[String], rows: &[SummaryRow], metric: &str) -> DrawResult {
    let first = |r: &SummaryRow| r.params.first().cloned().unwrap_or_default();
    let mut xs_text: Vec<String> = Vec::new();
    for r in rows {
        if !xs_text.contains(&first(r)) {
            xs_text.push(first(r));
        }
    }
    let numeric: Option<Vec<f64>> = xs_text.iter().map(|x| x.parse::<f64>().ok()).collect();
    let numeric = numeric.filter(|v| v.iter().all(|x| x.is_finite()));
    let x_of = |label: &str| -> f64 {
        let i = xs_text.iter().position(|x| x == label).unwrap_or(0);
        numeric.as_ref().map_or(i as f64, |v| v[i])
    };
    let series = series(keys, rows, metric, &x_of);
    let (x_range, y_range) = ranges(&series, numeric.is_some(), xs_text.len());

    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let x_key = keys.first().map_or("configuration", String::as_str);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{metric} against {x_key}: mean and 95% confidence band"),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(x_range, y_range)?;
    let x_label = |x: &f64| -> String {
        if numeric.is_some() {
            // At most 6 decimals, trailing zeros dropped (no 0.30000000000000004).
            let text = format!("{x:.6}");
            text.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            let i = x.round();
            if (x - i).abs() < 1e-9 && i >= 0.0 {
                xs_text.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        }
    };
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(x_key)
        .y_desc(metric)
        .x_label_formatter(&x_label);
    if numeric.is_none() {
        mesh.x_labels(xs_text.len() * 2 + 1);
    }
    mesh.draw()?;
    for (i, (label, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let band: Vec<(f64, f64)> = points
            .iter()
            .map(|p| (p.0, p.3))
            .chain(points.iter().rev().map(|p| (p.0, p.2)))
            .collect();
        chart.draw_series(std::iter::once(Polygon::new(
            band,
            color.mix(0.15).filled(),
        )))?;
        chart.draw_series(
            points
                .iter()
                .map(|p| Circle::new((p.0, p.1), 3, color.filled())),
        )?;
        let line = chart.draw_series(LineSeries::new(
            points.iter().map(|p| (p.0, p.1)),
            color.stroke_width(2),
        ))?;
        if !label.is_empty() {
            line.label(label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
    }
    if series.iter().any(|(l, _)| !l.is_empty()) {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// The lines of a plot: one per setting of the keys after the first, points in x order.
fn series(
    keys: &[String],
    rows: &[SummaryRow],
    metric: &str,
    x_of: &dyn Fn(&str) -> f64,
) -> Vec<Series> {
    let first = |r: &SummaryRow| r.params.first().cloned().unwrap_or_default();
    let mut series: Vec<Series> = Vec::new();
    for r in rows {
        let Some(s) = r.stats.get(metric) else {
            continue;
        };
        let label = keys
            .iter()
            .zip(&r.params)
            .skip(1)
            .map(|(k, v)| format!("{k} = {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        let (lo, hi) = s.ci95.unwrap_or((s.mean, s.mean));
        let point = (x_of(&first(r)), s.mean, lo, hi);
        match series.iter_mut().find(|(l, _)| *l == label) {
            Some((_, points)) => points.push(point),
            None => series.push((label, vec![point])),
        }
    }
    for (_, points) in &mut series {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    series
}

/// The axes' ranges: the points' and their bands', padded (x: one position per value when
/// not `numeric`).
fn ranges(
    series: &[Series],
    numeric: bool,
    positions: usize,
) -> (std::ops::Range<f64>, std::ops::Range<f64>) {
    let all = series.iter().flat_map(|(_, p)| p);
    let (x_lo, x_hi) = all
        .clone()
        .fold((f64::MAX, f64::MIN), |(l, h), p| (l.min(p.0), h.max(p.0)));
    let (y_lo, y_hi) = all
        .filter(|p| p.2.is_finite() && p.3.is_finite())
        .fold((f64::MAX, f64::MIN), |(l, h), p| (l.min(p.2), h.max(p.3)));
    let pad = |lo: f64, hi: f64, rel: f64| {
        if lo < hi {
            (lo - rel * (hi - lo), hi + rel * (hi - lo))
        } else if lo == hi {
            let d = lo.abs().max(1.0) * 0.05;
            (lo - d, lo + d)
        } else {
            (0.0, 1.0)
        }
    };
    let (x_lo, x_hi) = if numeric {
        pad(x_lo, x_hi, 0.05)
    } else {
        (-0.5, positions as f64 - 0.5)
    };
    let (y_lo, y_hi) = pad(y_lo, y_hi, 0.08);
    (x_lo..x_hi, y_lo..y_hi)
}
