//! Orrery's trial worker: runs one trial of a workload on CPU or GPU and reports its metrics.
//!
//! - [`data`]: byte-level corpus groups and batches; [`model`]: the GPT decoder;
//!   [`optim`]: AdamW and the LR schedule; [`checkpoint`]: save and resume;
//! - [`stability`]: the stability workload's training loop;
//! - [`reporter`]: batched, spill-to-disk metric delivery.

pub mod checkpoint;
pub mod data;
pub mod model;
pub mod optim;
pub mod reporter;
pub mod stability;

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
