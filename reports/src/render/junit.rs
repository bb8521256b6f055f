//! `junit.xml`: one `<testcase>` per threshold (suite `thresholds`) and per check name (suite
//! `checks`), in the common JUnit XML structure (Jenkins/Surefire schema) that GitLab, GitHub
//! actions and Jenkins render natively. A missing summary or an empty journal is an `<error>`
//! test case in suite `run`, so CI shows that the verdict is unknown instead of a green nothing.

use std::fmt::Write;

use super::ReportContext;
use crate::util::{escape_xml as esc, fmt_num};

struct Case {
    class: &'static str,
    name: String,
    /// `(element, message, body)` when not passing.
    problem: Option<(&'static str, String, String)>,
    system_out: Option<String>,
}

fn suite(out: &mut String, name: &str, cases: &[Case], time: f64, timestamp: &str) {
    let failures = cases
        .iter()
        .filter(|c| matches!(&c.problem, Some(("failure", ..))))
        .count();
    let errors = cases
        .iter()
        .filter(|c| matches!(&c.problem, Some(("error", ..))))
        .count();
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"0\" time=\"{time:.3}\" timestamp=\"{}\">",
        esc(name),
        cases.len(),
        esc(timestamp)
    );
    for c in cases {
        let _ = write!(
            out,
            "    <testcase classname=\"{}\" name=\"{}\" time=\"0\"",
            c.class,
            esc(&c.name)
        );
        if c.problem.is_none() && c.system_out.is_none() {
            out.push_str("/>\n");
            continue;
        }
        out.push_str(">\n");
        if let Some((element, message, body)) = &c.problem {
            let _ = writeln!(
                out,
                "      <{element} message=\"{}\" type=\"{}\">{}</{element}>",
                esc(message),
                if *element == "failure" {
                    "threshold"
                } else {
                    "missing"
                },
                esc(body)
            );
        }
        if let Some(s) = &c.system_out {
            let _ = writeln!(out, "      <system-out>{}</system-out>", esc(s));
        }
        out.push_str("    </testcase>\n");
    }
    out.push_str("  </testsuite>\n");
}

/// Renders the document.
pub fn render(ctx: &ReportContext<'_>) -> String {
    let view = &ctx.summary.view;
    let time = view.duration_s.unwrap_or(0.0);
    let timestamp = view
        .started_at
        .clone()
        .unwrap_or_else(|| ctx.generated_at.clone());

    let mut run = Vec::new();
    if let Some(problem) = &ctx.summary.problem {
        run.push(Case {
            class: "lpt.run",
            name: "summary.json".into(),
            problem: Some((
                "error",
                problem.clone(),
                "thresholds were not evaluated".into(),
            )),
            system_out: None,
        });
    }
    let total = ctx.journal.total_records();
    run.push(Case {
        class: "lpt.run",
        name: "records.jsonl".into(),
        problem: if !ctx.journal_present {
            Some((
                "error",
                "records.jsonl is missing".into(),
                "no records were journaled".into(),
            ))
        } else if total == 0 {
            Some((
                "error",
                "the journal holds no usable records".into(),
                ctx.journal.describe_problems().join("\n"),
            ))
        } else {
            None
        },
        system_out: ctx
            .journal
            .has_problems()
            .then(|| ctx.journal.describe_problems().join("\n")),
    });

    let thresholds: Vec<Case> = view
        .thresholds
        .iter()
        .map(|t| Case {
            class: "lpt.thresholds",
            name: format!("{}: {}", t.metric, t.expression),
            problem: (!t.passed).then(|| {
                let observed = ctx.observed(t);
                (
                    "failure",
                    format!("{} {} failed: observed {observed}", t.metric, t.expression),
                    format!(
                        "metric: {}\nexpression: {}\nobserved: {observed}\nabort_on_fail: {}",
                        t.metric, t.expression, t.abort_on_fail
                    ),
                )
            }),
            system_out: t.passed.then(|| format!("observed {}", ctx.observed(t))),
        })
        .collect();

    let checks: Vec<Case> = ctx
        .aggregates
        .checks
        .iter()
        .map(|c| Case {
            class: "lpt.checks",
            name: c.check.clone(),
            problem: (c.failed > 0).then(|| {
                (
                    "failure",
                    format!("{} of {} failed", c.failed, c.total),
                    format!(
                        "pass rate: {}\nfirst failure: {}",
                        fmt_num(c.pass_rate),
                        c.first_failure.as_deref().unwrap_or("")
                    ),
                )
            }),
            system_out: Some(format!("{} of {} passed", c.passed, c.total)),
        })
        .collect();

    let all = run.len() + thresholds.len() + checks.len();
    let count = |kind: &str| {
        run.iter()
            .chain(&thresholds)
            .chain(&checks)
            .filter(|c| matches!(&c.problem, Some((k, ..)) if *k == kind))
            .count()
    };
    let mut out = String::new();
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"lpt: {}\" tests=\"{all}\" failures=\"{}\" errors=\"{}\" time=\"{time:.3}\">",
        esc(&ctx.run_name),
        count("failure"),
        count("error")
    );
    suite(&mut out, "run", &run, time, &timestamp);
    suite(&mut out, "thresholds", &thresholds, time, &timestamp);
    suite(&mut out, "checks", &checks, time, &timestamp);
    out.push_str("</testsuites>\n");
    out
}
