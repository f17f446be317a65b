//! Command line and environment: the Enterprise operator's variable names work unchanged.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::kestra::{Auth, ClientConfig, KestraError};

#[derive(Parser, Debug)]
#[command(
    name = "kestra-operator",
    version,
    about = "Kestra flows, key-value entries and namespace files as Kubernetes resources"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the operator.
    Run(Box<RunArgs>),
    /// Print the CustomResourceDefinitions as YAML.
    Crds,
    /// Print the version.
    Version,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Clone)]
pub struct RunArgs {
    /// Kestra's root URL, e.g. http://kestra:8080 (a trailing /api/v1 is accepted).
    #[arg(long, env = "KESTRA_API_URL")]
    pub kestra_url: String,
    /// Kestra API token, sent as `Authorization: Bearer`.
    #[arg(long, env = "KESTRA_API_API_KEY", hide_env_values = true)]
    pub kestra_api_key: Option<String>,
    /// Kestra basic auth as `user:password`.
    #[arg(long, env = "KESTRA_API_BASIC_AUTH", hide_env_values = true)]
    pub kestra_basic_auth: Option<String>,
    /// File holding the API token (e.g. a mounted Secret); read at start.
    #[arg(long, env = "KESTRA_API_API_KEY_FILE")]
    pub kestra_api_key_file: Option<PathBuf>,
    /// File holding `user:password`; read at start.
    #[arg(long, env = "KESTRA_API_BASIC_AUTH_FILE")]
    pub kestra_basic_auth_file: Option<PathBuf>,
    /// Default Kestra tenant for resources without spec.tenant.
    #[arg(long, env = "KESTRA_TENANT", default_value = "main")]
    pub tenant: String,
    /// Use the tenant-less /api/v1 root of Kestra before 0.23.
    #[arg(long, env = "KESTRA_LEGACY_API_ROOT")]
    pub legacy_api_root: bool,
    /// PEM file with CA certificates to trust for Kestra's HTTPS.
    #[arg(long, env = "KESTRA_CA_FILE")]
    pub kestra_ca_file: Option<PathBuf>,
    /// Timeout of one Kestra request.
    #[arg(long, env = "KESTRA_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub kestra_timeout: Duration,
    /// Requests per second to Kestra at most, all resources together (0: no limit).
    #[arg(long, env = "KESTRA_RATE_LIMIT", default_value_t = 0)]
    pub kestra_rate_limit: u32,
    /// Kubernetes namespaces to watch, comma-separated; all when empty.
    #[arg(long, env = "WATCH_NAMESPACES", value_delimiter = ',', num_args = 0..)]
    pub namespaces: Vec<String>,
    /// Default period between drift checks (a resource's spec.resyncPeriod overrides it).
    #[arg(long, env = "RESYNC_PERIOD", default_value = "5m", value_parser = parse_duration)]
    pub resync_period: Duration,
    /// Reconciles running at once, per kind.
    #[arg(long, env = "CONCURRENCY", default_value_t = 8)]
    pub concurrency: u16,
    /// First retry delay after a transient error; doubles up to --max-backoff.
    #[arg(long, env = "MIN_BACKOFF", default_value = "1s", value_parser = parse_duration)]
    pub min_backoff: Duration,
    #[arg(long, env = "MAX_BACKOFF", default_value = "5m", value_parser = parse_duration)]
    pub max_backoff: Duration,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info` or `kestra_operator=debug`.
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Elect a leader on a Lease so that only one replica reconciles.
    #[arg(long, env = "LEADER_ELECTION")]
    pub leader_election: bool,
    /// Namespace of the Lease (default: the pod's namespace, else `default`).
    #[arg(long, env = "LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    #[arg(long, env = "LEADER_ELECTION_LEASE", default_value = "kestra-operator")]
    pub leader_election_lease: String,
    /// The operator's own namespace, where the Secrets and ConfigMaps of ClusterKestraInstances
    /// live (default: the pod's namespace, else `default`).
    #[arg(long, env = "POD_NAMESPACE")]
    pub operator_namespace: Option<String>,
    /// How often each KestraInstance and ClusterKestraInstance is checked (its version, its
    /// credentials); a failing one sooner, with backoff.
    #[arg(long, env = "INSTANCE_CHECK_PERIOD", default_value = "1m", value_parser = parse_duration)]
    pub instance_check_period: Duration,
    /// Write the status and the finalizer of ClusterKestraInstances (default: only when
    /// watching all namespaces). An operator that sees some namespaces only cannot know every
    /// resource using a cluster instance, so it must not be the one that lets it be deleted.
    #[arg(long, env = "MANAGE_CLUSTER_INSTANCES")]
    pub manage_cluster_instances: Option<bool>,
    /// This replica's identity in the Lease (default: POD_NAME, else the host name and pid).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Serve the validating admission webhook (HTTPS) on this address; off when unset.
    #[arg(long, env = "WEBHOOK_ADDR")]
    pub webhook_addr: Option<SocketAddr>,
    /// Names the generated webhook certificate is valid for (DNS names or IP addresses),
    /// comma-separated, e.g. the Service's `NAME.NAMESPACE.svc`.
    #[arg(
        long,
        env = "WEBHOOK_CERT_NAMES",
        value_delimiter = ',',
        default_value = "localhost,127.0.0.1"
    )]
    pub webhook_cert_names: Vec<String>,
    /// Serve `tls.crt`/`tls.key` of this directory (e.g. from cert-manager) instead of a
    /// generated certificate.
    #[arg(long, env = "WEBHOOK_CERT_DIR")]
    pub webhook_cert_dir: Option<PathBuf>,
    /// ValidatingWebhookConfiguration whose caBundle trusts the generated certificate.
    #[arg(long, env = "WEBHOOK_CONFIGURATION")]
    pub webhook_configuration: Option<String>,
    /// Bound of Kestra's validation of a flow at admission (below the API server's 5 s).
    #[arg(long, env = "WEBHOOK_KESTRA_TIMEOUT", default_value = "3s", value_parser = parse_duration)]
    pub webhook_kestra_timeout: Duration,
}

impl std::fmt::Debug for RunArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunArgs")
            .field("kestra_url", &self.kestra_url)
            .field(
                "kestra_api_key",
                &self.kestra_api_key.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "kestra_basic_auth",
                &self.kestra_basic_auth.as_ref().map(|_| "<redacted>"),
            )
            .field("tenant", &self.tenant)
            .field("legacy_api_root", &self.legacy_api_root)
            .field("namespaces", &self.namespaces)
            .field("resync_period", &self.resync_period)
            .finish_non_exhaustive()
    }
}

impl RunArgs {
    /// The operator's namespace: the flag, else the pod's (its service account's), else `default`.
    pub fn operator_namespace(&self) -> String {
        self.operator_namespace
            .clone()
            .or_else(pod_namespace)
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".to_string())
    }

    /// The webhook's settings, when it is on.
    pub fn webhook(&self) -> Option<crate::webhook::WebhookConfig> {
        use crate::webhook::{ANSWER_WITHIN, CertSource, WebhookConfig};
        let addr = self.webhook_addr?;
        let cert = match &self.webhook_cert_dir {
            Some(dir) => CertSource::Directory(dir.clone()),
            None => CertSource::Generated {
                names: self
                    .webhook_cert_names
                    .iter()
                    .filter(|n| !n.is_empty())
                    .cloned()
                    .collect(),
            },
        };
        Some(WebhookConfig {
            addr,
            cert,
            configuration: self.webhook_configuration.clone().filter(|n| !n.is_empty()),
            kestra_timeout: self.webhook_kestra_timeout.min(ANSWER_WITHIN),
        })
    }

    /// The Kestra client settings, with credentials from values or files.
    pub fn client_config(&self) -> Result<ClientConfig, KestraError> {
        let read = |path: &PathBuf| {
            std::fs::read_to_string(path)
                .map(|s| s.trim().to_string())
                .map_err(|e| KestraError::Config(format!("cannot read {}: {e}", path.display())))
        };
        let api_key = match (&self.kestra_api_key, &self.kestra_api_key_file) {
            (Some(k), _) if !k.is_empty() => Some(k.clone()),
            (_, Some(path)) => Some(read(path)?),
            _ => None,
        };
        let basic = match (&self.kestra_basic_auth, &self.kestra_basic_auth_file) {
            (Some(b), _) if !b.is_empty() => Some(b.clone()),
            (_, Some(path)) => Some(read(path)?),
            _ => None,
        };
        let auth = match (api_key, basic) {
            (Some(key), _) => Auth::Bearer(key.into()),
            (None, Some(basic)) => Auth::basic(&basic)?,
            (None, None) => Auth::None,
        };
        Ok(ClientConfig {
            url: self.kestra_url.clone(),
            tenant: (!self.legacy_api_root).then(|| self.tenant.clone()),
            auth,
            timeout: self.kestra_timeout,
            ca: self
                .kestra_ca_file
                .as_deref()
                .map(crate::kestra::CaBundle::from_file)
                .transpose()?,
            attempts: 3,
            rate_limit: std::num::NonZeroU32::new(self.kestra_rate_limit),
        })
    }
}

/// The namespace of the pod this runs in, from its service account.
pub fn pod_namespace() -> Option<String> {
    std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace").ok()
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::engine::read_period(text)
        .map_err(|why| format!("{text:?} is not a duration such as 30s, 5m or 1h: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> RunArgs {
        let mut argv = vec!["kestra-operator", "run"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).expect("valid args").command {
            Command::Run(args) => *args,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn api_key_wins_over_basic_auth_and_is_redacted() {
        let args = parse(&[
            "--kestra-url",
            "http://k",
            "--kestra-api-key",
            "tok",
            "--kestra-basic-auth",
            "u:p",
        ]);
        assert_eq!(
            args.client_config().unwrap().auth,
            Auth::Bearer("tok".into())
        );
        let shown = format!("{args:?}");
        assert!(!shown.contains("tok") && !shown.contains("u:p"), "{shown}");
    }

    #[test]
    fn legacy_root_has_no_tenant() {
        let args = parse(&["--kestra-url", "http://k", "--legacy-api-root"]);
        assert_eq!(args.client_config().unwrap().tenant, None);
        let args = parse(&["--kestra-url", "http://k", "--namespaces", "a,b"]);
        assert_eq!(
            args.client_config().unwrap().tenant.as_deref(),
            Some("main")
        );
        assert_eq!(args.namespaces, vec!["a", "b"]);
    }

    #[test]
    fn the_webhook_is_off_unless_given_an_address() {
        assert!(parse(&["--kestra-url", "http://k"]).webhook().is_none());
        let webhook = parse(&[
            "--kestra-url",
            "http://k",
            "--webhook-addr",
            "127.0.0.1:9443",
            "--webhook-cert-names",
            "op.ns.svc,127.0.0.1",
            "--webhook-kestra-timeout",
            "1m",
        ])
        .webhook()
        .unwrap();
        assert_eq!(
            webhook.cert,
            crate::webhook::CertSource::Generated {
                names: vec!["op.ns.svc".into(), "127.0.0.1".into()]
            }
        );
        assert_eq!(webhook.kestra_timeout, crate::webhook::ANSWER_WITHIN);
    }
}
