//! `/metrics`, `/healthz` and `/readyz`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::engine::Shared;

/// Number of kinds whose caches must be synced before the operator is ready.
pub const KINDS: usize = 3;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(shared)
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    match shared.metrics.encode() {
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn readyz(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let ready = shared.ready_kinds.load(Ordering::SeqCst);
    if shared.standby.load(Ordering::SeqCst) {
        (
            StatusCode::OK,
            "standby: waiting for the leader lease".to_string(),
        )
    } else if ready >= KINDS {
        (StatusCode::OK, "ok".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("caches synced for {ready} of {KINDS} kinds"),
        )
    }
}
