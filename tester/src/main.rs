//! The `lpt` binary: everything is in the library; see `tester::cli`.

fn main() {
    std::process::exit(tester::cli::main());
}
