//! What the command line shows of each workload: the summary `orrery run` and `orrery show` print
//! after the leaderboard, the charts `orrery plot` draws and the reproduction report `orrery
//! report` writes. One module per workload implements [`CliWorkload`]; [`of`] is the registry.

pub mod aioli;
pub mod reproduction;
pub mod stability;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use orrery_api::Store;
use orrery_core::dto::Leaderboard;
use orrery_core::spec::Workload;
use orrery_core::workloads::Analysis;

use crate::plot::Chart;

/// The files `orrery report` wrote.
pub type ReportFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<Vec<PathBuf>>> + 'a>>;

pub trait CliWorkload: Sync {
    /// What `orrery run` and `orrery show` print after the leaderboard (tables that fit 100
    /// columns), from the board and its analysis (`Store::analysis`).
    fn summary(&self, board: &Leaderboard, analysis: &Analysis) -> String;

    /// The charts `orrery plot` draws, as (file-name suffix, chart); empty when there is nothing to
    /// plot yet.
    fn charts(&self, board: &Leaderboard, analysis: &Analysis) -> Vec<(String, Chart)>;

    /// What `charts` needs, said when it returned none.
    fn charts_need(&self) -> &'static str;

    /// Writes the workload's reproduction report into `out` from the newest runs of its specs in
    /// `store`; `None` when the workload has none.
    fn report<'a>(&self, _store: &'a Store, _out: &'a Path) -> Option<ReportFuture<'a>> {
        None
    }
}

/// What a summary says when handed another workload's analysis (a caller's mistake: `of` and
/// `Store::analysis` both follow the experiment's workload).
fn not_ours(analysis: &Analysis) -> String {
    format!(
        "(no summary: the analysis is of another workload: {})",
        serde_json::to_value(analysis)
            .ok()
            .and_then(|v| v.get("workload").cloned())
            .unwrap_or_default()
    )
}

/// The command line's part of `workload`.
pub fn of(workload: Workload) -> &'static dyn CliWorkload {
    match workload {
        Workload::Stability => &stability::Stability,
        Workload::Aioli => &aioli::Aioli,
    }
}
