//! A minimal server-rendered leaderboard (the full web UI is its own piece of work).

use std::fmt::Write;

use orrery_core::dto::{ExperimentDto, Leaderboard};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title><style>\
body{{font-family:system-ui,sans-serif;margin:2rem;color:#111}}table{{border-collapse:collapse}}\
th,td{{padding:.3rem .7rem;border-bottom:1px solid #ccc;text-align:left}}th{{background:#f3f3f3}}\
tr.best td{{background:#e8f5e9;font-weight:600}}a{{color:#0645ad}}</style></head><body>{body}</body></html>",
        t = esc(title)
    )
}

pub use orrery_core::dto::fmt_value;

pub fn experiments(list: &[ExperimentDto]) -> String {
    let mut b = String::from("<h1>Orrery experiments</h1>");
    if list.is_empty() {
        b.push_str("<p>No experiments yet. Run <code>orrery run SPEC</code>.</p>");
        return page("Orrery", &b);
    }
    b.push_str("<table><thead><tr><th>id</th><th>name</th><th>workload</th><th>phase</th><th>trials done</th><th>created</th></tr></thead><tbody>");
    for e in list {
        let _ = write!(
            b,
            "<tr><td>{id}</td><td><a href=\"/experiments/{id}\">{n}</a></td><td>{w}</td><td>{p}</td><td>{d}/{t}</td><td>{c}</td></tr>",
            id = e.id,
            n = esc(&e.name),
            w = esc(&e.workload),
            p = e.phase,
            d = e.counts.done(),
            t = e.counts.total,
            c = esc(&e.created_at)
        );
    }
    b.push_str("</tbody></table>");
    page("Orrery", &b)
}

pub fn leaderboard(board: &Leaderboard) -> String {
    let e = &board.experiment;
    let mut b = format!(
        "<p><a href=\"/\">← experiments</a></p><h1>{}</h1><p>{} · {} · {}/{} trials done · objective: {} ({:?})</p>",
        esc(&e.name),
        esc(&e.workload),
        e.phase,
        e.counts.done(),
        e.counts.total,
        esc(&e.objective_metric),
        e.goal
    );
    let params = board.param_names();
    b.push_str("<table><thead><tr><th>rank</th><th>trial</th><th>phase</th>");
    for p in &params {
        let _ = write!(b, "<th>{}</th>", esc(p));
    }
    let _ = write!(
        b,
        "<th>{}</th></tr></thead><tbody>",
        esc(&e.objective_metric)
    );
    for r in &board.rows {
        let class = if r.rank == Some(1) {
            " class=\"best\""
        } else {
            ""
        };
        let _ = write!(
            b,
            "<tr{class}><td>{}</td><td>{}</td><td>{}</td>",
            r.rank.map(|x| x.to_string()).unwrap_or_else(|| "—".into()),
            r.index,
            r.phase
        );
        for p in &params {
            let v = r.params.get(p).map(|v| v.to_string()).unwrap_or_default();
            let _ = write!(b, "<td>{}</td>", esc(&v));
        }
        let _ = write!(b, "<td>{}</td></tr>", fmt_value(r.objective));
    }
    b.push_str("</tbody></table>");
    page(&e.name, &b)
}
