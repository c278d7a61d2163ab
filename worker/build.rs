//! Bakes the libtorch folder (from the pinned PyTorch wheel in `.venv`) into the rpath of every binary and
//! test of this crate, so `orrery-worker` runs without the user exporting `LD_LIBRARY_PATH`.
//! `LD_LIBRARY_PATH` still wins where it is set (e.g. on a GPU machine whose torch lives elsewhere).
//!
//! It also compiles `src/shim/context.cpp` (libtorch settings tch does not bind, and its version)
//! against the same libtorch's headers, which sit beside its `lib/` folder in the wheel
//! (`torch/include`), and records the git commit for the trials' provenance.
fn main() {
    println!("cargo:rerun-if-changed=src/shim/context.cpp");
    // The commit the worker is built from, for its trials' provenance (none outside a git
    // checkout, e.g. an image built from a copied tree: ORRERY_GIT_COMMIT may then be given).
    println!("cargo:rerun-if-env-changed=ORRERY_GIT_COMMIT");
    if std::env::var("ORRERY_GIT_COMMIT").is_err() {
        let head = std::process::Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok());
        if let Some(sha) = head {
            println!("cargo:rustc-env=ORRERY_GIT_COMMIT={}", sha.trim());
        }
        if let Ok(git) = std::process::Command::new("git")
            .args(["rev-parse", "--git-dir"])
            .output()
        {
            let dir = String::from_utf8_lossy(&git.stdout).trim().to_string();
            if !dir.is_empty() {
                println!("cargo:rerun-if-changed={dir}/HEAD");
                println!("cargo:rerun-if-changed={dir}/refs/heads");
            }
        }
    }
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        let include = std::path::Path::new(&dir).join("../include");
        cc::Build::new()
            .cpp(true)
            .pic(true)
            .warnings(false)
            .include(&include)
            .include(include.join("torch/csrc/api/include"))
            .flag("-std=c++17")
            // The pinned wheel (torch 2.11) is built with the C++11 ABI; the shim passes no
            // std:: types across, so only the headers' inline code sees it.
            .define("_GLIBCXX_USE_CXX11_ABI", "1")
            .file("src/shim/context.cpp")
            .compile("orrery_shim");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        // Rust links with --as-needed, which drops libtorch_cuda (nothing references it by symbol) and
        // leaves CUDA invisible at run time. Keep it when the wheel ships it.
        if std::path::Path::new(&dir).join("libtorch_cuda.so").exists() {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
        }
    }
}
