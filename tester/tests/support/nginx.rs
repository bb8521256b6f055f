//! nginx with its RTMP module packaging HLS, on loopback ports of its own, for tests and benches
//! that need a real third-party RTMP-in/HLS-out peer (`#[path]`-included where used).

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Nginx {
    child: Child,
    pub dir: tempfile::TempDir,
    pub rtmp_port: u16,
    pub http_port: u16,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_until(what: &str, deadline: Duration, mut ready: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !ready() {
        assert!(
            Instant::now() < end,
            "{what} did not happen within {deadline:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Nginx {
    pub fn start() -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let (rtmp_port, http_port) = (free_port(), free_port());
        let root = dir.path().display().to_string();
        std::fs::create_dir_all(dir.path().join("hls")).unwrap();
        let config = format!(
            r#"load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off;
master_process off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
rtmp {{ server {{ listen 127.0.0.1:{rtmp_port};
    application live {{ live on; record off; hls on; hls_path {root}/hls; hls_fragment 2s; hls_playlist_length 12s; }} }} }}
http {{ access_log off; client_body_temp_path {root}/body; proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fcgi; uwsgi_temp_path {root}/uwsgi; scgi_temp_path {root}/scgi;
    types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; }}
    server {{ listen 127.0.0.1:{http_port}; location /hls/ {{ alias {root}/hls/; }} }} }}
"#
        );
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config).unwrap();
        let child = Command::new("nginx")
            .args(["-p", &root, "-e", &format!("{root}/error.log"), "-c"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx is installed by ci/setup");
        for port in [rtmp_port, http_port] {
            wait_until("nginx listening", Duration::from_secs(10), || {
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            });
        }
        Nginx {
            child,
            dir,
            rtmp_port,
            http_port,
        }
    }

    /// The nginx process (it runs without a master, so this one process does all the work).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn playlist_exists(&self) -> bool {
        std::fs::read_dir(self.dir.path().join("hls"))
            .map(|entries| {
                entries
                    .flatten()
                    .any(|e| e.path().extension().is_some_and(|x| x == "m3u8"))
            })
            .unwrap_or(false)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
