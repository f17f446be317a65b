//! A test's own Kestra double with an operator talking to it: the set-up of the tests that
//! count requests, inject faults or need another API variant.

use super::{Kestra, Op, OpSpec, private_fake, start_operator};

/// What such a test works with. Bind every field it keeps by name (`op: _op`, not `op: _`):
/// the operator and the double stop when dropped.
pub struct PrivateKestra {
    pub fake: kestra_fake::RunningFake,
    /// The double's root URL, for its counters and for another operator.
    pub url: String,
    /// Reads back the double: tenant `main`, or the tenant-less root of a legacy double.
    pub kestra: Kestra,
    /// Started with `spec`, told to talk to the double.
    pub op: Op,
}

pub async fn private_kestra(
    config: kestra_fake::FakeConfig,
    spec: OpSpec<'_>,
) -> anyhow::Result<PrivateKestra> {
    let legacy_root = config.legacy_root;
    let fake = private_fake(config).await?;
    let url = fake.url();
    let kestra = if legacy_root {
        Kestra::new(&url, None, None)
    } else {
        Kestra::private(&url)
    };
    let op = start_operator(spec.kestra(&url)).await?;
    Ok(PrivateKestra {
        fake,
        url,
        kestra,
        op,
    })
}
