//! `[thresholds]`: pass/fail criteria, parsed and type-checked against the metric catalogue, and
//! rendition tags checked against the ladder.

use std::time::Duration;

use super::super::model::*;
use super::super::reader::{Reader, Table, join};
use crate::hint::closest;
use crate::thresholds::Threshold;

pub(super) fn read(
    reader: &mut Reader<'_>,
    t: &Table<'_>,
    ladder: Option<&[Profile]>,
) -> Vec<Threshold> {
    let mut thresholds = Vec::new();
    for (selector, item) in t.table.iter() {
        let path = join(t.path(), selector);
        let key_span = t.table.key(selector).and_then(|k| k.span());
        let entries: Vec<&toml_edit::Value> = match item.as_array() {
            Some(array) => array.iter().collect(),
            None => match item.as_value() {
                Some(value) => vec![value],
                None => {
                    reader.errors.error(
                        key_span,
                        &path,
                        "expected a list of threshold expressions",
                        None,
                    );
                    continue;
                }
            },
        };
        for (index, entry) in entries.into_iter().enumerate() {
            let entry_path = format!("{path}[{index}]");
            let (expression, abort_on_fail, delay) = if let Some(text) = entry.as_str() {
                (text.to_owned(), false, Duration::ZERO)
            } else if let Some(inline) = entry.as_inline_table() {
                let table = Table::new(inline, entry.span(), entry_path.clone());
                let Some(entry) = reader.strict(&table, |reader| read_entry(reader, &table)) else {
                    continue;
                };
                entry
            } else {
                reader.errors.error(
                    entry.span(),
                    &entry_path,
                    "expected an expression string or { threshold = \"...\", abort_on_fail = true }",
                    None,
                );
                continue;
            };
            match Threshold::parse(selector, &expression, abort_on_fail, delay) {
                Ok(threshold) => {
                    check_rendition_tag(reader, &threshold, ladder, key_span.clone(), &path);
                    thresholds.push(threshold);
                }
                Err(error) => {
                    // Selector problems belong to the key, expression problems to the value.
                    let span = if crate::thresholds::parse_selector(selector).is_err() {
                        key_span.clone()
                    } else {
                        entry.span()
                    };
                    reader.errors.error(span, &entry_path, error.message, None);
                }
            }
        }
    }
    thresholds
}

/// `{ threshold = "p(95) < 4s", abort_on_fail = true, delay_abort_eval = "10s" }`: the
/// expression, whether failing it stops the run, and how long to wait before judging that.
fn read_entry(reader: &mut Reader<'_>, table: &Table<'_>) -> Option<(String, bool, Duration)> {
    let text = reader.string(table, "threshold");
    let abort_on_fail = reader.boolean(table, "abort_on_fail").unwrap_or(false);
    let delay = reader
        .duration(table, "delay_abort_eval")
        .unwrap_or(Duration::ZERO);
    let text = reader.require(table, "threshold", "\"p(95) < 4s\"", text)?;
    Some((text, abort_on_fail, delay))
}

/// A rendition selector that names no profile of the ladder can never see data.
fn check_rendition_tag(
    reader: &mut Reader<'_>,
    threshold: &Threshold,
    ladder: Option<&[Profile]>,
    span: Option<std::ops::Range<usize>>,
    path: &str,
) {
    let (Some(rendition), Some(ladder)) = (threshold.selector.tags.get("rendition"), ladder) else {
        return;
    };
    if ladder.iter().any(|p| &p.name == rendition) || rendition == "source" {
        return;
    }
    let hint = closest(rendition, ladder.iter().map(|p| p.name.as_str()))
        .map(|h| format!("did you mean `{h}`?"))
        .or_else(|| {
            Some(format!(
                "the ladder has {}",
                ladder
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        });
    reader.errors.error(
        span,
        path,
        format!(
            "rendition `{rendition}` is not in the ladder, so this threshold could never see data"
        ),
        hint,
    );
}
