//! nginx with its RTMP module (`ci/setup` installs it), configured in a temporary directory: RTMP
//! ingest packaging HLS (application `live`), a relay-only RTMP application (`bench`, for
//! publisher load where nginx's own work must stay small), one application per [`FfmpegHls`]
//! form, where nginx-rtmp `exec`s ffmpeg's own HLS muxer on each published stream (the common
//! setup for fMP4/CMAF and byte-range HLS, which nginx-rtmp does not package itself), and an HTTP
//! server for that HLS and for static files. A real third-party RTMP-in/HLS-out peer on loopback
//! ports of its own.
//!
//! nginx runs without a master process, so the one process [`Nginx::pid`] names does all the
//! work (benches measure its CPU). It is killed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::ports::{free_port, wait_for_port};

/// How long nginx gets to listen on both ports.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// What a test may choose about the peer.
#[derive(Debug, Clone)]
pub struct NginxOptions {
    /// The live window of each HLS playlist (`hls_playlist_length`); segments are 2 s.
    pub playlist_window: Duration,
}

impl Default for NginxOptions {
    fn default() -> Self {
        NginxOptions {
            playlist_window: Duration::from_secs(10),
        }
    }
}

/// An HLS form ffmpeg's muxer packages behind nginx-rtmp: each is an RTMP application of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FfmpegHls {
    /// MPEG-TS segments, one file each.
    Ts,
    /// fMP4/CMAF: an `#EXT-X-MAP` init segment and `.m4s` media segments.
    Fmp4,
    /// fMP4 in one growing file, each segment an `#EXT-X-BYTERANGE` of it (the init segment a
    /// byte range of the same file).
    Fmp4SingleFile,
    /// A master playlist whose video rendition has its audio apart: an `#EXT-X-MEDIA` audio-only
    /// rendition of MPEG-TS segments.
    TsAudioRendition,
}

impl FfmpegHls {
    pub const ALL: [FfmpegHls; 4] = [
        FfmpegHls::Ts,
        FfmpegHls::Fmp4,
        FfmpegHls::Fmp4SingleFile,
        FfmpegHls::TsAudioRendition,
    ];

    /// The RTMP application (and the HTTP folder its HLS is served from).
    pub fn application(self) -> &'static str {
        match self {
            FfmpegHls::Ts => "ffmpeg_ts",
            FfmpegHls::Fmp4 => "ffmpeg_fmp4",
            FfmpegHls::Fmp4SingleFile => "ffmpeg_fmp4_single",
            FfmpegHls::TsAudioRendition => "ffmpeg_ts_audio",
        }
    }

    /// ffmpeg's HLS muxer options for this form, writing `$name.m3u8` into `dir`.
    fn muxer_arguments(self, dir: &str) -> String {
        let common = "-f hls -hls_time 2 -hls_list_size 6";
        match self {
            FfmpegHls::Ts => format!(
                "{common} -hls_flags delete_segments+independent_segments -hls_segment_filename {dir}/$name-%d.ts {dir}/$name.m3u8"
            ),
            FfmpegHls::Fmp4 => format!(
                "{common} -hls_flags delete_segments+independent_segments -hls_segment_type fmp4 -hls_fmp4_init_filename $name-init.mp4 -hls_segment_filename {dir}/$name-%d.m4s {dir}/$name.m3u8"
            ),
            FfmpegHls::Fmp4SingleFile => format!(
                "{common} -hls_flags single_file+independent_segments -hls_segment_type fmp4 {dir}/$name.m3u8"
            ),
            FfmpegHls::TsAudioRendition => format!(
                "-map 0:v -map 0:a {common} -hls_flags delete_segments+independent_segments -var_stream_map \"v:0,agroup:aud a:0,agroup:aud\" -master_pl_name $name.m3u8 -hls_segment_filename {dir}/$name-%v-%d.ts {dir}/$name-%v.m3u8"
            ),
        }
    }
}

/// A running nginx; its files (config, logs, HLS, static files) live in [`Nginx::dir`].
pub struct Nginx {
    child: Child,
    pub dir: tempfile::TempDir,
    pub rtmp_port: u16,
    pub http_port: u16,
}

impl Nginx {
    /// Starts nginx with the default options and waits until both ports accept connections.
    pub fn start() -> Nginx {
        Nginx::start_with(&NginxOptions::default())
    }

    /// Starts nginx with `options` and waits until both ports accept connections.
    pub fn start_with(options: &NginxOptions) -> Nginx {
        let dir = tempfile::tempdir().expect("temp dir");
        let (rtmp_port, http_port) = (free_port(), free_port());
        let root = dir.path();
        let hls = root.join("hls");
        std::fs::create_dir_all(&hls).expect("hls dir");
        std::fs::create_dir_all(root.join("static")).expect("static dir");
        let p = |name: &str| root.join(name).display().to_string();
        let mut ffmpeg_applications = String::new();
        let mut ffmpeg_locations = String::new();
        for form in FfmpegHls::ALL {
            let app = form.application();
            let dir = root.join(app);
            std::fs::create_dir_all(&dir).expect("ffmpeg hls dir");
            let dir = dir.display().to_string();
            // The stream is copied as published: the source's GOP is what cuts the segments.
            ffmpeg_applications.push_str(&format!(
                "        application {app} {{\n            live on;\n            record off;\n            exec ffmpeg -nostdin -loglevel error -i rtmp://127.0.0.1:{rtmp_port}/{app}/$name -c copy {args};\n        }}\n",
                args = form.muxer_arguments(&dir),
            ));
            ffmpeg_locations.push_str(&format!(
                "        location /{app}/ {{\n            alias {dir}/;\n            add_header Cache-Control no-cache;\n            add_header Access-Control-Allow-Origin *;\n        }}\n"
            ));
        }
        let config = format!(
            r#"load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 65536;
pid {pid};
error_log {err} warn;
events {{ worker_connections 16384; }}
rtmp {{
    server {{
        listen 127.0.0.1:{rtmp_port};
        chunk_size 4096;
        application live {{
            live on;
            record off;
            hls on;
            hls_path {hls};
            hls_fragment 2s;
            hls_playlist_length {window}s;
        }}
        application bench {{
            live on;
            record off;
        }}
{ffmpeg_applications}    }}
}}
http {{
    access_log off;
    client_body_temp_path {body};
    proxy_temp_path {proxy};
    fastcgi_temp_path {fcgi};
    uwsgi_temp_path {uwsgi};
    scgi_temp_path {scgi};
    types {{
        application/vnd.apple.mpegurl m3u8;
        video/mp2t ts;
        video/mp4 mp4;
        video/iso.segment m4s;
    }}
    server {{
        listen 127.0.0.1:{http_port};
        location /hls/ {{
            alias {hls}/;
            add_header Cache-Control no-cache;
            # What web players on other origins need, as nginx-rtmp's HLS guides configure it.
            add_header Access-Control-Allow-Origin *;
        }}
        location /static/ {{
            alias {static_dir}/;
            add_header Cache-Control no-cache;
        }}
{ffmpeg_locations}    }}
}}
"#,
            pid = p("nginx.pid"),
            err = p("error.log"),
            hls = hls.display(),
            window = options.playlist_window.as_secs(),
            static_dir = root.join("static").display(),
            body = p("body"),
            proxy = p("proxy"),
            fcgi = p("fastcgi"),
            uwsgi = p("uwsgi"),
            scgi = p("scgi"),
        );
        let conf = root.join("nginx.conf");
        std::fs::write(&conf, config).expect("write nginx.conf");
        let child = Command::new("nginx")
            .arg("-p")
            .arg(root)
            .arg("-e")
            .arg(root.join("error.log"))
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx is installed by ci/setup");
        let nginx = Nginx {
            child,
            dir,
            rtmp_port,
            http_port,
        };
        wait_for_port(&format!("127.0.0.1:{rtmp_port}"), STARTUP_TIMEOUT);
        wait_for_port(&format!("127.0.0.1:{http_port}"), STARTUP_TIMEOUT);
        nginx
    }

    /// RTMP URL in the HLS-packaging application.
    pub fn rtmp_url(&self, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{key}", self.rtmp_port)
    }

    /// The HLS playlist nginx packages for stream `key`.
    pub fn hls_url(&self, key: &str) -> String {
        format!("http://127.0.0.1:{}/hls/{key}.m3u8", self.http_port)
    }

    /// RTMP URL to publish `key` to for ffmpeg to package as `form`.
    pub fn ffmpeg_rtmp_url(&self, form: FfmpegHls, key: &str) -> String {
        format!(
            "rtmp://127.0.0.1:{}/{}/{key}",
            self.rtmp_port,
            form.application()
        )
    }

    /// The HLS playlist ffmpeg packages as `form` for stream `key`.
    pub fn ffmpeg_hls_url(&self, form: FfmpegHls, key: &str) -> String {
        format!(
            "http://127.0.0.1:{}/{}/{key}.m3u8",
            self.http_port,
            form.application()
        )
    }

    /// Where ffmpeg writes the HLS it packages as `form`.
    pub fn ffmpeg_hls_dir(&self, form: FfmpegHls) -> PathBuf {
        self.dir.path().join(form.application())
    }

    /// RTMP URL in the relay-only application.
    pub fn bench_rtmp_url(&self, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/bench/{key}", self.rtmp_port)
    }

    /// Files put here are served at [`Nginx::static_url`].
    pub fn static_dir(&self) -> PathBuf {
        self.dir.path().join("static")
    }

    pub fn static_url(&self, file: &str) -> String {
        format!("http://127.0.0.1:{}/static/{file}", self.http_port)
    }

    /// Where nginx writes the HLS it packages.
    pub fn hls_dir(&self) -> PathBuf {
        self.dir.path().join("hls")
    }

    /// Whether nginx has written a playlist for any stream yet.
    pub fn playlist_exists(&self) -> bool {
        std::fs::read_dir(self.hls_dir())
            .map(|entries| {
                entries
                    .flatten()
                    .any(|e| e.path().extension().is_some_and(|x| x == "m3u8"))
            })
            .unwrap_or(false)
    }

    /// The nginx process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
