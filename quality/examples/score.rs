//! What `lpt quality REFERENCE DISTORTED` does, without the CLI parsing:
//! `cargo run -p quality --profile ci --example score -- REFERENCE DISTORTED [MODEL] [SUBSAMPLE]`
//! prints the pooled summary and writes `scores.csv` and `scores.json` in the current directory.

use std::path::Path;
use std::process::ExitCode;

use quality::{QualityOptions, compare_files};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [reference, distorted, rest @ ..] = args.as_slice() else {
        eprintln!("usage: score REFERENCE DISTORTED [MODEL] [SUBSAMPLE]");
        return ExitCode::from(2);
    };
    let mut options = QualityOptions::default();
    if let Some(model) = rest.first() {
        match model.parse() {
            Ok(model) => options.model = model,
            Err(error) => {
                eprintln!("{error}");
                return ExitCode::from(2);
            }
        }
    }
    if let Some(subsample) = rest.get(1) {
        options.subsample = subsample.parse().unwrap_or(0);
    }
    let result =
        compare_files(Path::new(reference), Path::new(distorted), &options).and_then(|report| {
            print!("{}", report.summary());
            report.write_csv_file(Path::new("scores.csv"))?;
            report.write_json_file(Path::new("scores.json"))
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
