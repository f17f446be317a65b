//! `normalise`: a KestraNamespaceFile's `spec.filename`.
#![no_main]

use kestra_operator::adapters::paths::normalise;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(filename) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(path) = normalise(filename) else {
        return;
    };
    assert!(path.starts_with('/'), "{filename:?} -> {path:?}");
    assert!(!path.contains("//"), "{filename:?} -> {path:?}");
    let segments: Vec<&str> = path[1..].split('/').collect();
    for segment in &segments {
        assert!(
            !segment.is_empty() && *segment != "." && *segment != "..",
            "{filename:?} -> {path:?}"
        );
    }
    assert_ne!(
        segments[0], "_flows",
        "{filename:?} -> {path:?} is under _flows"
    );
    assert!(
        !path.chars().any(char::is_control),
        "{filename:?} -> {path:?}"
    );
    // Only leading slashes change.
    assert_eq!(&path[1..], filename.trim_start_matches('/'));
    assert_eq!(
        normalise(&path).as_deref(),
        Ok(path.as_str()),
        "not idempotent"
    );
});
