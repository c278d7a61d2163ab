//! The spill file: metric points a worker could not deliver, kept as JSON lines (one
//! [`MetricBatch`] each) and replayed later. Replaying twice is harmless, since ingest is idempotent
//! on `(trial, name, step)`.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use crate::dto::{MetricBatch, MetricPoint};

/// Appends a batch as one line.
pub fn append(path: &Path, points: &[MetricPoint]) -> io::Result<()> {
    if points.is_empty() {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut line = serde_json::to_string(&MetricBatch {
        points: points.to_vec(),
    })
    .map_err(io::Error::other)?;
    line.push('\n');
    let mut f = OpenOptions::new().create(true).append(true).open(path)?;
    // A line cut short by a crash must not swallow this batch: start on a fresh line.
    let torn = fs::read(path)
        .map(|b| b.last().is_some_and(|c| *c != b'\n'))
        .unwrap_or(false);
    if torn {
        line.insert(0, '\n');
    }
    f.write_all(line.as_bytes())?;
    f.sync_data()
}

/// Every point in the file. A last line cut short by a crash is skipped; a missing file is empty.
pub fn read(path: &Path) -> io::Result<Vec<MetricPoint>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<MetricBatch>(l).ok())
        .flat_map(|b| b.points)
        .collect())
}

pub fn has_points(path: &Path) -> bool {
    fs::metadata(path).map(|m| m.len() > 0).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_torn_tail() {
        let dir = std::env::temp_dir().join(format!("orrery-spill-{}", std::process::id()));
        let p = dir.join("spill.jsonl");
        let _ = fs::remove_file(&p);
        assert!(read(&p).unwrap().is_empty());
        let pt = |s| MetricPoint {
            name: "train/loss".into(),
            step: s,
            value: f64::NAN,
            wall_time: 1.0,
        };
        append(&p, &[pt(1), pt(2)]).unwrap();
        append(&p, &[pt(3)]).unwrap();
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"points\":[{\"na").unwrap();
        let got = read(&p).unwrap();
        assert_eq!(got.len(), 3);
        append(&p, &[pt(4)]).unwrap();
        assert_eq!(
            read(&p).unwrap().len(),
            4,
            "a batch after a torn line survives"
        );
        assert!(got[0].value.is_nan());
        fs::remove_dir_all(dir).unwrap();
    }
}
