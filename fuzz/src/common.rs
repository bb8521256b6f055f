//! What every harness shares: catching panics that tokio would swallow, and reading a target's
//! committed inputs (corpus and regressions) for the proptests that replay them.
//!
//! This file and the harness modules next to it are compiled twice: into the `lpt-fuzz` crate
//! (the libFuzzer targets) and, through `#[path]` modules, into the parsers' own test suites, so
//! the fuzzer and the proptests make exactly the same calls.

#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::sync::Once;

thread_local! {
    static PANICS: Cell<u64> = const { Cell::new(0) };
    static LAST_PANIC: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Counts panics per thread (then runs the previous hook, e.g. libFuzzer's, which aborts).
fn install_panic_counter() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.with(|p| p.set(p.get() + 1));
            LAST_PANIC.with(|l| *l.borrow_mut() = info.to_string());
            previous(info);
        }));
    });
}

/// Runs `f` and fails if anything panicked on this thread meanwhile, including tasks a
/// current-thread tokio runtime polled here: tokio catches those and the server carries on, so
/// without this a panic in a connection task would go unnoticed by a proptest.
pub fn no_panics<R>(f: impl FnOnce() -> R) -> R {
    install_panic_counter();
    let before = PANICS.with(Cell::get);
    let out = f();
    if PANICS.with(Cell::get) != before {
        let last = LAST_PANIC.with(|l| l.borrow().clone());
        panic!("a task panicked while handling the input: {last}");
    }
    out
}

/// The repository's `fuzz/` directory, found from the crate being built.
pub fn fuzz_dir() -> PathBuf {
    let mut dir = Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf();
    loop {
        if dir.join("fuzz").join("Cargo.toml").is_file() {
            return dir.join("fuzz");
        }
        if dir.join("fuzz_targets").is_dir() {
            return dir;
        }
        assert!(
            dir.pop(),
            "no fuzz/ directory above {}",
            env!("CARGO_MANIFEST_DIR")
        );
    }
}

/// Every committed input of `target`: `fuzz/corpus/<target>/*` then `fuzz/regressions/<target>/*`,
/// sorted by path. Panics when the corpus is missing, so a proptest never passes on nothing.
pub fn committed_inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let fuzz = fuzz_dir();
    let mut out = Vec::new();
    for kind in ["corpus", "regressions"] {
        let dir = fuzz.join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            assert!(kind != "corpus", "no corpus at {}", dir.display());
            continue;
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        paths.sort();
        for path in paths {
            let bytes = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            out.push((path, bytes));
        }
    }
    assert!(
        out.len() > 1,
        "fuzz/corpus/{target} holds no inputs (found {})",
        out.len()
    );
    out
}

/// Replays every committed input of `target` through `run`, naming the file that failed.
pub fn replay_committed(target: &str, run: impl Fn(&[u8])) {
    for (path, bytes) in committed_inputs(target) {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&bytes)));
        if let Err(e) = outcome {
            let message = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("{target}: {} failed: {message}", path.display());
        }
    }
}

/// Applies byte-level mutations to `seed`, libFuzzer-style, for the proptests' "mutated corpus"
/// cases: each `(at, kind, byte)` overwrites, inserts or deletes a byte, truncates, or writes a
/// 32-bit 0xffffffff / 0 / 0x7fffffff (lengths and counts) at `at % len`.
pub fn mutate(seed: &[u8], ops: &[(u32, u8, u8)]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for &(at, kind, byte) in ops {
        let len = out.len();
        let at = if len == 0 { 0 } else { at as usize % len };
        match kind % 7 {
            0 if len > 0 => out[at] = byte,
            1 => out.insert(at, byte),
            2 if len > 0 => {
                out.remove(at);
            }
            3 => out.truncate(at.max(1)),
            4..=6 => {
                let word: [u8; 4] = match kind % 7 {
                    4 => [0xff; 4],
                    5 => [0; 4],
                    _ => [0x7f, 0xff, 0xff, 0xff],
                };
                for (i, b) in word.into_iter().enumerate() {
                    if let Some(slot) = out.get_mut(at + i) {
                        *slot = b;
                    }
                }
            }
            _ => out.push(byte),
        }
    }
    out
}
