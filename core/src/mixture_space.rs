//! Search dimensions over a mixture field (`params.proportions`): the points of a simplex grid and
//! draws from a Dirichlet distribution. No peer sweeps a mixture as one dimension (Katib and W&B
//! sweep independent scalars, which do not stay on the simplex), so the forms are Orrery's own:
//!
//! ```yaml
//! params.proportions: {simplex: {step: 0.25}}   # grid: every mixture whose weights are multiples of 0.25
//! params.proportions: {simplex: {step: 0.125, min: 0.125}}  # ... and each at least 0.125
//! params.proportions: {dirichlet: {alpha: 1.0}} # random: p ~ Dirichlet(alpha, ..., alpha)
//! ```
//!
//! The groups are the data's ([`crate::spec::group_names`]), in their order.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma};
use serde_json::{json, Map, Value};

/// Decimal places a Dirichlet draw keeps (a mixture finer than 1e-4 is not a different mixture).
const DRAW_DECIMALS: i32 = 4;

/// How many parts a simplex step cuts the unit into (`1 / step`), when that is a whole number.
pub fn simplex_divisions(step: f64) -> Option<u64> {
    if step.is_nan() || step <= 0.0 || step > 1.0 {
        return None;
    }
    let k = (1.0 / step).round();
    ((k * step - 1.0).abs() < 1e-9).then_some(k as u64)
}

/// The number of points of the simplex grid with `k` divisions over `groups` groups:
/// C(k + groups − 1, groups − 1), saturating at `u128::MAX`.
pub fn simplex_count(groups: usize, k: u64) -> u128 {
    let (n, r) = (k as u128 + groups as u128 - 1, groups as u128 - 1);
    let mut c: u128 = 1;
    for i in 0..r {
        // c · (n − i) / (i + 1) stays whole at every step (it is C(n, i + 1)).
        c = match c.checked_mul(n - i) {
            Some(x) => x / (i + 1),
            None => return u128::MAX,
        };
    }
    c
}

/// How many steps of `1/k` a simplex's `min` weight is, when it is a whole number of them.
pub fn simplex_floor(min: f64, k: u64) -> Option<u64> {
    if min.is_nan() || min < 0.0 {
        return None;
    }
    let j = (min * k as f64).round();
    ((j / k as f64 - min).abs() < 1e-9).then_some(j as u64)
}

/// The number of points of the simplex grid with `k` divisions over `groups` groups whose every
/// weight is at least `floor/k`: the grid of `k − groups·floor` divisions, shifted (0 when the
/// floors alone exceed 1).
pub fn simplex_count_from(groups: usize, k: u64, floor: u64) -> u128 {
    match k.checked_sub(floor.saturating_mul(groups as u64)) {
        Some(free) => simplex_count(groups, free),
        None => 0,
    }
}

/// Every mixture over `groups` whose weights are multiples of `1/k`, in lexicographic order of
/// the weights (the first group's weight varies slowest).
pub fn simplex_points(groups: &[String], k: u64) -> Vec<Value> {
    simplex_points_from(groups, k, 0)
}

/// [`simplex_points`] whose every weight is at least `floor/k` (a mixture that never trains on a
/// group tells a mixing law nothing of that group's returns).
pub fn simplex_points_from(groups: &[String], k: u64, floor: u64) -> Vec<Value> {
    let mut out = Vec::new();
    let Some(free) = k.checked_sub(floor.saturating_mul(groups.len() as u64)) else {
        return out;
    };
    let mut parts = vec![0u64; groups.len()];
    fill(groups, (k, floor), 0, free, &mut parts, &mut out);
    out
}

fn fill(
    groups: &[String],
    (k, floor): (u64, u64),
    i: usize,
    left: u64,
    parts: &mut [u64],
    out: &mut Vec<Value>,
) {
    if i + 1 == parts.len() {
        parts[i] = left;
        let m: Map<String, Value> = groups
            .iter()
            .zip(parts.iter())
            .map(|(g, &c)| (g.clone(), json!(tidy_fraction(c + floor, k))))
            .collect();
        out.push(Value::Object(m));
        return;
    }
    for c in 0..=left {
        parts[i] = c;
        fill(groups, (k, floor), i + 1, left - c, parts, out);
    }
}

/// `c / k` as the nearest short decimal: 1/3 → 0.333333333333, not 0.3333333333333333.
fn tidy_fraction(c: u64, k: u64) -> f64 {
    let x = c as f64 / k as f64;
    format!("{x:.12}").parse().unwrap_or(x)
}

/// One draw of p ~ Dirichlet(alpha, …, alpha) over `groups` (normalised Gamma(alpha, 1) draws),
/// rounded to [`DRAW_DECIMALS`] places with the largest weight taking the rounding so the weights
/// sum to 1.
pub fn dirichlet(groups: &[String], alpha: f64, rng: &mut ChaCha8Rng) -> Value {
    let gamma = Gamma::new(alpha, 1.0).expect("alpha > 0 is validated");
    let mut x: Vec<f64> = groups.iter().map(|_| gamma.sample(rng)).collect();
    let sum: f64 = x.iter().sum();
    if sum.is_nan() || sum <= 0.0 {
        // Every draw underflowed (a tiny alpha): the mass sits on one group.
        let i = rng.gen_range(0..x.len());
        x = (0..x.len()).map(|j| f64::from(u8::from(j == i))).collect();
    } else {
        x.iter_mut().for_each(|v| *v /= sum);
    }
    let scale = 10f64.powi(DRAW_DECIMALS);
    let mut w: Vec<f64> = x.iter().map(|v| (v * scale).round() / scale).collect();
    let largest = (0..w.len())
        .max_by(|&a, &b| x[a].total_cmp(&x[b]))
        .unwrap_or(0);
    let rest: f64 = w
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != largest)
        .map(|(_, v)| v)
        .sum();
    w[largest] = ((1.0 - rest) * scale).round() / scale;
    Value::Object(
        groups
            .iter()
            .zip(w)
            .map(|(g, v)| (g.clone(), json!(v)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn names(n: usize) -> Vec<String> {
        ["easy", "hard", "shared", "d"][..n]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn divisions_need_a_whole_number_of_steps() {
        assert_eq!(simplex_divisions(0.25), Some(4));
        assert_eq!(simplex_divisions(1.0 / 3.0), Some(3));
        assert_eq!(simplex_divisions(0.333333333333), Some(3));
        assert_eq!(simplex_divisions(1.0), Some(1));
        assert_eq!(simplex_divisions(0.3), None);
        assert_eq!(simplex_divisions(0.0), None);
        assert_eq!(simplex_divisions(1.5), None);
    }

    #[test]
    fn the_grid_by_hand() {
        // Step 1/2 over 3 groups: (0,0,1) (0,½,½) (0,1,0) (½,0,½) (½,½,0) (1,0,0).
        let pts = simplex_points(&names(3), 2);
        let want = [
            [0.0, 0.0, 1.0],
            [0.0, 0.5, 0.5],
            [0.0, 1.0, 0.0],
            [0.5, 0.0, 0.5],
            [0.5, 0.5, 0.0],
            [1.0, 0.0, 0.0],
        ];
        assert_eq!(pts.len(), want.len());
        for (p, w) in pts.iter().zip(want) {
            assert_eq!(p, &json!({"easy": w[0], "hard": w[1], "shared": w[2]}));
        }
        // The issue's counts: 15 mixtures for 3 groups at step 1/4, 10 at step 1/3.
        assert_eq!(simplex_points(&names(3), 4).len(), 15);
        assert_eq!(simplex_count(3, 4), 15);
        assert_eq!(simplex_points(&names(3), 3).len(), 10);
        assert_eq!(simplex_count(3, 3), 10);
        assert_eq!(simplex_count(4, 3), 20);
        assert_eq!(simplex_count(2, 1), 2);
        assert_eq!(simplex_count(40, 1_000_000), u128::MAX);
        // Each weight ≥ 1/8 of 3 groups: 5/8 left to share in eighths, C(7, 2) = 21 mixtures.
        assert_eq!(simplex_floor(0.125, 8), Some(1));
        assert_eq!(simplex_floor(0.1, 8), None);
        assert_eq!(simplex_floor(0.0, 8), Some(0));
        assert_eq!(simplex_count_from(3, 8, 1), 21);
        let floored = simplex_points_from(&names(3), 8, 1);
        assert_eq!(floored.len(), 21);
        assert_eq!(
            floored[0],
            json!({"easy": 0.125, "hard": 0.125, "shared": 0.75})
        );
        assert!(floored.iter().all(|p| p
            .as_object()
            .unwrap()
            .values()
            .all(|w| w.as_f64().unwrap() >= 0.125)));
        assert_eq!(simplex_count_from(3, 2, 1), 0);
        assert!(simplex_points_from(&names(3), 2, 1).is_empty());
        let third = &simplex_points(&names(3), 3)[1];
        assert_eq!(third["hard"], json!(0.333333333333));
        for p in simplex_points(&names(4), 3) {
            let s: f64 = p
                .as_object()
                .unwrap()
                .values()
                .filter_map(Value::as_f64)
                .sum();
            assert!((s - 1.0).abs() < 1e-9, "{p}");
        }
    }

    #[test]
    fn dirichlet_draws_are_mixtures_and_alpha_matters() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let g = names(3);
        let spread = |alpha: f64, rng: &mut ChaCha8Rng| {
            let mut dev = 0.0;
            for _ in 0..400 {
                let p = dirichlet(&g, alpha, rng);
                let w: Vec<f64> = p
                    .as_object()
                    .unwrap()
                    .values()
                    .filter_map(Value::as_f64)
                    .collect();
                let s: f64 = w.iter().sum();
                assert!((s - 1.0).abs() < 1e-9 && w.iter().all(|v| *v >= 0.0), "{p}");
                dev += w.iter().map(|v| (v - 1.0 / 3.0).abs()).sum::<f64>();
            }
            dev / 400.0
        };
        // Mean absolute deviation from uniform: large for alpha 0.1 (near the vertices), small for
        // alpha 100 (near the centre).
        let (sparse, flat) = (spread(0.1, &mut rng), spread(100.0, &mut rng));
        assert!(sparse > 0.8 && flat < 0.1, "{sparse} {flat}");
    }
}
