//! `orrery`: the researcher's entry point.
//!
//! `orrery run SPEC` validates the spec, records it in the local SQLite database, serves the API on
//! a loopback port for the workers, runs every trial as a local `orrery-worker` process and prints
//! the leaderboard. `serve`, `ls`, `show`, `plot` and `report` work on the same database; what they
//! show of a workload comes from its module under [`workloads`]. `fields` lists a workload's fields.

mod artifacts;
mod executor;
mod fields;
mod plot;
mod table;
mod workloads;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::{Parser, Subcommand};

use orrery_api::Store;
use orrery_core::dto::Leaderboard;
use orrery_core::schedule::{ExperimentPhase, Policy};
use orrery_core::spec::Workload;

#[derive(Parser)]
#[command(
    name = "orrery",
    version,
    about = "Run ML research experiments locally or on Kubernetes"
)]
struct Cli {
    /// SQLite database file.
    #[arg(
        long,
        global = true,
        env = "ORRERY_DB",
        default_value = ".orrery/orrery.db"
    )]
    db: PathBuf,
    /// Database URL instead of the SQLite file: `postgres://USER:PASSWORD@HOST:PORT/DB` (or
    /// `sqlite://PATH?mode=rwc`).
    #[arg(long, global = true, env = "ORRERY_DATABASE_URL")]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

/// Where the results live: the SQLite file, or the database URL when one is given.
struct Db {
    path: PathBuf,
    url: Option<String>,
}

impl Db {
    /// Where artifacts go when `--artifacts` is not given: `artifacts/` beside the SQLite file,
    /// `.orrery/artifacts` with a database URL.
    fn artifacts_default(&self) -> PathBuf {
        match &self.url {
            Some(_) => PathBuf::from(".orrery/artifacts"),
            None => self
                .path
                .parent()
                .map(|p| p.join("artifacts"))
                .unwrap_or_else(|| PathBuf::from("artifacts")),
        }
    }
}

impl std::fmt::Display for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.url {
            // Never print a password.
            Some(url) => match url
                .split_once("://")
                .and_then(|(_, rest)| rest.split_once('@'))
            {
                Some((_, host)) => {
                    write!(f, "{}://…@{host}", url.split("://").next().unwrap_or(""))
                }
                None => f.write_str(url),
            },
            None => write!(f, "{}", self.path.display()),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run experiment specs on this machine, one after the other; a spec whose `model.init_from`
    /// names another of them runs after it.
    Run {
        #[arg(required = true)]
        specs: Vec<PathBuf>,
        /// Trials at once (default: the spec's `parallelism`).
        #[arg(long)]
        parallel: Option<u32>,
        /// Folder for trial checkpoints, spill files and logs.
        #[arg(long, env = "ORRERY_WORKDIR", default_value = ".orrery/runs")]
        workdir: PathBuf,
        /// auto | cpu | cuda | cuda:N
        #[arg(long, default_value = "auto")]
        device: String,
        /// Leaderboard rows to print at the end.
        #[arg(long, default_value_t = 20)]
        top: usize,
        #[command(flatten)]
        artifacts: orrery_api::artifacts::ArtifactArgs,
    },
    /// Serve the API and the web pages.
    Serve {
        #[arg(long, env = "ORRERY_ADDR", default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        /// The work folder of `orrery run` (its trials' logs are linked from the trial pages).
        #[arg(long, env = "ORRERY_WORKDIR", default_value = ".orrery/runs")]
        workdir: PathBuf,
        #[command(flatten)]
        access: orrery_api::auth::AccessArgs,
        #[command(flatten)]
        artifacts: orrery_api::artifacts::ArtifactArgs,
    },
    /// List experiments.
    Ls,
    /// Show an experiment (by id or name): status, leaderboard, analysis.
    Show {
        experiment: String,
        #[arg(long, default_value_t = 20)]
        top: usize,
        /// Print the leaderboard as JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Draw an experiment's plots as PNG files, as its workload draws them (stability: LR vs final
    /// loss and max attention logit vs LR, one curve per configuration).
    Plot {
        experiment: String,
        /// Folder for the PNG files (`<name>-<chart>.png`).
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// Write a workload's reproduction report (Markdown, JSON and plots) from the newest runs of
    /// its paper's specs in the database (stability: scripts/reproduce-stability.sh runs them).
    Report {
        #[arg(value_parser = parse_workload)]
        workload: Workload,
        #[arg(long, default_value = "docs/reproductions")]
        out: PathBuf,
    },
    /// Check a spec and print how many trials it expands to. What it takes from other experiments
    /// (`model.init_from`, dml's `from_experiment`) is resolved too: against `--api` when given,
    /// else against the database when it exists.
    Validate {
        spec: PathBuf,
        /// An Orrery API to resolve against (as `kubectl apply` would be), e.g. http://HOST:8080.
        #[arg(long)]
        api: Option<String>,
        /// The API's admin token, when it has one.
        #[arg(long, env = "ORRERY_TOKEN")]
        token: Option<String>,
    },
    /// List every field a workload's trials read (type, default, accepted values, meaning) and
    /// the metrics its workers report.
    Fields {
        #[arg(value_parser = parse_workload)]
        workload: Workload,
        /// Print Markdown tables (as in docs/workloads/WORKLOAD.md).
        #[arg(long)]
        markdown: bool,
    },
    /// A trial's stored artifacts: `ls TRIAL` lists them, `get TRIAL NAME` copies one out.
    Artifacts {
        #[command(subcommand)]
        cmd: ArtifactsCmd,
        #[command(flatten)]
        artifacts: orrery_api::artifacts::ArtifactArgs,
    },
    /// Print the Experiment and Trial CRDs (or write them into a folder).
    Crd {
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ArtifactsCmd {
    /// List a trial's artifacts: name, size, step, SHA-256, when stored. TRIAL: the trial's id,
    /// or EXPERIMENT/INDEX (the experiment's name or id, the trial's index as the leaderboard shows
    /// it).
    Ls { trial: String },
    /// Copy a trial's artifact into a file (its SHA-256 checked).
    Get {
        trial: String,
        name: String,
        /// The file to write (default: ./NAME).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn parse_workload(s: &str) -> Result<Workload, String> {
    s.parse()
}

/// Exit code for a rejected spec (and other bad input).
const EXIT_INVALID: u8 = 2;

fn read_spec(path: &std::path::Path) -> Result<(String, orrery_core::LoadedSpec), ExitCode> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", path.display());
            return Err(ExitCode::from(EXIT_INVALID));
        }
    };
    match orrery_core::load_spec(&text) {
        Ok(l) => Ok((text, l)),
        Err(errs) => {
            eprintln!(
                "{}: the spec has {} problem(s):",
                path.display(),
                errs.0.len()
            );
            for e in &errs.0 {
                eprintln!("  {}:{e}", path.display());
            }
            Err(ExitCode::from(EXIT_INVALID))
        }
    }
}

/// The names of the experiments a spec's trials take something from: `model.init_from`'s source
/// and dml's `from_experiment`.
fn sources_of(l: &orrery_core::LoadedSpec) -> std::collections::BTreeSet<String> {
    l.trials
        .iter()
        .flat_map(|t| {
            ["/model/init_from/experiment", "/params/dml/from_experiment"]
                .into_iter()
                .filter_map(|p| t.sections.pointer(p)?.as_str().map(str::to_string))
        })
        .collect()
}

/// What a spec's trials take from other experiments, in words (`pretrain`, `trial 42`); empty
/// when nothing.
fn taken_from(l: &orrery_core::LoadedSpec) -> Vec<String> {
    let mut out: Vec<String> = sources_of(l).into_iter().collect();
    let ids: std::collections::BTreeSet<i64> = l
        .trials
        .iter()
        .filter_map(|t| t.sections.pointer("/model/init_from/trial")?.as_i64())
        .collect();
    out.extend(ids.into_iter().map(|id| format!("trial {id}")));
    out
}

/// Resolves what the spec takes from other experiments, as the API would when it is submitted:
/// against `api` when given, else against the database when it exists (else says it could not).
async fn resolve_sources(
    db: &Db,
    path: &std::path::Path,
    text: &str,
    l: &orrery_core::LoadedSpec,
    api: Option<String>,
    token: Option<String>,
) -> anyhow::Result<Result<(), ExitCode>> {
    let sources = taken_from(l);
    if sources.is_empty() {
        return Ok(Ok(()));
    }
    let refused = |m: String| {
        eprintln!(
            "{}: the spec has 1 problem(s):\n  {}:{m}",
            path.display(),
            path.display()
        );
        Ok(Err(ExitCode::from(EXIT_INVALID)))
    };
    if let Some(url) = api {
        let client = orrery_core::client::ApiClient::new(&url, token);
        let text = text.to_string();
        let answer = tokio::task::spawn_blocking(move || client.check_experiment(&text)).await?;
        return match answer {
            Ok(_) => Ok(Ok(())),
            Err(orrery_core::client::ClientError::Status {
                status: 422,
                message,
                ..
            }) => refused(message),
            Err(e) => Err(e.into()),
        };
    }
    if db.url.is_none() && !db.path.exists() {
        eprintln!(
            "note: {} takes from {}; not checked: no database at {db} (give --db, --database-url or --api)",
            path.display(),
            sources.join(", ")
        );
        return Ok(Ok(()));
    }
    let store = open_store(db).await?;
    match store.check_experiment(text, l).await {
        Ok(_) => Ok(Ok(())),
        Err(orrery_api::StoreError::Invalid(m)) => refused(m),
        Err(e) => Err(e.into()),
    }
}

/// The specs in the order their `model.init_from` (and dml) sources need: a spec that takes from
/// another given spec's experiment runs after it; otherwise in the order given.
fn run_order(specs: &[PathBuf]) -> Result<Vec<PathBuf>, ExitCode> {
    let mut loaded = Vec::with_capacity(specs.len());
    for p in specs {
        let (_, l) = read_spec(p)?;
        loaded.push((
            p.clone(),
            l.experiment.metadata.name.clone(),
            sources_of(&l),
        ));
    }
    let mut order: Vec<PathBuf> = Vec::with_capacity(specs.len());
    let mut done: Vec<bool> = vec![false; loaded.len()];
    while order.len() < loaded.len() {
        // The first spec not yet placed whose sources among the given specs are all placed.
        let next = (0..loaded.len()).find(|&i| {
            !done[i]
                && loaded[i].2.iter().all(|src| {
                    loaded
                        .iter()
                        .enumerate()
                        .all(|(j, (_, name, _))| j == i || name != src || done[j])
                })
        });
        match next {
            Some(i) => {
                done[i] = true;
                order.push(loaded[i].0.clone());
            }
            None => {
                let stuck: Vec<String> = (0..loaded.len())
                    .filter(|i| !done[*i])
                    .map(|i| format!("{} (\"{}\")", loaded[i].0.display(), loaded[i].1))
                    .collect();
                eprintln!(
                    "error: these specs take from each other in a cycle: {}",
                    stuck.join(", ")
                );
                return Err(ExitCode::from(EXIT_INVALID));
            }
        }
    }
    Ok(order)
}

/// The leaderboard and, after it, the workload's summary of its analysis.
async fn print_results(store: &Store, board: &Leaderboard, top: usize) -> anyhow::Result<()> {
    println!("{}", table::leaderboard(board, top));
    match board.experiment.workload.parse::<Workload>() {
        Ok(w) => {
            let analysis = store.analysis_of(board).await?;
            println!("\n{}", workloads::of(w).summary(board, &analysis));
        }
        Err(e) => eprintln!("note: {e}; its summary is left out"),
    }
    Ok(())
}

/// The workload of a stored experiment; one this binary does not know is bad input (exit 2).
fn workload_of(e: &orrery_core::dto::ExperimentDto) -> Result<Workload, ExitCode> {
    e.workload.parse().map_err(|msg| {
        eprintln!("error: experiment {} \"{}\": {msg}", e.id, e.name);
        ExitCode::from(EXIT_INVALID)
    })
}

async fn open_store(db: &Db) -> anyhow::Result<Store> {
    match &db.url {
        Some(url) => Store::open(url).await,
        None => Store::open_sqlite(&db.path).await,
    }
    .map_err(|e| anyhow::anyhow!("cannot open the database {db}: {e}"))
}

/// An experiment by id or name; one that does not exist is bad input (exit 2, with a hint).
async fn find_experiment(
    store: &Store,
    db: &Db,
    id_or_name: &str,
) -> anyhow::Result<Result<orrery_core::dto::ExperimentDto, ExitCode>> {
    match store.find_experiment(id_or_name).await {
        Ok(e) => Ok(Ok(e)),
        Err(e @ orrery_api::StoreError::NotFound(_)) => {
            eprintln!("error: {e}; `orrery ls` lists the experiments in {db}");
            Ok(Err(ExitCode::from(EXIT_INVALID)))
        }
        Err(e) => Err(e.into()),
    }
}

async fn cmd_run(
    db: &Db,
    spec: &std::path::Path,
    parallel: Option<u32>,
    workdir: PathBuf,
    device: String,
    top: usize,
    artifacts: &orrery_api::artifacts::ArtifactArgs,
) -> anyhow::Result<ExitCode> {
    let (text, mut loaded) = match read_spec(spec) {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let worker_bin = match executor::worker_binary() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    // The trials' device, known before they are stored, so `training.precision: auto` is
    // recorded as what runs (bf16 on CUDA, fp32 on the CPU).
    let device = match executor::resolve_device(&worker_bin, &device) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: --device {device}: {e}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    loaded.resolve_precision(device.starts_with("cuda"));
    // Workers run with their own folders; give them absolute paths.
    let workdir = std::path::absolute(&workdir)?;
    let store = Arc::new(open_store(db).await?);
    let exp = match store.create_experiment(&text, &loaded).await {
        Ok(e) => e,
        Err(orrery_api::StoreError::Invalid(m)) => {
            eprintln!(
                "{}: the spec does not resolve against {db}:\n  {}:{m}",
                spec.display(),
                spec.display()
            );
            return Ok(ExitCode::from(EXIT_INVALID));
        }
        Err(e) => return Err(e.into()),
    };
    let options = orrery_api::Options {
        auth: orrery_api::AuthConfig::local(),
        logs: Some(orrery_api::logs::LogDir::new(&workdir)),
        artifacts: Some(Arc::new(artifacts.open_or(&db.artifacts_default())?)),
    };
    let (addr, _server) = orrery_api::spawn(store.clone(), options, "127.0.0.1:0".parse()?).await?;
    let mut policy = Policy::from_spec(&loaded.experiment.spec);
    if let Some(p) = parallel {
        policy.parallelism = p.max(1);
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let threads = (cores / policy.parallelism as usize).max(1);
    eprintln!(
        "experiment {} \"{}\": {} trials, {} at a time, {} thread(s) each on {device}\n  API and pages at http://{addr}/experiments/{}",
        exp.id,
        exp.name,
        loaded.trials.len(),
        policy.parallelism,
        threads,
        exp.id
    );
    let cancel = Arc::new(AtomicBool::new(false));
    let abort = Arc::new(AtomicBool::new(false));
    {
        let (cancel, abort) = (cancel.clone(), abort.clone());
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!(
                    "\ncancelling: stopping running trials (Ctrl-C again to kill them at once)"
                );
                cancel.store(true, Ordering::SeqCst);
                if tokio::signal::ctrl_c().await.is_ok() {
                    eprintln!("\nkilling running trials");
                    abort.store(true, Ordering::SeqCst);
                }
            }
        });
    }
    let opts = executor::Options {
        api_url: format!("http://{addr}"),
        workdir,
        worker_bin,
        device,
        threads,
        policy,
        cancel,
        abort,
    };
    let started = std::time::Instant::now();
    let phase = executor::run(store.clone(), exp.id, opts).await?;
    let board = store.leaderboard(exp.id).await?;
    println!(
        "\nexperiment {} \"{}\" {phase} in {:.0}s: {}",
        exp.id,
        exp.name,
        started.elapsed().as_secs_f64(),
        board.experiment.message.clone().unwrap_or_default()
    );
    print_results(&store, &board, top).await?;
    Ok(match phase {
        ExperimentPhase::Succeeded => ExitCode::SUCCESS,
        ExperimentPhase::Cancelled => ExitCode::from(130),
        _ => ExitCode::FAILURE,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a Pod's log (kubectl logs, a file) gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let db = Db {
        path: cli.db,
        url: cli.database_url,
    };
    match cli.command {
        Command::Validate { spec, api, token } => {
            let (text, l) = match read_spec(&spec) {
                Ok(x) => x,
                Err(code) => return Ok(code),
            };
            if let Err(code) = resolve_sources(&db, &spec, &text, &l, api, token).await? {
                return Ok(code);
            }
            println!(
                "{}: valid; {} \"{}\" expands to {} trial(s)",
                spec.display(),
                l.experiment.spec.workload(),
                l.experiment.metadata.name,
                l.trials.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Fields { workload, markdown } => {
            if markdown {
                print!("{}", fields::markdown(workload));
            } else {
                print!("{}", fields::text(workload));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Crd { out } => {
            for (file, crd) in orrery_operator::crd::crds() {
                let yaml = orrery_operator::crd::to_yaml(&crd);
                match &out {
                    Some(dir) => {
                        std::fs::create_dir_all(dir)?;
                        std::fs::write(dir.join(&file), yaml)?;
                        eprintln!("wrote {}", dir.join(&file).display());
                    }
                    None => print!("---\n{yaml}"),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            specs,
            parallel,
            workdir,
            device,
            top,
            artifacts,
        } => {
            let order = match run_order(&specs) {
                Ok(o) => o,
                Err(code) => return Ok(code),
            };
            for (n, spec) in order.iter().enumerate() {
                let code = cmd_run(
                    &db,
                    spec,
                    parallel,
                    workdir.clone(),
                    device.clone(),
                    top,
                    &artifacts,
                )
                .await?;
                if code != ExitCode::SUCCESS {
                    if n + 1 < order.len() {
                        let rest: Vec<String> = order[n + 1..]
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect();
                        eprintln!(
                            "error: {} did not succeed; not run: {}",
                            spec.display(),
                            rest.join(", ")
                        );
                    }
                    return Ok(code);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve {
            addr,
            workdir,
            access,
            artifacts,
        } => {
            let (auth, auth_line) = access.load()?;
            let options = orrery_api::Options {
                auth,
                logs: Some(orrery_api::logs::LogDir::new(std::path::absolute(
                    &workdir,
                )?)),
                artifacts: Some(Arc::new(artifacts.open_or(&db.artifacts_default())?)),
            };
            let store = Arc::new(open_store(&db).await?);
            let listener = tokio::net::TcpListener::bind(addr).await?;
            eprintln!(
                "Orrery API and leaderboard at http://{}/ (database {db}; {auth_line})",
                listener.local_addr()?,
            );
            orrery_api::serve(store, options, listener, orrery_api::shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Plot { experiment, out } => {
            let store = open_store(&db).await?;
            let exp = match find_experiment(&store, &db, &experiment).await? {
                Ok(e) => e,
                Err(code) => return Ok(code),
            };
            let workload = match workload_of(&exp) {
                Ok(w) => workloads::of(w),
                Err(code) => return Ok(code),
            };
            let (board, analysis) = store.analysis(exp.id).await?;
            let charts = workload.charts(&board, &analysis);
            if charts.is_empty() {
                eprintln!(
                    "error: experiment {} \"{}\" has nothing to plot yet (it needs {})",
                    exp.id,
                    exp.name,
                    workload.charts_need()
                );
                return Ok(ExitCode::from(EXIT_INVALID));
            }
            std::fs::create_dir_all(&out)?;
            for (suffix, chart) in charts {
                let path = out.join(format!("{}-{suffix}.png", exp.name));
                plot::draw(&chart, &path)?;
                println!("wrote {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Report { workload, out } => {
            let store = open_store(&db).await?;
            let Some(report) = workloads::of(workload).report(&store, &out) else {
                eprintln!("error: the {workload} workload has no reproduction report");
                return Ok(ExitCode::from(EXIT_INVALID));
            };
            let written = report.await?;
            for p in written {
                println!("wrote {}", p.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Artifacts { cmd, artifacts } => {
            let store = open_store(&db).await?;
            let not_found = |e: &orrery_api::StoreError| {
                matches!(e, orrery_api::StoreError::NotFound(_)).then(|| {
                    eprintln!("error: {e} in {db}; name a trial by its id or as EXPERIMENT/INDEX (the index `orrery show EXPERIMENT` prints); `orrery artifacts ls TRIAL` lists its artifacts");
                    ExitCode::from(EXIT_INVALID)
                })
            };
            let (ArtifactsCmd::Ls { trial: which } | ArtifactsCmd::Get { trial: which, .. }) = &cmd;
            let trial = match artifacts::trial_id(&store, which).await {
                Ok(t) => t,
                Err(e) => return not_found(&e).ok_or(e).map_err(Into::into),
            };
            match cmd {
                ArtifactsCmd::Ls { .. } => {
                    let list = match store.artifacts(trial).await {
                        Ok(l) => l,
                        Err(e) => return not_found(&e).ok_or(e).map_err(Into::into),
                    };
                    if list.is_empty() {
                        println!("trial {trial} has no stored artifacts");
                    } else {
                        println!("{}", artifacts::table(&list));
                    }
                }
                ArtifactsCmd::Get { name, out, .. } => {
                    if let Err(e) = store.artifact(trial, &name).await {
                        return not_found(&e).ok_or(e).map_err(Into::into);
                    }
                    let storage = artifacts.open_or(&db.artifacts_default())?;
                    let file = artifacts::get(&store, &storage, trial, &name, out).await?;
                    println!("wrote {}", file.display());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Ls => {
            let store = open_store(&db).await?;
            let list = store.list_experiments().await?;
            if list.is_empty() {
                println!("no experiments in {}; run one with `orrery run SPEC`", db);
            } else {
                println!("{}", table::experiments(&list));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Show {
            experiment,
            top,
            json,
        } => {
            let store = open_store(&db).await?;
            let exp = match find_experiment(&store, &db, &experiment).await? {
                Ok(e) => e,
                Err(code) => return Ok(code),
            };
            let board = store.leaderboard(exp.id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&board)?);
            } else {
                let c = exp.counts;
                println!(
                    "experiment {} \"{}\" ({}): {}, {}/{} trials done ({} succeeded, {} diverged, {} failed, {} cancelled){}",
                    exp.id,
                    exp.name,
                    exp.workload,
                    exp.phase,
                    c.done(),
                    c.total,
                    c.succeeded,
                    c.diverged,
                    c.failed,
                    c.cancelled,
                    exp.message.map(|m| format!(": {m}")).unwrap_or_default()
                );
                print_results(&store, &board, top).await?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
