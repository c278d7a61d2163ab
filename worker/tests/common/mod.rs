//! What the PyTorch parity tests share: writing tensors to an `.npz` and running a reference
//! script on it with the project's `.venv` python (`ORRERY_PYTHON` overrides it).

use std::path::Path;
use std::process::Command;

use tch::Tensor;

fn python() -> String {
    std::env::var("ORRERY_PYTHON").unwrap_or_else(|_| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../.venv/bin/python")
            .display()
            .to_string()
    })
}

/// Writes `named` to an `.npz`, runs `tests/<script>` on it and fails the test (with the script's
/// output) unless the script exits 0.
pub fn check_with_pytorch(script: &str, named: &[(String, Tensor)]) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tensors.npz");
    Tensor::write_npz(named, &file).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(script);
    let out = Command::new(python())
        .arg(&script)
        .arg(&file)
        .output()
        .expect("run the PyTorch reference (make setup creates .venv)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "{} failed:\n{text}", script.display());
}
