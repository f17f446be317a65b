//! The secret scan: operators run with a distinctive API token and password (from the
//! environment and from files), KV values and file contents come from Secrets with distinctive
//! values, and the run goes through 401s, 5xx, 422s, invalid specs, a Secret rotation and
//! deletions. Then everything the operators emitted (their logs in text and JSON, at info and
//! debug level, every Event, every resource, /metrics) is searched for the credentials and the
//! Secret values, raw and base64-encoded. Also: `--help` and argument errors with the credentials
//! in the environment, Debug output of the settings, and the Kestra double's test hooks, which
//! must not be reachable unless enabled.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test"
)]

mod common;

use std::time::Duration;

use anyhow::{Context, ensure};
use base64::Engine as _;
use common::*;
use kestra_fake::{BasicAuth, FakeConfig};
use serde_json::Value;
use testenv::{Operator, wait_until};

const USER: &str = "scan-admin@kestra.io";
const PASSWORD: &str = "pw-SCAN-4c9e71aa0d";
const WRONG_PASSWORD: &str = "pw-WRONG-SCAN-93b2e6";
const TOKEN: &str = "tok-SCAN-8d1f0e2b7a55c3";
/// Secret values: (Secret key, value).
const VALUES: [(&str, &str); 5] = [
    ("kv", "sv-SCAN-kv-6e1f03"),
    ("file", "sv-SCAN-file-0b7d44"),
    ("typed", "sv-SCAN-typed-ab1299"),
    ("date", "sv-SCAN-date-2c2c81"),
    ("json", "sv-SCAN-json-f00d17"),
];
const ROTATED: &str = "sv-SCAN-rotated-77c3aa";

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Everything that must never show: each credential and Secret value, raw and base64
/// (as in a `Basic` header or a Secret's `data`).
fn needles() -> Vec<(String, String)> {
    let mut out = vec![
        ("the API token".to_string(), TOKEN.to_string()),
        ("the password".to_string(), PASSWORD.to_string()),
        ("the wrong password".to_string(), WRONG_PASSWORD.to_string()),
        (
            "the Basic header".to_string(),
            b64(&format!("{USER}:{PASSWORD}")),
        ),
        (
            "the wrong Basic header".to_string(),
            b64(&format!("{USER}:{WRONG_PASSWORD}")),
        ),
        ("a Secret value".to_string(), ROTATED.to_string()),
        ("a Secret value, base64".to_string(), b64(ROTATED)),
    ];
    for (key, value) in VALUES {
        out.push((format!("Secret value {key:?}"), value.to_string()));
        out.push((format!("Secret value {key:?}, base64"), b64(value)));
    }
    out
}

fn scan(what: &str, text: &str, found: &mut Vec<String>) {
    for (name, needle) in needles() {
        if let Some(at) = text.find(&needle) {
            let start = text[..at]
                .char_indices()
                .rev()
                .nth(120)
                .map_or(0, |(i, _)| i);
            let end = (at + needle.len() + 80).min(text.len());
            let end = (end..=text.len())
                .find(|i| text.is_char_boundary(*i))
                .unwrap_or(text.len());
            found.push(format!(
                "{what} contains {name}: ...{}...",
                &text[start..end]
            ));
        }
    }
}

/// The operator with text logs (start_operator uses JSON): returns it and its metrics address.
async fn start_text_operator(ns: &str, env: &[(&str, &str)]) -> anyhow::Result<(Operator, String)> {
    let args = [
        "run",
        "--namespaces",
        ns,
        "--metrics-addr",
        "127.0.0.1:0",
        "--resync-period",
        "10s",
        "--min-backoff",
        "1s",
        "--max-backoff",
        "3s",
        "--log-format",
        "text",
    ];
    let mut process = Operator::start(common::env(), OPERATOR, &args, env)?;
    process
        .wait_for_log(
            "serving /metrics, /healthz and /readyz",
            Duration::from_secs(30),
        )
        .await?;
    let addr = process
        .logs()
        .lines()
        .find_map(|l| {
            l.split("address=")
                .nth(1)
                .map(|a| a.split_whitespace().next().unwrap_or_default().to_string())
        })
        .with_context(|| format!("no metrics address in:\n{}", process.tail(20)))?;
    let url = format!("http://{addr}/readyz");
    wait_until(Duration::from_secs(30), POLL, || async {
        ensure!(reqwest::get(&url).await?.status().is_success(), "not ready");
        Ok(())
    })
    .await?;
    Ok((process, addr))
}

fn secret_manifest() -> String {
    let mut data = String::new();
    for (key, value) in VALUES {
        data.push_str(&format!("  {key}: {}\n", b64(value)));
    }
    format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: scan-secret}}\ndata:\n{data}")
}

/// The resources every operator gets: values and contents from the Secret, typed values the
/// Secret's text cannot satisfy (their errors must not quote it), a missing key.
fn resources(kns: &str) -> String {
    [
        kv_manifest(
            "from-secret",
            kns,
            "from-secret",
            "  valueFrom: {secretKeyRef: {name: scan-secret, key: kv}}\n",
        ),
        kv_manifest(
            "rotating",
            kns,
            "rotating",
            "  valueFrom: {secretKeyRef: {name: scan-secret, key: json}}\n",
        ),
        kv_manifest(
            "typed-number",
            kns,
            "typed-number",
            "  type: NUMBER\n  valueFrom: {secretKeyRef: {name: scan-secret, key: typed}}\n",
        ),
        kv_manifest(
            "typed-date",
            kns,
            "typed-date",
            "  type: DATE\n  valueFrom: {secretKeyRef: {name: scan-secret, key: date}}\n",
        ),
        kv_manifest(
            "typed-json",
            kns,
            "typed-json",
            "  type: JSON\n  valueFrom: {secretKeyRef: {name: scan-secret, key: json}}\n",
        ),
        kv_manifest(
            "typed-duration",
            kns,
            "typed-duration",
            "  type: DURATION\n  valueFrom: {secretKeyRef: {name: scan-secret, key: kv}}\n",
        ),
        kv_manifest(
            "typed-boolean",
            kns,
            "typed-boolean",
            "  type: BOOLEAN\n  valueFrom: {secretKeyRef: {name: scan-secret, key: kv}}\n",
        ),
        kv_manifest(
            "typed-datetime",
            kns,
            "typed-datetime",
            "  type: DATETIME\n  valueFrom: {secretKeyRef: {name: scan-secret, key: kv}}\n",
        ),
        kv_manifest(
            "missing-key",
            kns,
            "missing-key",
            "  valueFrom: {secretKeyRef: {name: scan-secret, key: absent}}\n",
        ),
        file_manifest(
            "file-from-secret",
            kns,
            "conf/secret.txt",
            "  contentFrom: {secretKeyRef: {name: scan-secret, key: file}}\n",
        ),
        kv_manifest("plain", kns, "plain", "  value: not-a-secret\n"),
    ]
    .join("---\n")
}

const TYPED: [&str; 6] = [
    "typed-number",
    "typed-date",
    "typed-json",
    "typed-duration",
    "typed-boolean",
    "typed-datetime",
];

struct Run {
    ns: testenv::TestNamespace,
    process: Operator,
    metrics: String,
    label: &'static str,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_and_secret_values_never_leave_the_operator() -> anyhow::Result<()> {
    let fake = private_fake(FakeConfig {
        basic_auth: Some(BasicAuth {
            user: USER.into(),
            password: PASSWORD.into(),
        }),
        api_key: Some(TOKEN.into()),
        ..FakeConfig::default()
    })
    .await?;
    let url = fake.url();
    let hooks = testenv::FakeHooks::new(&url)?;
    let basic = format!("{USER}:{PASSWORD}");
    let wrong_basic = format!("{USER}:{WRONG_PASSWORD}");

    // A: token and login from the environment, text logs, info.
    let ns_a = namespace("scan-env");
    let (op_a, metrics_a) = start_text_operator(
        &ns_a.name,
        &[
            ("KESTRA_API_URL", url.as_str()),
            ("KESTRA_API_API_KEY", TOKEN),
            ("KESTRA_API_BASIC_AUTH", basic.as_str()),
        ],
    )
    .await?;
    // B: login and token from files (mounted Secrets), JSON logs, debug level.
    let ns_b = namespace("scan-files");
    let dir = env().dir.join("tmp").join(&ns_b.name);
    std::fs::create_dir_all(&dir)?;
    let token_file = dir.join("token");
    let basic_file = dir.join("basic");
    std::fs::write(&token_file, format!("{TOKEN}\n"))?;
    std::fs::write(&basic_file, format!("{basic}\n"))?;
    let token_path = token_file.to_string_lossy().into_owned();
    let basic_path = basic_file.to_string_lossy().into_owned();
    let op_b = start_operator(
        OpSpec::new(&[&ns_b.name], "10s")
            .kestra(&url)
            .arg("--kestra-api-key-file")
            .arg(&token_path)
            .arg("--kestra-basic-auth-file")
            .arg(&basic_path)
            .arg("--log-level")
            .arg("debug"),
    )
    .await?;
    // C: the wrong password: every request is a 401.
    let ns_c = namespace("scan-401");
    let op_c = start_operator(
        OpSpec::new(&[&ns_c.name], "10s")
            .kestra(&url)
            .env("KESTRA_API_BASIC_AUTH", &wrong_basic),
    )
    .await?;
    let mut runs = vec![
        Run {
            ns: ns_a,
            process: op_a,
            metrics: metrics_a,
            label: "operator A (env, text)",
        },
        Run {
            metrics: op_b.metrics_addr.clone(),
            ns: ns_b,
            process: op_b.process,
            label: "operator B (files, json, debug)",
        },
        Run {
            metrics: op_c.metrics_addr.clone(),
            ns: ns_c,
            process: op_c.process,
            label: "operator C (wrong password)",
        },
    ];

    for run in &runs {
        apply(&run.ns.name, &secret_manifest()).await?;
    }
    // Kestra errors for A while its first syncs run: 5xx, then 401 and 422 on the KV route.
    let kv_route = format!("/api/v1/main/namespaces/{}/kv/", runs[0].ns.kestra);
    hooks.fail_next(2, 500, &kv_route).await?;
    hooks.fail_next(1, 401, &kv_route).await?;
    hooks.fail_next(1, 422, &kv_route).await?;
    // Kestra versions that parse KV bodies as JSON quote the whole body in their 422: the
    // value from the Secret must be cut out of status and Events.
    hooks
        .post(
            "fail",
            serde_json::json!({"count": 3, "status": 422, "route": kv_route, "method": "PUT", "echoBody": true}),
        )
        .await?;
    for run in &runs {
        apply(&run.ns.name, &resources(&run.ns.kestra)).await?;
    }

    // A and B: synced where the Secret allows, InvalidSpec for the typed ones, a missing key.
    for run in &runs[..2] {
        let ns = &run.ns.name;
        for r in [
            "kv/from-secret",
            "kv/rotating",
            "kv/plain",
            "nsfile/file-from-secret",
        ] {
            wait_ready(ns, r).await?;
        }
        for r in TYPED {
            wait_reason(ns, &format!("kv/{r}"), "False", "InvalidSpec", READY).await?;
        }
        wait_reason(ns, "kv/missing-key", "False", "ReferenceNotFound", READY).await?;
    }
    wait_reason(
        &runs[2].ns.name,
        "kv/from-secret",
        "False",
        "Unauthorized",
        READY,
    )
    .await?;

    // The values did reach Kestra (so the scan below looks for something that was used).
    let kestra = Kestra::new(&url, Some("main"), Some((USER.into(), PASSWORD.into())));
    for run in &runs[..2] {
        let (status, body) = kestra.kv(&run.ns.kestra, "from-secret").await?;
        ensure!(
            status == 200 && body["value"] == VALUES[0].1,
            "{status} {body}"
        );
        let file = kestra.file(&run.ns.kestra, "/conf/secret.txt").await?;
        ensure!(file.as_deref() == Some(VALUES[1].1.as_bytes()), "{file:?}");
    }

    // Rotate a Secret value, then delete what was synced.
    for run in &runs[..2] {
        let ns = &run.ns.name;
        k(
            ns,
            &[
                "patch",
                "secret",
                "scan-secret",
                "--type=merge",
                "-p",
                &format!("{{\"data\":{{\"json\":\"{}\"}}}}", b64(ROTATED)),
            ],
        )
        .await?;
    }
    for run in &runs[..2] {
        let kns = run.ns.kestra.clone();
        wait_until(Duration::from_secs(30), POLL, || async {
            let (status, body) = kestra.kv(&kns, "rotating").await?;
            ensure!(body["value"] == ROTATED, "{status} {body}");
            Ok(())
        })
        .await?;
    }
    for run in &runs {
        k(
            &run.ns.name,
            &[
                "delete",
                "kv/from-secret",
                "kv/rotating",
                "nsfile/file-from-secret",
                "--timeout=60s",
            ],
        )
        .await?;
    }
    for run in &runs[..2] {
        wait_event(
            &run.ns.name,
            "KestraKeyValue",
            "rotating",
            "Deleted",
            Duration::from_secs(15),
        )
        .await?;
    }

    // Scan everything the operators emitted.
    let mut found = Vec::new();
    let mut scanned = 0usize;
    for run in &mut runs {
        let ns = &run.ns.name;
        ensure!(
            run.process.exit_status()?.is_none(),
            "{} exited:\n{}",
            run.label,
            run.process.tail(40)
        );
        let logs = run.process.logs();
        scanned += logs.len();
        scan(&format!("the log of {}", run.label), &logs, &mut found);
        let events = k(ns, &["get", "events", "-o", "json"]).await?;
        let count = serde_json::from_str::<Value>(&events)?["items"]
            .as_array()
            .map_or(0, Vec::len);
        ensure!(count > 5, "{}: only {count} Events", run.label);
        scanned += events.len();
        scan(&format!("the Events of {}", run.label), &events, &mut found);
        let objects = k(
            ns,
            &[
                "get",
                "kestraflows,kestrakeyvalues,kestranamespacefiles",
                "-o",
                "json",
            ],
        )
        .await?;
        scanned += objects.len();
        scan(
            &format!("the resources of {}", run.label),
            &objects,
            &mut found,
        );
        let metrics = reqwest::get(format!("http://{}/metrics", run.metrics))
            .await?
            .text()
            .await?;
        ensure!(
            metrics.contains("kestra_operator_kestra_requests_total"),
            "{metrics}"
        );
        scanned += metrics.len();
        scan(&format!("/metrics of {}", run.label), &metrics, &mut found);
    }
    // The scan had something to look at: the logs carry the outcomes, in both formats.
    let (a, b, c) = (
        runs[0].process.logs(),
        runs[1].process.logs(),
        runs[2].process.logs(),
    );
    ensure!(a.contains("InvalidSpec") && a.contains("Deleted"), "{a}");
    ensure!(
        b.lines().any(|l| l.starts_with('{')) && b.contains("DEBUG"),
        "B logs JSON at debug"
    );
    ensure!(c.contains("Unauthorized"), "{c}");
    ensure!(
        found.is_empty(),
        "{} leaks in {scanned} bytes scanned:\n{}",
        found.len(),
        found.join("\n")
    );
    eprintln!("secret scan: {scanned} bytes of logs, Events, resources and metrics: clean");
    Ok(())
}

/// `run --help`, an argument error and Debug output, with the credentials in the environment.
#[test]
fn help_errors_and_debug_output_do_not_show_credentials() -> anyhow::Result<()> {
    let basic = format!("{USER}:{PASSWORD}");
    let run = |args: &[&str]| -> anyhow::Result<String> {
        let out = std::process::Command::new(OPERATOR)
            .args(args)
            .env("KESTRA_API_URL", "http://kestra.example:8080")
            .env("KESTRA_API_API_KEY", TOKEN)
            .env("KESTRA_API_BASIC_AUTH", &basic)
            .output()?;
        Ok(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    };
    let mut found = Vec::new();
    let help = run(&["run", "--help"])?;
    ensure!(
        help.contains("KESTRA_API_API_KEY") && help.contains("--kestra-basic-auth"),
        "{help}"
    );
    scan("run --help", &help, &mut found);
    let error = run(&["run", "--concurrency", "many"])?;
    ensure!(error.contains("--concurrency"), "{error}");
    scan("an argument error", &error, &mut found);
    let missing = run(&["run", "--kestra-timeout", "soon"])?;
    scan("another argument error", &missing, &mut found);
    // A login in the URL is refused at start, without the URL being repeated.
    let in_url = std::process::Command::new(OPERATOR)
        .args(["run"])
        .env(
            "KESTRA_API_URL",
            format!("http://{USER}:{PASSWORD}@kestra.example:8080"),
        )
        .output()?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&in_url.stdout),
        String::from_utf8_lossy(&in_url.stderr)
    );
    ensure!(
        !in_url.status.success(),
        "a URL with a login must be refused: {said}"
    );
    ensure!(said.contains("KESTRA_API_BASIC_AUTH"), "{said}");
    scan("a Kestra URL carrying the login", &said, &mut found);

    use clap::Parser as _;
    use kestra_operator::config::{Cli, Command};
    let cli = Cli::try_parse_from([
        "kestra-operator",
        "run",
        "--kestra-url",
        "http://kestra:8080",
        "--kestra-api-key",
        TOKEN,
        "--kestra-basic-auth",
        &basic,
    ])?;
    scan(
        "Debug of the parsed command line",
        &format!("{cli:?} {cli:#?}"),
        &mut found,
    );
    let Command::Run(args) = cli.command else {
        anyhow::bail!("not the run command");
    };
    let config = args.client_config()?;
    scan(
        "Debug of the client settings",
        &format!("{config:?} {config:#?}"),
        &mut found,
    );
    let basic_only = kestra_operator::kestra::Auth::basic(&basic)?;
    scan(
        "Debug of basic auth",
        &format!("{basic_only:?}"),
        &mut found,
    );
    ensure!(
        format!("{config:?}").contains("redacted"),
        "the Debug output says what it hides: {config:?}"
    );
    ensure!(found.is_empty(), "{}", found.join("\n"));
    Ok(())
}

/// The double's hooks (fault injection, reset, counters) are only served when enabled: a double
/// used as a stand-in for Kestra elsewhere cannot be wiped or taken down by a request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_doubles_test_hooks_are_unreachable_unless_enabled() -> anyhow::Result<()> {
    async fn probe(url: &str, auth: Option<(&str, &str)>) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        for (method, hook) in [
            ("GET", "health"),
            ("GET", "counters"),
            ("POST", "counters/reset"),
            ("POST", "reset"),
            ("POST", "fail"),
            ("POST", "latency"),
            ("POST", "down"),
        ] {
            let mut r = http.request(method.parse()?, format!("{url}/__fake/{hook}"));
            if let Some((u, p)) = auth {
                r = r.basic_auth(u, Some(p));
            }
            if method == "POST" {
                r = r.json(
                    &serde_json::json!({"seconds": 30, "count": 5, "status": 500, "ms": 5000}),
                );
            }
            let status = r.send().await?.status();
            ensure!(
                status == 404,
                "{method} /__fake/{hook} answered {status}, expected 404"
            );
        }
        // The API is untouched: not down, not failing, not slow.
        let started = std::time::Instant::now();
        let mut r = http.get(format!("{url}/api/v1/main/flows/some.ns"));
        if let Some((u, p)) = auth {
            r = r.basic_auth(u, Some(p));
        }
        let status = r.send().await?.status();
        ensure!(
            status == 200,
            "the API answered {status} after the hook calls"
        );
        ensure!(
            started.elapsed() < Duration::from_secs(2),
            "the API is slowed"
        );
        Ok(())
    }

    // The library, hooks off, with and without a login.
    let off = private_fake(FakeConfig {
        test_hooks: false,
        ..FakeConfig::default()
    })
    .await?;
    probe(&off.url(), None).await.context("library, no auth")?;
    let off_auth = private_fake(FakeConfig {
        test_hooks: false,
        basic_auth: Some(BasicAuth {
            user: USER.into(),
            password: PASSWORD.into(),
        }),
        ..FakeConfig::default()
    })
    .await?;
    probe(&off_auth.url(), Some((USER, PASSWORD)))
        .await
        .context("library, with auth")?;
    // Without the login, nothing under /__fake answers 2xx either.
    let anonymous = reqwest::get(format!("{}/__fake/health", off_auth.url()))
        .await?
        .status();
    ensure!(
        anonymous == 401 || anonymous == 404,
        "anonymous hook call answered {anonymous}"
    );
    // The library default (hooks on) does serve them: the probe above is not vacuous.
    let on = private_fake(FakeConfig::default()).await?;
    let status = reqwest::get(format!("{}/__fake/health", on.url()))
        .await?
        .status();
    ensure!(status == 200, "hooks on: {status}");

    // The binary: hooks are off unless --test-hooks (or KESTRA_FAKE_TEST_HOOKS) is given.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env().root.join("target"));
    let target = if target.is_absolute() {
        target
    } else {
        env().root.join(target)
    };
    let bin = target.join("debug/kestra-fake");
    if !bin.is_file() {
        // A test environment reused from an earlier run may not have built it in this target dir.
        let built = std::process::Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "kestra-fake"])
            .current_dir(&env().root)
            .status()?;
        ensure!(built.success(), "cargo build -p kestra-fake failed");
    }
    ensure!(
        bin.is_file(),
        "{} is missing (scripts/testenv up builds it)",
        bin.display()
    );
    let dir = env().dir.join("tmp");
    std::fs::create_dir_all(&dir)?;
    let port_file = dir.join(format!("hooks-off-{}.port", std::process::id()));
    let _ = std::fs::remove_file(&port_file);
    let mut cmd = std::process::Command::new(&bin);
    cmd.args(["--listen", "127.0.0.1:0", "--port-file"])
        .arg(&port_file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("KESTRA_FAKE_") {
            cmd.env_remove(key);
        }
    }
    let child = cmd.spawn()?;
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _guard = Kill(child);
    let port = wait_until(
        Duration::from_secs(20),
        Duration::from_millis(100),
        || async {
            let text = std::fs::read_to_string(&port_file)?;
            Ok(text.trim().parse::<u16>()?)
        },
    )
    .await?;
    let _ = std::fs::remove_file(&port_file);
    probe(&format!("http://127.0.0.1:{port}"), None)
        .await
        .context("the kestra-fake binary without --test-hooks")?;
    Ok(())
}
