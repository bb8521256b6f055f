//! nginx with its RTMP module, configured in a temporary directory: RTMP ingest producing HLS,
//! and an HTTP server serving that HLS. Killed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, wait_for_port};

pub struct Nginx {
    child: Child,
    pub dir: tempfile::TempDir,
    pub rtmp_port: u16,
    pub http_port: u16,
}

impl Nginx {
    /// Starts nginx and waits until both ports accept connections.
    pub fn start() -> Nginx {
        let dir = tempfile::tempdir().expect("temp dir");
        let (rtmp_port, http_port) = (free_port(), free_port());
        let root = dir.path();
        let hls = root.join("hls");
        std::fs::create_dir_all(&hls).expect("hls dir");
        std::fs::create_dir_all(root.join("static")).expect("static dir");
        let p = |name: &str| root.join(name).display().to_string();
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
            hls_playlist_length 10s;
        }}
        # Relay only (no HLS): for publisher load, where nginx's own work must stay small.
        application bench {{
            live on;
            record off;
        }}
    }}
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
    }}
    server {{
        listen 127.0.0.1:{http_port};
        location /hls/ {{
            alias {hls}/;
            add_header Cache-Control no-cache;
        }}
        location /static/ {{
            alias {static_dir}/;
            add_header Cache-Control no-cache;
        }}
    }}
}}
"#,
            pid = p("nginx.pid"),
            err = p("error.log"),
            hls = hls.display(),
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
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nginx");
        let nginx = Nginx {
            child,
            dir,
            rtmp_port,
            http_port,
        };
        wait_for_port(&format!("127.0.0.1:{rtmp_port}"), Duration::from_secs(10));
        wait_for_port(&format!("127.0.0.1:{http_port}"), Duration::from_secs(10));
        nginx
    }

    pub fn rtmp_url(&self, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{key}", self.rtmp_port)
    }

    pub fn hls_url(&self, key: &str) -> String {
        format!("http://127.0.0.1:{}/hls/{key}.m3u8", self.http_port)
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

    pub fn hls_dir(&self) -> PathBuf {
        self.dir.path().join("hls")
    }

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
