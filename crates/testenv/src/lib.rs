//! Test support for end-to-end tests: one shared real control plane (etcd + kube-apiserver built
//! by `scripts/build-k8s`) and the Kestra API double, started by `scripts/testenv up`, with a
//! fresh Kubernetes and Kestra namespace per test and the operator run as a child process.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let env = testenv::TestEnv::get()?;
//! let ns = env.namespace("flows")?;
//! ns.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")?;
//! let client = env.kube_client().await?;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod env;
mod hooks;
mod kubectl;
mod namespace;
mod operator;
mod wait;

pub use env::TestEnv;
pub use hooks::{Counters, FakeHooks, RouteCount};
pub use namespace::{ClusterObject, TEST_LABEL, TestNamespace};
pub use operator::Operator;
pub use wait::wait_until;
