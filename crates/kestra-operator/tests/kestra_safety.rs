//! The Kestra client against the double: no request reaches another object than the one it
//! names, whatever the name (literal routes, recursive deletes), and a lost lease stops calls.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test"
)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use kestra_fake::{FakeConfig, KestraVersion, RunningFake};
use kestra_operator::kestra::{Auth, ClientConfig, KestraClient, KestraError, KvWrite};
use kestra_operator::metrics::Metrics;

async fn fake_and_client(version: KestraVersion) -> (RunningFake, KestraClient) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fake = kestra_fake::spawn(FakeConfig {
        kestra_version: version,
        ..FakeConfig::default()
    })
    .await
    .expect("the double starts");
    let kestra = KestraClient::new(
        ClientConfig {
            url: fake.url(),
            tenant: Some("main".into()),
            auth: Auth::None,
            timeout: Duration::from_secs(10),
            ca: None,
            attempts: 1,
            rate_limit: None,
        },
        Metrics::new(),
    )
    .expect("client config");
    (fake, kestra)
}

fn flow_yaml(namespace: &str, id: &str) -> String {
    format!(
        "id: {id}\nnamespace: {namespace}\ntasks:\n  - id: hello\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n"
    )
}

const MAIN: Option<&str> = Some("main");

#[tokio::test]
async fn deleting_a_flow_named_like_a_bulk_route_deletes_only_that_flow() {
    for version in [KestraVersion::V1_3, KestraVersion::V2_0] {
        let (fake, kestra) = fake_and_client(version).await;
        for (ns, id) in [
            ("delete", "by-query"),
            ("delete", "by-ids"),
            ("company.team", "a"),
            ("other.team", "b"),
        ] {
            kestra
                .create_flow(MAIN, ns, id, &flow_yaml(ns, id))
                .await
                .unwrap();
        }
        kestra
            .delete_flow(MAIN, "delete", "by-query")
            .await
            .unwrap();
        kestra.delete_flow(MAIN, "delete", "by-ids").await.unwrap();
        assert!(
            kestra
                .get_flow(MAIN, "delete", "by-query")
                .await
                .unwrap()
                .is_none(),
            "{version:?}: the flow itself is deleted"
        );
        for (ns, id) in [("company.team", "a"), ("other.team", "b")] {
            assert!(
                kestra.get_flow(MAIN, ns, id).await.unwrap().is_some(),
                "{version:?}: {ns}/{id} must survive the delete of another flow"
            );
        }
        // Deleting it again, or a flow that never existed, is done, not an error.
        kestra
            .delete_flow(MAIN, "delete", "by-query")
            .await
            .unwrap();
        kestra
            .delete_flow(MAIN, "company.team", "nope")
            .await
            .unwrap();
        fake.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn a_read_answered_by_another_route_is_not_taken_for_the_object() {
    let (fake, kestra) = fake_and_client(KestraVersion::V1_3).await;
    kestra
        .create_flow(MAIN, "company.team", "a", &flow_yaml("company.team", "a"))
        .await
        .unwrap();
    // `GET flows/export/by-query` is the tenant's export (a zip), not a flow.
    let read = kestra.get_flow(MAIN, "export", "by-query").await;
    assert!(read.is_err(), "an export is not a flow: {read:?}");
    // `GET flows/search` answers a page of the whole tenant, not the namespace `search`.
    let listing = kestra.list_flows(MAIN, "search").await;
    assert!(
        listing.is_err(),
        "a search page is not a listing: {listing:?}"
    );
    // `GET .../kv/inheritance` is the inherited listing, not the key.
    let write = KvWrite {
        body: "\"parent\"",
        ttl: None,
        description: None,
    };
    kestra.put_kv(MAIN, "company", "p", write).await.unwrap();
    kestra
        .put_kv(MAIN, "company.team", "inheritance", write)
        .await
        .unwrap();
    let read = kestra.get_kv(MAIN, "company.team", "inheritance").await;
    assert!(
        matches!(read, Err(KestraError::Decode(_))),
        "a listing is not an entry: {read:?}"
    );
    fake.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_file_delete_never_removes_a_directory() {
    let (fake, kestra) = fake_and_client(KestraVersion::V1_3).await;
    let ns = "company.team";
    kestra
        .upload_file(MAIN, ns, "/x/inner.txt", Bytes::from_static(b"keep me"))
        .await
        .unwrap();
    let refused = kestra.delete_file(MAIN, ns, "/x").await;
    assert!(refused.is_err(), "{refused:?}");
    let refused = kestra.delete_file(MAIN, ns, "/").await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(
        kestra.get_file(MAIN, ns, "/x/inner.txt").await.unwrap(),
        Some(Bytes::from_static(b"keep me"))
    );
    kestra.delete_file(MAIN, ns, "/x/inner.txt").await.unwrap();
    assert_eq!(
        kestra.get_file(MAIN, ns, "/x/inner.txt").await.unwrap(),
        None
    );
    // A missing file is deleted already.
    kestra.delete_file(MAIN, ns, "/missing.txt").await.unwrap();
    fake.shutdown().await.unwrap();
}

#[tokio::test]
async fn losing_the_lease_abandons_a_call_in_flight() {
    let (fake, kestra) = fake_and_client(KestraVersion::V1_3).await;
    let (lost_tx, lost) = tokio::sync::watch::channel(false);
    let kestra = kestra.fenced_by(lost);
    reqwest::Client::new()
        .post(format!("{}/__fake/latency", fake.url()))
        .json(&serde_json::json!({"ms": 5000}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let started = Instant::now();
    let call = tokio::spawn({
        let kestra = kestra.clone();
        async move { kestra.list_flows(MAIN, "company.team").await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    lost_tx.send(true).unwrap();
    let result = call.await.unwrap();
    assert!(matches!(result, Err(KestraError::Fenced)), "{result:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // And no new call starts.
    let result = kestra.get_flow(MAIN, "company.team", "a").await;
    assert!(matches!(result, Err(KestraError::Fenced)), "{result:?}");
    fake.shutdown().await.unwrap();
}

#[tokio::test]
async fn kestra_says_its_version() {
    for (version, expected) in [(KestraVersion::V1_3, (1, 3)), (KestraVersion::V2_0, (2, 0))] {
        let (fake, kestra) = fake_and_client(version).await;
        let info = kestra.server_info().await.unwrap();
        kestra.set_server_info(info);
        assert_eq!(kestra.dialect().version, Some(expected));
        assert_eq!(
            kestra.dialect().folds_space_and_plus_in_file_names(),
            expected.0 < 2
        );
        fake.shutdown().await.unwrap();
    }
}
