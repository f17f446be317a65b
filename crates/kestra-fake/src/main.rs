//! `kestra-fake`: the Kestra API double as a process, for the end-to-end tests and the demo.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Parser;
use kestra_fake::{BasicAuth, ErrorFormat, FakeConfig, KestraVersion};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// An in-memory double of the Kestra REST API.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on; port 0 picks a free port (see --port-file).
    #[arg(long, env = "KESTRA_FAKE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Write the bound port to this file once listening.
    #[arg(long, env = "KESTRA_FAKE_PORT_FILE")]
    port_file: Option<PathBuf>,
    /// Require HTTP basic auth with this `user:password`.
    #[arg(long, env = "KESTRA_FAKE_BASIC_AUTH", hide_env_values = true)]
    basic_auth: Option<BasicAuth>,
    /// Require (or also accept) `Authorization: Bearer <TOKEN>`.
    #[arg(long, env = "KESTRA_FAKE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Serve the tenant-less `/api/v1/...` root (tenant `main`).
    #[arg(long, env = "KESTRA_FAKE_LEGACY_ROOT")]
    legacy_root: bool,
    /// Error body format.
    #[arg(
        long,
        env = "KESTRA_FAKE_ERROR_FORMAT",
        value_enum,
        default_value = "json"
    )]
    error_format: ErrorFormat,
    /// Load state from this file and save it after each write.
    #[arg(long, env = "KESTRA_FAKE_STATE_FILE")]
    state_file: Option<PathBuf>,
    /// Serve the `/__fake/**` test hooks.
    #[arg(long, env = "KESTRA_FAKE_TEST_HOOKS")]
    test_hooks: bool,
    /// The Kestra line to answer like where 1.3 and 2.0 differ (KV listing, file names, legacy
    /// flow query parameters, ...). The default is 1.3 because 1.3 is the released line users
    /// run, while the 2.0 web layer (routing, content types, status mapping) was recorded from
    /// pre-release source.
    #[arg(
        long,
        env = "KESTRA_FAKE_KESTRA_VERSION",
        value_enum,
        default_value = "1.3"
    )]
    kestra_version: KestraVersion,
    /// Answer like Kestra OSS about tenants: refuse any tenant but `main` (400) and serve the
    /// tenant-less `/api/v1/...` root too. Without it, any tenant is served (as Kestra EE).
    #[arg(long, env = "KESTRA_FAKE_ONLY_MAIN_TENANT")]
    only_main_tenant: bool,
    /// Log line format (level from RUST_LOG, default info).
    #[arg(
        long,
        env = "KESTRA_FAKE_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging(args.log_format);
    if !args.listen.ip().is_loopback() {
        tracing::warn!(listen = %args.listen, "listening beyond loopback: this double has no real security");
    }
    let fake = kestra_fake::spawn(FakeConfig {
        listen: args.listen,
        basic_auth: args.basic_auth,
        api_key: args.api_key,
        legacy_root: args.legacy_root,
        error_format: args.error_format,
        state_file: args.state_file,
        test_hooks: args.test_hooks,
        kestra_version: args.kestra_version,
        only_main_tenant: args.only_main_tenant,
    })
    .await?;
    if let Some(path) = &args.port_file {
        write_port_file(path, fake.port())?;
    }
    wait_for_signal().await?;
    tracing::info!("shutting down");
    fake.shutdown().await
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Written whole then renamed, so a script polling for the file never reads a partial port.
fn write_port_file(path: &Path, port: u16) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, format!("{port}\n"))
        .with_context(|| format!("cannot write {}", path.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("cannot listen for SIGINT"),
        _ = term.recv() => Ok(()),
    }
}
