//! TLS to Kestra: a custom CA is trusted when given, an unknown certificate is refused, and an
//! https URL never falls back to plain HTTP.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test"
)]

use std::sync::Arc;
use std::time::Duration;

use kestra_operator::kestra::{
    Auth, CaBundle, ClientConfig, KestraClient, KestraError, Unavailability,
};
use kestra_operator::metrics::Metrics;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A one-purpose HTTPS server on 127.0.0.1 answering every request with an empty flow list.
async fn https_server(
    cert: rustls::pki_types::CertificateDer<'static>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> anyhow::Result<u16> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs = vec![cert];
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let body = "[]";
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    Ok(port)
}

fn client(url: String, ca_file: Option<std::path::PathBuf>) -> KestraClient {
    KestraClient::new(
        ClientConfig {
            url,
            tenant: Some("main".into()),
            auth: Auth::Bearer("token-for-tls-test".into()),
            timeout: Duration::from_secs(5),
            ca: ca_file.map(|path| CaBundle::from_file(&path).unwrap()),
            attempts: 1,
            rate_limit: None,
        },
        Metrics::new(),
    )
    .expect("client config")
}

#[tokio::test]
async fn trusts_a_custom_ca_and_refuses_an_unknown_certificate() -> anyhow::Result<()> {
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key)?;
    let ca_issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server_key = rcgen::KeyPair::generate()?;
    let server_params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])?;
    let server_cert = server_params.signed_by(&server_key, &ca_issuer)?;
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into());
    let port = https_server(server_cert.der().clone(), key).await?;

    let dir = std::env::temp_dir().join(format!("kestra-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem())?;
    let url = format!("https://127.0.0.1:{port}");

    let trusted = client(url.clone(), Some(ca_file));
    let flows = trusted.list_flows(Some("main"), "company.team").await?;
    assert!(flows.is_empty());

    let untrusted = client(url, None);
    match untrusted.list_flows(Some("main"), "company.team").await {
        Err(KestraError::Unavailable { what, message }) => {
            assert!(message.to_lowercase().contains("certificate"), "{message}");
            // Said as such: status reads TlsFailed, not an outage.
            assert_eq!(what, Unavailability::Tls, "{message}");
            assert!(
                !message.contains("token-for-tls-test"),
                "the token leaked into an error"
            );
        }
        other => panic!("an unknown CA must be refused, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn https_never_downgrades_to_plain_http() -> anyhow::Result<()> {
    // A plain-HTTP server behind an https URL: the TLS handshake fails, nothing is sent in clear.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let seen = Arc::new(tokio::sync::Mutex::new(Vec::<u8>::new()));
    let seen_by_server = seen.clone();
    tokio::spawn(async move {
        if let Ok((mut tcp, _)) = listener.accept().await {
            let mut buf = vec![0u8; 4096];
            if let Ok(n) = tcp.read(&mut buf).await {
                seen_by_server.lock().await.extend_from_slice(&buf[..n]);
            }
            let _ = tcp
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n[]")
                .await;
        }
    });
    let result = client(format!("https://127.0.0.1:{port}"), None)
        .list_flows(Some("main"), "company.team")
        .await;
    assert!(
        result.is_err(),
        "an https URL answered by plain HTTP must fail"
    );
    let seen = seen.lock().await;
    assert!(
        !String::from_utf8_lossy(&seen).contains("token-for-tls-test"),
        "the credential crossed the wire in clear"
    );
    Ok(())
}
