//! Netflix's `vmaf` tool as the independent scorer our libvmaf bindings are checked against.
//!
//! `libvmaf-sys` builds the tool beside the library it links statically, under
//! `<target>/<profile>/build/libvmaf-sys-<hash>/out/build/tools/vmaf`, and says nothing of where:
//! a target directory that outlived a dependency change holds several such builds, and taking the
//! first one found could compare our scores with another libvmaf's. The tool chosen is the one
//! that reports the version the caller linked, and among equals the one built last.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

/// The `vmaf` tool built with the libvmaf of `linked_version` (what `vmaf_version()` of the
/// running binary says), found in the build directory of the current test or bench executable.
///
/// # Panics
/// When no tool there reports that version; the message lists what was found.
pub fn tool(linked_version: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the path of this test executable");
    // <target>/<profile>/deps/<exe> → <target>/<profile>/build
    let build = exe
        .parent()
        .and_then(Path::parent)
        .expect("a test executable lives in <target>/<profile>/deps")
        .join("build");
    tool_in(&build, linked_version)
}

/// [`tool`], looking under `build` (a profile's `build` directory).
pub fn tool_in(build: &Path, linked_version: &str) -> PathBuf {
    let candidates: Vec<(PathBuf, String, SystemTime)> = std::fs::read_dir(build)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", build.display()))
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with("libvmaf-sys-")
        })
        .map(|entry| entry.path().join("out/build/tools/vmaf"))
        .filter(|path| path.is_file())
        .map(|path| {
            let version = reported_version(&path);
            let built = path
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            (path, version, built)
        })
        .collect();
    candidates
        .iter()
        .filter(|(_, version, _)| version == linked_version)
        .max_by_key(|(_, _, built)| *built)
        .map(|(path, _, _)| path.clone())
        .unwrap_or_else(|| {
            panic!(
                "no vmaf tool of libvmaf {linked_version} under {}/libvmaf-sys-*/out/build/tools \
                 (found: {:?}); it is built by libvmaf-sys's meson build (features = [\"static\"])",
                build.display(),
                candidates
                    .iter()
                    .map(|(path, version, _)| format!("{} reports {version:?}", path.display()))
                    .collect::<Vec<_>>()
            )
        })
}

/// What `vmaf --version` prints (on standard error, as libvmaf 2.3's tool does, or on standard
/// output), trimmed; empty when the tool does not run.
fn reported_version(tool: &Path) -> String {
    Command::new(tool)
        .arg("--version")
        .output()
        .map(|out| {
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            text.trim().to_owned()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    use super::*;

    /// A stand-in tool under `build/<dir>` that prints `version`, modified `age` ago.
    fn fake_tool(build: &Path, dir: &str, version: &str, age: Duration) -> PathBuf {
        let tools = build.join(dir).join("out/build/tools");
        std::fs::create_dir_all(&tools).unwrap();
        let path = tools.join("vmaf");
        // As libvmaf 2.3's tool does, on standard error.
        std::fs::write(&path, format!("#!/bin/sh\necho {version} >&2\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
        path
    }

    #[test]
    fn the_tool_of_the_linked_version_wins_and_among_equals_the_newest() {
        let build = tempfile::tempdir().unwrap();
        let hour = Duration::from_secs(3600);
        fake_tool(build.path(), "libvmaf-sys-aaaa", "3.0.0", Duration::ZERO);
        let old_same = fake_tool(build.path(), "libvmaf-sys-bbbb", "2.3.1", 2 * hour);
        let new_same = fake_tool(build.path(), "libvmaf-sys-cccc", "2.3.1", hour);
        fake_tool(build.path(), "other-crate-dddd", "2.3.1", Duration::ZERO);
        assert_eq!(tool_in(build.path(), "2.3.1"), new_same);
        std::fs::remove_file(&new_same).unwrap();
        assert_eq!(tool_in(build.path(), "2.3.1"), old_same);
    }

    #[test]
    #[should_panic(expected = "no vmaf tool of libvmaf 2.3.1")]
    fn no_tool_of_the_linked_version_is_a_clear_failure() {
        let build = tempfile::tempdir().unwrap();
        fake_tool(build.path(), "libvmaf-sys-aaaa", "3.0.0", Duration::ZERO);
        tool_in(build.path(), "2.3.1");
    }
}
