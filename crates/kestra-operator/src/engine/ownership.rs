//! Which resource owns a Kestra object when several name it: the oldest, pure.

/// A resource claiming a Kestra object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// Creation time as RFC 3339 (sorts chronologically at one precision).
    pub created: String,
    pub namespace: String,
    pub name: String,
}

/// The owner among live claims: oldest first, then by namespace and name so the choice is stable.
pub fn owner<'a>(claims: impl IntoIterator<Item = &'a Claim>) -> Option<&'a Claim> {
    claims.into_iter().min_by(|a, b| {
        (&a.created, &a.namespace, &a.name).cmp(&(&b.created, &b.namespace, &b.name))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(created: &str, namespace: &str, name: &str) -> Claim {
        Claim {
            created: created.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    #[test]
    fn oldest_wins_then_namespace_then_name() {
        let claims = [
            claim("2026-01-02T00:00:00Z", "a", "x"),
            claim("2026-01-01T00:00:00Z", "z", "y"),
            claim("2026-01-01T00:00:00Z", "b", "y"),
        ];
        assert_eq!(owner(&claims), Some(&claims[2]));
        assert_eq!(owner(&[]), None);
    }
}
