//! `GET /flows/search` parameters: paging, namespace filters, free text.

use std::sync::LazyLock;

use regex::Regex;

use crate::errors::ApiError;

/// A namespace condition of a search.
#[derive(Debug, PartialEq)]
enum NamespaceFilter {
    Equals(String),
    NotEquals(String),
    Prefix(String),
    In(Vec<String>),
    /// The legacy `namespace=` parameter: the namespace and its children.
    WithChildren(String),
}

#[derive(Debug)]
pub struct SearchQuery {
    pub page: usize,
    pub size: usize,
    namespace: Vec<NamespaceFilter>,
    /// Free text on id or namespace.
    text: Option<String>,
}

static FILTER_KEY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^filters\[(\w+)\]\[(\w+)\]$").expect("static regex"));

impl SearchQuery {
    /// `legacy`: honour the pre-`filters` parameters `namespace=` and `q=` (Kestra 1.x); Kestra
    /// 2.0 ignores them (and `labels=`), so the query then spans the whole tenant.
    pub fn parse(params: &[(String, String)], legacy: bool) -> Result<Self, ApiError> {
        let mut query = Self {
            page: 1,
            size: 10,
            namespace: Vec::new(),
            text: None,
        };
        for (key, value) in params {
            match key.as_str() {
                "namespace" | "q" | "labels" if !legacy => {}
                "page" => query.page = positive(key, value)?,
                "size" => query.size = positive(key, value)?,
                "namespace" => query
                    .namespace
                    .push(NamespaceFilter::WithChildren(value.clone())),
                "q" => query.text = Some(value.clone()),
                "sort" => {}
                _ => {
                    let Some(caps) = FILTER_KEY.captures(key) else {
                        return Err(ApiError::BadRequest(format!(
                            "Unsupported parameter: {key}"
                        )));
                    };
                    let filter = match (&caps[1], &caps[2]) {
                        ("namespace", "EQUALS") => NamespaceFilter::Equals(value.clone()),
                        ("namespace", "NOT_EQUALS") => NamespaceFilter::NotEquals(value.clone()),
                        ("namespace", "PREFIX" | "STARTS_WITH") => {
                            NamespaceFilter::Prefix(value.clone())
                        }
                        ("namespace", "IN") => NamespaceFilter::In(
                            value.split(',').map(|s| s.trim().to_owned()).collect(),
                        ),
                        ("q", "EQUALS") => {
                            query.text = Some(value.clone());
                            continue;
                        }
                        _ => {
                            return Err(ApiError::BadRequest(format!("Unsupported filter: {key}")));
                        }
                    };
                    query.namespace.push(filter);
                }
            }
        }
        Ok(query)
    }

    pub fn matches(&self, namespace: &str, id: &str) -> bool {
        let namespace_ok = self.namespace.iter().all(|f| match f {
            NamespaceFilter::Equals(v) => namespace == v,
            NamespaceFilter::NotEquals(v) => namespace != v,
            NamespaceFilter::Prefix(v) => namespace.starts_with(v.as_str()),
            NamespaceFilter::In(values) => values.iter().any(|v| v == namespace),
            NamespaceFilter::WithChildren(v) => {
                namespace == v || namespace.starts_with(&format!("{v}."))
            }
        });
        let text_ok = self.text.as_ref().is_none_or(|t| {
            let t = t.to_lowercase();
            id.to_lowercase().contains(&t) || namespace.to_lowercase().contains(&t)
        });
        namespace_ok && text_ok
    }
}

fn positive(key: &str, value: &str) -> Result<usize, ApiError> {
    value
        .parse::<usize>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| ApiError::BadRequest(format!("{key} must be a positive integer")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_filters_parse_and_match() {
        let params = vec![
            (
                "filters[namespace][PREFIX]".to_owned(),
                "company".to_owned(),
            ),
            ("page".to_owned(), "2".to_owned()),
        ];
        let query = SearchQuery::parse(&params, true).unwrap();
        assert_eq!(query.page, 2);
        assert!(query.matches("company.team", "x"));
        assert!(!query.matches("other", "x"));
        let legacy = SearchQuery::parse(&[("namespace".into(), "a.b".into())], true).unwrap();
        assert!(legacy.matches("a.b.c", "x"));
        assert!(!legacy.matches("a.bc", "x"));
        assert!(
            SearchQuery::parse(&[("filters[state][EQUALS]".into(), "x".into())], true).is_err()
        );
        // Kestra 2.0 ignores the legacy parameters.
        let ignored = SearchQuery::parse(&[("namespace".into(), "a.b".into())], false).unwrap();
        assert!(ignored.matches("other", "x"));
    }
}
