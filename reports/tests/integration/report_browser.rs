//! `report.html` as a browser renders it: a real report, opened from `file://` in headless
//! Chromium (`browser`, which refuses any request that would leave the machine), loads
//! without the network and without a failed resource, draws every plot, and shows the run's name
//! and verdict in the page's own colours. Without Chromium the test fails: `ci/setup` installs it.

use std::collections::HashSet;
use std::time::Duration;

use browser::{Browser, Outcome, VIEWPORT};
use reports::plots::PLOT_STEMS;
use reports::{ReportOptions, files, finish_run};
use serde::Deserialize;

use crate::common::{base_summary, fixed_records, write_journal};

/// The fixed records have latencies, segments, VMAF scores and bench steps, so the report draws
/// every plot there is: both latency plots, success over time, VMAF, and both bench plots.
const EXPECTED_PLOTS: usize = 6;

/// A plot as the page laid it out.
#[derive(Debug, Deserialize)]
struct Plot {
    /// The figure's id (`plot-<stem>`).
    figure: String,
    /// `img` or `svg`.
    tag: String,
    /// An image finished loading with pixels; an inline SVG always counts as loaded.
    loaded: bool,
    width: f64,
    height: f64,
}

/// Every `<img>` and outermost inline `<svg>` of the page, with the figure holding it.
const PLOTS_JS: &str = r#"[...document.querySelectorAll('img, svg:not(svg svg)')].map(e => {
    const box = e.getBoundingClientRect();
    return {
        figure: e.closest('figure')?.id ?? '',
        tag: e.tagName.toLowerCase(),
        loaded: e.tagName === 'IMG' ? e.complete && e.naturalWidth > 0 : true,
        width: box.width,
        height: box.height,
    };
})"#;

/// What the page's head shows.
#[derive(Debug, Deserialize)]
struct Head {
    title: String,
    h1: String,
    verdict: String,
    verdict_background: String,
}

const HEAD_JS: &str = r#"({
    title: document.title,
    h1: document.querySelector('h1').textContent,
    verdict: document.getElementById('verdict').textContent,
    verdict_background: getComputedStyle(document.getElementById('verdict')).backgroundColor,
})"#;

/// What a screenshot's pixels hold.
#[derive(Debug)]
struct Pixels {
    /// Distinct colours.
    colours: usize,
    /// The fraction of pixels darker than the page's near-white background (#f6f7f9) and its
    /// white tables and figures: text, rules, lines.
    ink: f64,
    /// The fraction of strongly coloured pixels (channels 96 or more apart): the verdict's red,
    /// a pass's green, the plots' series; never the page's greys.
    coloured: f64,
}

/// The [`Pixels`] of an 8-bit RGB or RGBA PNG.
fn pixels(png_bytes: &[u8]) -> Pixels {
    let mut reader = png::Decoder::new(std::io::Cursor::new(png_bytes))
        .read_info()
        .expect("the screenshot is a PNG");
    let mut buf = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut buf).expect("the PNG decodes");
    assert_eq!(frame.bit_depth, png::BitDepth::Eight, "{frame:?}");
    assert_eq!((frame.width, frame.height), VIEWPORT);
    let channels = match frame.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("screenshot colour type {other:?}"),
    };
    let rgb: Vec<[u8; 3]> = buf[..frame.buffer_size()]
        .chunks_exact(channels)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    let fraction = |pick: fn(&[u8; 3]) -> bool| {
        rgb.iter().filter(|p| pick(p)).count() as f64 / rgb.len() as f64
    };
    Pixels {
        colours: rgb.iter().collect::<HashSet<_>>().len(),
        ink: fraction(|p| p.iter().any(|c| *c < 0xE0)),
        coloured: fraction(|p| p.iter().max().unwrap() - p.iter().min().unwrap() >= 96),
    }
}

#[test]
fn the_report_renders_offline_with_every_plot_drawn() {
    let dir = tempfile::tempdir().unwrap();
    write_journal(dir.path(), &fixed_records());
    let summary = base_summary("smoke");
    // Rendered outside the browser's runtime: Polars runs its own.
    let out = finish_run(dir.path(), &summary, &ReportOptions::default()).unwrap();
    assert!(out.missing.is_empty(), "{:?}", out.missing);
    let url = format!("file://{}", dir.path().join(files::HTML).display());
    let name = summary["scenario"]["name"].as_str().unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(check_in_browser(&url, name, &out.verdict.headline));
}

/// Opens the report at `url` and checks it, for the run `name` with the verdict `headline`.
async fn check_in_browser(url: &str, name: &str, headline: &str) {
    let browser = Browser::launch().await.unwrap_or_else(|e| panic!("{e}"));
    let processes = browser.processes();
    let page = browser.open(url).await.unwrap_or_else(|e| panic!("{e}"));

    // Nothing but file:// was asked for, and everything asked for loaded.
    let requests = page.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.url == url && r.outcome == Outcome::Loaded),
        "the report itself is not among the requests: {requests:#?}"
    );
    let bad: Vec<String> = requests
        .iter()
        .filter(|r| !r.url.starts_with("file://") || r.outcome != Outcome::Loaded)
        .map(ToString::to_string)
        .collect();
    assert!(
        bad.is_empty(),
        "the report asked for something outside file:// or failed to load it: {bad:#?}"
    );
    assert_eq!(page.blocked(), Vec::<String>::new(), "network requests");

    // Every plot is drawn, laid out at a size, in its own figure.
    let plots: Vec<Plot> = page.eval(PLOTS_JS).await.unwrap();
    assert_eq!(plots.len(), EXPECTED_PLOTS, "{plots:#?}");
    let figures: Vec<&str> = plots.iter().map(|p| p.figure.as_str()).collect();
    let expected: Vec<String> = PLOT_STEMS.iter().map(|s| format!("plot-{s}")).collect();
    assert_eq!(figures, expected, "{plots:#?}");
    for p in &plots {
        assert!(
            p.loaded && p.width > 300.0 && p.height > 150.0,
            "{} ({}) is not drawn: {p:?}",
            p.figure,
            p.tag
        );
    }

    // The head says what the summary says, in the page's colours.
    let head: Head = page.eval(HEAD_JS).await.unwrap();
    assert_eq!(head.title, format!("lpt report — {name}"));
    assert_eq!(head.h1, head.title);
    assert_eq!(head.verdict, headline);
    assert_eq!(head.verdict, "FAILED — 2 of 3 threshold(s) did not hold");
    assert_eq!(
        head.verdict_background, "rgb(198, 40, 40)",
        "the inline stylesheet's .fail colour"
    );

    // The top of the page and the first plot, as pixels: neither is blank. Measured: the top
    // has some 2 500 colours, 10 % ink, 4.8 % coloured (mostly the verdict); the first plot
    // some 1 600 colours, 4.9 % ink, 0.4 % coloured (its two series).
    let top = pixels(&page.screenshot_png().await.unwrap());
    let plots_heading = "document.getElementById('plots')";
    page.eval::<()>(&format!("void {plots_heading}.scrollIntoView()"))
        .await
        .unwrap();
    page.wait_for(
        &format!("Math.abs({plots_heading}.getBoundingClientRect().top) < 1"),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let plot = pixels(&page.screenshot_png().await.unwrap());
    assert!(
        top.colours >= 500 && top.ink > 0.05 && top.coloured > 0.03,
        "the top of the report looks blank: {top:?}"
    );
    assert!(
        plot.colours >= 500 && plot.ink > 0.025 && plot.coloured > 0.002,
        "the first plot looks blank: {plot:?}"
    );

    drop(page);
    drop(browser);
    let left: Vec<u32> = processes
        .iter()
        .copied()
        .filter(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
        .collect();
    assert!(
        left.is_empty(),
        "browser processes left after drop: {left:?}"
    );
}
