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

/// Parses `auto | cpu | cuda | cuda:N`. A CUDA device asked for by name must be visible: a GPU
/// trial on a node (or in a container) without one fails with a clear error instead of crashing
/// at its first tensor, and is not retried (the executors read the exit code as a bad
/// configuration).
pub fn parse_device(s: &str) -> Result<tch::Device, String> {
    let device = parse_device_name(s)?;
    if let tch::Device::Cuda(i) = device {
        let visible = if tch::Cuda::is_available() {
            tch::Cuda::device_count() as usize
        } else {
            0
        };
        if i >= visible {
            return Err(format!(
                "device {s} was asked for, but this worker sees {visible} CUDA device(s) \
                 (CUDA_VISIBLE_DEVICES={}; on Kubernetes: does the node have the NVIDIA device \
                 plugin, and the Pod an nvidia.com/gpu limit?)",
                std::env::var("CUDA_VISIBLE_DEVICES").unwrap_or_else(|_| "unset".into())
            ));
        }
    }
    Ok(device)
}

fn parse_device_name(s: &str) -> Result<tch::Device, String> {
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
