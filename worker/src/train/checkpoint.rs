//! Checkpoints: parameters, Adam moments, the loop's counters and the workload's own state
//! ([`super::Workload::state`]) in one file, written to a temporary name and renamed, so a worker
//! killed mid-write leaves the previous checkpoint intact. The training loop writes them on a
//! background thread ([`Writer`]), which then uploads them to the API ([`Remote`]).

use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};

use super::optim::AdamW;
use super::remote::Remote;

const FILE: &str = "checkpoint.pt";
/// The final weights, parameters only (`p/<name>`, as in a checkpoint).
const MODEL_FILE: &str = "model.pt";

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

/// Host copies of everything a checkpoint holds. `state`: the workload's tensors beyond the
/// optimizer's (saved as `w/NAME`). Copies even on the CPU, since training goes on updating the
/// originals in place while a [`Writer`] writes these.
fn snapshot(opt: &AdamW, progress: Progress, state: &[(String, Tensor)]) -> Vec<(String, Tensor)> {
    let host = |t: &Tensor| {
        let t = t.detach();
        if t.device() == Device::Cpu {
            t.copy()
        } else {
            t.to_device(Device::Cpu)
        }
    };
    let mut named: Vec<(String, Tensor)> = Vec::new();
    for p in &opt.params {
        named.push((format!("p/{}", p.name), host(&p.tensor)));
        named.push((format!("m/{}", p.name), host(&p.m)));
        named.push((format!("v/{}", p.name), host(&p.v)));
    }
    for (name, t) in state {
        named.push((format!("w/{name}"), host(t)));
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
    named
}

fn write(dir: &Path, named: &[(String, Tensor)]) -> Result<(), tch::TchError> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{FILE}.tmp"));
    Tensor::save_multi(named, &tmp)?;
    std::fs::rename(&tmp, path(dir))?;
    Ok(())
}

/// Checkpoints written off the training thread: [`Writer::save`] takes host copies (the only
/// wait: a device-to-host copy) and writes the file on a thread of its own while training goes
/// on. One write at a time: a save first waits for the previous one, and the loop waits for the
/// last before it returns.
#[derive(Default)]
pub struct Writer {
    pending: Option<std::thread::JoinHandle<Result<(), tch::TchError>>>,
}

impl Writer {
    /// Writes the checkpoint in the background, then (with `remote`) uploads it.
    pub fn save(
        &mut self,
        dir: &Path,
        opt: &AdamW,
        progress: Progress,
        state: &[(String, Tensor)],
        remote: Option<std::sync::Arc<Remote>>,
    ) -> Result<(), tch::TchError> {
        self.wait()?;
        let named = snapshot(opt, progress, state);
        let dir = dir.to_path_buf();
        self.pending = Some(std::thread::spawn(move || {
            write(&dir, &named)?;
            if let Some(r) = remote {
                r.push_checkpoint(&path(&dir), progress.step);
            }
            Ok(())
        }));
        Ok(())
    }

    /// Waits for the write in progress, if any, and returns its result.
    pub fn wait(&mut self) -> Result<(), tch::TchError> {
        match self.pending.take() {
            Some(h) => h
                .join()
                .unwrap_or_else(|_| Err(tch::TchError::Kind("checkpoint writer panicked".into()))),
            None => Ok(()),
        }
    }
}

/// Writes the parameters alone (`p/<name>`, the final model) into `dir`; returns the file.
pub fn save_weights(dir: &Path, opt: &AdamW) -> Result<PathBuf, tch::TchError> {
    let named: Vec<(String, Tensor)> = opt
        .params
        .iter()
        .map(|p| {
            (
                format!("p/{}", p.name),
                p.tensor.detach().to_device(Device::Cpu),
            )
        })
        .collect();
    std::fs::create_dir_all(dir)?;
    let file = dir.join(MODEL_FILE);
    let tmp = dir.join(format!("{MODEL_FILE}.tmp"));
    Tensor::save_multi(&named, &tmp)?;
    std::fs::rename(&tmp, &file)?;
    Ok(file)
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

/// Copies the weights of another trial's final model (`file`, written by [`save_weights`]) into
/// `opt`'s parameters, leaving the moments and the step count fresh (`model.init_from`: the
/// optimizer and the schedule start over). Every parameter must be there with its shape, and
/// nothing else: weights of another architecture are refused, not half loaded.
pub fn load_weights(file: &Path, opt: &mut AdamW) -> Result<(), String> {
    let tensors: std::collections::HashMap<String, Tensor> = Tensor::load_multi(file)
        .map_err(|e| format!("cannot read the source weights {}: {e}", file.display()))?
        .into_iter()
        .collect();
    let mut problems = Vec::new();
    for p in &opt.params {
        match tensors.get(&format!("p/{}", p.name)) {
            None => problems.push(format!("{} is missing", p.name)),
            Some(t) if t.size() != p.tensor.size() => problems.push(format!(
                "{} has shape {:?}, this model's {:?}",
                p.name,
                t.size(),
                p.tensor.size()
            )),
            Some(_) => {}
        }
    }
    let mine: std::collections::HashSet<String> =
        opt.params.iter().map(|p| format!("p/{}", p.name)).collect();
    let mut extra: Vec<&String> = tensors.keys().filter(|k| !mine.contains(*k)).collect();
    extra.sort();
    if !extra.is_empty() {
        problems.push(format!(
            "the source has parameters this model lacks: {}",
            extra
                .iter()
                .map(|k| k.trim_start_matches("p/"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !problems.is_empty() {
        return Err(format!(
            "the source weights do not fit this model: {}",
            problems.join("; ")
        ));
    }
    tch::no_grad(|| {
        for p in &mut opt.params {
            let src = &tensors[&format!("p/{}", p.name)];
            p.tensor
                .f_copy_(src)
                .map_err(|e| format!("cannot copy {}: {e}", p.name))?;
        }
        Ok(())
    })
}
