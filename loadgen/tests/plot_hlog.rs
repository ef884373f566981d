//! The `--hlog` interval log and the `--plot` / `loadgen plot` charts: produced by a real
//! run against an echo server on 127.0.0.1, then read back (the log through
//! `hlog::read_total`, the PNGs through the `png` decoder).

mod support;

use std::path::Path;
use std::time::Duration;

use loadgen::plot::{COLOURS, H, W};
use support::{echo_server, loadgen, temp_path, Fault};

/// Decodes a PNG and returns its width, height and RGB pixels.
fn read_png(path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .expect("a PNG header");
    let mut buf = vec![0; reader.output_buffer_size().expect("a sane size")];
    let info = reader.next_frame(&mut buf).expect("one frame");
    assert_eq!(info.color_type, png::ColorType::Rgb);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let px = buf[..info.buffer_size()]
        .chunks_exact(3)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    (info.width, info.height, px)
}

/// How many pixels have exactly the colour of series `i` (lines and legend swatch).
fn pixels_of_series(px: &[[u8; 3]], i: usize) -> usize {
    let (r, g, b) = COLOURS[i];
    px.iter().filter(|p| **p == [r, g, b]).count()
}

#[test]
fn hlog_and_plot_outputs_are_written_and_read_back() {
    let addr = echo_server(Fault::None).to_string();
    let (json, hlog, png) = (
        temp_path("ph.json"),
        temp_path("ph.hlog"),
        temp_path("ph.png"),
    );
    let run = loadgen(
        &[
            "echo",
            "--target",
            &addr,
            "--connections",
            "2",
            "--duration",
            "1.2s",
            "--quiet",
            "--json",
            json.to_str().unwrap(),
            "--hlog",
            hlog.to_str().unwrap(),
            "--plot",
            png.to_str().unwrap(),
        ],
        Duration::from_secs(20),
    );
    assert_eq!(run.status, 0, "{}\n{}", run.stdout, run.stderr);
    let report = loadgen::json::Report::read(&json).expect("the JSON report");
    assert!(report.requests > 50, "only {} requests", report.requests);

    // The interval log: one histogram per second (two here: 1 s and the last 0.2 s),
    // starting in order, and together they hold every response the report counted.
    let text = std::fs::read_to_string(&hlog).unwrap();
    assert!(text.contains("#[StartTime: "), "no header:\n{text}");
    let (total, starts) = loadgen::hlog::read_total(&hlog).expect("the interval log reads back");
    assert!(starts.len() >= 2, "{} intervals", starts.len());
    assert!(starts.windows(2).all(|w| w[0] < w[1]), "{starts:?}");
    assert_eq!(total.len(), report.latency_us.count);
    let max_us = total.max() as f64 / 1e3;
    assert!(
        (max_us - report.latency_us.max).abs() <= report.latency_us.max * 0.01 + 0.01,
        "hlog max {max_us} µs, report max {} µs",
        report.latency_us.max
    );

    // The run's own plot: the documented size, one series drawn.
    let (w, h, px) = read_png(&png);
    assert_eq!((w, h), (W, H));
    assert!(pixels_of_series(&px, 0) > 200, "no series drawn");
    assert_eq!(
        pixels_of_series(&px, 1),
        0,
        "a second series in a one-run plot"
    );

    // A comparison of two inputs, a JSON report and the interval log: two series.
    let cmp = temp_path("ph-cmp.png");
    let run = loadgen(
        &[
            "plot",
            "--out",
            cmp.to_str().unwrap(),
            "--title",
            "report against log",
            &format!("{}=report", json.display()),
            &format!("{}=log", hlog.display()),
        ],
        Duration::from_secs(20),
    );
    assert_eq!(run.status, 0, "{}\n{}", run.stdout, run.stderr);
    let (w, h, px) = read_png(&cmp);
    assert_eq!((w, h), (W, H));
    assert!(
        pixels_of_series(&px, 0) > 200,
        "the report's series is missing"
    );
    assert!(
        pixels_of_series(&px, 1) > 200,
        "the log's series is missing"
    );

    for f in [json, hlog, png, cmp] {
        let _ = std::fs::remove_file(f);
    }
}

#[test]
fn plot_of_a_file_that_is_not_a_report_fails_with_its_name() {
    let bad = temp_path("not-a-report.json");
    std::fs::write(&bad, "{\"schema\": \"something else\"}").unwrap();
    let out = temp_path("never.png");
    let run = loadgen(
        &[
            "plot",
            "--out",
            out.to_str().unwrap(),
            bad.to_str().unwrap(),
        ],
        Duration::from_secs(20),
    );
    assert_eq!(run.status, 1);
    assert!(run.stderr.contains("not-a-report"), "{}", run.stderr);
    assert!(!out.exists());
    let _ = std::fs::remove_file(bad);
}
