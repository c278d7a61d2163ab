//! `orrery-api`: the API server on its own (what a cluster deploys). `orrery serve` runs the same.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;

#[derive(Parser)]
#[command(name = "orrery-api", version, about = "Orrery's API server")]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "ORRERY_ADDR", default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Database URL (postgres://USER:PASSWORD@HOST:PORT/DB or sqlite://PATH?mode=rwc); overrides --db.
    #[arg(long, env = "ORRERY_DATABASE_URL")]
    database_url: Option<String>,
    /// SQLite database file.
    #[arg(long, env = "ORRERY_DB", default_value = ".orrery/orrery.db")]
    db: PathBuf,
    #[command(flatten)]
    access: orrery_api::auth::AccessArgs,
    #[command(flatten)]
    artifacts: orrery_api::artifacts::ArtifactArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        // Colours only on a terminal: a Pod's log (kubectl logs, a file) gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let args = Args::parse();
    let (auth, auth_line) = args.access.load()?;
    let store = match &args.database_url {
        Some(url) => orrery_api::Store::open(url).await?,
        None => orrery_api::Store::open_sqlite(&args.db).await?,
    };
    let beside_db = match &args.database_url {
        Some(_) => PathBuf::from(".orrery"),
        None => args.db.parent().map(PathBuf::from).unwrap_or_default(),
    };
    let artifacts = args.artifacts.open_or(&beside_db.join("artifacts"))?;
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    tracing::info!(
        "Orrery API listening on http://{}; {auth_line}; artifacts in {}",
        listener.local_addr()?,
        artifacts.location()
    );
    let options = orrery_api::Options {
        auth,
        logs: None,
        artifacts: Some(Arc::new(artifacts)),
    };
    orrery_api::serve(
        Arc::new(store),
        options,
        listener,
        orrery_api::shutdown_signal(),
    )
    .await?;
    Ok(())
}
