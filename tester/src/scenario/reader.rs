//! A strict, error-collecting reader over a parsed TOML document.
//!
//! serde's `deny_unknown_fields` stops at the first problem and loses positions inside nested
//! values; this reader walks `toml_edit`'s spanned tree instead, records a [`Diagnostic`] for each
//! bad or unknown key with its exact position and a "did you mean" hint, and keeps going. Getters
//! return `None` after recording an error, so the loader reads as a plain list of fields.
//!
//! A table's known keys are the keys its reader asks for: [`Reader::strict`] runs a section's
//! reader and then reports every key of the table that no read asked for, so each key is written
//! once, where it is read.
//!
//! [`Diagnostic`]: super::Diagnostic

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use toml_edit::{Item, TableLike, Value};

use super::diagnostics::Collector;
use crate::duration::parse_duration;
use crate::hint::closest;

/// A table (standard or inline) with its key path and position.
#[derive(Clone)]
pub(crate) struct Table<'a> {
    pub table: &'a dyn TableLike,
    pub span: Option<Range<usize>>,
    path: String,
}

pub(crate) struct Reader<'s> {
    pub errors: Collector<'s>,
    /// The keys asked of each table so far (by the table's address in the document), in the
    /// order first asked: the keys its reader knows.
    asked: HashMap<usize, Vec<String>>,
}

/// Joins a key path: `join("workloads", "smoke")` → `workloads.smoke`.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn type_name(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Table(_) | Item::Value(Value::InlineTable(_)) => "a table",
        Item::ArrayOfTables(_) | Item::Value(Value::Array(_)) => "an array",
        Item::Value(Value::String(_)) => "a string",
        Item::Value(Value::Integer(_)) => "an integer",
        Item::Value(Value::Float(_)) => "a float",
        Item::Value(Value::Boolean(_)) => "a boolean",
        Item::Value(Value::Datetime(_)) => "a date-time",
    }
}

impl<'s> Reader<'s> {
    /// A reader of `source`, the text of `file`.
    pub fn new(file: &Path, source: &'s str) -> Self {
        Reader {
            errors: Collector::new(file, source),
            asked: HashMap::new(),
        }
    }

    /// Views `item` as a table, or records that it should have been one.
    pub fn as_table<'a>(&mut self, item: &'a Item, path: &str) -> Option<Table<'a>> {
        match item.as_table_like() {
            Some(table) => Some(Table {
                table,
                span: item.span(),
                path: path.to_owned(),
            }),
            None => {
                self.errors.error(
                    item.span(),
                    path,
                    format!("expected a table, found {}", type_name(item)),
                    None,
                );
                None
            }
        }
    }

    /// Runs `read` over `table`, then records every key of `table` that no read asked for, with
    /// the closest asked key as a hint. Keys asked before (a `kind` that chose this reader) count
    /// as known too.
    pub fn strict<T>(&mut self, table: &Table<'_>, read: impl FnOnce(&mut Self) -> T) -> T {
        let value = read(self);
        self.report_unasked(table);
        value
    }

    fn report_unasked(&mut self, table: &Table<'_>) {
        let known: Vec<&str> = self
            .asked
            .get(&table.address())
            .map(|keys| keys.iter().map(String::as_str).collect())
            .unwrap_or_default();
        for (key, _) in table.table.iter() {
            if known.contains(&key) {
                continue;
            }
            let span = table.table.key(key).and_then(|k| k.span());
            let hint = closest(key, known.iter().copied()).map(|h| format!("did you mean `{h}`?"));
            let hint = hint.or_else(|| Some(format!("known keys here: {}", known.join(", "))));
            self.errors.leading_error(
                span,
                &join(&table.path, key),
                format!("unknown key `{key}`"),
                hint,
            );
        }
    }

    /// Records an error at `key` of `table` (at its value, or at the table when it is absent).
    pub fn error_at(
        &mut self,
        table: &Table<'_>,
        key: &str,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let span = table
            .table
            .get(key)
            .and_then(|i| i.span())
            .or_else(|| table.table.key(key).and_then(|k| k.span()))
            .or(table.span.clone());
        self.errors
            .error(span, &join(&table.path, key), message, hint);
    }

    fn missing(&mut self, table: &Table<'_>, key: &str, example: &str) {
        let span = table.span.clone();
        let place = if table.path.is_empty() {
            "the scenario".to_owned()
        } else {
            format!("[{}]", table.path)
        };
        self.errors.error(
            span,
            &join(&table.path, key),
            format!("missing required key `{key}` in {place}"),
            Some(format!("add e.g. `{key} = {example}`")),
        );
    }

    fn wrong_type(&mut self, table: &Table<'_>, key: &str, item: &Item, expected: &str) {
        self.error_at(
            table,
            key,
            format!("expected {expected}, found {}", type_name(item)),
            None,
        );
    }

    /// The value at `key`, if present; every getter asks through here, which makes `key` known.
    pub fn item<'a>(&mut self, table: &Table<'a>, key: &str) -> Option<&'a Item> {
        let asked = self.asked.entry(table.address()).or_default();
        if !asked.iter().any(|k| k == key) {
            asked.push(key.to_owned());
        }
        table.table.get(key).filter(|i| !i.is_none())
    }

    pub fn require<T>(
        &mut self,
        table: &Table<'_>,
        key: &str,
        example: &str,
        value: Option<T>,
    ) -> Option<T> {
        if value.is_none() && self.item(table, key).is_none() {
            self.missing(table, key, example);
        }
        value
    }

    pub fn string(&mut self, table: &Table<'_>, key: &str) -> Option<String> {
        let item = self.item(table, key)?;
        match item.as_str() {
            Some(s) => Some(s.to_owned()),
            None => {
                self.wrong_type(table, key, item, "a string");
                None
            }
        }
    }

    pub fn boolean(&mut self, table: &Table<'_>, key: &str) -> Option<bool> {
        let item = self.item(table, key)?;
        match item.as_bool() {
            Some(b) => Some(b),
            None => {
                self.wrong_type(table, key, item, "true or false");
                None
            }
        }
    }

    /// An integer within `min..=max`.
    pub fn integer(&mut self, table: &Table<'_>, key: &str, min: i64, max: i64) -> Option<i64> {
        let item = self.item(table, key)?;
        let Some(n) = item.as_integer() else {
            self.wrong_type(table, key, item, "an integer");
            return None;
        };
        self.within(table, key, n, min..=max)
    }

    /// A number (integer or float) within `min..=max`.
    pub fn number(&mut self, table: &Table<'_>, key: &str, min: f64, max: f64) -> Option<f64> {
        let item = self.item(table, key)?;
        let n = match (item.as_float(), item.as_integer()) {
            (Some(f), _) => f,
            (_, Some(i)) => i as f64,
            _ => {
                self.wrong_type(table, key, item, "a number");
                return None;
            }
        };
        self.within(table, key, n, min..=max)
    }

    /// `n` when it is in `range`, else an error at `key`.
    fn within<N>(
        &mut self,
        table: &Table<'_>,
        key: &str,
        n: N,
        range: std::ops::RangeInclusive<N>,
    ) -> Option<N>
    where
        N: PartialOrd + std::fmt::Display,
    {
        if range.contains(&n) {
            return Some(n);
        }
        let message = format!("{n} is out of range {}..={}", range.start(), range.end());
        self.error_at(table, key, message, None);
        None
    }

    pub fn duration(&mut self, table: &Table<'_>, key: &str) -> Option<Duration> {
        let item = self.item(table, key)?;
        let Some(text) = item.as_str() else {
            let hint = item
                .as_integer()
                .map(|n| format!("write it with a unit, e.g. \"{n}s\""));
            self.error_at(
                table,
                key,
                format!(
                    "expected a duration string such as \"30s\", found {}",
                    type_name(item)
                ),
                hint,
            );
            return None;
        };
        match parse_duration(text) {
            Ok(d) => Some(d),
            Err(message) => {
                self.error_at(table, key, message, None);
                None
            }
        }
    }

    /// A string that must be one of `choices`.
    pub fn choice<'c>(
        &mut self,
        table: &Table<'_>,
        key: &str,
        choices: &[&'c str],
    ) -> Option<&'c str> {
        let given = self.string(table, key)?;
        match choices.iter().find(|c| **c == given) {
            Some(c) => Some(c),
            None => {
                let hint = closest(&given, choices.iter().copied())
                    .map(|h| format!("did you mean `{h}`?"))
                    .or_else(|| Some(format!("one of: {}", choices.join(", "))));
                self.error_at(table, key, format!("`{given}` is not a valid value"), hint);
                None
            }
        }
    }

    /// Each element of an array value, or records that `key` should have been an array.
    pub fn array<'a>(&mut self, table: &Table<'a>, key: &str) -> Option<Vec<&'a Value>> {
        let item = self.item(table, key)?;
        match item.as_array() {
            Some(array) => Some(array.iter().collect()),
            None => {
                self.wrong_type(table, key, item, "an array");
                None
            }
        }
    }

    /// An array of strings; each bad element is its own error.
    pub fn strings(
        &mut self,
        table: &Table<'_>,
        key: &str,
    ) -> Option<Vec<(String, Option<Range<usize>>)>> {
        let values = self.array(table, key)?;
        let path = join(&table.path, key);
        let mut out = Vec::new();
        for (index, value) in values.into_iter().enumerate() {
            match value.as_str() {
                Some(s) => out.push((s.to_owned(), value.span())),
                None => self.errors.error(
                    value.span(),
                    &format!("{path}[{index}]"),
                    "expected a string",
                    None,
                ),
            }
        }
        Some(out)
    }

    /// Tables of an array of tables (`[[ladder.custom]]`) or an array of inline tables.
    pub fn tables<'a>(&mut self, table: &Table<'a>, key: &str) -> Option<Vec<&'a dyn TableLike>> {
        let item = self.item(table, key)?;
        if let Some(array) = item.as_array_of_tables() {
            return Some(array.iter().map(|t| t as &dyn TableLike).collect());
        }
        if let Some(array) = item.as_array() {
            let mut out = Vec::new();
            for (index, value) in array.iter().enumerate() {
                match value.as_inline_table() {
                    Some(t) => out.push(t as &dyn TableLike),
                    None => self.errors.error(
                        value.span(),
                        &format!("{}[{index}]", join(&table.path, key)),
                        "expected a table such as `{ duration = \"30s\", target = 10 }`",
                        None,
                    ),
                }
            }
            return Some(out);
        }
        self.wrong_type(table, key, item, "an array of tables");
        None
    }
}

impl<'a> Table<'a> {
    pub fn new(table: &'a dyn TableLike, span: Option<Range<usize>>, path: String) -> Self {
        Table { table, span, path }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// Where the table lives in the document: the same table read twice has one address.
    fn address(&self) -> usize {
        (self.table as *const dyn TableLike).cast::<()>() as usize
    }
}
