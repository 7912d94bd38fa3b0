//! The run's key comparisons as one SVG picture (`--plot`, and
//! `docs/bench.svg` with `--publish`): warm throughput of plain,
//! confidential and `wasmtime serve` at 1 and N clients; cold starts (log
//! scale); chain latency by length; the sandbox knobs; and density.
//!
//! [`PlotData::from_report`] picks the figures (only measured ones: a
//! figure that was not measured has no bar) and [`render_svg`] draws them
//! with `plotters`' SVG backend, which writes text as SVG text (no fonts
//! are needed to draw).

use std::fmt::Write as _;

use anyhow::Context as _;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::model::{Mode, PEER_ACTION, Report, percentile};

/// The picture's size in pixels.
const SIZE: (u32, u32) = (1280, 900);
/// Blue: plain.
const PLAIN: RGBColor = RGBColor(31, 119, 180);
/// Orange: confidential.
const CONFIDENTIAL: RGBColor = RGBColor(255, 127, 14);
/// Grey: `wasmtime serve`.
const PEER: RGBColor = RGBColor(110, 110, 110);
const FONT: &str = "sans-serif";

/// Whose figure a bar or line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Series {
    /// A plain action.
    Plain,
    /// A confidential action.
    Confidential,
    /// `wasmtime serve`.
    Peer,
}

impl Series {
    fn color(self) -> RGBColor {
        match self {
            Series::Plain => PLAIN,
            Series::Confidential => CONFIDENTIAL,
            Series::Peer => PEER,
        }
    }

    fn of(mode: Mode) -> Self {
        match mode {
            Mode::Plain => Series::Plain,
            Mode::Confidential => Series::Confidential,
        }
    }
}

/// One bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// What it is.
    pub label: String,
    /// Its figure (finite, positive).
    pub value: f64,
    /// Its colour.
    pub series: Series,
}

/// One line of points.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Its legend.
    pub label: String,
    /// Its colour.
    pub series: Series,
    /// (x, y) points, by x.
    pub points: Vec<(f64, f64)>,
}

/// What the picture shows.
#[derive(Debug, Clone, PartialEq)]
pub struct PlotData {
    /// The headline.
    pub title: String,
    /// Warm throughput, req/s.
    pub throughput: Vec<Bar>,
    /// Cold starts, p50 ms.
    pub cold: Vec<Bar>,
    /// Chain latency p50 (ms) by steps.
    pub chains: Vec<Line>,
    /// Warm plain noop p50 (ms) per sandbox setting.
    pub knobs: Vec<Bar>,
    /// Lines of text under the panels.
    pub footer: Vec<String>,
}

impl PlotData {
    /// The figures of `report` worth drawing.
    pub fn from_report(report: &Report) -> Self {
        let mut throughput = Vec::new();
        let mut clients: Vec<usize> = report.warm.iter().map(|row| row.clients).collect();
        clients.extend(report.peer.rows.iter().map(|row| row.clients));
        clients.sort_unstable();
        clients.dedup();
        for &n in &clients {
            // One bar per action and mode: the median of its runs.
            let mut shown: Vec<(&str, Mode)> = Vec::new();
            for row in report.warm.iter().filter(|row| row.clients == n) {
                let key = (row.action.as_str(), row.mode);
                if shown.contains(&key) {
                    continue;
                }
                shown.push(key);
                let mut runs: Vec<f64> = report
                    .warm
                    .iter()
                    .filter(|other| {
                        other.clients == n && other.action == row.action && other.mode == row.mode
                    })
                    .map(|other| other.summary.throughput_rps)
                    .filter(|value| value.is_finite())
                    .collect();
                runs.sort_by(f64::total_cmp);
                let label = if runs.len() > 1 {
                    format!(
                        "{} {}, {} (median of {} runs)",
                        row.mode.name(),
                        row.action,
                        clients_text(n),
                        runs.len()
                    )
                } else {
                    format!("{} {}, {}", row.mode.name(), row.action, clients_text(n))
                };
                push_bar(
                    &mut throughput,
                    label,
                    percentile(&runs, 0.5),
                    Series::of(row.mode),
                );
            }
            for row in report.peer.rows.iter().filter(|row| row.clients == n) {
                push_bar(
                    &mut throughput,
                    format!("wasmtime serve {PEER_ACTION}, {}", clients_text(n)),
                    row.summary.throughput_rps,
                    Series::Peer,
                );
            }
        }

        let mut cold = Vec::new();
        if let Some(peer) = report.peer.rows.iter().find(|row| row.clients == 1) {
            push_bar(
                &mut cold,
                "wasmtime serve: one request (instantiates)".into(),
                peer.summary.p50_ms,
                Series::Peer,
            );
        }
        for row in &report.cold {
            push_bar(
                &mut cold,
                format!("{} {}: create + invoke", row.mode.name(), row.action),
                row.total_ms.p50,
                Series::of(row.mode),
            );
        }
        for variant in report.pool.iter().chain(&report.cache) {
            push_bar(
                &mut cold,
                format!(
                    "{} noop, {}: {}",
                    variant.row.mode.name(),
                    variant.setting,
                    variant.measure
                ),
                variant.row.first_invoke_ms.p50,
                Series::of(variant.row.mode),
            );
        }

        let mut chains = Vec::new();
        for mode in [Mode::Plain, Mode::Confidential] {
            let mut points: Vec<(f64, f64)> = report
                .chains
                .iter()
                .filter(|row| row.mode == mode && usable(row.summary.p50_ms))
                .map(|row| (row.steps as f64, row.summary.p50_ms))
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            if !points.is_empty() {
                chains.push(Line {
                    label: mode.name().into(),
                    series: Series::of(mode),
                    points,
                });
            }
        }

        let mut knobs = Vec::new();
        for row in &report.knobs {
            if let Some(warm) = &row.warm {
                push_bar(&mut knobs, row.setting.clone(), warm.p50_ms, Series::Plain);
            }
        }

        let mut footer = Vec::new();
        if let Some(d) = &report.density {
            footer.push(format!(
                "Density: {} warm noop instances alive at once; {:.1} KiB RSS each instantiated \
                 ({} fit in 2 GiB), {:.1} KiB after _start ({} fit).",
                d.instances,
                d.per_idle.rss_bytes / 1024.0,
                d.per_idle
                    .fit_in_budget
                    .map_or_else(|| "-".into(), |n| n.to_string()),
                d.per_started.rss_bytes / 1024.0,
                d.per_started
                    .fit_in_budget
                    .map_or_else(|| "-".into(), |n| n.to_string()),
            ));
        }
        if !report.peer.measured {
            footer.push(format!("Peer: {}.", report.peer.not_measured_text()));
        }
        let passed = report
            .goals
            .iter()
            .filter(|goal| goal.verdict.label() == "PASS")
            .count();
        let failed = report
            .goals
            .iter()
            .filter(|goal| goal.verdict.label() == "FAIL")
            .count();
        footer.push(format!(
            "Goals: {passed} PASS, {failed} FAIL, {} not measured. {} TEE ({}).",
            report.goals.len() - passed - failed,
            report.tee.kind,
            if report.tee.hardware {
                "hardware"
            } else {
                "simulated: no hardware protection"
            }
        ));
        let m = &report.machine;
        let title = format!(
            "{}: {} cores, {}",
            report.title,
            m.cores,
            m.cpu.as_deref().unwrap_or("unknown CPU")
        );
        Self {
            title,
            throughput,
            cold,
            chains,
            knobs,
            footer,
        }
    }
}

fn usable(value: f64) -> bool {
    value.is_finite() && value > 0.0
}

fn push_bar(bars: &mut Vec<Bar>, label: String, value: f64, series: Series) {
    if usable(value) {
        bars.push(Bar {
            label,
            value,
            series,
        });
    }
}

fn clients_text(n: usize) -> String {
    if n == 1 {
        "1 client".into()
    } else {
        format!("{n} clients")
    }
}

/// How a bar panel maps values to lengths.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scale {
    Linear { max: f64 },
    Log { low: f64, high: f64 },
}

impl Scale {
    /// A scale for `values` (finite, positive).
    fn for_values(values: &[f64], log: bool) -> Self {
        let max = values.iter().copied().fold(0.0_f64, f64::max);
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        if log && min.is_finite() && min > 0.0 {
            let low = 10f64.powf(min.log10().floor());
            let mut high = 10f64.powf(max.log10().ceil());
            if high <= low {
                high = low * 10.0;
            }
            Scale::Log { low, high }
        } else {
            Scale::Linear {
                max: if max > 0.0 { max } else { 1.0 },
            }
        }
    }

    /// Where `value` falls, from 0 to 1.
    fn fraction(self, value: f64) -> f64 {
        let fraction = match self {
            Scale::Linear { max } => value / max,
            Scale::Log { low, high } => {
                (value.log10() - low.log10()) / (high.log10() - low.log10())
            }
        };
        if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// `data` as an SVG document.
pub fn render_svg(data: &PlotData) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).context("drawing the background")?;
        let (header, rest) = root.split_vertically(44);
        header
            .draw_text(
                &data.title,
                &TextStyle::from((FONT, 20).into_font()).color(&BLACK),
                (14, 14),
            )
            .context("drawing the title")?;
        let footer_height = 24 * data.footer.len().max(1) as u32 + 8;
        let (body, footer) = rest.split_vertically(SIZE.1 - 44 - footer_height);
        let panels = body.split_evenly((2, 2));
        if let [throughput, cold, chains, knobs] = &panels[..] {
            draw_bars(
                throughput,
                "Warm throughput, req/s (higher is better)",
                &data.throughput,
                false,
                |v| format!("{v:.0}"),
            )?;
            draw_bars(
                cold,
                "Cold start p50, ms, log scale (lower is better)",
                &data.cold,
                true,
                format_ms,
            )?;
            draw_chains(chains, &data.chains)?;
            draw_bars(
                knobs,
                "Sandbox knobs: warm plain noop p50 at 1 client, ms",
                &data.knobs,
                false,
                format_ms,
            )?;
        }
        for (index, line) in data.footer.iter().enumerate() {
            footer
                .draw_text(
                    line,
                    &TextStyle::from((FONT, 14).into_font()).color(&BLACK),
                    (14, 4 + 24 * index as i32),
                )
                .context("drawing the footer")?;
        }
        root.present().context("finishing the SVG")?;
    }
    Ok(svg)
}

fn format_ms(value: f64) -> String {
    let mut text = String::new();
    let _ = if value < 1.0 {
        write!(text, "{value:.3} ms")
    } else if value < 100.0 {
        write!(text, "{value:.2} ms")
    } else {
        write!(text, "{value:.0} ms")
    };
    text
}

/// Horizontal bars with their labels on the left and values at their ends.
fn draw_bars<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    bars: &[Bar],
    log: bool,
    format: impl Fn(f64) -> String,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let (width, height) = area.dim_in_pixel();
    let (width, height) = (width as i32, height as i32);
    let title_style = TextStyle::from((FONT, 16).into_font()).color(&BLACK);
    area.draw_text(title, &title_style, (12, 8))
        .map_err(|e| anyhow::anyhow!("drawing a panel title: {e:?}"))?;
    if bars.is_empty() {
        let style = TextStyle::from((FONT, 14).into_font()).color(&PEER);
        area.draw_text("not measured in this run", &style, (12, 40))
            .map_err(|e| anyhow::anyhow!("drawing a panel: {e:?}"))?;
        return Ok(());
    }
    let values: Vec<f64> = bars.iter().map(|bar| bar.value).collect();
    let scale = Scale::for_values(&values, log);
    let top = 36;
    let row = ((height - top - 12) / bars.len() as i32).clamp(8, 34);
    let left = width * 45 / 100;
    let right = width - 100;
    let label_style = TextStyle::from((FONT, 12).into_font())
        .color(&BLACK)
        .pos(Pos::new(HPos::Right, VPos::Center));
    let value_style = TextStyle::from((FONT, 12).into_font())
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    let draw = |result: Result<(), DrawingAreaErrorKind<DB::ErrorType>>| {
        result.map_err(|e| anyhow::anyhow!("drawing a bar: {e:?}"))
    };
    for (index, bar) in bars.iter().enumerate() {
        let y = top + row * index as i32;
        let middle = y + row / 2;
        let end = left + ((right - left) as f64 * scale.fraction(bar.value)).round() as i32;
        let end = end.max(left + 1);
        draw(area.draw(&Rectangle::new(
            [(left, y + 3), (end, y + row - 3)],
            bar.series.color().filled(),
        )))?;
        draw(area.draw_text(&bar.label, &label_style, (left - 6, middle)))?;
        draw(area.draw_text(&format(bar.value), &value_style, (end + 5, middle)))?;
    }
    draw(area.draw(&PathElement::new(
        vec![(left, top), (left, top + row * bars.len() as i32)],
        BLACK,
    )))?;
    if let Scale::Log { low, high } = scale {
        let note = format!("axis {} to {}", format_ms(low), format_ms(high));
        let style = TextStyle::from((FONT, 11).into_font()).color(&PEER);
        draw(area.draw_text(&note, &style, (left, top + row * bars.len() as i32 + 2)))?;
    }
    Ok(())
}

/// Chain latency p50 by number of steps, one line per mode.
fn draw_chains<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    lines: &[Line],
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let title = "Chain latency p50 by length, ms (1 client)";
    let failed = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow::anyhow!("drawing chains: {e:?}");
    if lines.is_empty() {
        return draw_bars(area, title, &[], false, format_ms);
    }
    let max_x = lines
        .iter()
        .flat_map(|line| line.points.iter().map(|p| p.0))
        .fold(1.0_f64, f64::max);
    let max_y = lines
        .iter()
        .flat_map(|line| line.points.iter().map(|p| p.1))
        .fold(0.0_f64, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 16))
        .margin(14)
        .x_label_area_size(34)
        .y_label_area_size(52)
        .build_cartesian_2d(0.0..max_x + 1.0, 0.0..max_y * 1.2 + 0.1)
        .map_err(failed)?;
    chart
        .configure_mesh()
        .x_desc("steps")
        .y_desc("ms")
        .x_labels(12)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .light_line_style(WHITE)
        .draw()
        .map_err(failed)?;
    for line in lines {
        let color = line.series.color();
        // Confidential values above their points, the others below.
        let label_at = if line.series == Series::Confidential {
            (6, -16)
        } else {
            (6, 4)
        };
        chart
            .draw_series(LineSeries::new(
                line.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(failed)?
            .label(line.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(PointSeries::of_element(
                line.points.iter().copied(),
                4,
                color.filled(),
                &|coord, size, style| {
                    EmptyElement::at(coord)
                        + Circle::new((0, 0), size, style)
                        + Text::new(format_ms(coord.1), label_at, (FONT, 11).into_font())
                },
            ))
            .map_err(failed)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .draw()
        .map_err(failed)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_map_values_into_the_unit_interval() {
        let linear = Scale::for_values(&[2.0, 4.0], false);
        assert_eq!(linear, Scale::Linear { max: 4.0 });
        assert_eq!(linear.fraction(2.0), 0.5);
        assert_eq!(linear.fraction(8.0), 1.0, "clamped");
        let log = Scale::for_values(&[0.3, 42.0], true);
        assert_eq!(
            log,
            Scale::Log {
                low: 0.1,
                high: 100.0
            }
        );
        assert!((log.fraction(1.0) - 1.0 / 3.0).abs() < 1e-12);
        assert!((log.fraction(10.0) - 2.0 / 3.0).abs() < 1e-12);
        let flat = Scale::for_values(&[10.0, 10.0], true);
        assert_eq!(
            flat,
            Scale::Log {
                low: 10.0,
                high: 100.0
            }
        );
        assert_eq!(Scale::for_values(&[], false), Scale::Linear { max: 1.0 });
    }

    #[test]
    fn unmeasured_figures_get_no_bar() {
        let mut bars = Vec::new();
        push_bar(&mut bars, "a".into(), f64::NAN, Series::Plain);
        push_bar(&mut bars, "b".into(), 0.0, Series::Plain);
        push_bar(&mut bars, "c".into(), 3.0, Series::Peer);
        assert_eq!(bars.len(), 1);
        assert_eq!(bars[0].label, "c");
    }

    #[test]
    fn the_report_gives_each_panel_its_figures() {
        let report = crate::model::tests::report();
        let data = PlotData::from_report(&report);
        let labels: Vec<&str> = data.throughput.iter().map(|b| b.label.as_str()).collect();
        assert_eq!(
            labels,
            vec![
                "plain noop, 1 client",
                "confidential noop, 1 client",
                "plain hello, 1 client",
                "confidential hello, 1 client",
                "wasmtime serve hello, 1 client",
                "plain noop, 8 clients",
                "confidential noop, 8 clients",
                "plain hello, 8 clients",
                "confidential hello, 8 clients",
                "wasmtime serve hello, 8 clients",
            ]
        );
        assert_eq!(data.throughput[4].series, Series::Peer);
        assert_eq!(data.throughput[4].value, 3800.0);
        // The peer's one-client request first, then create + invoke rows,
        // then the first invokes of the pool and cache comparisons.
        assert_eq!(data.cold.len(), 1 + 3 + 5);
        assert_eq!(data.cold[0].value, 0.25);
        assert_eq!(data.cold[2].label, "plain hello: create + invoke");
        assert_eq!(data.cold[2].value, 45.0);
        let pool = data
            .cold
            .iter()
            .find(|b| b.label == "confidential noop, enclave pool: invoke once provisioned")
            .expect("pool bar");
        assert_eq!(pool.value, 4.0);
        assert_eq!(data.chains.len(), 2);
        assert_eq!(data.chains[1].label, "confidential");
        assert_eq!(
            data.chains[1].points,
            vec![(1.0, 3.0), (5.0, 8.0), (10.0, 13.0)]
        );
        assert_eq!(data.knobs.len(), 2, "knobs with a warm figure");
        assert!(
            data.footer[0].contains("32768 fit in 2 GiB"),
            "{:?}",
            data.footer
        );
        assert!(data.footer[1].starts_with("Goals: 10 PASS, 12 FAIL, 6 not measured"));
        assert!(data.title.contains("2 cores, Test CPU"));
        let svg = render_svg(&data).expect("svg");
        assert!(svg.contains("wasmtime serve hello, 8 clients"));
    }

    #[test]
    fn runs_of_one_row_make_one_bar_at_their_median() {
        let mut report = crate::model::tests::report();
        for (run, rps) in [(2, 1000.0), (3, 3000.0)] {
            let mut row = crate::model::tests::warm(Mode::Plain, 1, rps, 0.5);
            row.run = run;
            report.warm.push(row);
        }
        let data = PlotData::from_report(&report);
        let bars: Vec<&Bar> = data
            .throughput
            .iter()
            .filter(|bar| bar.label.starts_with("plain noop, 1 client"))
            .collect();
        assert_eq!(bars.len(), 1, "{bars:?}");
        assert_eq!(bars[0].label, "plain noop, 1 client (median of 3 runs)");
        assert_eq!(bars[0].value, 2000.0);
    }

    #[test]
    fn an_empty_picture_still_renders_and_says_so() {
        let data = PlotData {
            title: "t".into(),
            throughput: Vec::new(),
            cold: Vec::new(),
            chains: Vec::new(),
            knobs: Vec::new(),
            footer: Vec::new(),
        };
        let svg = render_svg(&data).expect("svg");
        assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
        assert!(svg.contains("not measured in this run"));
    }

    #[test]
    fn bars_and_lines_are_drawn_with_their_labels() {
        let data = PlotData {
            title: "Clemmys benchmark".into(),
            throughput: vec![
                Bar {
                    label: "plain noop, 1 client".into(),
                    value: 3000.0,
                    series: Series::Plain,
                },
                Bar {
                    label: "wasmtime serve hello, 1 client".into(),
                    value: 3900.0,
                    series: Series::Peer,
                },
            ],
            cold: vec![Bar {
                label: "confidential noop: create + invoke".into(),
                value: 12.5,
                series: Series::Confidential,
            }],
            chains: vec![Line {
                label: "plain".into(),
                series: Series::Plain,
                points: vec![(1.0, 1.0), (5.0, 3.0), (10.0, 6.0)],
            }],
            knobs: Vec::new(),
            footer: vec!["Density: 9000 fit".into()],
        };
        let svg = render_svg(&data).expect("svg");
        for text in [
            "Clemmys benchmark",
            "plain noop, 1 client",
            "wasmtime serve hello, 1 client",
            "3900",
            "12.50 ms",
            "Density: 9000 fit",
            "steps",
        ] {
            assert!(svg.contains(text), "missing {text}");
        }
    }
}
