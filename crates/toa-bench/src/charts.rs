//! PNG charts (plotters, bitmap backend). Text is drawn with DejaVu Sans read
//! from the Debian font package and handed to plotters' ab_glyph renderer, so
//! no fontconfig lookup can fail or silently drop the labels.

use crate::results::Stat;
use anyhow::{Context, anyhow};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;
use std::sync::Once;

const FONT_PATH: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
const SIZE: (u32, u32) = (960, 540);

/// One bar series: a name and a value (or nothing) per group.
pub struct Series {
    pub name: String,
    pub values: Vec<Option<Stat>>,
}

/// A grouped bar chart: the median as the bar, min..max as a whisker, and an
/// optional dashed reference line (a goal).
pub struct Bars<'a> {
    pub title: &'a str,
    pub y_label: &'a str,
    pub groups: Vec<String>,
    pub series: Vec<Series>,
    pub reference: Option<(f64, &'a str)>,
}

fn register_font() -> anyhow::Result<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        result = std::fs::read(FONT_PATH)
            .with_context(|| format!("reading {FONT_PATH} (install fonts-dejavu-core)"))
            .and_then(|bytes| {
                // plotters keeps the font for the life of the process.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
                    .map_err(|_| anyhow!("{FONT_PATH} is not a usable TrueType font"))
            });
    });
    result
}

pub fn draw(path: &Path, bars: &Bars) -> anyhow::Result<()> {
    register_font()?;
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let top = bars
        .series
        .iter()
        .flat_map(|s| s.values.iter().flatten().map(|v| v.max))
        .chain(bars.reference.map(|r| r.0))
        .fold(0.0, f64::max);
    let y_max = if top > 0.0 { top * 1.2 } else { 1.0 };
    let n_groups = bars.groups.len().max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption(bars.title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(36)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..n_groups as f64, 0.0..y_max)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&|_| String::new())
        .y_label_formatter(&|v| axis_label(*v, y_max))
        .y_desc(bars.y_label)
        .bold_line_style(BLACK.mix(0.15))
        .light_line_style(TRANSPARENT)
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .draw()?;

    let n = bars.series.len().max(1) as f64;
    let centered = |size| {
        TextStyle::from(("sans-serif", size).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom))
    };
    for (i, s) in bars.series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        for (g, v) in s.values.iter().enumerate() {
            let Some(v) = v else { continue };
            let x0 = g as f64 + 0.1 + 0.8 * i as f64 / n;
            let x1 = g as f64 + 0.1 + 0.8 * (i as f64 + 0.9) / n;
            let (xm, cap) = ((x0 + x1) / 2.0, 0.1 / n);
            chart.draw_series([Rectangle::new([(x0, v.median), (x1, 0.0)], color.filled())])?;
            chart.draw_series([
                PathElement::new(vec![(xm, v.min), (xm, v.max)], BLACK),
                PathElement::new(vec![(xm - cap, v.min), (xm + cap, v.min)], BLACK),
                PathElement::new(vec![(xm - cap, v.max), (xm + cap, v.max)], BLACK),
            ])?;
            chart.draw_series([Text::new(
                short(v.median),
                (xm, v.max + y_max * 0.01),
                centered(12),
            )])?;
        }
    }
    if let Some((value, label)) = bars.reference {
        chart.draw_series(DashedLineSeries::new(
            [(0.0, value), (n_groups as f64, value)],
            8,
            6,
            RED.stroke_width(2),
        ))?;
        let style = ("sans-serif", 14).into_font().color(&RED);
        chart.draw_series([Text::new(
            label.to_string(),
            (0.02, value + y_max * 0.01),
            style,
        )])?;
    }
    // Group names under the axis and the legend in the top right, in pixels
    // of the whole image (the plotting area clips anything outside it).
    let (xs, ys) = chart.plotting_area().get_pixel_range();
    for (g, name) in bars.groups.iter().enumerate() {
        let (x, _) = chart.backend_coord(&(g as f64 + 0.5, 0.0));
        let style =
            TextStyle::from(("sans-serif", 16).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
        root.draw(&Text::new(name.clone(), (x, ys.end + 8), style))?;
    }
    for (i, s) in bars.series.iter().enumerate() {
        let (x, y) = (xs.end - 200, ys.start + 8 + 20 * i as i32);
        root.draw(&Rectangle::new(
            [(x, y), (x + 14, y + 14)],
            Palette99::pick(i).filled(),
        ))?;
        root.draw(&Text::new(
            s.name.clone(),
            (x + 20, y),
            ("sans-serif", 14).into_font(),
        ))?;
    }
    root.present()
        .map_err(|e| anyhow!("writing {}: {e}", path.display()))?;
    Ok(())
}

/// One format for every label of an axis, chosen by its largest value.
fn axis_label(v: f64, axis_max: f64) -> String {
    if axis_max >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if axis_max >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// 3 significant digits, with k/M suffixes: bar labels must stay narrow.
pub fn short(v: f64) -> String {
    let (v, suffix) = if v.abs() >= 1e6 {
        (v / 1e6, "M")
    } else if v.abs() >= 1e4 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let digits = if v.abs() >= 100.0 {
        0
    } else if v.abs() >= 10.0 {
        1
    } else {
        2
    };
    format!("{v:.digits$}{suffix}")
}

/// A line chart over time: each series is (x, y) points in x order.
pub struct Lines<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: Vec<(String, Vec<(f64, f64)>)>,
}

pub fn draw_lines(path: &Path, lines: &Lines) -> anyhow::Result<()> {
    register_font()?;
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let points = || lines.series.iter().flat_map(|(_, p)| p.iter());
    let x_max = points().map(|p| p.0).fold(0.0, f64::max).max(1.0);
    let top = points().map(|p| p.1).fold(0.0, f64::max);
    let y_max = if top > 0.0 { top * 1.2 } else { 1.0 };
    let mut chart = ChartBuilder::on(&root)
        .caption(lines.title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc(lines.x_label)
        .y_desc(lines.y_label)
        .y_label_formatter(&|v| axis_label(*v, y_max))
        .bold_line_style(BLACK.mix(0.15))
        .light_line_style(TRANSPARENT)
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .draw()?;
    for (i, (name, points)) in lines.series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    root.present()
        .map_err(|e| anyhow!("writing {}: {e}", path.display()))?;
    Ok(())
}
