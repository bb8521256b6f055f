//! One real broadcaster per process for the harnesses that need the node's own code paths:
//! started on loopback ports with a current-thread runtime, so its tasks run on the thread that
//! feeds an input (and [`super::common::no_panics`] sees their panics).

use std::sync::{Mutex, OnceLock};

use node_broadcaster::{BroadcasterConfig, RunningBroadcaster};

/// The runtime and the node it serves.
pub struct TestNode {
    pub rt: tokio::runtime::Runtime,
    pub node: RunningBroadcaster,
}

/// Runs `f` with the process's broadcaster (started on first use; one caller at a time).
pub fn with_node<R>(f: impl FnOnce(&TestNode) -> R) -> R {
    static NODE: OnceLock<Mutex<TestNode>> = OnceLock::new();
    let node = NODE.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let config = BroadcasterConfig {
            rtmp_addr: "127.0.0.1:0".parse().expect("literal"),
            http_addr: "127.0.0.1:0".parse().expect("literal"),
            // Source only: segments are published without any orchestrator.
            ladder: String::new(),
            // Every input starts from an empty node: ended streams are dropped after each one.
            ended_stream_retention_secs: 0,
            ..BroadcasterConfig::default()
        };
        let node = rt
            .block_on(node_broadcaster::start(config))
            .expect("start the broadcaster");
        Mutex::new(TestNode { rt, node })
    });
    let guard = node.lock().unwrap_or_else(|e| e.into_inner());
    f(&guard)
}
