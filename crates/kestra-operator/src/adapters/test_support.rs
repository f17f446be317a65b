//! Test support for the adapters: a private Kestra double with a client, and its counters.

use std::time::Duration;

use serde_json::Value;

use crate::kestra::{Auth, ClientConfig, KestraClient};
use crate::metrics::Metrics;

/// A double of its own and a client for its `main` tenant (no retries).
pub async fn fake_and_client() -> (kestra_fake::RunningFake, KestraClient) {
    fake_and_client_of(kestra_fake::KestraVersion::default()).await
}

/// The same, with the double playing `version`.
pub async fn fake_and_client_of(
    version: kestra_fake::KestraVersion,
) -> (kestra_fake::RunningFake, KestraClient) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fake = kestra_fake::spawn(kestra_fake::FakeConfig {
        kestra_version: version,
        ..kestra_fake::FakeConfig::default()
    })
    .await
    .unwrap();
    let kestra = KestraClient::new(
        ClientConfig {
            url: fake.url(),
            tenant: Some("main".into()),
            auth: Auth::None,
            timeout: Duration::from_secs(5),
            ca: None,
            attempts: 1,
            rate_limit: None,
        },
        Metrics::new(),
    )
    .unwrap();
    (fake, kestra)
}

/// GET requests the double answered on routes ending with `route_suffix`.
pub async fn gets(url: &str, route_suffix: &str) -> u64 {
    let counters: Value = reqwest::get(format!("{url}/__fake/counters"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    counters["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["method"] == "GET" && c["route"].as_str().unwrap().ends_with(route_suffix))
        .map(|c| c["count"].as_u64().unwrap())
        .sum()
}

/// A client of `url` that is never expected to connect (no retries).
pub fn client(url: &str) -> KestraClient {
    KestraClient::new(
        ClientConfig {
            url: url.into(),
            tenant: Some("main".into()),
            auth: Auth::None,
            timeout: Duration::from_secs(1),
            ca: None,
            attempts: 1,
            rate_limit: None,
        },
        Metrics::new(),
    )
    .unwrap()
}
