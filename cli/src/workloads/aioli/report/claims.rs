//! The reproduction's claims, each checked from the report's numbers with the threshold the issue
//! states ("beyond the seed spread": a mean difference larger than twice the pooled standard
//! deviation). A claim whose experiment has not run to its end is "not run".

use std::collections::BTreeMap;

use super::figures::{pooled_std, Stat};
use super::{Report, BUDGET_SECONDS, PARTS};
use crate::workloads::reproduction::{budget_claim, not_run, Claim};

/// How far Aioli may be above stratified (a fraction of stratified's perplexity).
const AIOLI_SLACK: f64 = 0.005;
/// The share of the grid's gain over stratified Aioli should recover (a goal).
const RECOVER_GOAL: f64 = 0.5;
/// Rounds whose raw diagonal must be positive.
const DIAGONAL_SHARE: f64 = 0.9;
/// The least R² of each group's fitted law.
const LAW_R2: f64 = 0.9;
/// Total-variation distance from the prior that counts as moving away from it.
const MOVED_TV: f64 = 0.1;

fn show(s: &Stat) -> String {
    format!(
        "{:.4} ± {} ({} seeds)",
        s.avg_test_ppl,
        s.std_text(),
        s.seeds
    )
}

fn mix(m: &BTreeMap<String, f64>) -> String {
    let parts: Vec<String> = m.iter().map(|(g, w)| format!("{g} {w:.3}")).collect();
    format!("({})", parts.join(", "))
}

/// `a` below `b` beyond twice their pooled std: (held, detail).
fn beyond_spread(a: &Stat, b: &Stat, a_name: &str, b_name: &str) -> (Option<bool>, String) {
    let diff = b.avg_test_ppl - a.avg_test_ppl;
    match pooled_std(a, b) {
        Some(sp) => (
            Some(diff > 2.0 * sp),
            format!(
                "{a_name} {} against {b_name} {}: {a_name} lower by {diff:.4} ({:.2} %), twice the pooled std is {:.4}",
                show(a),
                show(b),
                100.0 * diff / b.avg_test_ppl,
                2.0 * sp
            ),
        ),
        None => (None, "too few seeds for a pooled std".into()),
    }
}

pub fn claims(r: &Report) -> Vec<Claim> {
    let mut out = Vec::new();
    let strat = r.methods.get("stratified");
    let aioli = r.methods.get("aioli");

    let c = "Ground truth: the grid's best static mixture beats stratified beyond the seed spread"
        .to_string();
    out.push(match (&r.grid_best, strat) {
        (Some(best), Some(s)) => {
            let (held, detail) = beyond_spread(&best.stat, s, "grid best", "stratified");
            Claim {
                id: "grid-beats-stratified",
                part: "grid",
                claim: c,
                held,
                detail: format!("best mixture {}; {detail}", mix(&best.proportions)),
            }
        }
        _ => not_run("grid-beats-stratified", "grid", c),
    });

    let c = format!(
        "Unrestricted: Aioli's mean average test perplexity ≤ stratified's + {:.1} %",
        AIOLI_SLACK * 100.0
    );
    out.push(match (aioli, strat) {
        (Some(a), Some(s)) => Claim {
            id: "aioli-not-worse",
            part: "unrestricted",
            claim: c,
            held: Some(a.avg_test_ppl <= s.avg_test_ppl * (1.0 + AIOLI_SLACK)),
            detail: format!(
                "aioli {} against stratified {} ({:+.2} %)",
                show(a),
                show(s),
                100.0 * (a.avg_test_ppl - s.avg_test_ppl) / s.avg_test_ppl
            ),
        },
        _ => not_run("aioli-not-worse", "unrestricted", c),
    });

    let c = format!(
        "Goal: Aioli recovers ≥ {:.0} % of the grid best's gain over stratified",
        RECOVER_GOAL * 100.0
    );
    out.push(match (aioli, strat, &r.grid_best) {
        (Some(a), Some(s), Some(best)) => {
            let gain = s.avg_test_ppl - best.stat.avg_test_ppl;
            let got = s.avg_test_ppl - a.avg_test_ppl;
            if gain > 0.0 {
                Claim {
                    id: "aioli-recovers-gain",
                    part: "unrestricted",
                    claim: c,
                    held: Some(got >= RECOVER_GOAL * gain),
                    detail: format!(
                        "the grid best is {gain:.4} below stratified; Aioli is {got:.4} below it: {:.0} % recovered",
                        100.0 * got / gain
                    ),
                }
            } else {
                Claim {
                    id: "aioli-recovers-gain",
                    part: "unrestricted",
                    claim: c,
                    held: Some(false),
                    detail: format!("the grid best is not below stratified ({gain:+.4}): there is no gain to recover"),
                }
            }
        }
        _ => not_run("aioli-recovers-gain", "unrestricted", c),
    });

    let c = "Unrestricted: Aioli is not worse than DoReMi beyond the seed spread (the paper: Aioli beats the existing methods, none of which consistently beats stratified)".to_string();
    out.push(match (aioli, r.methods.get("doremi"), strat) {
        (Some(a), Some(d), Some(s)) => match pooled_std(a, d) {
            Some(sp) => Claim {
                id: "aioli-not-worse-than-doremi",
                part: "unrestricted",
                claim: c,
                held: Some(a.avg_test_ppl - d.avg_test_ppl <= 2.0 * sp),
                detail: format!(
                    "aioli {} against doremi {}: aioli {:+.4}, twice the pooled std is {:.4}; doremi against stratified {}: {:+.2} %",
                    show(a),
                    show(d),
                    a.avg_test_ppl - d.avg_test_ppl,
                    2.0 * sp,
                    show(s),
                    100.0 * (d.avg_test_ppl - s.avg_test_ppl) / s.avg_test_ppl
                ),
            },
            None => Claim {
                held: None,
                detail: "too few seeds for a pooled std".into(),
                ..not_run("aioli-not-worse-than-doremi", "unrestricted", c)
            },
        },
        _ => not_run("aioli-not-worse-than-doremi", "unrestricted", c),
    });

    let c = "Restricted: from a bad prior held for 10 % of the steps, Aioli beats the static continuation of that prior beyond the seed spread".to_string();
    out.push(
        match (
            r.methods.get("restricted-aioli"),
            r.methods.get("restricted-static"),
        ) {
            (Some(a), Some(s)) => {
                let (held, detail) = beyond_spread(a, s, "aioli", "static prior");
                Claim {
                    id: "restricted-beats-static",
                    part: "restricted",
                    claim: c,
                    held,
                    detail,
                }
            }
            _ => not_run("restricted-beats-static", "restricted", c),
        },
    );

    let c = format!(
        "Restricted: Aioli's final mixture is ≥ {MOVED_TV} (total variation) away from the prior"
    );
    let last = r
        .mixture_over_steps
        .get("restricted-aioli")
        .and_then(|v| v.last());
    out.push(match (last, &r.restricted_prior) {
        (Some(end), Some(prior)) => {
            let tv = 0.5
                * prior
                    .iter()
                    .map(|(g, w)| (end.p.get(g).copied().unwrap_or(0.0) - w).abs())
                    .sum::<f64>();
            Claim {
                id: "restricted-p-moves",
                part: "restricted",
                claim: c,
                held: Some(tv >= MOVED_TV),
                detail: format!(
                    "prior {} → {} at step {} (seed mean): distance {tv:.3}",
                    mix(prior),
                    mix(&end.p),
                    end.step
                ),
            }
        }
        _ => not_run("restricted-p-moves", "restricted", c),
    });

    let c = format!(
        "With one_hot_factor 1, mix/A_raw has a positive diagonal in ≥ {:.0} % of rounds",
        DIAGONAL_SHARE * 100.0
    );
    out.push(match &r.one_hot_a_raw {
        Some(a) => Claim {
            id: "a-diagonal-positive",
            part: "one-hot",
            claim: c,
            held: Some(a.diagonal_positive as f64 >= DIAGONAL_SHARE * a.rounds as f64),
            detail: format!(
                "{} of {} rounds (over both seeds) have every Â_ii > 0",
                a.diagonal_positive, a.rounds
            ),
        },
        None => not_run("a-diagonal-positive", "one-hot", c),
    });
    let c = "With one_hot_factor 1, the entries between hard and shared (planted transfer) exceed those between easy and the others".to_string();
    out.push(match &r.one_hot_a_raw {
        Some(a) => Claim {
            id: "a-transfer",
            part: "one-hot",
            claim: c,
            held: Some(a.transfer_mean > a.unrelated_mean),
            detail: format!(
                "mean Â over rounds: hard↔shared {:.4}, easy↔others {:.4}",
                a.transfer_mean, a.unrelated_mean
            ),
        },
        None => not_run("a-transfer", "one-hot", c),
    });

    let c = format!("The mixing law fits every group of the grid with R² ≥ {LAW_R2}");
    out.push(match &r.mixing_law {
        Some(law) => Claim {
            id: "law-r2",
            part: "grid",
            claim: c,
            held: Some(law.groups.iter().all(|g| g.r2 >= LAW_R2)),
            detail: law
                .groups
                .iter()
                .map(|g| format!("{} R² {:.3}", g.group, g.r2))
                .collect::<Vec<_>>()
                .join(", "),
        },
        None => not_run("law-r2", "grid", c),
    });

    let c =
        "DML at the law's optimum is not worse than the grid's best mixture beyond the seed spread"
            .to_string();
    out.push(match (r.methods.get("dml"), &r.grid_best) {
        (Some(d), Some(best)) => {
            let diff = d.avg_test_ppl - best.stat.avg_test_ppl;
            let sp = pooled_std(d, &best.stat);
            Claim {
                id: "dml-vs-grid-best",
                part: "dml",
                claim: c,
                held: sp.map(|sp| diff <= 2.0 * sp),
                detail: format!(
                    "dml at {} {} against the grid best {} {}: {diff:+.4}{}",
                    r.dml_mixture.as_ref().map(mix).unwrap_or_default(),
                    show(d),
                    mix(&best.proportions),
                    show(&best.stat),
                    sp.map(|sp| format!(", twice the pooled std {:.4}", 2.0 * sp))
                        .unwrap_or_default()
                ),
            }
        }
        _ => not_run("dml-vs-grid-best", "dml", c),
    });

    out.push(budget_claim(&PARTS, &r.experiments, BUDGET_SECONDS));
    out
}
