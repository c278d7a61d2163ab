//! Evaluation of a language model: the mean cross-entropy on fixed validation batches of each data
//! group, and their mean over groups (`eval/loss`, `eval/loss/<group>`).

use tch::{Device, Kind, Tensor};

use orrery_core::metrics as m;
use orrery_core::spec::TrialConfig;

use super::read_back;
use super::reporter::Reporter;
use crate::data::{self, Batch, Group, Split};
use crate::model::{loss, Gpt};

/// One evaluation: the mean over groups and each group's loss.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub mean: f64,
    pub per_group: Vec<(String, f64)>,
    /// Metrics a workload adds to each evaluation (e.g. `eval/avg_ppl`), logged beside the losses.
    pub extra: Vec<(String, f64)>,
}

/// The fixed batches of each group's `split` that every evaluation of a trial uses: the trial's
/// `training.eval_batches` batches of `training.batch_size` windows of `model.seq_len`.
pub fn batches(
    groups: &[Group],
    split: Split,
    cfg: &TrialConfig,
    device: Device,
) -> Vec<(String, Vec<Batch>)> {
    let t = &cfg.training;
    let (count, batch_size) = (t.eval_batches as usize, t.batch_size as usize);
    let seq_len = cfg.model.seq_len as usize;
    groups
        .iter()
        .map(|g| {
            let b = data::eval_batches(g, split, count, batch_size, seq_len, device);
            (g.name.clone(), b)
        })
        .collect()
}

/// The model's mean cross-entropy on each group's batches, without gradients, summed on the device
/// and read back once.
pub fn evaluate(model: &Gpt, eval: &[(String, Vec<Batch>)]) -> Evaluation {
    tch::no_grad(|| {
        let sums: Vec<Tensor> = eval
            .iter()
            .map(|(_, batches)| {
                let ces: Vec<Tensor> = batches
                    .iter()
                    .map(|b| loss(&model.forward(&b.inputs), &b.targets, 0.0).ce)
                    .collect();
                Tensor::stack(&ces, 0).sum(Kind::Double) / batches.len() as f64
            })
            .collect();
        let read = read_back(&sums.iter().collect::<Vec<_>>());
        let per_group: Vec<(String, f64)> = eval
            .iter()
            .zip(read)
            .map(|((name, _), v)| (name.clone(), v[0]))
            .collect();
        let mean = per_group.iter().map(|(_, l)| l).sum::<f64>() / per_group.len() as f64;
        Evaluation {
            mean,
            per_group,
            extra: Vec::new(),
        }
    })
}

pub fn log(rep: &Reporter, step: i64, e: &Evaluation) {
    rep.log(m::EVAL_LOSS, step, e.mean);
    for (g, l) in &e.per_group {
        rep.log(&m::eval_group_loss(g), step, *l);
    }
    for (name, v) in &e.extra {
        rep.log(name, step, *v);
    }
}
