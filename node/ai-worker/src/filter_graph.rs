//! One FFmpeg filter chain between a buffer source and a buffer sink, the shape both the image
//! pipelines and the live job filter frames with.

use ffmpeg_next::filter;

/// The graph's source and sink names, for `Graph::get`.
pub const SOURCE: &str = "in";
pub const SINK: &str = "out";

/// A validated graph feeding frames described by `source_args` (the buffer filter's
/// `video_size=…:pix_fmt=…:time_base=…` arguments) through `chain` (filters in FFmpeg's
/// `-vf` syntax) to a sink. The error names the step that failed.
pub fn chain(source_args: &str, chain: &str) -> Result<filter::Graph, String> {
    let step =
        |stage: &'static str| move |e: ffmpeg_next::Error| format!("FFmpeg failed {stage}: {e}");
    let buffer = filter::find("buffer").ok_or("FFmpeg has no buffer filter")?;
    let sink = filter::find("buffersink").ok_or("FFmpeg has no buffersink filter")?;
    let mut graph = filter::Graph::new();
    graph
        .add(&buffer, SOURCE, source_args)
        .map_err(step("adding the source"))?;
    graph
        .add(&sink, SINK, "")
        .map_err(step("adding the sink"))?;
    graph
        .output(SOURCE, 0)
        .and_then(|p| p.input(SINK, 0))
        .and_then(|p| p.parse(chain))
        .map_err(step("parsing the filter graph"))?;
    graph
        .validate()
        .map_err(step("configuring the filter graph"))?;
    Ok(graph)
}
