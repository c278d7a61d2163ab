//! The `dml` method's mixture: the optimum of the mixing law fitted on another experiment's static
//! trials (`params.dml.from_experiment`), resolved once, when an experiment is registered, so every
//! trial (and every later retry or resume) trains on the same recorded mixture.

use std::collections::BTreeMap;

use orrery_core::spec::{TrialConfig, Workload};
use orrery_core::workloads::aioli::{self as a, Method};
use orrery_core::workloads::Params;

use super::{Result, Store, StoreError};

impl Store {
    /// Sets `params.proportions` of a dml trial's configuration to the law's optimum (and records
    /// it among the trial's values); other trials are left as they are. `cache` keeps each
    /// source experiment's optimum for the rest of a registration.
    pub(super) async fn resolve_dml(
        &self,
        config: &mut TrialConfig,
        assignments: &mut BTreeMap<String, serde_json::Value>,
        cache: &mut BTreeMap<String, BTreeMap<String, f64>>,
    ) -> Result<()> {
        let Params::Aioli(p) = &mut config.params else {
            return Ok(());
        };
        if p.method != Method::Dml {
            return Ok(());
        }
        let Some(source) = p.dml.from_experiment.clone() else {
            return Err(StoreError::Invalid(
                "params.dml.from_experiment: dml needs the experiment its law is fitted on".into(),
            ));
        };
        if !cache.contains_key(&source) {
            let optimum = self.law_optimum(&source).await?;
            cache.insert(source.clone(), optimum);
        }
        let mixture = cache[&source].clone();
        // The law is over the source's groups; this trial must have the same ones.
        let mut groups = config.data.group_names();
        groups.sort();
        let law_groups: Vec<String> = mixture.keys().cloned().collect();
        if groups != law_groups {
            return Err(StoreError::Invalid(format!(
                "params.dml.from_experiment: the law of \"{source}\" is over the groups {}, but this trial's data has {}",
                law_groups.join(", "),
                groups.join(", ")
            )));
        }
        assignments.insert(
            "params.proportions".into(),
            serde_json::to_value(&mixture).unwrap_or_default(),
        );
        p.proportions = Some(mixture);
        Ok(())
    }

    async fn law_optimum(&self, source: &str) -> Result<BTreeMap<String, f64>> {
        let at = "params.dml.from_experiment";
        let exp = match self.find_experiment(source).await {
            Err(StoreError::NotFound(_)) => {
                return Err(StoreError::Invalid(format!(
                    "{at}: there is no experiment \"{source}\" to fit the mixing law on"
                )))
            }
            other => other?,
        };
        if exp.workload != Workload::Aioli.as_str() {
            return Err(StoreError::Invalid(format!(
                "{at}: experiment {} \"{}\" is a {} experiment, not aioli",
                exp.id, exp.name, exp.workload
            )));
        }
        let board = self.leaderboard(exp.id).await?;
        // The analysis's own fit (not the whole analysis: only the law is needed here).
        let (groups, points) = a::analysis::law_points(&board);
        a::mixing_law::fit(&groups, &points).map(|law| law.optimum).ok_or_else(|| {
            StoreError::Invalid(format!(
                "{at}: experiment {} \"{}\" has no fitted mixing law: that needs finished static trials (a mixture that never changed) that give every group some weight, in at least (number of groups) + 2 different mixtures; it has {} such trial(s) in {} mixture(s), of {} trial(s)",
                exp.id,
                exp.name,
                points.len(),
                a::mixing_law::distinct_mixtures(&points),
                board.rows.len()
            ))
        })
    }
}
