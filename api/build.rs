//! Embeds the front end (`web/assets/` at the top of the repository) into the binary: every file
//! there, subfolders included, becomes an entry of `ASSETS` (`src/web/assets.rs`), so a new page
//! module or workload panel needs no list edited here.

use std::fmt::Write;
use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            println!("cargo:rerun-if-changed={}", p.display());
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn content_type(path: &Path) -> Option<&'static str> {
    match path.extension()?.to_str()? {
        "js" => Some("text/javascript; charset=utf-8"),
        "css" => Some("text/css; charset=utf-8"),
        _ => None,
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/assets");
    let root = root.canonicalize().expect("web/assets exists");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut all = Vec::new();
    files(&root, &mut all);
    let mut code = String::from("const ASSETS: &[Asset] = &[\n");
    for path in all {
        let Some(ty) = content_type(&path) else {
            continue;
        };
        println!("cargo:rerun-if-changed={}", path.display());
        let name = path
            .strip_prefix(&root)
            .expect("under web/assets")
            .to_string_lossy()
            .replace('\\', "/");
        let file = path.display().to_string();
        let _ = writeln!(
            code,
            "    Asset {{ name: {name:?}, content_type: {ty:?}, body: include_bytes!({file:?}), \
             hash: fnv1a(include_bytes!({file:?})) }},"
        );
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("assets.rs"), code).expect("OUT_DIR is writable");
}
