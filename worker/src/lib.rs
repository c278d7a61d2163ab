//! Orrery's trial worker: runs one trial of a workload on CPU or GPU and reports its metrics.
//!
//! - [`alloc`]: how host memory freed by libtorch is kept for the next step;
//! - [`data`]: byte-level corpus groups and batches; [`model`]: the GPT decoder; [`precision`]:
//!   fp32 or bf16 passes, TF32; [`provenance`]: what runs an attempt, reported to the API;
//! - [`train`]: what every workload shares — the LR schedule, AdamW, evaluation, checkpoints and
//!   resume, the divergence rules, the metric reporter, and the training loop;
//! - [`workloads`]: one module per workload, and the registry that picks it for a trial.

pub mod alloc;
pub mod data;
pub mod model;
pub mod precision;
pub mod provenance;
pub mod threads;
pub mod train;
pub mod workloads;

/// Exit codes of `orrery-worker`, read by the executors.
pub use orrery_core::schedule::exit;

/// Parses `auto | cpu | cuda | cuda:N`.
pub fn parse_device(s: &str) -> Result<tch::Device, String> {
    match s {
        "auto" => Ok(tch::Device::cuda_if_available()),
        "cpu" => Ok(tch::Device::Cpu),
        "cuda" => Ok(tch::Device::Cuda(0)),
        other => other
            .strip_prefix("cuda:")
            .and_then(|i| i.parse::<usize>().ok())
            .map(tch::Device::Cuda)
            .ok_or_else(|| format!("unknown device \"{other}\"; use auto, cpu, cuda or cuda:N")),
    }
}

/// `cpu`, `cuda:0`, …: a device as [`parse_device`] reads it (and as logs print it).
pub fn device_name(d: tch::Device) -> String {
    match d {
        tch::Device::Cpu => "cpu".into(),
        tch::Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}").to_lowercase(),
    }
}
