//! What runs a trial's attempt, reported to the API when it starts (`Provenance`): the worker's
//! version and commit, the libtorch it was built against, the device, and the SHA-256 of the
//! resolved configuration and of the data, so two runs of one configuration can be told apart (a
//! changed corpus, another build, another machine).

use std::ffi::CStr;
use std::os::raw::c_char;

use sha2::{Digest, Sha256};
use tch::Device;

use orrery_core::dto::Provenance;
use orrery_core::spec::TrialConfig;

use crate::data::{load_groups, DataError, Group};

extern "C" {
    fn orrery_torch_version() -> *const c_char;
}

/// The libtorch version the worker was built against.
pub fn libtorch_version() -> String {
    // SAFETY: the shim returns a pointer to a static, NUL-terminated string literal.
    unsafe { CStr::from_ptr(orrery_torch_version()) }
        .to_string_lossy()
        .into_owned()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 over every group: its name, then each split's length and bytes (lengths first, so
/// moving bytes between splits changes the hash).
pub fn data_sha256(groups: &[Group]) -> String {
    let mut h = Sha256::new();
    for g in groups {
        h.update((g.name.len() as u64).to_le_bytes());
        h.update(g.name.as_bytes());
        for split in [&g.train, &g.validation, &g.test] {
            h.update((split.len() as u64).to_le_bytes());
            h.update(split);
        }
    }
    hex(&h.finalize())
}

/// The CPU's model name (`/proc/cpuinfo`), when the system says.
fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == "model name").then(|| v.trim().to_string())
    })
}

/// The provenance of an attempt of `cfg` on `device` with `threads` libtorch threads. Loads the
/// trial's data once more to hash it (the builtin corpora are generated in milliseconds).
pub fn of(cfg: &TrialConfig, device: Device, threads: usize) -> Result<Provenance, DataError> {
    let groups = load_groups(&cfg.data, cfg.model.seq_len as usize)?;
    let config = serde_json::to_vec(cfg).unwrap_or_default();
    let device = match device {
        Device::Cuda(i) => format!("cuda:{i}"),
        _ => format!(
            "cpu ({}, {threads} threads)",
            cpu_model().unwrap_or_else(|| "unknown CPU".into())
        ),
    };
    Ok(Provenance {
        worker_version: format!(
            "{} ({})",
            env!("CARGO_PKG_VERSION"),
            option_env!("ORRERY_GIT_COMMIT").unwrap_or("unknown commit")
        ),
        libtorch_version: libtorch_version(),
        device,
        config_sha256: hex(&Sha256::digest(&config)),
        data_sha256: data_sha256(&groups),
        init_from_sha256: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str, train: &[u8], validation: &[u8]) -> Group {
        Group {
            name: name.into(),
            train: train.to_vec(),
            validation: validation.to_vec(),
            test: Vec::new(),
        }
    }

    #[test]
    fn the_data_hash_sees_names_splits_and_bytes() {
        let a = data_sha256(&[group("g", b"abcd", b"ef")]);
        assert_eq!(a, data_sha256(&[group("g", b"abcd", b"ef")]));
        assert_ne!(a, data_sha256(&[group("h", b"abcd", b"ef")]));
        assert_ne!(a, data_sha256(&[group("g", b"abc", b"def")]));
        assert_ne!(a, data_sha256(&[group("g", b"abce", b"ef")]));
    }

    #[test]
    fn libtorch_is_the_pinned_version() {
        assert_eq!(libtorch_version(), "2.11.0");
    }
}
