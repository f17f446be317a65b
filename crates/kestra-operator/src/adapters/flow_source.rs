//! The flow YAML's own identity, checked before anything is sent to Kestra.

use serde::Deserialize;

#[derive(Deserialize)]
struct Identity {
    id: Option<serde_json::Value>,
    namespace: Option<serde_json::Value>,
}

/// Check that `source` is a YAML mapping whose `id` and `namespace` equal the spec's.
/// The error says what is wrong and how to fix it.
pub fn check_identity(source: &str, id: &str, namespace: &str) -> Result<(), String> {
    if source.trim().is_empty() {
        return Err("the flow source is empty: give the flow YAML in spec.source".to_string());
    }
    let parsed: Identity = serde_saphyr::from_str(source).map_err(|e| {
        let detail = e.to_string();
        let first = detail.lines().next().unwrap_or("not YAML");
        format!("the flow source is not a YAML mapping ({first}); fix the YAML in spec.source")
    })?;
    let text = |v: Option<serde_json::Value>| match v {
        Some(serde_json::Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
        None => None,
    };
    match text(parsed.id) {
        None => return Err(format!("the flow source has no `id`: add `id: {id}`")),
        Some(found) if found != id => {
            return Err(format!(
                "the flow source has id {found:?} but spec.id is {id:?}: they must be equal"
            ));
        }
        Some(_) => {}
    }
    match text(parsed.namespace) {
        None => Err(format!(
            "the flow source has no `namespace`: add `namespace: {namespace}`"
        )),
        Some(found) if found != namespace => Err(format!(
            "the flow source has namespace {found:?} but spec.namespace is {namespace:?}: they must be equal"
        )),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "id: hello-world\nnamespace: company.team\ntasks:\n- id: hello\n  type: io.kestra.core.tasks.log.Log\n";

    #[test]
    fn accepts_matching_identity() {
        assert_eq!(check_identity(DOC, "hello-world", "company.team"), Ok(()));
    }

    #[test]
    fn reports_mismatched_id_and_namespace() {
        let err = check_identity(DOC, "other", "company.team").unwrap_err();
        assert!(
            err.contains("\"hello-world\"") && err.contains("\"other\""),
            "{err}"
        );
        let err = check_identity(DOC, "hello-world", "company.other").unwrap_err();
        assert!(err.contains("namespace"), "{err}");
    }

    #[test]
    fn reports_missing_fields() {
        assert!(
            check_identity("namespace: a\ntasks: []", "x", "a")
                .unwrap_err()
                .contains("no `id`")
        );
        assert!(
            check_identity("id: x\ntasks: []", "x", "a")
                .unwrap_err()
                .contains("no `namespace`")
        );
    }

    #[test]
    fn reports_unparsable_yaml() {
        for bad in [
            "id: [unclosed",
            "- a list\n- not a mapping",
            "just text",
            "   ",
        ] {
            let err = check_identity(bad, "x", "a").unwrap_err();
            assert!(err.contains("spec.source"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn numeric_ids_compare_as_text() {
        assert_eq!(
            check_identity("id: 123\nnamespace: a\n", "123", "a"),
            Ok(())
        );
    }
}
