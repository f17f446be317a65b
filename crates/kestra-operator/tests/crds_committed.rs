//! The committed CRD YAML must be exactly what the Rust types generate.
//! Regenerate with: cargo run -p kestra-operator -- crds > deploy/crds/kestra-operator.crds.yaml

#[test]
fn committed_crds_match_the_types() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/crds/kestra-operator.crds.yaml"
    );
    let committed =
        std::fs::read_to_string(path).expect("deploy/crds/kestra-operator.crds.yaml is committed");
    let generated = kestra_operator::crd::crds_yaml().expect("CRDs render");
    assert!(
        committed == generated,
        "deploy/crds/kestra-operator.crds.yaml is out of date: run \
         `cargo run -p kestra-operator -- crds > deploy/crds/kestra-operator.crds.yaml`"
    );
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
