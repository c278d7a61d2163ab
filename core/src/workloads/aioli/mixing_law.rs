//! The mixing law of the Aioli paper's §3 (after Ye et al.'s data-mixing laws): each group's loss as
//! a function of a static mixture p,
//!
//! ```text
//! L_i(p) = c_i + b_i · exp(−Σ_j A_ij p_j)
//! ```
//!
//! fitted per group on an experiment's static trials (every trial whose mixture never changed:
//! `static` and `stratified` alike). Because Σ_j p_j = 1, adding a constant k to a row of A only
//! scales b_i by e^(−k), so a row is identifiable up to that constant: the last group's column is
//! pinned to 0 and the fit reports which group that is.
//!
//! The fitter is variable projection: for a given row A_i the law is linear in (c_i, b_i), which
//! ordinary least squares gives in closed form, so only the m − 1 free entries of A_i are searched,
//! by Nelder–Mead from several starts. The law's optimum is the mixture on a fine simplex grid with
//! the lowest predicted mean test perplexity, mean_i exp(L_i(p)) (the workload's headline metric),
//! among the mixtures whose every weight lies in the range the fitted points covered: the law is
//! not extrapolated (fitted on weights ≥ 0.2, it cannot say what a weight of 0.01 does).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::mixture_space::{simplex_count, simplex_points};

/// How the fit was made (reported with it).
pub const FITTER: &str = "variable projection: (c, b) by least squares for each row of A, the row's free entries by Nelder-Mead (starts 0, ±1, ±4, ±16 on each free entry), the optimum on a simplex grid";

/// Points of the simplex grid the optimum is searched on (at most).
const OPTIMUM_GRID: u128 = 200_000;

/// One group's fitted law.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupLaw {
    pub group: String,
    pub c: f64,
    pub b: f64,
    /// A_ij by column group j (the pinned column is 0).
    pub a: BTreeMap<String, f64>,
    /// Coefficient of determination of the fit over the static trials.
    pub r2: f64,
}

/// The law fitted on an experiment's static trials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MixingLaw {
    pub fitter: String,
    /// The column of A pinned to 0 (A is identifiable only up to a constant per row).
    pub pinned_column: String,
    /// Static trials the law was fitted on.
    pub points: usize,
    pub groups: Vec<GroupLaw>,
    /// The mixture the law predicts is best (lowest mean test perplexity).
    pub optimum: BTreeMap<String, f64>,
    /// The law's mean test perplexity at `optimum`.
    pub predicted_avg_test_ppl: f64,
}

/// One static trial: its mixture and each group's test loss, both in `groups` order.
#[derive(Debug, Clone)]
pub struct Point {
    pub p: Vec<f64>,
    pub loss: Vec<f64>,
}

/// How many different mixtures `points` has (seeds of one mixture are one mixture).
pub fn distinct_mixtures(points: &[Point]) -> usize {
    let mut seen: Vec<&[f64]> = Vec::new();
    for pt in points {
        if !seen
            .iter()
            .any(|q| q.iter().zip(&pt.p).all(|(a, b)| (a - b).abs() < 1e-9))
        {
            seen.push(&pt.p);
        }
    }
    seen.len()
}

/// Fits the law on `points` over `groups` (at least two); `None` when there are fewer than
/// m + 2 different mixtures (m + 1 parameters per group, with one to spare: seeds of one mixture
/// do not tell A's entries apart) or the fit is degenerate.
pub fn fit(groups: &[String], points: &[Point]) -> Option<MixingLaw> {
    let m = groups.len();
    if m < 2 || distinct_mixtures(points) < m + 2 {
        return None;
    }
    let laws: Vec<GroupLaw> = (0..m)
        .map(|i| {
            let ys: Vec<f64> = points.iter().map(|pt| pt.loss[i]).collect();
            let (row, c, b, sse) = fit_row(points, &ys, m);
            let mean = ys.iter().sum::<f64>() / ys.len() as f64;
            let sst: f64 = ys.iter().map(|y| (y - mean).powi(2)).sum();
            GroupLaw {
                group: groups[i].clone(),
                c,
                b,
                a: groups.iter().cloned().zip(row).collect(),
                r2: if sst > 0.0 { 1.0 - sse / sst } else { 1.0 },
            }
        })
        .collect();
    // A degenerate fit (every start overflowed) is no law.
    if laws
        .iter()
        .any(|l| !(l.c.is_finite() && l.b.is_finite() && l.r2.is_finite()))
    {
        return None;
    }
    let predict = |p: &[f64]| -> f64 {
        laws.iter()
            .map(|l| {
                let s: f64 = groups.iter().zip(p).map(|(g, pj)| l.a[g] * pj).sum();
                (l.c + l.b * (-s).exp()).exp()
            })
            .sum::<f64>()
            / m as f64
    };
    let (lo, hi): (Vec<f64>, Vec<f64>) = (0..m)
        .map(|j| {
            let w = points.iter().map(|pt| pt.p[j]);
            (
                w.clone().fold(f64::INFINITY, f64::min) - 1e-9,
                w.fold(f64::NEG_INFINITY, f64::max) + 1e-9,
            )
        })
        .unzip();
    let mut k = 1u64;
    while simplex_count(m, k * 2) <= OPTIMUM_GRID && k < 1 << 20 {
        k *= 2;
    }
    // The fitted mixtures are candidates too, so a range that no grid point falls in (a weight
    // held at 0.3, say) still has one.
    let grid = simplex_points(groups, k).into_iter().map(|v| {
        groups
            .iter()
            .map(|g| v[g].as_f64().unwrap_or(0.0))
            .collect::<Vec<f64>>()
    });
    let (best, ppl) = grid
        .chain(points.iter().map(|pt| pt.p.clone()))
        .map(|p| {
            let y = predict(&p);
            (p, y)
        })
        .filter(|(p, y)| y.is_finite() && (0..m).all(|j| (lo[j]..=hi[j]).contains(&p[j])))
        .min_by(|a, b| a.1.total_cmp(&b.1))?;
    Some(MixingLaw {
        fitter: FITTER.into(),
        pinned_column: groups[m - 1].clone(),
        points: points.len(),
        groups: laws,
        optimum: groups.iter().cloned().zip(best).collect(),
        predicted_avg_test_ppl: ppl,
    })
}

/// Least squares of y ≈ c + b·e over the points, and its residual sum of squares.
fn linear_cb(e: &[f64], ys: &[f64]) -> (f64, f64, f64) {
    let n = e.len() as f64;
    let (se, sy) = (e.iter().sum::<f64>(), ys.iter().sum::<f64>());
    let see: f64 = e.iter().map(|x| x * x).sum();
    let sey: f64 = e.iter().zip(ys).map(|(x, y)| x * y).sum();
    let det = n * see - se * se;
    let (c, b) = if det.abs() <= 1e-12 * (n * see).max(1e-300) {
        // e is constant over the points: the law is a constant.
        (sy / n, 0.0)
    } else {
        ((see * sy - se * sey) / det, (n * sey - se * sy) / det)
    };
    let sse = e.iter().zip(ys).map(|(x, y)| (y - c - b * x).powi(2)).sum();
    (c, b, sse)
}

/// A row's best fit: (A row with its last entry pinned to 0, c, b, residual sum of squares).
fn fit_row(points: &[Point], ys: &[f64], m: usize) -> (Vec<f64>, f64, f64, f64) {
    let sse_of = |free: &[f64]| -> f64 {
        let e: Vec<f64> = points
            .iter()
            .map(|pt| (-(0..m - 1).map(|j| free[j] * pt.p[j]).sum::<f64>()).exp())
            .collect();
        // A non-finite SSE (an overflowing e, or inf − inf in the normal equations) must rank
        // last: total_cmp would put a negative NaN first.
        let sse = linear_cb(&e, ys).2;
        if sse.is_finite() {
            sse
        } else {
            f64::INFINITY
        }
    };
    let mut starts: Vec<Vec<f64>> = vec![vec![0.0; m - 1]];
    for s in [1.0, 4.0, 16.0] {
        for sign in [1.0, -1.0] {
            starts.push(vec![sign * s; m - 1]);
            for j in 0..m - 1 {
                let mut v = vec![0.0; m - 1];
                v[j] = sign * s;
                starts.push(v);
            }
        }
    }
    let best = starts
        .into_iter()
        .map(|x0| nelder_mead(&sse_of, x0))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .expect("at least one start");
    let free = best.0;
    let e: Vec<f64> = points
        .iter()
        .map(|pt| (-(0..m - 1).map(|j| free[j] * pt.p[j]).sum::<f64>()).exp())
        .collect();
    let (c, b, sse) = linear_cb(&e, ys);
    let mut row = free;
    row.push(0.0);
    (row, c, b, sse)
}

/// Minimises `f` from `x0` (standard coefficients: reflection 1, expansion 2, contraction ½,
/// shrink ½; initial simplex steps of 0.5 per coordinate).
fn nelder_mead(f: &dyn Fn(&[f64]) -> f64, x0: Vec<f64>) -> (Vec<f64>, f64) {
    let n = x0.len();
    let mut simplex: Vec<(Vec<f64>, f64)> = Vec::with_capacity(n + 1);
    simplex.push((x0.clone(), f(&x0)));
    for i in 0..n {
        let mut x = x0.clone();
        x[i] += 0.5;
        let y = f(&x);
        simplex.push((x, y));
    }
    let lerp = |a: &[f64], b: &[f64], t: f64| -> Vec<f64> {
        a.iter().zip(b).map(|(x, y)| x + t * (y - x)).collect()
    };
    for _ in 0..2000 * n.max(1) {
        simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
        let (lo, hi) = (simplex[0].1, simplex[n].1);
        if (hi - lo).abs() <= 1e-12 * (1.0 + lo.abs()) {
            break;
        }
        let centroid: Vec<f64> = (0..n)
            .map(|j| simplex[..n].iter().map(|(x, _)| x[j]).sum::<f64>() / n as f64)
            .collect();
        let worst = simplex[n].0.clone();
        let reflected = lerp(&centroid, &worst, -1.0);
        let fr = f(&reflected);
        if fr < simplex[0].1 {
            let expanded = lerp(&centroid, &worst, -2.0);
            let fe = f(&expanded);
            simplex[n] = if fe < fr {
                (expanded, fe)
            } else {
                (reflected, fr)
            };
        } else if fr < simplex[n - 1].1 {
            simplex[n] = (reflected, fr);
        } else {
            let contracted = if fr < simplex[n].1 {
                lerp(&centroid, &reflected, 0.5)
            } else {
                lerp(&centroid, &worst, 0.5)
            };
            let fc = f(&contracted);
            if fc < fr.min(simplex[n].1) {
                simplex[n] = (contracted, fc);
            } else {
                let best = simplex[0].0.clone();
                for s in simplex.iter_mut().skip(1) {
                    s.0 = lerp(&best, &s.0, 0.5);
                    s.1 = f(&s.0);
                }
            }
        }
    }
    simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
    simplex.swap_remove(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups() -> Vec<String> {
        ["easy", "hard", "shared"].map(String::from).to_vec()
    }

    /// Points on the step-1/4 simplex from a known law.
    fn synthetic(a: [[f64; 3]; 3], c: [f64; 3], b: [f64; 3], noise: f64) -> Vec<Point> {
        simplex_points(&groups(), 4)
            .into_iter()
            .enumerate()
            .map(|(k, v)| {
                let p: Vec<f64> = groups().iter().map(|g| v[g].as_f64().unwrap()).collect();
                let loss = (0..3)
                    .map(|i| {
                        let s: f64 = (0..3).map(|j| a[i][j] * p[j]).sum();
                        // A fixed ± pattern, not random: the test is exact every time.
                        let wiggle = if (k + i) % 2 == 0 { noise } else { -noise };
                        c[i] + b[i] * (-s).exp() + wiggle
                    })
                    .collect();
                Point { p, loss }
            })
            .collect()
    }

    #[test]
    fn a_known_law_is_recovered_up_to_its_row_constant() {
        let a = [[3.0, 0.5, 0.2], [0.1, 2.0, 1.2], [0.0, 1.0, 2.5]];
        let (c, b) = ([0.4, 1.0, 0.8], [2.0, 3.0, 2.5]);
        let law = fit(&groups(), &synthetic(a, c, b, 0.0)).unwrap();
        assert_eq!(law.pinned_column, "shared");
        assert_eq!(law.points, 15);
        for (i, g) in law.groups.iter().enumerate() {
            assert!(g.r2 > 0.999_999, "{g:?}");
            assert!((g.c - c[i]).abs() < 1e-3, "{g:?}");
            // Pinning the last column shifts the row by −A_i,last and scales b by exp(−A_i,last).
            for (j, col) in groups().iter().enumerate() {
                assert!((g.a[col] - (a[i][j] - a[i][2])).abs() < 1e-3, "{g:?}");
            }
            assert!((g.b - b[i] * (-a[i][2]).exp()).abs() < 1e-3, "{g:?}");
        }
        // The optimum beats every grid point's predicted value and sits inside the simplex.
        let s: f64 = law.optimum.values().sum();
        assert!((s - 1.0).abs() < 1e-9);
        let pts = synthetic(a, c, b, 0.0);
        let grid_best = pts
            .iter()
            .map(|pt| pt.loss.iter().map(|l| l.exp()).sum::<f64>() / 3.0)
            .fold(f64::INFINITY, f64::min);
        assert!(law.predicted_avg_test_ppl <= grid_best + 1e-9);
    }

    #[test]
    fn noise_lowers_r2_and_too_few_points_fit_nothing() {
        let a = [[3.0, 0.5, 0.2], [0.1, 2.0, 1.2], [0.0, 1.0, 2.5]];
        let law = fit(
            &groups(),
            &synthetic(a, [0.4, 1.0, 0.8], [2.0, 3.0, 2.5], 0.3),
        )
        .unwrap();
        assert!(law.groups.iter().all(|g| g.r2 < 0.99), "{law:?}");
        let few = &synthetic(a, [0.4, 1.0, 0.8], [2.0, 3.0, 2.5], 0.0)[..4];
        assert!(fit(&groups(), few).is_none());
        // Five points but two mixtures (seeds of one mixture count once): no law.
        let two: Vec<Point> = few[..2].iter().cycle().take(5).cloned().collect();
        assert_eq!(distinct_mixtures(&two), 2);
        assert!(fit(&groups(), &two).is_none());
    }

    #[test]
    fn least_squares_by_hand() {
        // y = 1 + 2e exactly.
        let (c, b, sse) = linear_cb(&[0.0, 1.0, 2.0], &[1.0, 3.0, 5.0]);
        assert!((c - 1.0).abs() < 1e-12 && (b - 2.0).abs() < 1e-12 && sse < 1e-20);
        // A constant e: the mean.
        let (c, b, _) = linear_cb(&[1.0, 1.0], &[1.0, 3.0]);
        assert_eq!((c, b), (2.0, 0.0));
    }
}
