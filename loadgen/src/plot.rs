//! `loadgen plot`: latency by percentile, one line per run, as a PNG.
//!
//! The x axis is HdrHistogram's percentile axis: `log10(1 / (1 - p))`, so 90 %, 99 %,
//! 99.9 %, ... are equally spaced and the tail, where servers differ, gets most of the
//! width. The y axis is logarithmic latency (µs, ms, s), so that a 50 µs body and a 50 ms
//! tail are both readable. Series come from a JSON report's `percentiles_us` curve or
//! from the sum of an interval log's histograms; each gets a colour and a legend entry.
//!
//! Drawn with plotters on an RGB buffer (its bitmap backend without the `image` crate),
//! text set in DejaVu Sans, which the `dejavu` crate embeds (no font files or system
//! libraries needed at run time), and written with the `png` crate.

use std::path::Path;
use std::sync::OnceLock;

use hdrhistogram::Histogram;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::config::PlotConfig;
use crate::hlog;

/// The image's width in pixels.
pub const W: u32 = 1000;
/// The image's height in pixels.
pub const H: u32 = 620;
/// The rightmost percentile drawn: 99.999 %.
const MAX_NINES: f64 = 5.0;
/// Series colours, in order (they repeat after six series).
pub const COLOURS: [(u8, u8, u8); 6] = [
    (31, 119, 180),
    (214, 39, 40),
    (44, 160, 44),
    (255, 127, 14),
    (148, 103, 189),
    (23, 190, 207),
];
/// The font family plotters is given; registered once from the embedded DejaVu Sans.
const FONT: &str = "sans-serif";

fn fonts() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let bad = |_| "the embedded DejaVu Sans is not a font".to_string();
            plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
                .map_err(bad)?;
            plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold()).map_err(bad)
        })
        .clone()
}

/// Returns the percentile curve of a histogram as (percentile, microseconds) points.
pub fn curve_of(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    crate::json::curve(h)
}

/// Returns a percentile's place on the x axis: its number of nines (90 % is 1, 99 % is 2).
fn nines(p: f64) -> f64 {
    let tail = (1.0 - p / 100.0).max(10f64.powf(-MAX_NINES));
    (-tail.log10()).clamp(0.0, MAX_NINES)
}

/// Returns the label of a place on the x axis: `0%`, `90%`, `99%`, `99.9%`, ...
fn percentile_label(n: f64) -> String {
    format!("{}%", trim(100.0 * (1.0 - 10f64.powf(-n)), 4))
}

/// Returns a latency in microseconds in the unit that reads best: `50 µs`, `1.5 ms`, `2 s`.
pub fn fmt_us(us: f64) -> String {
    if us >= 1e6 {
        format!("{} s", trim(us / 1e6, 3))
    } else if us >= 1e3 {
        format!("{} ms", trim(us / 1e3, 3))
    } else {
        format!("{} µs", trim(us, 3))
    }
}

fn trim(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Returns the points of a step line: latency holds until the next percentile, then rises.
fn steps(pts: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(pts.len() * 2);
    for &(p, us) in pts {
        let x = nines(p);
        if let Some(&(_, last)) = out.last() {
            out.push((x, last));
        }
        out.push((x, us.max(0.001)));
    }
    out
}

/// Draws the series as a PNG at `out`.
///
/// # Errors
/// A message when there is nothing to draw or the file cannot be written.
pub fn draw(series: &[(String, Vec<(f64, f64)>)], title: &str, out: &Path) -> Result<(), String> {
    if series.iter().all(|(_, p)| p.is_empty()) {
        return Err("nothing to plot: every input is empty".into());
    }
    fonts()?;
    let values = || {
        series
            .iter()
            .flat_map(|(_, pts)| pts.iter().map(|p| p.1.max(0.001)))
    };
    // Whole decades, so that the axis starts and ends on a labelled power of ten.
    let lo = 10f64.powf(values().fold(f64::MAX, f64::min).log10().floor());
    let hi = 10f64
        .powf(values().fold(0.0f64, f64::max).log10().ceil())
        .max(lo * 10.0);
    let mut px = vec![255u8; (W * H * 3) as usize];
    render(series, title, lo, hi, &mut px).map_err(|e| format!("cannot draw the plot: {e}"))?;
    let file =
        std::fs::File::create(out).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), W, H);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()
        .and_then(|mut w| w.write_image_data(&px))
        .map_err(|e| format!("cannot write {}: {e}", out.display()))
}

fn render(
    series: &[(String, Vec<(f64, f64)>)],
    title: &str,
    lo: f64,
    hi: f64,
    px: &mut [u8],
) -> Result<(), Box<dyn std::error::Error>> {
    let root = BitMapBackend::with_buffer(px, (W, H)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 26).into_font().style(FontStyle::Bold))
        .margin(20)
        .margin_right(50) // room for the last x label, centred on the edge
        .x_label_area_size(55)
        .y_label_area_size(85)
        .build_cartesian_2d(0f64..MAX_NINES, (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .x_labels(MAX_NINES as usize + 1)
        .x_label_formatter(&|n| percentile_label(*n))
        .y_label_formatter(&|us| fmt_us(*us))
        .x_desc("Percentile")
        .y_desc("Response time")
        .axis_desc_style((FONT, 18))
        .label_style((FONT, 15))
        .light_line_style(RGBColor(240, 240, 240))
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()?;
    for (i, (label, pts)) in series.iter().enumerate() {
        let (r, g, b) = COLOURS[i % COLOURS.len()];
        let colour = RGBColor(r, g, b);
        chart
            .draw_series(LineSeries::new(steps(pts), colour.stroke_width(3)))?
            .label(label.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 24, y + 6)], colour.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FONT, 16))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Draws histograms (one series each) as a PNG.
///
/// # Errors
/// As [`draw`].
pub fn plot_histograms(
    series: &[(String, &Histogram<u64>)],
    title: &str,
    out: &Path,
) -> Result<(), String> {
    let s: Vec<_> = series
        .iter()
        .map(|(l, h)| (l.clone(), curve_of(h)))
        .collect();
    draw(&s, title, out)
}

/// Draws the inputs of `cfg` (JSON reports or interval logs).
///
/// # Errors
/// A message naming the input that cannot be read, or the output that cannot be written.
pub fn plot_files(cfg: &PlotConfig) -> Result<(), String> {
    let mut series = Vec::new();
    for (path, label) in &cfg.inputs {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let curve = if text.trim_start().starts_with('{') {
            crate::json::Report::read(path)?.percentiles_us
        } else {
            curve_of(&hlog::read_total(path)?.0)
        };
        series.push((label.clone(), curve));
    }
    draw(&series, &cfg.title, &cfg.out)
}
