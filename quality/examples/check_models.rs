//! Loads every VMAF model compiled into libvmaf, as `ci/setup`'s final check does:
//! `cargo run -p quality --profile ci --example check_models`.
//!
//! libvmaf's meson build embeds its built-in models only when `xxd` is installed and otherwise
//! builds without them, silently; this turns that into a setup failure with the fix named.

use std::process::ExitCode;

use quality::vmaf::VmafModel;

fn main() -> ExitCode {
    let mut failed = false;
    for version in ["vmaf_v0.6.1", "vmaf_4k_v0.6.1"] {
        match VmafModel::load_built_in(version) {
            Ok(_) => println!("    libvmaf built-in model {version}: loads"),
            Err(error) => {
                eprintln!(
                    "    libvmaf built-in model {version} does not load ({error}); libvmaf was built \
                     without its models, which happens when xxd is missing: install xxd, then \
                     `cargo clean -p libvmaf-sys` and run ci/setup again"
                );
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
