//! Start-up: clients, the metrics server, the three kinds, shutdown on SIGTERM.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context as _;
use kube::runtime::events::Reporter;
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;

use crate::adapters::{FlowAdapter, KeyValueAdapter, NamespaceFileAdapter};
use crate::config::{LogFormat, RunArgs};
use crate::engine::{EngineConfig, EventRecorder, Shared, run_kind};
use crate::instances::Instances;
use crate::instances::{InstanceConfig, run_instances};
use crate::kestra::KestraClient;
use crate::metrics::Metrics;

pub fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs go to stderr; colours only for a terminal, so files and collectors get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
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
    // Flips when the leader Lease is lost: every Kestra call in flight stops at once.
    let (lease_lost_tx, lease_lost) = watch::channel(false);
    let kestra = KestraClient::new(args.client_config()?, metrics.clone())
        .context("Kestra client settings")?
        .fenced_by(lease_lost.clone());
    detect_kestra(&kestra, &metrics).await;
    let instances = Instances::new(kestra);
    let client = kube::Client::try_default()
        .await
        .context("connecting to Kubernetes")?;
    let identity = identity(&args);
    let recorder = EventRecorder::new(
        client.clone(),
        Reporter {
            controller: "kestra-operator".into(),
            instance: Some(identity.clone()),
        },
    );
    let shared = Arc::new(Shared {
        client: client.clone(),
        instances,
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
        standby: Default::default(),
        leading: Default::default(),
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
    // Every replica serves the webhook, leader or not.
    let webhook = match args.webhook() {
        Some(config) => {
            let checker = Arc::new(crate::webhook::Checker {
                client: client.clone(),
                instances: shared.instances.clone(),
                kestra_timeout: config.kestra_timeout,
            });
            Some(crate::webhook::server::start(config, checker, stop_rx.clone()).await?)
        }
        None => None,
    };
    // Every replica reads the instances (for the webhook, and to be ready to lead); only the
    // leader writes their status.
    let instance_controller = tokio::spawn(run_instances(
        shared.clone(),
        InstanceConfig {
            operator_namespace: args.operator_namespace(),
            check_period: args.instance_check_period,
            manage_cluster_instances: args
                .manage_cluster_instances
                .unwrap_or(shared.config.namespaces.is_empty()),
        },
        lease_lost,
        stop_rx.clone(),
    ));
    let stop_tx_for_server = stop_tx.clone();
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
    let result = if args.leader_election {
        lead_then_run(
            &args,
            &identity,
            shared.clone(),
            stop_rx.clone(),
            lease_lost_tx,
        )
        .await
    } else {
        shared.metrics.leader.set(1);
        run_controllers(shared.clone(), stop_rx.clone()).await;
        Ok(())
    };
    shared.metrics.leader.set(0);
    // The controllers are done: stop the metrics server too (also after a lost lease).
    let _ = stop_tx_for_server.send(true);
    let _ = server.await;
    if let Some(webhook) = webhook {
        let _ = webhook.await;
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), instance_controller).await;
    tracing::info!("stopped");
    result
}

async fn run_controllers(shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    shared.leading.store(true, Ordering::SeqCst);
    tokio::join!(
        run_kind(shared.clone(), FlowAdapter::default(), stop.clone()),
        run_kind(shared.clone(), KeyValueAdapter::default(), stop.clone()),
        run_kind(
            shared.clone(),
            NamespaceFileAdapter::default(),
            stop.clone()
        ),
    );
    shared.leading.store(false, Ordering::SeqCst);
}

/// Wait for the Lease, reconcile while holding it, and stop (for a restart) when it is lost,
/// so that two replicas never write at once.
async fn lead_then_run(
    args: &RunArgs,
    identity: &str,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    lease_lost: watch::Sender<bool>,
) -> anyhow::Result<()> {
    let namespace = args
        .leader_election_namespace
        .clone()
        .or_else(crate::config::pod_namespace)
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".to_string());
    let manager = LeaseManagerBuilder::new(shared.client.clone(), &args.leader_election_lease)
        .with_namespace(&namespace)
        .with_identity(identity)
        .with_duration(LEASE_SECONDS)
        .with_grace(LEASE_GRACE_SECONDS)
        .build()
        .await
        .context("setting up leader election")?;
    shared.standby.store(true, Ordering::SeqCst);
    let (mut leader, lease_task) = manager.watch().await;
    tracing::info!(lease = %format!("{namespace}/{}", args.leader_election_lease), "waiting to become the leader");
    let acquired = tokio::select! {
        acquired = leader.wait_for(|is_leader| *is_leader) => Some(acquired.map(|_| ())),
        _ = stop.wait_for(|s| *s) => None,
    };
    match acquired {
        Some(result) => result.context("leader election stopped")?,
        None => {
            drop(leader);
            let _ = lease_task.await;
            return Ok(());
        }
    }
    tracing::info!("became the leader: reconciling");
    shared.standby.store(false, Ordering::SeqCst);
    shared.metrics.leader.set(1);
    let (controllers_stop_tx, controllers_stop) = watch::channel(false);
    let mut lost_watch = leader.clone();
    let lost = tokio::spawn(async move {
        tokio::select! {
            _ = lost_watch.wait_for(|is_leader| !*is_leader) => {
                tracing::error!("lost the lease: stopping so that another replica can take over");
                // Before anything else: no Kestra call of this replica may land after this.
                let _ = lease_lost.send(true);
                let _ = controllers_stop_tx.send(true);
                true
            }
            _ = stop.wait_for(|s| *s) => {
                let _ = controllers_stop_tx.send(true);
                false
            }
        }
    });
    run_controllers(shared.clone(), controllers_stop).await;
    let lost = lost.await.unwrap_or(false);
    // Closing the channel makes the lease manager release the Lease for a fast hand-over.
    drop(leader);
    match tokio::time::timeout(std::time::Duration::from_secs(5), lease_task).await {
        Ok(Ok(Ok(_))) => tracing::info!("released the lease"),
        other => tracing::warn!(?other, "could not confirm the lease release"),
    }
    if lost {
        anyhow::bail!("lost the leader lease");
    }
    Ok(())
}

/// Ask Kestra its version and edition (`/api/v1/configs`, open without credentials), log it and
/// expose it. The routes and name rules that differ between versions follow from it; without an
/// answer the operator takes the conservative choice for each and says so.
async fn detect_kestra(kestra: &KestraClient, metrics: &Metrics) {
    const ATTEMPTS: u32 = 5;
    for attempt in 1..=ATTEMPTS {
        match kestra.server_info().await {
            Ok(info) => {
                tracing::info!(version = %info.version, edition = info.edition.as_deref().unwrap_or("unknown"), "Kestra answered");
                metrics.set_kestra_info(
                    crate::metrics::DEFAULT_INSTANCE_LABEL,
                    &info.version,
                    info.edition.as_deref().unwrap_or("unknown"),
                );
                kestra.set_server_info(info);
                return;
            }
            // Only an outage is worth waiting for: a Kestra without the route will not grow it.
            Err(error) if attempt < ATTEMPTS && error.is_transient() => {
                tracing::warn!(%error, attempt, "could not read Kestra's version yet");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Err(error) => {
                tracing::warn!(%error, "Kestra's version is unknown: using the most conservative routes and name rules");
                metrics.set_kestra_info(
                    crate::metrics::DEFAULT_INSTANCE_LABEL,
                    "unknown",
                    "unknown",
                );
            }
        }
    }
}

/// Lease timing: a dead leader is replaced within about `LEASE_SECONDS`.
const LEASE_SECONDS: u64 = 15;
const LEASE_GRACE_SECONDS: u64 = 5;

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
