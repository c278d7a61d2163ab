//! Checkpoints: parameters, Adam moments, the loop's counters and the workload's own state
//! ([`super::Workload::state`]) in one file, written to a temporary name and renamed, so a worker
//! killed mid-write leaves the previous checkpoint intact.

use std::path::{Path, PathBuf};

use tch::{Kind, Tensor};

use super::optim::AdamW;

const FILE: &str = "checkpoint.pt";

/// The loop's counters stored beside the tensors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// The next step to run.
    pub step: u64,
    pub tokens_seen: u64,
    /// ℓ₀: the evaluation loss at initialisation.
    pub initial_eval_loss: f64,
}

pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// `state`: the workload's tensors beyond the optimizer's (saved as `w/NAME`).
pub fn save(
    dir: &Path,
    opt: &AdamW,
    progress: Progress,
    state: &[(String, Tensor)],
) -> Result<(), tch::TchError> {
    std::fs::create_dir_all(dir)?;
    let mut named: Vec<(String, Tensor)> = Vec::new();
    for p in &opt.params {
        named.push((
            format!("p/{}", p.name),
            p.tensor.detach().to_device(tch::Device::Cpu),
        ));
        named.push((format!("m/{}", p.name), p.m.to_device(tch::Device::Cpu)));
        named.push((format!("v/{}", p.name), p.v.to_device(tch::Device::Cpu)));
    }
    for (name, t) in state {
        named.push((format!("w/{name}"), t.detach().to_device(tch::Device::Cpu)));
    }
    named.push((
        "meta/step".into(),
        Tensor::from_slice(&[
            progress.step as i64,
            progress.tokens_seen as i64,
            opt.t as i64,
        ]),
    ));
    named.push((
        "meta/initial_eval_loss".into(),
        Tensor::from_slice(&[progress.initial_eval_loss]),
    ));
    let tmp = dir.join(format!("{FILE}.tmp"));
    Tensor::save_multi(&named, &tmp)?;
    std::fs::rename(&tmp, path(dir))?;
    Ok(())
}

/// Loads the checkpoint in `dir` into `opt` (parameters and moments) and into the workload's
/// `state` tensors (copied in place); `None` when there is none.
pub fn load(
    dir: &Path,
    opt: &mut AdamW,
    state: &[(String, Tensor)],
) -> Result<Option<Progress>, tch::TchError> {
    let file = path(dir);
    if !file.exists() {
        return Ok(None);
    }
    let tensors: std::collections::HashMap<String, Tensor> =
        Tensor::load_multi(&file)?.into_iter().collect();
    let get = |k: &str| {
        tensors.get(k).ok_or_else(|| {
            tch::TchError::FileFormat(format!("checkpoint {} lacks {k}", file.display()))
        })
    };
    tch::no_grad(|| -> Result<(), tch::TchError> {
        for p in &mut opt.params {
            p.tensor.f_copy_(get(&format!("p/{}", p.name))?)?;
            p.m.f_copy_(get(&format!("m/{}", p.name))?)?;
            p.v.f_copy_(get(&format!("v/{}", p.name))?)?;
        }
        for (name, t) in state {
            t.shallow_clone().f_copy_(get(&format!("w/{name}"))?)?;
        }
        Ok(())
    })?;
    let counters = get("meta/step")?.to_kind(Kind::Int64);
    opt.t = counters.int64_value(&[2]) as u64;
    Ok(Some(Progress {
        step: counters.int64_value(&[0]) as u64,
        tokens_seen: counters.int64_value(&[1]) as u64,
        initial_eval_loss: get("meta/initial_eval_loss")?.double_value(&[0]),
    }))
}
