//! `check_identity`: the flow YAML a user writes in `spec.source` (serde-saphyr).
//!
//! Input: the YAML source, optionally followed by `\0` spec.id `\0` spec.namespace
//! (default `hello-world` / `company.team`, the ids the seeds use).
#![no_main]

use kestra_operator::adapters::flow_source::check_identity;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '\0');
    let source = parts.next().unwrap_or_default();
    let id = parts.next().unwrap_or("hello-world");
    let namespace = parts.next().unwrap_or("company.team");
    match check_identity(source, id, namespace) {
        Ok(()) => {
            assert!(!source.trim().is_empty(), "an empty source was accepted");
            // The comparison is exact: any other id or namespace is refused.
            assert!(
                check_identity(source, &format!("{id}-x"), namespace).is_err(),
                "{source:?} accepted for two ids"
            );
            assert!(
                check_identity(source, id, &format!("{namespace}-x")).is_err(),
                "{source:?} accepted for two namespaces"
            );
        }
        Err(message) => assert!(!message.is_empty()),
    }
});
