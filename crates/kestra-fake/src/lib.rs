//! An in-memory double of the Kestra REST API, following `shared/kestra-api.md` row by row:
//! flows (revisions, soft delete, validation, search), the KV store (Ion-like typing, TTL) and
//! namespace files (multipart upload, zip extraction, cascade delete), with tenants, basic and
//! bearer auth, both error formats (`JsonError` and `application/problem+json`), optional
//! persistence, and test hooks for fault injection and request counting.
//!
//! # In-process use
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use kestra_fake::{FakeConfig, spawn};
//!
//! let fake = spawn(FakeConfig::default()).await?; // 127.0.0.1 on a free port
//! let base = format!("{}/api/v1/main", fake.url()); // url() has no /api/v1
//! // ... drive the API at `base`, and the hooks at `{url}/__fake/...`
//! fake.shutdown().await?;
//! # Ok(())
//! # }
//! ```
//!
//! [`FakeConfig`] fields mirror the binary's flags: `listen`, `basic_auth`, `api_key`,
//! `legacy_root` (serve `/api/v1/...` as tenant `main`), `error_format`, `state_file`,
//! `test_hooks` (on by default in the library, off by default in the binary), `kestra_version`
//! (1.3 by default; 2.0 answers like the recorded Kestra 2.0.0 where the two differ),
//! `only_main_tenant` (answer like Kestra OSS about tenants).
//!
//! Flows are validated against the flow JSON schema of the version played (`schemas/`), with
//! Kestra's refusal texts; `REPLAY.md` tells how the double is checked against recorded
//! exchanges with real Kestra 1.3.31 and 2.0.0.
//!
//! # Test hooks (`/__fake/`, only when `test_hooks` is set; otherwise 404)
//!
//! | Hook | Body | Effect |
//! |---|---|---|
//! | `POST /__fake/latency` | `{"ms": 20, "route": "/api/v1/main/flows", "method": "GET"}` | delay matching API requests; `ms: 0` or no body clears |
//! | `POST /__fake/fail` | `{"count": 2, "status": 503, "route": ..., "method": ..., "retryAfter": 1}` | fail the next `count` matching requests (429/503 carry `Retry-After`); `count: 0` clears |
//! | `POST /__fake/down` | `{"seconds": 1.5, "mode": "refuse" \| "hang"}` | `refuse`: close the listener, rebind the same port after the window; `hang`: accept but never answer, then drop the connections |
//! | `GET /__fake/counters` | | `{"requests": [{"method", "route", "status", "count"}], "total"}` keyed by route template |
//! | `POST /__fake/counters/reset` | | zero the counters |
//! | `POST /__fake/reset` | | wipe all state, fault rules and counters |
//! | `GET /__fake/health` | | `{"status": "UP"}` |
//!
//! `route` matches as a prefix of the concrete request path. Hook requests are never counted.

#![forbid(unsafe_code)]

mod app;
mod auth;
mod config;
mod errors;
mod files;
mod filters;
mod flows;
mod hooks;
mod kv;
mod persist;
mod server;
mod store;

pub use config::{BasicAuth, BasicAuthParseError, ErrorFormat, FakeConfig, KestraVersion};
pub use server::{RunningFake, spawn};
