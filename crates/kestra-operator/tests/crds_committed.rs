//! The committed CRD YAML (plain manifests and the Helm chart's copy) must be exactly what the
//! Rust types generate. Regenerate both with `make crds`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test"
)]

#[test]
fn committed_crds_match_the_types() {
    let generated = kestra_operator::crd::crds_yaml().expect("CRDs render");
    for file in [
        "deploy/crds/kestra-operator.crds.yaml",
        "charts/kestra-operator/crds/kestra-operator.crds.yaml",
    ] {
        let path = format!("{}/../../{file}", env!("CARGO_MANIFEST_DIR"));
        let committed =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file} is committed: {e}"));
        assert!(
            committed == generated,
            "{file} is out of date: run `make crds`"
        );
    }
}

#[test]
fn crds_name_the_documented_kinds() {
    let yaml = kestra_operator::crd::crds_yaml().expect("CRDs render");
    for needle in [
        "name: kestraflows.model.kestra.io",
        "name: kestrakeyvalues.model.kestra.io",
        "name: kestranamespacefiles.model.kestra.io",
        "- flow",
        "- keyvalue",
        "- kv",
        "- namespacefile",
        "- nsfile",
        "- kestra",
        "subresources:",
    ] {
        assert!(yaml.contains(needle), "CRD YAML lacks {needle:?}");
    }
}
