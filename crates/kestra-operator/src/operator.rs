//! Start-up: clients, the metrics server, the three kinds, shutdown on SIGTERM.

use std::sync::Arc;

use anyhow::Context as _;
use kube::runtime::events::{Recorder, Reporter};
use tokio::sync::watch;

use crate::adapters::{FlowAdapter, KeyValueAdapter, NamespaceFileAdapter};
use crate::config::{LogFormat, RunArgs};
use crate::engine::{EngineConfig, Shared, run_kind};
use crate::kestra::KestraClient;
use crate::metrics::Metrics;

pub fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn identity(args: &RunArgs) -> String {
    args.identity.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        format!(
            "{}-{}",
            if host.is_empty() {
                "kestra-operator"
            } else {
                &host
            },
            std::process::id()
        )
    })
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let metrics = Metrics::new();
    let kestra = KestraClient::new(args.client_config()?, metrics.clone())
        .context("Kestra client settings")?;
    let client = kube::Client::try_default()
        .await
        .context("connecting to Kubernetes")?;
    let identity = identity(&args);
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "kestra-operator".into(),
            instance: Some(identity.clone()),
        },
    );
    let shared = Arc::new(Shared {
        client: client.clone(),
        kestra,
        metrics,
        recorder,
        config: EngineConfig {
            resync_period: args.resync_period,
            min_backoff: args.min_backoff,
            max_backoff: args.max_backoff,
            concurrency: args.concurrency.max(1),
            namespaces: args
                .namespaces
                .iter()
                .filter(|n| !n.is_empty())
                .cloned()
                .collect(),
            status_refresh: std::time::Duration::from_secs(600),
        },
        ready_kinds: Default::default(),
    });

    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .with_context(|| format!("binding {}", args.metrics_addr))?;
    tracing::info!(address = %listener.local_addr()?, "serving /metrics, /healthz and /readyz");
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut server_stop = stop_rx.clone();
    let router = crate::server::router(shared.clone());
    let server = tokio::spawn(async move {
        let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
            let _ = server_stop.wait_for(|s| *s).await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "metrics server failed");
        }
    });
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing reconciles in flight");
        let _ = stop_tx.send(true);
    });

    tracing::info!(
        kestra = %args.kestra_url,
        tenant = %if args.legacy_api_root { "(legacy /api/v1 root)".to_string() } else { args.tenant.clone() },
        namespaces = ?args.namespaces,
        resync = ?args.resync_period,
        identity = %identity,
        "kestra-operator {} starting",
        env!("CARGO_PKG_VERSION")
    );
    tokio::join!(
        run_kind(shared.clone(), FlowAdapter::default(), stop_rx.clone()),
        run_kind(shared.clone(), KeyValueAdapter, stop_rx.clone()),
        run_kind(shared.clone(), NamespaceFileAdapter, stop_rx.clone()),
    );
    let _ = server.await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
