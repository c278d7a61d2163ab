//! `orrery fields WORKLOAD`, like `kubectl explain`: every field a trial of the workload reads —
//! `model`, `data`, `training` and its `params` — with its type, default, accepted values and one
//! line of meaning, then the metrics its workers report. All of it comes from the sections'
//! declarations, so it cannot drift from what the validator accepts; `--markdown` prints the same
//! as the tables in `docs/workloads/<name>.md` (a test keeps those up to date).

use serde_json::Value;

use orrery_core::fields::{Field, Ty};
use orrery_core::metrics;
use orrery_core::spec::{Workload, SECTIONS};
use orrery_core::workloads::MetricDoc;

/// One leaf field: its dotted path, declaration and default.
struct Row {
    path: String,
    field: &'static Field,
    default: String,
}

fn default_at(defaults: &Value, name: &str) -> String {
    match defaults.get(name) {
        None | Some(Value::Null) => "unset".into(),
        Some(v) => v.to_string(),
    }
}

fn rows_of(prefix: &str, fields: &'static [Field], defaults: &Value, out: &mut Vec<Row>) {
    for f in fields {
        let path = format!("{prefix}.{}", f.name);
        match f.ty {
            Ty::Group(inner) => {
                let d = defaults.get(f.name).cloned().unwrap_or(Value::Null);
                rows_of(&path, inner, &d, out);
            }
            _ => out.push(Row {
                default: default_at(defaults, f.name),
                path,
                field: f,
            }),
        }
    }
}

fn rows(w: Workload) -> Vec<Row> {
    let mut out = Vec::new();
    for s in SECTIONS {
        rows_of(s.name, s.fields, &(s.defaults)(), &mut out);
    }
    rows_of("params", w.fields(), &w.default_params(), &mut out);
    out
}

fn metric_docs(w: Workload) -> impl Iterator<Item = &'static MetricDoc> {
    metrics::SHARED.iter().chain(w.metrics())
}

/// Wraps `text` into lines of at most `width` characters, each starting with `indent`.
fn wrap(text: &str, indent: &str, width: usize) -> String {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty()
            && indent.len() + line.chars().count() + 1 + word.chars().count() > width
        {
            lines.push(format!("{indent}{line}"));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(format!("{indent}{line}"));
    }
    lines.join("\n")
}

/// The terminal listing (at most 100 columns).
pub fn text(w: Workload) -> String {
    let mut out = format!(
        "{}\n\nFIELDS (sweep any of them by its path in search.space or search.trials):\n",
        wrap(&format!("{w}: {}", w.about()), "", 100)
    );
    for r in rows(w) {
        let range = r.field.ty.range();
        let accepted = if range.is_empty() {
            String::new()
        } else {
            format!(" ({range})")
        };
        out.push_str(&wrap(
            &format!(
                "{} <{}> default {}{accepted}",
                r.path,
                r.field.ty.name(),
                r.default
            ),
            "",
            100,
        ));
        out.push('\n');
        out.push_str(&wrap(r.field.doc, "    ", 100));
        out.push('\n');
    }
    out.push_str("\nMETRICS (the shared ones first):\n");
    for m in metric_docs(w) {
        out.push_str(&format!("{}\n{}\n", m.name, wrap(m.doc, "    ", 100)));
    }
    out
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

/// The same as Markdown tables (between the `fields` markers of `docs/workloads/<name>.md`).
pub fn markdown(w: Workload) -> String {
    let mut out =
        String::from("| field | type | default | accepted | meaning |\n|---|---|---|---|---|\n");
    for r in rows(w) {
        out.push_str(&format!(
            "| `{}` | {} | `{}` | {} | {} |\n",
            r.path,
            r.field.ty.name(),
            r.default,
            cell(&r.field.ty.range()),
            cell(r.field.doc)
        ));
    }
    out.push_str("\n| metric | meaning |\n|---|---|\n");
    for m in metric_docs(w) {
        out.push_str(&format!("| `{}` | {} |\n", m.name, cell(m.doc)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_listed_within_100_columns() {
        for w in Workload::ALL {
            let t = text(*w);
            for path in orrery_core::spec::sweepable_paths(*w) {
                assert!(t.contains(&format!("{path} <")), "{path} missing:\n{t}");
            }
            for line in t.lines() {
                assert!(line.chars().count() <= 100, "{line}");
            }
        }
        let t = text(Workload::Stability);
        assert!(
            t.contains("training.lr <number> default 0.001 (> 0, ≤ 100)"),
            "{t}"
        );
        assert!(
            t.contains("params.qk_layernorm <boolean> default false"),
            "{t}"
        );
        assert!(
            t.contains("model.layers <integer> default unset (1 … 64)"),
            "{t}"
        );
        assert!(t.contains("attn/max_logit/L{layer}"), "{t}");
    }

    /// `docs/workloads/<name>.md` carries the field tables between its markers, as generated.
    #[test]
    fn the_workload_docs_list_the_declared_fields() {
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/workloads");
        for w in Workload::ALL {
            let file = docs.join(format!("{w}.md"));
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let (begin, end) = ("<!-- fields:begin -->\n", "<!-- fields:end -->");
            let inside = text
                .split_once(begin)
                .and_then(|(_, rest)| rest.split_once(end))
                .map(|(inside, _)| inside)
                .unwrap_or_else(|| panic!("{} lacks the fields markers", file.display()));
            assert!(
                inside == markdown(*w),
                "{} is out of date with the declarations: put the output of \
                 `orrery fields {w} --markdown` between its markers",
                file.display()
            );
        }
    }
}
