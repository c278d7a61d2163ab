//! Per-group RMS of parameters, gradients and updates (Wortsman et al. §3.4: gradient RMS shrinks
//! with scale, and AdamW's updates collapse as it nears ε).

use std::collections::BTreeMap;

use orrery_core::workloads::stability as s;

use crate::train::reporter::Reporter;
use crate::train::Update;

/// The group a parameter's RMS is reported under: `L{i}` for block i, `emb` for the token and
/// position embeddings, `head` for the final LayerNorm and the output projection.
pub fn group(name: &str) -> String {
    match name.strip_prefix("blocks.") {
        Some(rest) => format!("L{}", rest.split('.').next().unwrap_or("?")),
        None if name.ends_with("_emb") => "emb".into(),
        None => "head".into(),
    }
}

/// Per group RMS of parameters, raw gradients (before clipping) and the step's update; and the
/// global gradient RMS over AdamW's ε.
pub fn log(rep: &Reporter, u: &Update<'_>) {
    let mut groups: BTreeMap<String, [f64; 4]> = BTreeMap::new();
    for (i, p) in u.opt.params.iter().enumerate() {
        let g = groups.entry(group(&p.name)).or_default();
        g[0] += u.param_sumsq.get(i).copied().unwrap_or(0.0);
        g[1] += u.grad_sumsq.get(i).copied().unwrap_or(0.0);
        g[2] += u.update_sumsq.get(i).copied().unwrap_or(0.0);
        g[3] += p.tensor.numel() as f64;
    }
    let (mut all_sq, mut all_n) = (0.0, 0.0);
    for (group, [param, grad, update, n]) in &groups {
        rep.log(&s::rms("param", group), u.step, (param / n).sqrt());
        rep.log(&s::rms("grad", group), u.step, (grad / n).sqrt());
        rep.log(&s::rms("update", group), u.step, (update / n).sqrt());
        all_sq += grad;
        all_n += n;
    }
    rep.log(
        s::GRAD_RMS_OVER_EPS,
        u.step,
        (all_sq / all_n).sqrt() / u.opt.eps,
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn groups() {
        assert_eq!(super::group("blocks.3.wqkv"), "L3");
        assert_eq!(super::group("tok_emb"), "emb");
        assert_eq!(super::group("pos_emb"), "emb");
        assert_eq!(super::group("ln_f"), "head");
        assert_eq!(super::group("head"), "head");
    }
}
