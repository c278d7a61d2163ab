//! PNG line charts (`orrery plot`, the reproduction reports), drawn with plotters' bitmap backend;
//! what each workload plots is in its module under `crate::workloads`.
//!
//! Text is rasterised with ab_glyph from the DejaVu Sans font the `dejavu` crate embeds, so plots
//! need no system fonts, fontconfig or Python. Log axes are drawn as linear axes over log10 of the
//! values with `1e-3`-style tick labels: one chart type serves every combination of axes.

use std::path::Path;
use std::sync::Once;

use anyhow::{Context, Result};
use plotters::prelude::*;
use plotters::style::FontStyle;

/// One labelled curve; points with a non-finite coordinate (or a non-positive one on a log axis)
/// are left out.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// Where the legend goes: the corner the curves leave empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Legend {
    #[default]
    UpperLeft,
    UpperMiddle,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub title: String,
    pub legend: Legend,
    pub x_label: String,
    pub y_label: String,
    pub log_x: bool,
    pub log_y: bool,
    pub series: Vec<Series>,
}

/// Tableau's ten colours: distinct, and readable on white (Palette99 has yellows that are not).
const COLOURS: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];
/// Series with more points than this are drawn as lines alone: markers would blur them.
const MAX_MARKED_POINTS: usize = 40;

const WIDTH: u32 = 900;
const HEIGHT: u32 = 560;

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
            .unwrap_or_else(|_| panic!("the embedded DejaVu Sans font is a valid TrueType font"));
    });
}

fn to_axis(v: f64, log: bool) -> Option<f64> {
    match (log, v.is_finite()) {
        (_, false) => None,
        (true, _) if v <= 0.0 => None,
        (true, _) => Some(v.log10()),
        (false, _) => Some(v),
    }
}

/// A tick label for an axis position: the value itself, or 10^position on a log axis (rounded to
/// two significant digits there: log ticks fall between round numbers).
fn tick(v: f64, log: bool) -> String {
    let x = if log { 10f64.powf(v) } else { v };
    if x == 0.0 {
        return "0".into();
    }
    if !(1e-2..1e4).contains(&x.abs()) {
        return format!("{x:.1e}").replace(".0e", "e");
    }
    let (x, decimals) = if log {
        let exp = x.abs().log10().floor() as i32 - 1;
        let unit = 10f64.powi(exp);
        ((x / unit).round() * unit, (-exp).max(0) as usize)
    } else {
        (x, 3)
    };
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// The axis range over the values, padded by 5 % (a flat series still gets a non-empty range).
fn padded_range(values: impl Iterator<Item = f64>) -> Option<std::ops::Range<f64>> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        return None;
    }
    let pad = if hi > lo {
        (hi - lo) * 0.05
    } else {
        lo.abs().max(1.0) * 0.05
    };
    Some(lo - pad..hi + pad)
}

/// Draws `chart` into a PNG at `path`. A chart without a single drawable point is an error: an
/// empty plot in a report would hide that the data is missing.
pub fn draw(chart: &Chart, path: &Path) -> Result<()> {
    register_font();
    let series: Vec<(String, Vec<(f64, f64)>)> = chart
        .series
        .iter()
        .map(|s| {
            let pts = s
                .points
                .iter()
                .filter_map(|&(x, y)| Some((to_axis(x, chart.log_x)?, to_axis(y, chart.log_y)?)))
                .collect();
            (s.label.clone(), pts)
        })
        .collect();
    let all = || series.iter().flat_map(|(_, p)| p.iter().copied());
    let (Some(xr), Some(yr)) = (
        padded_range(all().map(|p| p.0)),
        padded_range(all().map(|p| p.1)),
    ) else {
        anyhow::bail!("\"{}\": no data to plot", chart.title);
    };
    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut ctx = ChartBuilder::on(&root)
        .caption(&chart.title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(xr, yr)?;
    let (log_x, log_y) = (chart.log_x, chart.log_y);
    ctx.configure_mesh()
        .x_desc(&chart.x_label)
        .y_desc(&chart.y_label)
        .x_label_formatter(&|v| tick(*v, log_x))
        .y_label_formatter(&|v| tick(*v, log_y))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for (i, (label, pts)) in series.into_iter().enumerate() {
        let (r, g, b) = COLOURS[i % COLOURS.len()];
        let color = RGBColor(r, g, b).to_rgba();
        ctx.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        if pts.len() <= MAX_MARKED_POINTS {
            ctx.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
        }
    }
    ctx.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 14))
        .position(match chart.legend {
            Legend::UpperLeft => SeriesLabelPosition::UpperLeft,
            Legend::UpperMiddle => SeriesLabelPosition::UpperMiddle,
        })
        .draw()?;
    root.present()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_read_like_the_values() {
        assert_eq!(tick(-3.0, true), "1e-3");
        assert_eq!(tick(0.0, true), "1");
        assert_eq!(tick(2.5, false), "2.5");
        assert_eq!(tick(1.0, true), "10");
        assert_eq!(tick(5.0, true), "1e5");
        assert_eq!(tick(63.096f64.log10(), true), "63");
        assert_eq!(tick(3162.278f64.log10(), true), "3200");
        assert_eq!(tick(0.0316f64.log10(), true), "0.032");
        assert_eq!(tick(4.5e4f64.log10(), true), "4.5e4");
    }

    #[test]
    fn log_axes_drop_what_they_cannot_show() {
        assert_eq!(to_axis(100.0, true), Some(2.0));
        assert_eq!(to_axis(0.0, true), None);
        assert_eq!(to_axis(f64::NAN, false), None);
        assert_eq!(to_axis(-1.0, false), Some(-1.0));
    }

    #[test]
    fn draws_a_png_and_refuses_an_empty_chart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.png");
        let mut chart = Chart {
            title: "LR vs loss".into(),
            legend: Legend::default(),
            x_label: "learning rate".into(),
            y_label: "final loss".into(),
            log_x: true,
            log_y: false,
            series: vec![Series {
                label: "a".into(),
                points: vec![(1e-3, 2.0), (1e-2, 1.5), (1e-1, f64::NAN)],
            }],
        };
        draw(&chart, &path).unwrap();
        let png = std::fs::read(&path).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        // Not a blank canvas: the curve and the text put many colours in it.
        assert!(png.len() > 10_000, "{} bytes", png.len());
        chart.series[0].points = vec![(0.0, f64::NAN)];
        assert!(draw(&chart, &dir.path().join("e.png")).is_err());
    }
}
