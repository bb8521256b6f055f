//! Checking a JSON document a run wrote against one of the workspace's checked-in JSON schemas.

use std::path::Path;

use serde_json::Value;

/// Asserts that `document` is valid under the schema at `schema_path` (relative to the workspace
/// root, e.g. `observation::summary::SCHEMA_PATH`), naming every violation and where it is.
pub fn assert_valid(document: &Value, schema_path: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(schema_path);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let schema: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    let validator = jsonschema::validator_for(&schema)
        .unwrap_or_else(|e| panic!("{schema_path} is not a valid schema: {e}"));
    let violations: Vec<String> = validator
        .iter_errors(document)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(
        violations.is_empty(),
        "{schema_path} is violated: {violations:#?}"
    );
}
