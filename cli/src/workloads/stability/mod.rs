//! The stability workload on the command line: LR sensitivity tables, the LR-sweep charts and the
//! reproduction report.

pub mod charts;
pub mod report;
pub mod show;

use std::path::Path;

use orrery_api::Store;
use orrery_core::dto::Leaderboard;
use orrery_core::workloads::Analysis;

use super::{CliWorkload, ReportFuture};
use crate::plot::Chart;

pub struct Stability;

impl CliWorkload for Stability {
    fn summary(&self, _board: &Leaderboard, analysis: &Analysis) -> String {
        match analysis {
            Analysis::Stability(a) => show::summary(&a.lr_sensitivity),
            _ => super::not_ours(analysis),
        }
    }

    fn charts(&self, board: &Leaderboard, analysis: &Analysis) -> Vec<(String, Chart)> {
        match analysis {
            Analysis::Stability(a) => charts::lr_sweep(&board.experiment.name, &a.lr_sensitivity),
            _ => Vec::new(),
        }
    }

    fn charts_need(&self) -> &'static str {
        "a finished LR sweep (trials at two or more values of training.lr)"
    }

    fn report<'a>(&self, store: &'a Store, out: &'a Path) -> Option<ReportFuture<'a>> {
        Some(Box::pin(report::write(store, out)))
    }
}
