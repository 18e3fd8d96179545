//! The three SVG plots of `gpu-slicer simulate`'s report folder (feature `plots`): cost
//! over time with the floor, GPUs paid and requested, the pending-time CDF. Plots put the legend beside the data (never over it), tick on round
//! numbers (integers whenever the range spans more than a couple of units), trim the
//! time axis to the data, and mark unsafe strategies with their violation counts.

use std::path::Path;

use plotters::prelude::*;

use crate::cli::{Failure, bad_input};
use crate::sim::{Report, StrategyReport};

/// The three SVG plots into `dir`.
pub fn write_plots(dir: &Path, r: &Report) -> Result<(), Failure> {
    plot_cost(&dir.join("cost.svg"), r).map_err(|e| bad_input(format!("cost.svg: {e}")))?;
    plot_gpus(&dir.join("gpus.svg"), r).map_err(|e| bad_input(format!("gpus.svg: {e}")))?;
    plot_pending_cdf(&dir.join("pending-cdf.svg"), r)
        .map_err(|e| bad_input(format!("pending-cdf.svg: {e}")))?;
    Ok(())
}

const COLORS: [RGBColor; 8] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x17, 0xbe, 0xcf),
];
/// The floor and "requested" lines.
const REFERENCE: RGBColor = RGBColor(0x22, 0x22, 0x22);

type PlotResult = Result<(), Box<dyn std::error::Error>>;

/// One line of a chart.
pub struct Line {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    /// Drawn black and dashed-looking (thinner), for the floor and the demand.
    pub reference: bool,
}

/// A round tick step for a span: 1, 2 or 5 × 10^k, about 4-10 ticks; ≥ 1 when the span
/// is ≥ 2, so the ticks are integers.
pub fn nice_step(span: f64) -> f64 {
    if !(span.is_finite() && span > 0.0) {
        return 1.0;
    }
    let raw = span / 8.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * mag);
    if span >= 2.0 { step.max(1.0) } else { step }
}

/// Ticks `0, step, 2 step, …` from `lo` up to `hi`.
fn ticks(lo: f64, hi: f64, step: f64) -> Vec<f64> {
    let mut v = Vec::new();
    let mut k = (lo / step).ceil();
    while k * step <= hi + 1e-9 && v.len() < 64 {
        v.push(k * step);
        k += 1.0;
    }
    v
}

fn label(x: f64, step: f64) -> String {
    if step >= 1.0 {
        format!("{x:.0}")
    } else {
        let digits = (-step.log10()).ceil().max(0.0) as usize;
        format!("{x:.digits$}")
    }
}

/// Lines of (x, y) on one chart, legend in a column to the right of the plot area; the
/// x axis spans exactly the data.
pub fn line_chart(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    lines: &[Line],
) -> PlotResult {
    let xs = || lines.iter().flat_map(|l| l.points.iter().map(|p| p.0));
    let x_min = xs().fold(f64::INFINITY, f64::min);
    let x_max = xs().fold(f64::NEG_INFINITY, f64::max);
    let (x_min, x_max) = if x_min.is_finite() && x_max > x_min {
        (x_min, x_max)
    } else {
        (0.0, 1.0)
    };
    let y_top = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .fold(0.0_f64, f64::max);
    let y_step = nice_step(y_top.max(1e-9) * 1.05);
    let y_max = ((y_top * 1.05 / y_step).ceil() * y_step).max(y_step);
    let x_step = nice_step(x_max - x_min);
    let root = SVGBackend::new(path, (1100, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let (plot, legend) = root.split_horizontally(790);
    let mut chart = ChartBuilder::on(&plot)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(x_min..x_max, 0.0..y_max)?;
    // plotters picks round key points (1, 2, 5 × 10^k) with at most this many labels, so
    // with our step's count it lands on the same round, integer-when-≥ 1 step.
    chart
        .configure_mesh()
        .x_labels(ticks(x_min, x_max, x_step).len().max(2))
        .y_labels(ticks(0.0, y_max, y_step).len().max(2))
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&|x| label(*x, x_step))
        .y_label_formatter(&|y| label(*y, y_step))
        .draw()?;
    let mut shown = Vec::new();
    let mut palette = 0;
    for l in lines {
        let (color, width) = if l.reference {
            (REFERENCE, 1)
        } else {
            palette += 1;
            (COLORS[(palette - 1) % COLORS.len()], 2)
        };
        chart.draw_series(LineSeries::new(
            l.points.iter().copied(),
            color.stroke_width(width),
        ))?;
        shown.push((l.label.clone(), color, width));
    }
    for (i, (text, color, width)) in shown.into_iter().enumerate() {
        let y = 48 + 22 * i32::try_from(i).unwrap_or(0);
        legend.draw(&PathElement::new(
            vec![(8, y), (32, y)],
            color.stroke_width(width),
        ))?;
        legend.draw(&Text::new(text, (38, y - 7), ("sans-serif", 13)))?;
    }
    root.present()?;
    Ok(())
}

/// A strategy's legend entry: its name, and for an unsafe one its violations.
fn legend_name(s: &StrategyReport) -> String {
    if s.safe {
        s.strategy.clone()
    } else {
        format!("{} {}", s.strategy, safety_note(s))
    }
}

/// Time from the first sample, in days (hours when the replay is under 3 days).
fn time_axis(r: &Report) -> (u64, f64, &'static str) {
    let t0 = r
        .strategies
        .iter()
        .flat_map(|s| s.series.first().map(|p| p.t))
        .chain(r.lower_bound_series.first().map(|p| p.0))
        .min()
        .unwrap_or(0);
    if r.horizon_s < 3 * 86_400 {
        (t0, 3600.0, "hours from the first arrival")
    } else {
        (t0, 86_400.0, "days from the first arrival")
    }
}

fn plot_cost(path: &Path, r: &Report) -> PlotResult {
    let (t0, unit, desc) = time_axis(r);
    let x = |t: u64| t.saturating_sub(t0) as f64 / unit;
    let mut lines: Vec<Line> = super::ranked(r)
        .into_iter()
        .map(|s| Line {
            label: legend_name(s),
            points: s.series.iter().map(|p| (x(p.t), p.cost_rate)).collect(),
            reference: false,
        })
        .collect();
    lines.push(Line {
        label: format!("floor (LP bound, {} s windows)", r.floor_window_s),
        points: r
            .lower_bound_series
            .iter()
            .map(|(t, c)| (x(*t), *c))
            .collect(),
        reference: true,
    });
    line_chart(
        path,
        &format!("{}: cost over time", r.workload),
        desc,
        "USD per hour",
        &lines,
    )
}

fn plot_gpus(path: &Path, r: &Report) -> PlotResult {
    let (t0, unit, desc) = time_axis(r);
    let x = |t: u64| t.saturating_sub(t0) as f64 / unit;
    let ranked = super::ranked(r);
    let mut lines: Vec<Line> = ranked
        .iter()
        .map(|s| Line {
            label: format!("{} (paid)", legend_name(s)),
            points: s
                .series
                .iter()
                .map(|p| (x(p.t), f64::from(p.gpus)))
                .collect(),
            reference: false,
        })
        .collect();
    if let Some(s) = ranked.first() {
        lines.push(Line {
            label: format!("requested (as placed by {})", s.strategy),
            points: s
                .series
                .iter()
                .map(|p| (x(p.t), p.gpus_allocated))
                .collect(),
            reference: true,
        });
    }
    line_chart(
        path,
        &format!("{}: GPUs paid and requested", r.workload),
        desc,
        "GPUs",
        &lines,
    )
}

fn plot_pending_cdf(path: &Path, r: &Report) -> PlotResult {
    let lines: Vec<Line> = super::ranked(r)
        .into_iter()
        .map(|s| {
            let mut v = s.pending_times_s.clone();
            v.sort_unstable();
            let n = v.len().max(1) as f64;
            Line {
                label: legend_name(s),
                points: v
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (*t as f64, 100.0 * (i + 1) as f64 / n))
                    .collect(),
                reference: false,
            }
        })
        .collect();
    line_chart(
        path,
        &format!("{}: pending time CDF", r.workload),
        "seconds pending",
        "% of placed pods",
        &lines,
    )
}

/// "safe", or "UNSAFE (S share / M memory violations)".
fn safety_note(s: &crate::sim::StrategyReport) -> String {
    if s.safe {
        "safe".to_string()
    } else {
        format!(
            "UNSAFE ({} share / {} memory violations)",
            s.share_violations, s.memory_violations
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_are_svg_documents_with_the_legend_beside_the_data() {
        let dir = std::env::temp_dir().join(format!("gpu-slicer-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("t.svg");
        let line = |label: &str, points: Vec<(f64, f64)>| Line {
            label: label.into(),
            points,
            reference: false,
        };
        line_chart(
            &path,
            "t",
            "x",
            "y",
            &[
                line("alpha", vec![(3.0, 1.0), (17.0, 42.0)]),
                line("beta", vec![]),
            ],
        )
        .expect("plots");
        let svg = std::fs::read_to_string(&path).expect("svg");
        assert!(
            svg.starts_with("<svg") && svg.contains("<polyline"),
            "{svg}"
        );
        // The x axis starts at the data (3), ticks are integers, the legend is drawn
        // right of the plot area (x > 790).
        // (x attribute, text) of every text element.
        let texts: Vec<(f64, String)> = svg
            .split("<text")
            .skip(1)
            .filter_map(|t| {
                let x = t.split("x=\"").nth(1)?.split('"').next()?.parse().ok()?;
                let body = t.split_once('>')?.1.split("</text>").next()?.trim();
                Some((x, body.to_string()))
            })
            .collect();
        let has = |s: &str| texts.iter().any(|(_, t)| t == s);
        assert!(
            has("4") && has("16") && !has("0.5") && !has("2"),
            "{texts:?}"
        );
        let legend_x = texts
            .iter()
            .find(|(_, t)| t == "alpha")
            .map(|(x, _)| *x)
            .expect("legend text");
        assert!(legend_x > 790.0, "{legend_x}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn nice_steps_are_round_and_integer_over_two() {
        assert_eq!(nice_step(149.0), 20.0);
        assert_eq!(nice_step(10.0), 2.0);
        assert_eq!(nice_step(3.0), 1.0);
        assert_eq!(nice_step(0.8), 0.1);
        assert_eq!(nice_step(f64::NAN), 1.0);
        assert_eq!(
            ticks(3.0, 17.0, 2.0),
            vec![4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0]
        );
    }
}
