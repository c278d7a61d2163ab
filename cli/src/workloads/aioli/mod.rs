//! The aioli workload on the command line: average test perplexity per method (mean ± std over
//! seeds, Δ vs stratified), the fitted mixing law, the learned mixtures over steps and the
//! interaction matrices after the leaderboard ([`show`]); the mixtures as charts ([`charts`]);
//! and the reproduction report.

pub mod charts;
pub mod report;
pub mod show;

use std::path::Path;

use orrery_api::Store;

use orrery_core::dto::Leaderboard;
use orrery_core::workloads::Analysis;

use super::{CliWorkload, ReportFuture};
use crate::plot::Chart;

pub struct Aioli;

impl CliWorkload for Aioli {
    fn summary(&self, _board: &Leaderboard, analysis: &Analysis) -> String {
        match analysis {
            Analysis::Aioli(a) => show::summary(a),
            _ => super::not_ours(analysis),
        }
    }

    fn charts(&self, board: &Leaderboard, analysis: &Analysis) -> Vec<(String, Chart)> {
        match analysis {
            Analysis::Aioli(a) => charts::mixtures(&board.experiment.name, a),
            _ => Vec::new(),
        }
    }

    fn charts_need(&self) -> &'static str {
        "a finished trial that learned its mixture (aioli, or doremi's proxy); static mixtures have no curve to draw"
    }

    fn report<'a>(&self, store: &'a Store, out: &'a Path) -> Option<ReportFuture<'a>> {
        Some(Box::pin(report::write(store, out)))
    }
}
