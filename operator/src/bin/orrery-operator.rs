//! `orrery-operator`: the Experiment and Trial controllers, with leader election, `/metrics` and
//! `/healthz`. Watches one namespace (least privilege: a namespaced Role is all it needs).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::watcher;
use kube::runtime::{reflector, Controller, WatchStreamExt};
use kube::Client;

use orrery_core::client::ApiClient;
use orrery_operator::context::{Context, Settings};
use orrery_operator::crd::{Experiment, Trial};
use orrery_operator::leader::LeaderElection;
use orrery_operator::pods::LABEL_TRIAL;
use orrery_operator::telemetry::{self, Metrics};
use orrery_operator::{experiment_controller, trial_controller};

#[derive(Parser, Debug)]
#[command(version, about = "Runs Orrery Experiments on Kubernetes as Trial Pods")]
struct Args {
    /// The Orrery API as the operator reaches it.
    #[arg(long, env = "ORRERY_API_URL")]
    api_url: String,
    /// The API's admin token: the operator registers experiments, reports states and mints each
    /// trial's worker token with it.
    #[arg(long, env = "ORRERY_API_TOKEN", hide_env_values = true)]
    api_token: String,
    /// The Orrery API as worker Pods reach it (default: --api-url).
    #[arg(long, env = "ORRERY_WORKER_API_URL")]
    worker_api_url: Option<String>,
    /// Worker image for experiments whose spec names none.
    #[arg(
        long,
        env = "ORRERY_WORKER_IMAGE",
        default_value = "orrery-worker:latest"
    )]
    worker_image: String,
    /// Namespace to watch (default: POD_NAMESPACE, else the kubeconfig's namespace).
    #[arg(long, env = "POD_NAMESPACE")]
    namespace: Option<String>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "ORRERY_OPERATOR_LISTEN", default_value = "0.0.0.0:8081")]
    listen: String,
    /// Take a Lease before acting, so several replicas can run (one leads).
    #[arg(long, env = "ORRERY_LEADER_ELECTION")]
    leader_election: bool,
    #[arg(long, default_value = "orrery-operator")]
    lease_name: String,
    /// This replica's name in the lease (default: POD_NAME, else the host name and pid).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Seconds a lease stays valid unrenewed.
    #[arg(long, env = "ORRERY_LEASE_SECONDS", default_value_t = 15)]
    lease_seconds: u64,
    /// nodeSelector (JSON object) for GPU trials whose spec sets none.
    #[arg(long, env = "ORRERY_GPU_NODE_SELECTOR", default_value = "{}")]
    gpu_node_selector: String,
    /// Tolerations (JSON list) for GPU trials whose spec sets none.
    #[arg(long, env = "ORRERY_GPU_TOLERATIONS", default_value = "[]")]
    gpu_tolerations: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube=warn".into()),
        )
        // Colours only on a terminal: a Pod's log (kubectl logs, a file) gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let args = Args::parse();
    let gpu_node_selector = serde_json::from_str(&args.gpu_node_selector).map_err(|e| {
        anyhow::anyhow!("--gpu-node-selector: expected a JSON object of strings: {e}")
    })?;
    let gpu_tolerations = serde_json::from_str(&args.gpu_tolerations).map_err(|e| {
        anyhow::anyhow!("--gpu-tolerations: expected a JSON list of tolerations: {e}")
    })?;
    let client = Client::try_default().await?;
    let ns = args
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let metrics = Arc::new(Metrics::default());

    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    tracing::info!(listen = %args.listen, "serving /metrics, /healthz and /readyz");
    let router = telemetry::router(metrics.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "the metrics server stopped");
        }
    });

    let identity = args.identity.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "orrery-operator".into());
        format!("{host}-{}", std::process::id())
    });
    if args.leader_election {
        let election = LeaderElection::new(
            Api::<Lease>::namespaced(client.clone(), &ns),
            &args.lease_name,
            &identity,
            Duration::from_secs(args.lease_seconds),
        );
        election.acquire().await;
        tracing::info!(%identity, "leading");
        tokio::spawn(election.keep_renewing());
    }
    metrics.leader.store(true, Ordering::Relaxed);

    let experiments: Api<Experiment> = Api::namespaced(client.clone(), &ns);
    let trials: Api<Trial> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    // One cache per kind, fed by the same watch that wakes the owner's controller, so a
    // reconcile never sees an older cache than the event that woke it.
    let (trial_store, trial_writer) = reflector::store::<Trial>();
    let trial_events = watcher(trials.clone(), watcher::Config::default())
        .default_backoff()
        .reflect(trial_writer)
        .touched_objects();
    let (pod_store, pod_writer) = reflector::store::<Pod>();
    let pod_events = watcher(pods, watcher::Config::default().labels(LABEL_TRIAL))
        .default_backoff()
        .reflect(pod_writer)
        .touched_objects();

    let ctx = Arc::new(Context {
        memo: Default::default(),
        client: client.clone(),
        api: ApiClient::new(&args.api_url, Some(args.api_token.clone())),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "orrery-operator".into(),
                instance: Some(identity.clone()),
            },
        ),
        trials: trial_store,
        pods: pod_store,
        settings: Settings {
            worker_image: args.worker_image.clone(),
            worker_api_url: args.worker_api_url.clone().unwrap_or(args.api_url.clone()),
            gpu_node_selector,
            gpu_tolerations,
        },
        metrics,
    });
    tracing::info!(namespace = %ns, api = %args.api_url, "starting the Experiment and Trial controllers");

    let experiment_ctl = Controller::new(experiments, watcher::Config::default())
        .owns_stream(trial_events)
        .shutdown_on_signal()
        .run(
            experiment_controller::reconcile,
            experiment_controller::error_policy,
            ctx.clone(),
        )
        .for_each(|_| async {});
    let trial_ctl = Controller::new(trials, watcher::Config::default())
        .owns_stream(pod_events)
        .shutdown_on_signal()
        .run(
            trial_controller::reconcile,
            trial_controller::error_policy,
            ctx.clone(),
        )
        .for_each(|_| async {});
    tokio::join!(experiment_ctl, trial_ctl);
    tracing::info!("stopped");
    Ok(())
}
