//! The workloads. Each is one module here that declares what the rest of Orrery needs to know of
//! it — its typed `params` (with [`crate::declare_fields!`]), the metric names its workers report,
//! its analysis of an experiment's results and any rule across its fields — by implementing
//! [`WorkloadKind`]. The [`registry!`] at the bottom names them, one line each, and generates the
//! enums everything else matches on: [`Workload`] (the name in `spec.workload`), [`Params`] (the
//! typed `params` of one workload) and [`Analysis`] (what `GET /experiments/{id}/analysis`
//! returns). `docs/workloads/README.md` lists the places to touch to add one.

pub mod aioli;
pub mod stability;

use std::collections::BTreeMap;
use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::dto::Leaderboard;
use crate::fields::{Declared, Field};
use crate::yaml::Path;

/// A metric a workload's workers report: its name (`{layer}`-style placeholders for families)
/// and one line of meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricDoc {
    pub name: &'static str,
    pub doc: &'static str,
}

/// (step, value) points of one metric of one trial, in step order.
pub type History = Vec<(i64, f64)>;

/// Metric histories an analysis reads beside the leaderboard: trial id → metric name → points.
pub type Histories = BTreeMap<i64, BTreeMap<String, History>>;

/// A rule across several fields of a trial's configuration that failed.
#[derive(Debug, Clone, PartialEq)]
pub struct CrossFieldError {
    /// The field to point at, from the document root (`spec.params.x`).
    pub path: Path,
    pub message: String,
    /// The dotted trial-level paths involved (`params.x`, `training.steps`): when a sweep assigned
    /// one of them, the error is reported where the sweep wrote its value.
    pub involved: &'static [&'static str],
}

/// What one workload declares. Implemented by a unit type in the workload's module and named in
/// [`registry!`].
pub trait WorkloadKind {
    /// `spec.workload`.
    const NAME: &'static str;
    /// One line: what a trial of this workload does.
    const ABOUT: &'static str;
    /// Its `params` section.
    type Params: Declared + Clone + PartialEq + Debug + Serialize + DeserializeOwned;
    /// Its analysis of an experiment's results.
    type Analysis: Clone + PartialEq + Debug + Serialize + DeserializeOwned;

    /// The metrics its workers report beside the shared ones ([`crate::metrics::SHARED`]).
    fn metrics() -> &'static [MetricDoc];

    /// The metric histories its analysis reads beside the leaderboard, per trial id: what the
    /// leaderboard's summaries (first, last, min, max) cannot say, such as a mixture over steps.
    /// None by default.
    fn histories_needed(_board: &Leaderboard) -> Vec<(i64, Vec<String>)> {
        Vec::new()
    }

    /// The analysis of an experiment's leaderboard and the histories it asked for (a trial's
    /// history may be missing or shorter than asked: it is read while trials run).
    fn analyse(board: &Leaderboard, histories: &Histories) -> Self::Analysis;

    /// Rules across fields, run on each expanded trial's sections (`workload`, `model`, `data`,
    /// `training`, `params`) after every field passed its own check. None by default.
    fn cross_field_errors(_sections: &Value) -> Vec<CrossFieldError> {
        Vec::new()
    }
}

/// Generates [`Workload`], [`Params`] and [`Analysis`] from one line per workload:
/// `"name" => Variant(module::Kind, module::ParamsType, module::AnalysisType)`, the name being the
/// variant in snake_case (serde and the OpenAPI description both spell it so; a test checks it).
/// The compiler checks that the two types are the kind's own (`WorkloadKind::Params`,
/// `WorkloadKind::Analysis`).
macro_rules! registry {
    ($($name:literal => $variant:ident($kind:ty, $params:ty, $analysis:ty)),* $(,)?) => {
        /// The workload a spec names (`spec.workload`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
                 schemars::JsonSchema, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum Workload {
            $($variant,)*
        }

        impl Workload {
            pub const ALL: &'static [Workload] = &[$(Workload::$variant,)*];
            pub const NAMES: &'static [&'static str] = &[$($name,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Workload::$variant => <$kind as WorkloadKind>::NAME,)*
                }
            }

            /// One line: what a trial of this workload does.
            pub fn about(self) -> &'static str {
                match self {
                    $(Workload::$variant => <$kind as WorkloadKind>::ABOUT,)*
                }
            }

            /// The fields of its `params`.
            pub fn fields(self) -> &'static [Field] {
                match self {
                    $(Workload::$variant => <<$kind as WorkloadKind>::Params as Declared>::FIELDS,)*
                }
            }

            /// Its `params` defaults, as JSON.
            pub fn default_params(self) -> Value {
                match self {
                    $(Workload::$variant => <<$kind as WorkloadKind>::Params as Declared>::defaults(),)*
                }
            }

            /// The metrics its workers report beside the shared ones.
            pub fn metrics(self) -> &'static [MetricDoc] {
                match self {
                    $(Workload::$variant => <$kind as WorkloadKind>::metrics(),)*
                }
            }

            /// The metric histories its analysis reads, per trial id.
            pub fn histories_needed(self, board: &Leaderboard) -> Vec<(i64, Vec<String>)> {
                match self {
                    $(Workload::$variant => <$kind as WorkloadKind>::histories_needed(board),)*
                }
            }

            pub fn analyse(self, board: &Leaderboard, histories: &Histories) -> Analysis {
                match self {
                    $(Workload::$variant => Analysis::$variant(<$kind as WorkloadKind>::analyse(board, histories)),)*
                }
            }

            pub fn cross_field_errors(self, sections: &Value) -> Vec<CrossFieldError> {
                match self {
                    $(Workload::$variant => <$kind as WorkloadKind>::cross_field_errors(sections),)*
                }
            }

            /// Reads `params` (absent: the defaults) as this workload's type.
            pub fn parse_params(self, params: Option<Value>) -> Result<Params, serde_json::Error> {
                Ok(match self {
                    $(Workload::$variant => Params::$variant(match params {
                        None | Some(Value::Null) => <$params>::default(),
                        Some(v) => serde_json::from_value::<<$kind as WorkloadKind>::Params>(v)?,
                    }),)*
                })
            }
        }

        /// The typed `params` of one workload. It is written beside `workload` (adjacently
        /// tagged: `workload` names the type of `params`), so a spec or a trial configuration
        /// reads `{"workload": "stability", "params": {...}}` as it always has.
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[serde(tag = "workload", content = "params", rename_all = "snake_case")]
        pub enum Params {
            $($variant($params),)*
        }

        impl Params {
            pub fn workload(&self) -> Workload {
                match self {
                    $(Params::$variant(_) => Workload::$variant,)*
                }
            }

            /// The params, if they are workload `K`'s: `cfg.params.of::<Stability>()`.
            pub fn of<K: WorkloadKind>(&self) -> Option<&K::Params>
            where
                K::Params: 'static,
            {
                match self {
                    $(Params::$variant(p) => (p as &dyn std::any::Any).downcast_ref(),)*
                }
            }
        }

        /// A workload's analysis, tagged by `workload`.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(tag = "workload", rename_all = "snake_case")]
        pub enum Analysis {
            $($variant($analysis),)*
        }
    };
}

registry! {
    "stability" => Stability(stability::Stability, stability::StabilityParams, stability::StabilityAnalysis),
    "aioli" => Aioli(aioli::Aioli, aioli::AioliParams, aioli::AioliAnalysis),
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Workload {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Workload::ALL
            .iter()
            .copied()
            .find(|w| w.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown workload \"{s}\"{}; the workloads are {}",
                    crate::fields::did_you_mean(s, Workload::NAMES.iter().copied()),
                    Workload::NAMES.join(", ")
                )
            })
    }
}

impl Default for Params {
    fn default() -> Self {
        Workload::ALL[0]
            .parse_params(None)
            .expect("a workload's default params convert")
    }
}

// `params` may be left out (every field has a default), which serde's adjacently tagged enums do
// not allow; so `workload` is read first and then `params` as that workload's type.
impl<'de> Deserialize<'de> for Params {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Tagged {
            workload: Workload,
            #[serde(default)]
            params: Option<Value>,
        }
        let t = Tagged::deserialize(d)?;
        t.workload
            .parse_params(t.params)
            .map_err(serde::de::Error::custom)
    }
}

// The CRD schema of `workload` and `params` (the operator replaces `params` with the union of the
// workloads' declared fields and CEL rules tying each to its workload).
impl schemars::JsonSchema for Params {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "WorkloadParams".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "object",
            "required": ["workload"],
            "properties": {
                "workload": {"type": "string", "enum": Workload::NAMES},
                "params": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_agree() {
        for w in Workload::ALL {
            assert_eq!(
                serde_json::to_value(w).unwrap(),
                Value::from(w.as_str()),
                "the registry's name and the kind's NAME differ"
            );
            assert_eq!(w.as_str().parse::<Workload>().unwrap(), *w);
            let params = w.parse_params(None).unwrap();
            assert_eq!(params.workload(), *w);
            let tagged = serde_json::to_value(&params).unwrap();
            assert_eq!(tagged["workload"], w.as_str());
        }
        let e = "stabilty".parse::<Workload>().unwrap_err();
        assert!(e.contains("(did you mean `stability`?)"), "{e}");
    }

    #[test]
    fn params_read_with_and_without_a_params_section() {
        let p: Params =
            serde_json::from_value(serde_json::json!({"workload": "stability"})).unwrap();
        assert_eq!(p, Params::default());
        let p: Params = serde_json::from_value(
            serde_json::json!({"workload": "stability", "params": {"qk_layernorm": true}}),
        )
        .unwrap();
        let s = p.of::<stability::Stability>().unwrap();
        assert!(s.qk_layernorm);
        let back = serde_json::to_value(&p).unwrap();
        assert_eq!(back["workload"], "stability");
        assert_eq!(back["params"]["qk_layernorm"], true);
    }
}
