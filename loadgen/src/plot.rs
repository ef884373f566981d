//! `loadgen plot`: latency by percentile, one line per run, as a PNG.
//!
//! The x axis is HdrHistogram's percentile axis: `log10(1 / (1 - p))`, so 90 %, 99 %,
//! 99.9 %, ... are equally spaced and the tail, where servers differ, gets most of the
//! width. The y axis is logarithmic latency, a decade per grid line, so that a 50 us body
//! and a 50 ms tail are both readable. Series come from a JSON report's
//! `percentiles_us` curve or from the sum of an interval log's histograms.
//!
//! Drawing is done on an RGB buffer with a built-in bitmap font ([`crate::font`]) and
//! written by [`crate::png`]: no font files or system libraries are needed.

use std::path::Path;

use hdrhistogram::Histogram;

use crate::config::PlotConfig;
use crate::font;
use crate::hlog;
use crate::png;

const W: usize = 1000;
const H: usize = 620;
const LEFT: usize = 110;
const RIGHT: usize = 70;
const TOP: usize = 60;
const BOTTOM: usize = 80;
/// The rightmost percentile drawn: 99.999 %.
const MAX_NINES: f64 = 5.0;
const COLOURS: [[u8; 3]; 6] = [
    [31, 119, 180],
    [214, 39, 40],
    [44, 160, 44],
    [255, 127, 14],
    [148, 103, 189],
    [23, 190, 207],
];

struct Canvas {
    px: Vec<u8>,
}

impl Canvas {
    fn new() -> Self {
        Canvas {
            px: vec![255; W * H * 3],
        }
    }

    fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < W && (y as usize) < H {
            let i = (y as usize * W + x as usize) * 3;
            self.px[i..i + 3].copy_from_slice(&c);
        }
    }

    fn rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: [u8; 3]) {
        for y in y0..=y1 {
            for x in x0..=x1 {
                self.set(x, y, c);
            }
        }
    }

    fn line(&mut self, (x0, y0): (f64, f64), (x1, y1): (f64, f64), c: [u8; 3], thick: i64) {
        let steps = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as i64).max(1);
        for s in 0..=steps {
            let t = s as f64 / steps as f64;
            let (x, y) = (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t);
            let (x, y) = (x.round() as i64, y.round() as i64);
            self.rect(
                x - thick / 2,
                y - thick / 2,
                x + (thick - 1) / 2,
                y + (thick - 1) / 2,
                c,
            );
        }
    }

    /// Draws `text` with its top-left corner at (x, y), each font pixel `scale` wide.
    fn text(&mut self, x: i64, y: i64, text: &str, scale: i64, c: [u8; 3]) {
        for (i, ch) in text.chars().enumerate() {
            let g = font::glyph(ch);
            let gx = x + i as i64 * (font::WIDTH as i64 + 1) * scale;
            for (row, bits) in g.iter().enumerate() {
                for col in 0..font::WIDTH {
                    if bits & (0x10 >> col) != 0 {
                        let px = gx + col as i64 * scale;
                        let py = y + row as i64 * scale;
                        self.rect(px, py, px + scale - 1, py + scale - 1, c);
                    }
                }
            }
        }
    }
}

fn text_width(text: &str, scale: i64) -> i64 {
    text.chars().count() as i64 * (font::WIDTH as i64 + 1) * scale
}

/// Returns the percentile curve of a histogram as (percentile, microseconds) points.
pub fn curve_of(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    h.iter_quantiles(5)
        .map(|v| {
            (
                v.quantile_iterated_to() * 100.0,
                v.value_iterated_to() as f64 / 1e3,
            )
        })
        .collect()
}

fn nines(p: f64) -> f64 {
    let tail = (1.0 - p / 100.0).max(10f64.powf(-MAX_NINES));
    (-tail.log10()).clamp(0.0, MAX_NINES)
}

fn fmt_us(us: f64) -> String {
    if us >= 1e6 {
        format!("{}S", trim(us / 1e6))
    } else if us >= 1e3 {
        format!("{}MS", trim(us / 1e3))
    } else {
        format!("{}US", trim(us))
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Draws the series as a PNG at `out`.
///
/// # Errors
/// A message when there is nothing to draw or the file cannot be written.
pub fn draw(series: &[(String, Vec<(f64, f64)>)], title: &str, out: &Path) -> Result<(), String> {
    if series.iter().all(|(_, p)| p.is_empty()) {
        return Err("nothing to plot: every input is empty".into());
    }
    let values = || {
        series
            .iter()
            .flat_map(|(_, pts)| pts.iter().map(|p| p.1.max(0.001)))
    };
    let lo = values().fold(f64::MAX, f64::min).log10().floor();
    let hi = values().fold(0.0f64, f64::max).log10().ceil().max(lo + 1.0);
    let (pw, ph) = ((W - LEFT - RIGHT) as f64, (H - TOP - BOTTOM) as f64);
    let to_xy = |p: f64, us: f64| {
        let l = us.max(0.001).log10().clamp(lo, hi);
        (
            LEFT as f64 + nines(p) / MAX_NINES * pw,
            (H - BOTTOM) as f64 - (l - lo) / (hi - lo) * ph,
        )
    };
    let mut c = Canvas::new();
    let (black, grid) = ([0, 0, 0], [225, 225, 225]);
    // Grid and y labels, one per decade.
    let mut d = lo;
    while d <= hi {
        let v = 10f64.powf(d);
        let (_, y) = to_xy(0.0, v);
        c.line((LEFT as f64, y), ((W - RIGHT) as f64, y), grid, 1);
        let label = fmt_us(v);
        c.text(
            LEFT as i64 - 10 - text_width(&label, 2),
            y as i64 - 7,
            &label,
            2,
            black,
        );
        d += 1.0;
    }
    // x ticks.
    for (n, label) in ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]
        .iter()
        .enumerate()
    {
        let x = LEFT as f64 + n as f64 / MAX_NINES * pw;
        c.line((x, TOP as f64), (x, (H - BOTTOM) as f64), grid, 1);
        c.text(
            x as i64 - text_width(label, 2) / 2,
            (H - BOTTOM) as i64 + 12,
            label,
            2,
            black,
        );
    }
    // Axes.
    c.line(
        (LEFT as f64, TOP as f64),
        (LEFT as f64, (H - BOTTOM) as f64),
        black,
        2,
    );
    c.line(
        (LEFT as f64, (H - BOTTOM) as f64),
        ((W - RIGHT) as f64, (H - BOTTOM) as f64),
        black,
        2,
    );
    c.text((W as i64 - text_width(title, 3)) / 2, 15, title, 3, black);
    let xl = "PERCENTILE";
    c.text(
        (W as i64 - text_width(xl, 2)) / 2,
        H as i64 - 30,
        xl,
        2,
        black,
    );
    // Series, then the legend on top.
    for (i, (_, pts)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let mut prev: Option<(f64, f64)> = None;
        for &(p, us) in pts {
            let xy = to_xy(p, us);
            if let Some(q) = prev {
                // Step shape: latency holds until the next percentile, then rises.
                c.line(q, (xy.0, q.1), colour, 3);
                c.line((xy.0, q.1), xy, colour, 3);
            }
            prev = Some(xy);
        }
    }
    for (i, (label, _)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let y = TOP as i64 + 12 + i as i64 * 24;
        let x = LEFT as i64 + 16;
        c.rect(x, y, x + 28, y + 13, colour);
        c.text(x + 40, y, label, 2, black);
    }
    let bytes = png::encode_rgb(W as u32, H as u32, &c.px)?;
    std::fs::write(out, bytes).map_err(|e| format!("cannot write {}: {e}", out.display()))
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

fn curve_from_json(path: &Path, text: &str) -> Result<Vec<(f64, f64)>, String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
    let pts = v["percentiles_us"]
        .as_array()
        .ok_or_else(|| format!("{}: no percentiles_us in this report", path.display()))?;
    pts.iter()
        .map(|p| match (p[0].as_f64(), p[1].as_f64()) {
            (Some(a), Some(b)) => Ok((a, b)),
            _ => Err(format!(
                "{}: malformed percentiles_us point {p}",
                path.display()
            )),
        })
        .collect()
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
            curve_from_json(path, &text)?
        } else {
            curve_of(&hlog::read_total(path)?.0)
        };
        series.push((label.clone(), curve));
    }
    draw(&series, &cfg.title, &cfg.out)
}
