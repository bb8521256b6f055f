//! Keeps `probes::ai::api` equal to the vendored ai-runner OpenAPI document: every schema's
//! properties and required set, every path a `Pipeline` route and back, each route's body kind
//! and schemas. A document that gains or loses a field fails here.

use std::collections::{BTreeMap, BTreeSet};

use probes::ai::Pipeline;
use probes::ai::api::SCHEMA_FIELDS;
use serde_json::{Value, json};

const DOCUMENT: &str = include_str!("../openapi/gateway.openapi.yaml");

fn document() -> Value {
    serde_yaml_ng::from_str(DOCUMENT).expect("the OpenAPI document parses")
}

/// Per schema of the document: its properties and whether each is required.
fn document_schemas(doc: &Value) -> BTreeMap<String, BTreeMap<String, bool>> {
    let schemas = doc["components"]["schemas"]
        .as_object()
        .expect("components.schemas");
    schemas
        .iter()
        .map(|(name, schema)| {
            let required: BTreeSet<&str> = schema["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let fields = schema["properties"]
                .as_object()
                .map(|p| {
                    p.keys()
                        .map(|k| (k.clone(), required.contains(k.as_str())))
                        .collect()
                })
                .unwrap_or_default();
            (name.clone(), fields)
        })
        .collect()
}

/// Every difference between the document's schemas and `SCHEMA_FIELDS`.
fn schema_mismatches(doc: &Value) -> Vec<String> {
    let documented = document_schemas(doc);
    let typed: BTreeMap<String, BTreeMap<String, bool>> = SCHEMA_FIELDS
        .iter()
        .map(|(name, fields)| {
            (
                (*name).to_owned(),
                fields.iter().map(|(f, r)| ((*f).to_owned(), *r)).collect(),
            )
        })
        .collect();
    let mut out = Vec::new();
    for name in documented
        .keys()
        .chain(typed.keys())
        .collect::<BTreeSet<_>>()
    {
        match (documented.get(name), typed.get(name)) {
            (Some(d), Some(t)) if d != t => {
                for field in d.keys().chain(t.keys()).collect::<BTreeSet<_>>() {
                    match (d.get(field), t.get(field)) {
                        (Some(a), Some(b)) if a == b => {}
                        (Some(a), Some(b)) => out.push(format!(
                            "{name}.{field}: required {a} in the document, {b} in the types"
                        )),
                        (Some(_), None) => out.push(format!("{name}.{field}: not in the types")),
                        (None, _) => out.push(format!("{name}.{field}: not in the document")),
                    }
                }
            }
            (Some(_), Some(_)) => {}
            (Some(_), None) => out.push(format!("schema {name}: not in the types")),
            (None, _) => out.push(format!("schema {name}: not in the document")),
        }
    }
    out
}

fn schema_ref(value: &Value) -> Option<&str> {
    value["$ref"]
        .as_str()?
        .strip_prefix("#/components/schemas/")
}

#[test]
fn every_schema_matches_the_types() {
    let mismatches = schema_mismatches(&document());
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

#[test]
fn a_gained_or_lost_field_is_caught() {
    let mut doc = document();
    doc["components"]["schemas"]["TextToImageParams"]["properties"]["scheduler"] =
        json!({"type": "string"});
    assert_eq!(
        schema_mismatches(&doc),
        vec!["TextToImageParams.scheduler: not in the types"]
    );
    let mut doc = document();
    let props = doc["components"]["schemas"]["Media"]["properties"]
        .as_object_mut()
        .expect("Media");
    props.remove("nsfw");
    assert!(
        schema_mismatches(&doc).contains(&"Media.nsfw: not in the document".to_owned()),
        "{:?}",
        schema_mismatches(&doc)
    );
    let mut doc = document();
    doc["components"]["schemas"]["LLMRequest"]["required"] = json!(["messages", "model"]);
    assert_eq!(
        schema_mismatches(&doc),
        vec!["LLMRequest.model: required true in the document, false in the types"]
    );
}

#[test]
fn every_path_is_a_pipeline_and_back() {
    let doc = document();
    let paths: BTreeSet<&str> = doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .map(String::as_str)
        .collect();
    let routes: BTreeSet<&str> = Pipeline::ALL.iter().map(|p| p.route()).collect();
    assert_eq!(paths, routes);
    for p in Pipeline::ALL {
        let op = &doc["paths"][p.route()]["post"];
        let content = op["requestBody"]["content"]
            .as_object()
            .expect("request content");
        let kind = if p.is_multipart() {
            "multipart/form-data"
        } else {
            "application/json"
        };
        assert!(content.contains_key(kind), "{p}: {kind}");
        let (request, response) = p.schemas();
        assert_eq!(schema_ref(&content[kind]["schema"]), Some(request), "{p}");
        assert_eq!(
            schema_ref(&op["responses"]["200"]["content"]["application/json"]["schema"]),
            Some(response),
            "{p}"
        );
        if let Some(file) = p.file_field() {
            let prop = &doc["components"]["schemas"][request]["properties"][file];
            assert_eq!(prop["format"], "binary", "{p}: {file}");
        }
    }
}
