//! The HTTPS listener, the `/validate` route and the certificate upkeep.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use k8s_openapi::jiff::Timestamp;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::review::AdmissionReview;
use super::tls::{self, CurrentCert};
use super::{ANSWER_WITHIN, CertSource, Checker, Verdict, WebhookConfig, ca_bundle};

/// How often the certificate and the CA bundle are looked at.
const UPKEEP_EVERY: Duration = Duration::from_secs(60);
/// A TLS handshake taking longer is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub fn router(checker: Arc<Checker>) -> Router {
    Router::new()
        .route("/validate", post(validate))
        .with_state(checker)
}

async fn validate(
    State(checker): State<Arc<Checker>>,
    Json(review): Json<AdmissionReview>,
) -> Response {
    let Some(request) = review.request else {
        return (
            StatusCode::BAD_REQUEST,
            "an AdmissionReview without a request",
        )
            .into_response();
    };
    let verdict = match tokio::time::timeout(ANSWER_WITHIN, checker.review(&request)).await {
        Ok(verdict) => verdict,
        Err(_) => Verdict::Allowed {
            warnings: vec![format!(
                "not checked at apply time (no verdict within {ANSWER_WITHIN:?}): the operator reports in status"
            )],
        },
    };
    tracing::debug!(kind = %request.kind.kind, name = ?request.name, dry_run = ?request.dry_run, ?verdict, "admission review");
    Json(AdmissionReview::answer(verdict.into_response(request.uid))).into_response()
}

/// Bind, set up the certificate (and the CA bundle), and serve until `stop`.
pub async fn start(
    config: WebhookConfig,
    checker: Arc<Checker>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<JoinHandle<()>> {
    let (current, upkeep) = match &config.cert {
        CertSource::Directory(dir) => {
            let key = tls::read_dir(dir)?;
            let current = CurrentCert::new(key);
            let upkeep = reload_from(dir.clone(), current.clone(), stop.clone());
            (current, upkeep)
        }
        CertSource::Generated { names } => {
            let issued = tls::issue(names, Timestamp::now())?;
            let current = CurrentCert::new(issued.key.clone());
            let upkeep = keep_generated(
                names.clone(),
                issued,
                current.clone(),
                config.configuration.clone(),
                checker.client.clone(),
                stop.clone(),
            );
            (current, upkeep)
        }
    };
    let listener = TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("binding the webhook to {}", config.addr))?;
    tracing::info!(webhook_address = %listener.local_addr()?, "serving the admission webhook (HTTPS, /validate)");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(current.server_config()));
    let service = TowerToHyperService::new(router(checker));
    Ok(tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stop.wait_for(|s| *s) => break,
            };
            let tcp = match accepted {
                Ok((tcp, _)) => tcp,
                Err(error) => {
                    tracing::warn!(%error, "webhook accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (acceptor, service) = (acceptor.clone(), service.clone());
            tokio::spawn(async move {
                let Ok(Ok(tls)) =
                    tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                else {
                    return;
                };
                let connection = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .serve_connection(TokioIo::new(tls), service);
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "webhook connection ended");
                }
            });
        }
        upkeep.abort();
    }))
}

/// Re-read a mounted certificate (cert-manager renews the Secret in place).
fn reload_from(
    dir: std::path::PathBuf,
    current: Arc<CurrentCert>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(UPKEEP_EVERY) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            match tls::read_dir(&dir) {
                Ok(key) => current.replace(key),
                Err(error) => tracing::warn!(%error, "keeping the webhook certificate in use"),
            }
        }
    })
}

/// Keep the CA bundle trusting this replica's CA, and replace the certificate before it expires
/// (the new CA enters the bundle before the new certificate is served).
fn keep_generated(
    names: Vec<String>,
    mut issued: tls::Issued,
    current: Arc<CurrentCert>,
    configuration: Option<String>,
    client: kube::Client,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut previous: Option<String> = None;
        loop {
            if tls::due(issued.not_after, Timestamp::now()) {
                match tls::issue(&names, Timestamp::now()) {
                    Ok(next) => {
                        previous = Some(std::mem::replace(&mut issued, next).ca_pem);
                    }
                    Err(error) => {
                        tracing::error!(%error, "could not renew the webhook certificate")
                    }
                }
            }
            let trusted = match &configuration {
                Some(name) => {
                    match ca_bundle::ensure(&client, name, &issued.ca_pem, previous.as_deref())
                        .await
                    {
                        Ok(changed) => {
                            if changed {
                                tracing::info!(configuration = %name, "webhook CA bundle updated");
                            }
                            true
                        }
                        Err(error) => {
                            tracing::warn!(%error, "could not update the webhook CA bundle");
                            false
                        }
                    }
                }
                None => true,
            };
            // Serve a renewed certificate only once the API server trusts its CA.
            if trusted {
                current.replace(issued.key.clone());
            }
            tokio::select! {
                () = tokio::time::sleep(UPKEEP_EVERY) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    })
}
