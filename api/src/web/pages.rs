//! The HTML shells. The experiments list is rendered here in full; the other pages get their
//! heading and the data they start from, and their module (`web/assets/`) draws the rest.

use std::fmt::Write;

use orrery_core::dto::{fmt_value, ExperimentDto, Leaderboard, TrialDto};

/// Rows per page of the trials table unless the address says otherwise.
pub const DEFAULT_PAGE_ROWS: usize = 50;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// JSON for a `<script type="application/json">` element. `<`, `>` and `&` are written as JSON
/// escapes, so no string in it (a parameter value, a message) can end the element (`</script>`)
/// or switch the parser's script states (`<!--`); `JSON.parse` reads them back unchanged.
fn embedded_json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v)
        .expect("DTOs serialise")
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// `crumbs`: the links above the heading; `data`: attributes for `<main>`; `module`: the page's
/// script in `web/assets/`.
fn page(title: &str, crumbs: &[(String, String)], data: &str, body: &str, module: &str) -> String {
    let mut nav = String::from("<a class=\"brand\" href=\"/\">Orrery</a>");
    for (href, label) in crumbs {
        let _ = write!(
            nav,
            " <span aria-hidden=\"true\">/</span> <a href=\"{}\">{}</a>",
            esc(href),
            esc(label)
        );
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{t} · Orrery</title>\
<link rel=\"icon\" href=\"data:,\"><link rel=\"stylesheet\" href=\"/assets/orrery.css\"></head><body>\
<header class=\"top\"><nav aria-label=\"Breadcrumb\">{nav}</nav>\
<span id=\"live\" class=\"live\" role=\"status\" aria-live=\"polite\"></span></header>\
<main id=\"main\"{data}><div id=\"notice\" class=\"notice\" role=\"alert\"></div>{body}</main>\
<script type=\"module\" src=\"/assets/{module}\"></script></body></html>",
        t = esc(title)
    )
}

fn phase_badge(phase: impl std::fmt::Display) -> String {
    format!("<span class=\"phase phase-{phase}\">{phase}</span>")
}

fn progress(e: &ExperimentDto) -> String {
    let c = &e.counts;
    let mut extra = Vec::new();
    if c.running > 0 {
        extra.push(format!("{} running", c.running));
    }
    if c.failed > 0 {
        extra.push(format!("{} failed", c.failed));
    }
    if c.diverged > 0 {
        extra.push(format!("{} diverged", c.diverged));
    }
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!(" · {}", extra.join(", "))
    };
    format!(
        "<progress value=\"{d}\" max=\"{m}\" aria-label=\"{d} of {t} trials done\"></progress> \
         <span class=\"num\">{d}/{t}</span>{extra}",
        d = c.done(),
        m = c.total.max(1),
        t = c.total,
    )
}

pub fn experiments(list: &[ExperimentDto], best: &[Option<f64>]) -> String {
    let mut b = String::from("<h1>Experiments</h1>");
    if list.is_empty() {
        b.push_str(
            "<p class=\"empty\">No experiments yet. Run <code>orrery run SPEC</code>, or \
             <code>kubectl apply</code> one on a cluster.</p>",
        );
    } else {
        b.push_str(
            "<table class=\"grid\" id=\"experiments\"><caption class=\"sr-only\">Experiments, newest first</caption>\
<thead><tr><th scope=\"col\">id</th><th scope=\"col\">name</th><th scope=\"col\">workload</th>\
<th scope=\"col\">state</th><th scope=\"col\">progress</th><th scope=\"col\">best objective</th>\
<th scope=\"col\">created</th></tr></thead><tbody>",
        );
        for (e, best) in list.iter().zip(best) {
            let _ = write!(
                b,
                "<tr data-id=\"{id}\"><td class=\"num\">{id}</td><td><a href=\"/experiments/{id}\">{n}</a></td>\
<td>{w}</td><td>{p}</td><td class=\"progress\">{g}</td>\
<td><span class=\"num\">{v}</span> <span class=\"muted\">{m} ({goal})</span></td><td class=\"muted\">{c}</td></tr>",
                id = e.id,
                n = esc(&e.name),
                w = esc(&e.workload),
                p = phase_badge(e.phase),
                g = progress(e),
                v = fmt_value(*best),
                m = esc(&e.objective_metric),
                goal = goal_word(e),
                c = esc(&e.created_at),
            );
        }
        b.push_str("</tbody></table>");
    }
    page("Experiments", &[], "", &b, "experiments.js")
}

fn goal_word(e: &ExperimentDto) -> &'static str {
    match e.goal {
        orrery_core::spec::Goal::Minimize => "min",
        orrery_core::spec::Goal::Maximize => "max",
    }
}

fn experiment_heading(e: &ExperimentDto) -> String {
    format!(
        "<h1>{n}</h1><p class=\"meta\" id=\"exp-meta\">experiment {id} · {w} · {p} · \
         <span class=\"counts\">{g}</span> · objective <code>{m}</code> ({goal})</p>",
        n = esc(&e.name),
        id = e.id,
        w = esc(&e.workload),
        p = phase_badge(e.phase),
        g = progress(e),
        m = esc(&e.objective_metric),
        goal = goal_word(e),
    )
}

fn experiment_data(e: &ExperimentDto) -> String {
    format!(
        " data-experiment=\"{}\" data-name=\"{}\" data-workload=\"{}\" data-objective=\"{}\" data-goal=\"{}\"",
        e.id,
        esc(&e.name),
        esc(&e.workload),
        esc(&e.objective_metric),
        goal_word(e)
    )
}

pub fn experiment(board: &Leaderboard) -> String {
    let e = &board.experiment;
    let body = format!(
        "{h}<section aria-labelledby=\"trials-h\"><h2 id=\"trials-h\">Trials</h2>\
<p id=\"table-status\" class=\"sr-only\" role=\"status\" aria-live=\"polite\"></p>\
<div id=\"trials\" class=\"trials\"><p class=\"muted\">Loading the trials table…</p></div></section>\
<section aria-labelledby=\"panel-h\"><h2 id=\"panel-h\">{w} panel</h2><div id=\"panel\" class=\"panel\">\
<p class=\"muted\">Loading…</p></div></section>\
<script type=\"application/json\" id=\"initial-board\">{json}</script>",
        h = experiment_heading(e),
        w = esc(&e.workload),
        json = embedded_json(board),
    );
    page(&e.name, &[], &experiment_data(e), &body, "experiment.js")
}

pub fn trial(e: &ExperimentDto, t: &TrialDto) -> String {
    let body = format!(
        "<h1>Trial {i} <span class=\"muted\">of {n}</span></h1>\
<p class=\"meta\" id=\"trial-meta\">{p}</p>\
<section aria-labelledby=\"curves-h\"><h2 id=\"curves-h\">Metric curves</h2>\
<div id=\"chart-controls\" class=\"controls\"></div><div id=\"curves\" class=\"curves\"></div></section>\
<div class=\"two\"><section aria-labelledby=\"params-h\"><h2 id=\"params-h\">Parameters</h2><div id=\"params\"></div>\
<h3>Provenance</h3><div id=\"provenance\"></div></section>\
<section aria-labelledby=\"history-h\"><h2 id=\"history-h\">State history</h2><div id=\"history\"></div>\
<h3>Logs</h3><div id=\"logs\"></div></section></div>\
<section aria-labelledby=\"artifacts-h\"><h2 id=\"artifacts-h\">Artifacts</h2><div id=\"artifacts\"></div></section>\
<section aria-labelledby=\"config-h\"><h2 id=\"config-h\">Configuration</h2><div id=\"config\"></div></section>",
        i = t.index,
        n = esc(&e.name),
        p = phase_badge(t.phase),
    );
    let data = format!("{} data-trial=\"{}\"", experiment_data(e), t.id);
    page(
        &format!("Trial {} of {}", t.index, e.name),
        &[(format!("/experiments/{}", e.id), e.name.clone())],
        &data,
        &body,
        "trial.js",
    )
}

pub fn compare(e: &ExperimentDto) -> String {
    let body = format!(
        "<h1>Compare trials <span class=\"muted\">of {n}</span></h1>\
<div id=\"compare\"><p class=\"muted\">Loading…</p></div>",
        n = esc(&e.name)
    );
    page(
        &format!("Compare · {}", e.name),
        &[(format!("/experiments/{}", e.id), e.name.clone())],
        &experiment_data(e),
        &body,
        "compare.js",
    )
}

/// A page that could not be shown: what went wrong, in the API's words.
pub fn error(status: axum::http::StatusCode, message: &str) -> String {
    let body = format!(
        "<h1>{}</h1><p class=\"error\" role=\"alert\">{}</p><p><a href=\"/\">All experiments</a></p>",
        esc(status.canonical_reason().unwrap_or("Error")),
        esc(message)
    );
    page(&status.to_string(), &[], "", &body, "common.js")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_json_cannot_leave_its_script_element() {
        let v = serde_json::json!({"message": "<!--<script></script>&"});
        let text = embedded_json(&v);
        assert!(
            !text.contains('<') && !text.contains('>') && !text.contains('&'),
            "{text}"
        );
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
    }
}
