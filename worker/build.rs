//! Bakes the libtorch folder (from the pinned PyTorch wheel in `.venv`) into the rpath of every binary and
//! test of this crate, so `orrery-worker` runs without the user exporting `LD_LIBRARY_PATH`.
//! `LD_LIBRARY_PATH` still wins where it is set (e.g. on a GPU machine whose torch lives elsewhere).
fn main() {
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        // Rust links with --as-needed, which drops libtorch_cuda (nothing references it by symbol) and
        // leaves CUDA invisible at run time. Keep it when the wheel ships it.
        if std::path::Path::new(&dir).join("libtorch_cuda.so").exists() {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
        }
    }
}
