//! Aioli's estimate of the interaction matrix and its mixture update (arXiv 2411.05735, Alg. 1; the
//! reference is HazyResearch/aioli `trainer/aioli_trainer.py`), as plain functions of host numbers:
//! `m` groups, matrices row-major `m × m`, row i = the group whose loss moved, column j = the
//! group trained on.

/// The mixture of a LearnParams segment that probes group `j`: `one_hot_factor` on `j`, the rest
/// shared equally by the other groups.
pub fn segment_mixture(m: usize, j: usize, one_hot_factor: f64) -> Vec<f64> {
    let rest = if m > 1 {
        (1.0 - one_hot_factor) / (m - 1) as f64
    } else {
        0.0
    };
    (0..m)
        .map(|i| if i == j { one_hot_factor } else { rest })
        .collect()
}

/// De-mixes Â: a segment trained on the mixture w⁽ʲ⁾, not on group j alone, so each row of Â is
/// W·aᵢ with W's rows the segment mixtures; this solves W aᵢ = Âᵢ. W = α·I + c·11ᵀ with
/// c = (1 − f)/(m − 1) and α = f − c, and α + c·m = 1, so W⁻¹ = (I − c·11ᵀ)/α: aᵢ = (Âᵢ − c·ΣÂᵢ)/α.
/// (f = 1 is the identity.) `None` when W is singular (f = 1/m: every segment the same mixture).
pub fn demix(a_hat: &[f64], m: usize, one_hot_factor: f64) -> Option<Vec<f64>> {
    let c = if m > 1 {
        (1.0 - one_hot_factor) / (m - 1) as f64
    } else {
        0.0
    };
    let alpha = one_hot_factor - c;
    if alpha.abs() < 1e-12 {
        return None;
    }
    let mut a = vec![0.0; m * m];
    for i in 0..m {
        let row = &a_hat[i * m..(i + 1) * m];
        let sum: f64 = row.iter().sum();
        for j in 0..m {
            a[i * m + j] = (row[j] - c * sum) / alpha;
        }
    }
    Some(a)
}

/// The diagonal variant: Aᵢᵢ = Âᵢᵢ / f, every other entry 0.
pub fn diagonal(a_hat: &[f64], m: usize, one_hot_factor: f64) -> Vec<f64> {
    let mut a = vec![0.0; m * m];
    for i in 0..m {
        a[i * m + i] = a_hat[i * m + i] / one_hot_factor;
    }
    a
}

/// `normalize_a`: shifts A by its smallest entry when that is negative, then scales it to sum to
/// 1, which decouples η from the scale of the losses. An all-zero A (nothing moved) stays zero.
pub fn normalize(a: &mut [f64]) {
    let min = a.iter().copied().fold(f64::INFINITY, f64::min);
    if min < 0.0 {
        a.iter_mut().for_each(|x| *x -= min);
    }
    let sum: f64 = a.iter().sum();
    if sum > 0.0 {
        a.iter_mut().for_each(|x| *x /= sum);
    }
}

/// The exponentiated-gradient step p_j ← p_j · exp(η Σᵢ Aᵢⱼ), renormalised to a mixture (the
/// reference keeps the weights unnormalised and normalises when it samples: the same mixture).
/// Computed in log space, shifted by the largest exponent, so no η overflows `exp`; a group of
/// weight 0 keeps weight 0.
pub fn eg_update(p: &[f64], a: &[f64], eta: f64) -> Vec<f64> {
    let m = p.len();
    let logs: Vec<f64> = (0..m)
        .map(|j| {
            let col: f64 = (0..m).map(|i| a[i * m + j]).sum();
            p[j].ln() + eta * col
        })
        .collect();
    let top = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = logs.iter().map(|l| (l - top).exp()).collect();
    let total: f64 = w.iter().sum();
    w.into_iter().map(|x| x / total).collect()
}

/// The EMA path: Ā ← (1 − ema)·A + ema·Ā (Ā = A in the first round), and the mixture recomputed
/// from uniform each round, p = uniform ⊙ exp(η Σᵢ Āᵢⱼ) — not cumulative, unlike [`eg_update`].
pub fn ema_update(a: &[f64], a_bar: Option<&[f64]>, ema: f64, eta: f64) -> (Vec<f64>, Vec<f64>) {
    let m = (a.len() as f64).sqrt().round() as usize;
    let smoothed: Vec<f64> = match a_bar {
        None => a.to_vec(),
        Some(prev) => a
            .iter()
            .zip(prev)
            .map(|(x, y)| (1.0 - ema) * x + ema * y)
            .collect(),
    };
    let uniform = vec![1.0 / m as f64; m];
    (eg_update(&uniform, &smoothed, eta), smoothed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12)
    }

    #[test]
    fn segment_mixtures() {
        assert!(close(
            &segment_mixture(3, 1, 0.625),
            &[0.1875, 0.625, 0.1875]
        ));
        assert!(close(&segment_mixture(2, 0, 1.0), &[1.0, 0.0]));
    }

    #[test]
    fn demix_inverts_the_segment_mixtures() {
        // m = 2, f = 0.75: W = [[0.75, 0.25], [0.25, 0.75]]. A = [[1, 2], [3, 4]] gives
        // Â = A·Wᵀ: row 0 = [1·0.75 + 2·0.25, 1·0.25 + 2·0.75] = [1.25, 1.75];
        // row 1 = [3·0.75 + 4·0.25, 3·0.25 + 4·0.75] = [3.25, 3.75].
        let a_hat = [1.25, 1.75, 3.25, 3.75];
        assert!(close(
            &demix(&a_hat, 2, 0.75).unwrap(),
            &[1.0, 2.0, 3.0, 4.0]
        ));
        // f = 1: nothing to undo.
        assert!(close(&demix(&a_hat, 2, 1.0).unwrap(), &a_hat));
        // f = 1/m: every segment is the uniform mixture; columns cannot be told apart.
        assert!(demix(&a_hat, 2, 0.5).is_none());
    }

    #[test]
    fn diagonal_keeps_the_scaled_diagonal() {
        assert!(close(
            &diagonal(&[1.0, 2.0, 3.0, 4.0], 2, 0.5),
            &[2.0, 0.0, 0.0, 8.0]
        ));
    }

    #[test]
    fn normalisation_shifts_then_scales() {
        // min −1: shifted to [0, 3, 1, 2] (sum 6), then [0, 1/2, 1/6, 1/3].
        let mut a = vec![-1.0, 2.0, 0.0, 1.0];
        normalize(&mut a);
        assert!(close(&a, &[0.0, 0.5, 1.0 / 6.0, 1.0 / 3.0]));
        // Non-negative: only scaled.
        let mut b = vec![1.0, 1.0, 2.0, 0.0];
        normalize(&mut b);
        assert!(close(&b, &[0.25, 0.25, 0.5, 0.0]));
        let mut z = vec![0.0; 4];
        normalize(&mut z);
        assert!(close(&z, &[0.0; 4]));
    }

    #[test]
    fn exponentiated_gradient_by_hand() {
        // Column sums of A = [[0.1, 0.3], [0.2, 0.4]]: 0.3 and 0.7. With η = 1 from uniform:
        // p ∝ [e^0.3, e^0.7] → p₀ = 1 / (1 + e^0.4).
        let p = eg_update(&[0.5, 0.5], &[0.1, 0.3, 0.2, 0.4], 1.0);
        let p0 = 1.0 / (1.0 + 0.4f64.exp());
        assert!(close(&p, &[p0, 1.0 - p0]));
        // Cumulative: a second identical step doubles the exponent's difference.
        let p2 = eg_update(&p, &[0.1, 0.3, 0.2, 0.4], 1.0);
        let q0 = 1.0 / (1.0 + 0.8f64.exp());
        assert!(close(&p2, &[q0, 1.0 - q0]));
        // A huge step saturates instead of overflowing: all weight on the larger column.
        let big = eg_update(&[0.5, 0.5], &[0.1, 0.3, 0.2, 0.4], 1e6);
        assert!(close(&big, &[0.0, 1.0]));
        // Weight 0 stays 0.
        assert!(close(
            &eg_update(&[0.0, 1.0], &[1.0, 0.0, 0.0, 0.0], 1.0),
            &[0.0, 1.0]
        ));
    }

    #[test]
    fn ema_recomputes_from_uniform() {
        let a1 = [0.1, 0.3, 0.2, 0.4];
        let (p1, bar1) = ema_update(&a1, None, 0.5, 1.0);
        assert!(close(&bar1, &a1));
        assert!(close(&p1, &eg_update(&[0.5, 0.5], &a1, 1.0)));
        // Second round with A = 0: Ā = 0.5·A₁, and p from uniform with half the exponents.
        let (p2, bar2) = ema_update(&[0.0; 4], Some(&bar1), 0.5, 1.0);
        assert!(close(&bar2, &[0.05, 0.15, 0.1, 0.2]));
        let q0 = 1.0 / (1.0 + 0.2f64.exp());
        assert!(close(&p2, &[q0, 1.0 - q0]));
    }
}
