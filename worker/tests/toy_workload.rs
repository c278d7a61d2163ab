//! A workload that is not in the registry, trained by the shared loop (`orrery_worker::train`):
//! what `docs/workloads/README.md` says a new workload implements is all it takes — the loop
//! schedules, clips, steps, logs, evaluates, checkpoints (the workload's own state too), resumes
//! and applies the workload's divergence rule.

use std::collections::BTreeMap;
use std::path::Path;

use tch::{nn, Device, Kind, Tensor};

use orrery_core::dto::MetricPoint;
use orrery_core::spec::{TrainingSpec, TrialConfig};
use orrery_worker::train::divergence::Divergence;
use orrery_worker::train::eval::Evaluation;
use orrery_worker::train::optim::AdamW;
use orrery_worker::train::reporter::{Reporter, ReporterOptions};
use orrery_worker::train::{self, RunEnv, StepLoss, TrainError, TrialResult, Workload};

/// Softmax regression onto 4 classes from 8 features, on a fixed synthetic task.
struct Toy {
    vs: nn::VarStore,
    w: Tensor,
    x: Tensor,
    y: Tensor,
    /// The workload's own state: steps it has taken (kept by checkpoints).
    steps_taken: Tensor,
    /// From this step on, evaluation reports a loss worse than uniform guessing.
    sabotage_from: Option<u64>,
    /// From this (0-based) step on, the training loss is NaN.
    nan_from: Option<u64>,
}

impl Toy {
    fn new(sabotage_from: Option<u64>) -> Self {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().var("w", &[8, 4], nn::Init::Const(0.0));
        let x = Tensor::randn([64, 8], (Kind::Float, Device::Cpu));
        let y = x.narrow(1, 0, 4).argmax(1, false);
        Toy {
            vs,
            w,
            x,
            y,
            steps_taken: Tensor::zeros([1], (Kind::Int64, Device::Cpu)),
            sabotage_from,
            nan_from: None,
        }
    }

    fn ce(&self) -> Tensor {
        self.x.matmul(&self.w).cross_entropy_for_logits(&self.y)
    }
}

impl Workload for Toy {
    fn divergence(&self) -> Divergence {
        Divergence::AboveUniform { vocab: 4 }
    }

    fn optimizer(&self, t: &TrainingSpec) -> AdamW {
        AdamW::over(&self.vs, t)
    }

    fn step_loss(&mut self, step: u64) -> Result<StepLoss, TrainError> {
        let l = match self.nan_from {
            Some(from) if step >= from => self.ce() * f64::NAN,
            _ => self.ce(),
        };
        let _ = self.steps_taken.g_add_scalar_(1);
        Ok(StepLoss {
            total: l,
            parts: Vec::new(),
            tokens: 64,
        })
    }

    fn evaluate(&mut self) -> Evaluation {
        let steps = self.steps_taken.int64_value(&[0]) as u64;
        let mean = match self.sabotage_from {
            Some(s) if steps >= s => 100.0,
            _ => tch::no_grad(|| self.ce().double_value(&[])),
        };
        Evaluation {
            mean,
            per_group: vec![("toy".into(), mean)],
            extra: Vec::new(),
        }
    }

    fn log_state(&mut self, step: i64, rep: &Reporter) {
        let norm = tch::no_grad(|| self.w.norm().double_value(&[]));
        rep.log("toy/weight_norm", step, norm);
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        vec![("steps_taken".into(), self.steps_taken.shallow_clone())]
    }
}

fn config(steps: u64) -> TrialConfig {
    let text = format!(
        "apiVersion: orrery.dev/v1alpha1\nkind: Experiment\nmetadata: {{name: toy}}\nspec:\n  \
         workload: stability\n  training: {{steps: {steps}, lr: 0.05, log_every: 5, eval_every: 10, \
         checkpoint_every: 10}}\n"
    );
    orrery_core::load_spec(&text).unwrap().trials[0]
        .config()
        .unwrap()
}

/// Runs `toy` and returns the result and every point it reported, by name.
fn run(toy: &mut Toy, steps: u64, dir: &Path) -> (TrialResult, BTreeMap<String, Vec<(i64, f64)>>) {
    let spill = dir.join("spill.jsonl");
    let _ = std::fs::remove_file(&spill);
    let rep = Reporter::start(None, 0, spill.clone(), ReporterOptions::default());
    let env = RunEnv {
        device: Device::Cpu,
        checkpoint_dir: Some(dir.join("checkpoint")),
        progress: false,
        span: Default::default(),
        remote: None,
        init_weights: None,
    };
    let result = train::run(toy, &config(steps), &env, &rep).unwrap();
    rep.finish();
    let mut by_name: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for MetricPoint {
        name, step, value, ..
    } in orrery_core::spill::read(&spill).unwrap()
    {
        by_name.entry(name).or_default().push((step, value));
    }
    (result, by_name)
}

fn steps(points: &[(i64, f64)]) -> Vec<i64> {
    points.iter().map(|p| p.0).collect()
}

#[test]
fn the_shared_loop_trains_checkpoints_and_resumes_a_toy_workload() {
    let dir = tempfile::tempdir().unwrap();
    let mut toy = Toy::new(None);
    let (result, m) = run(&mut toy, 20, dir.path());
    assert_eq!(result, TrialResult::Succeeded);
    assert_eq!(steps(&m["train/loss"]), [5, 10, 15, 20]);
    assert_eq!(steps(&m["eval/loss"]), [0, 10, 20]);
    assert_eq!(steps(&m["eval/loss/toy"]), [0, 10, 20]);
    assert_eq!(steps(&m["toy/weight_norm"]), [0, 5, 10, 15, 20]);
    assert_eq!(steps(&m["tokens_seen"]), [5, 10, 15, 20]);
    assert_eq!(m["tokens_seen"][3].1, 20.0 * 64.0);
    let eval = &m["eval/loss"];
    assert!(
        (eval[0].1 - 4f64.ln()).abs() < 1e-6,
        "a zero model guesses uniformly"
    );
    assert!(eval[2].1 < eval[0].1 - 0.1, "it learns: {eval:?}");

    // A fresh process resumes from the checkpoint of step 10 (step 20 was the last: not saved),
    // with the workload's own state restored into its tensor.
    let mut again = Toy::new(None);
    let (result, m) = run(&mut again, 30, dir.path());
    assert_eq!(result, TrialResult::Succeeded);
    assert_eq!(m["sys/resumed_from_step"], [(10, 10.0)]);
    assert_eq!(steps(&m["train/loss"]), [15, 20, 25, 30]);
    assert_eq!(
        steps(&m["eval/loss"]),
        [20, 30],
        "no step-0 evaluation on a resume"
    );
    assert_eq!(again.steps_taken.int64_value(&[0]), 30);
}

#[test]
fn the_workloads_own_divergence_rule_ends_the_trial() {
    let dir = tempfile::tempdir().unwrap();
    // Evaluation from step 10 on reports a loss above ln(4): a fine-tuning rule says diverged.
    let (result, m) = run(&mut Toy::new(Some(10)), 30, dir.path());
    match result {
        TrialResult::Diverged(why) => assert!(why.contains("ln(4)"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        steps(&m["eval/loss"]),
        [0, 10],
        "stopped at the first bad evaluation"
    );
}

#[test]
fn a_non_finite_step_ends_the_trial_at_the_next_read_before_any_evaluation_or_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut toy = Toy::new(None);
    toy.nan_from = Some(11); // the 12th step (1-based) is the first NaN one
    let (result, m) = run(&mut toy, 30, dir.path());
    match result {
        TrialResult::Diverged(why) => assert!(why.contains("at step 12"), "{why}"),
        other => panic!("{other:?}"),
    }
    // Read back at the log step 15, which reports the NaN; nothing evaluated after step 10.
    assert_eq!(steps(&m["train/loss"]), [5, 10, 15]);
    assert!(m["train/loss"][2].1.is_nan());
    assert_eq!(steps(&m["eval/loss"]), [0, 10]);
    // The checkpoint on disk is step 10's, with finite weights.
    let again = Toy::new(None);
    let mut opt = again.optimizer(&TrainingSpec::default());
    let saved = train::checkpoint::load(&dir.path().join("checkpoint"), &mut opt, &again.state())
        .unwrap()
        .unwrap();
    assert_eq!(saved.step, 10);
    let finite = opt.params[0].tensor.isfinite().all().int64_value(&[]);
    assert_eq!(finite, 1);
}
