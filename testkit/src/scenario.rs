//! Pieces of `lpt` scenario files for tests and benches that run `lpt` against a testkit peer,
//! so that each writes only the tables it is about.

use crate::nginx::Nginx;

/// The `[target]` table of a scenario run against `nginx` as an external target: publishing to
/// its `live` application and playing the HLS it packages.
pub fn nginx_target(nginx: &Nginx) -> String {
    format!(
        r#"[target]
kind = "external"
rtmp_url = "rtmp://127.0.0.1:{}/live/{{stream}}"
playback_url = "http://127.0.0.1:{}/hls/{{stream}}.m3u8"
"#,
        nginx.rtmp_port, nginx.http_port
    )
}
