//! Namespace file paths as Kestra addresses them.

/// `spec.filename` as an absolute path (`/dir/file.txt`), or why it cannot be one.
/// Admission refuses the same cases; this keeps the operator safe without it.
pub fn normalise(filename: &str) -> Result<String, String> {
    let trimmed = filename.trim_start_matches('/');
    if trimmed.is_empty() {
        return Err(
            "spec.filename is empty: give the file's path, e.g. scripts/etl.py".to_string(),
        );
    }
    let segments: Vec<&str> = trimmed.split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(format!(
            "spec.filename {filename:?} has an empty path segment or a trailing '/'"
        ));
    }
    if segments.iter().any(|s| *s == "." || *s == "..") {
        return Err(format!(
            "spec.filename {filename:?} must not contain '.' or '..' segments"
        ));
    }
    if segments[0] == "_flows" {
        return Err(format!(
            "spec.filename {filename:?} is under _flows, which Kestra reserves for flows"
        ));
    }
    if filename.chars().any(char::is_control) {
        return Err(format!(
            "spec.filename {filename:?} contains control characters"
        ));
    }
    Ok(format!("/{trimmed}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_one_leading_slash() {
        assert_eq!(normalise("a.txt").unwrap(), "/a.txt");
        assert_eq!(normalise("/dir/a.txt").unwrap(), "/dir/a.txt");
        assert_eq!(normalise("//dir/sub/a b.txt").unwrap(), "/dir/sub/a b.txt");
        assert_eq!(normalise("dir/_flows/a").unwrap(), "/dir/_flows/a");
    }

    #[test]
    fn refuses_unsafe_paths() {
        for bad in [
            "",
            "/",
            "a/../b",
            "../a",
            "./a",
            "a/./b",
            "a//b",
            "dir/",
            "_flows/x.yml",
            "/_flows",
            "a\nb",
        ] {
            assert!(normalise(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
