//! The invalid-spec corpus: every file in `tests/invalid_specs/` is a spec that must be refused with
//! exactly the errors listed in its trailing `# expect: ` comments (in order). The comments come
//! last so they do not move the line numbers the errors name.

use std::path::Path;

#[test]
fn every_invalid_spec_gives_its_exact_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/invalid_specs");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 25,
        "the corpus has {} specs; keep at least 25",
        files.len()
    );
    let mut failures = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let expected: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        let actual: Vec<String> = match orrery_core::load_spec(&text) {
            Ok(_) => vec!["<accepted>".into()],
            Err(errs) => errs.0.iter().map(|e| e.to_string()).collect(),
        };
        if expected.is_empty() || actual != expected {
            failures.push(format!(
                "{}:\n  expected: {expected:#?}\n  actual:\n{}",
                f.file_name().unwrap().to_string_lossy(),
                actual
                    .iter()
                    .map(|a| format!("# expect: {a}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} specs differ:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[test]
fn every_error_names_a_line_and_column() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/invalid_specs");
    for e in std::fs::read_dir(&dir).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        if let Err(errs) = orrery_core::load_spec(&text) {
            for err in errs.0 {
                assert!(err.loc.is_some(), "no position for {err}");
            }
        }
    }
}
