//! The committed contract artifacts are exactly what `ci/chain/compile` produces from the
//! committed sources, so the bytecode under test is the bytecode in the repository.

use std::path::Path;
use std::process::Command;

#[test]
fn committed_artifacts_match_a_fresh_compile() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // Without Node the compile below cannot run, and a skipped check guards nothing.
    assert!(
        Command::new("node").arg("--version").output().is_ok(),
        "`node` is not installed: run ci/setup (it installs Node.js >= 20 and solc)"
    );
    let out = std::env::temp_dir().join(format!("lpt-artifacts-{}", std::process::id()));
    let status = Command::new(root.join("ci/chain/compile"))
        .arg(&out)
        .status()
        .expect("run ci/chain/compile");
    assert!(status.success(), "ci/chain/compile failed: {status}");
    let committed = root.join("contracts/artifacts");
    let mut names: Vec<_> = std::fs::read_dir(&committed)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    let mut fresh: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    fresh.sort();
    assert_eq!(
        names, fresh,
        "artifact set differs: run ci/chain/compile and commit"
    );
    for name in &names {
        let a = std::fs::read(committed.join(name)).unwrap();
        let b = std::fs::read(out.join(name)).unwrap();
        assert!(
            a == b,
            "{} differs from a fresh compile: run ci/chain/compile and commit",
            name.to_string_lossy()
        );
    }
    assert_eq!(names.len(), 3);
    std::fs::remove_dir_all(&out).ok();
}
