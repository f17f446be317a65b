//! `GET /flows/search` parameters: paging, sorting, namespace and label filters, free text.

use std::cmp::Ordering;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use crate::errors::{ApiError, Violation};

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
    /// Free text on id and namespace.
    text: Option<String>,
    /// Labels the flow must carry (key, value).
    labels: Vec<(String, String)>,
    /// `sort=field:asc|desc` on `id` or `namespace`; creation order otherwise.
    sort: Option<(String, bool)>,
}

#[expect(
    clippy::expect_used,
    reason = "a literal pattern; every test that uses it would fail first"
)]
static FILTER_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^filters\[(\w+)\]\[(\w+)\](?:\[([^\]]*)\])?$").expect("static regex")
});

/// Kestra's 422 for `page` or `size` below 1 (a bean constraint of `searchFlows`).
fn below_one(key: &str) -> ApiError {
    let path = format!("searchFlows.{key}");
    ApiError::Entity {
        message: format!("Invalid entity: {path}: must be greater than or equal to 1"),
        errors: vec![Violation::new(path, "must be greater than or equal to 1")],
    }
}

/// The label pairs of a stored flow document (a map or a list of `{key, value}`).
fn labels_of(doc: &Value) -> Vec<(String, String)> {
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    match doc.get("labels") {
        Some(Value::Object(map)) => map.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(|l| Some((l.get("key")?.as_str()?.to_owned(), text(l.get("value")?))))
            .collect(),
        _ => Vec::new(),
    }
}

impl SearchQuery {
    /// `legacy`: honour the pre-`filters` parameters `namespace=` and `q=` (Kestra 1.x); Kestra
    /// 2.0 ignores them (and `labels=`), so the query then spans the whole tenant.
    pub fn parse(params: &[(String, String)], legacy: bool) -> Result<Self, ApiError> {
        let mut query = Self {
            page: 1,
            size: 10,
            namespace: Vec::new(),
            text: None,
            labels: Vec::new(),
            sort: None,
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
                "labels" => {
                    let (k, v) = value.split_once(':').unwrap_or((value.as_str(), ""));
                    query.labels.push((k.to_owned(), v.to_owned()));
                }
                "sort" => {
                    let (field, order) = value.split_once(':').unwrap_or((value.as_str(), "asc"));
                    query.sort = Some((field.to_owned(), order.eq_ignore_ascii_case("desc")));
                }
                _ => {
                    let Some(caps) = FILTER_KEY.captures(key) else {
                        return Err(ApiError::BadRequest(format!(
                            "Unsupported parameter: {key}"
                        )));
                    };
                    crate::filters::check(&caps[1], &caps[2], !legacy)?;
                    if let ("labels", "EQUALS", Some(label)) = (&caps[1], &caps[2], caps.get(3)) {
                        query
                            .labels
                            .push((label.as_str().to_owned(), value.clone()));
                        continue;
                    }
                    let filter = match (&caps[1], &caps[2]) {
                        ("namespace", "EQUALS") => NamespaceFilter::Equals(value.clone()),
                        ("namespace", "NOT_EQUALS") => NamespaceFilter::NotEquals(value.clone()),
                        // PREFIX is the namespace and its children; STARTS_WITH a plain
                        // string prefix (flow-list-search#11-12 of the recordings).
                        ("namespace", "PREFIX") => NamespaceFilter::WithChildren(value.clone()),
                        ("namespace", "STARTS_WITH") => NamespaceFilter::Prefix(value.clone()),
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

    /// Orders two flows as `sort` asks; `Equal` (creation order kept) without it.
    pub fn compare(&self, a: (&str, &str), b: (&str, &str)) -> Ordering {
        let Some((field, descending)) = &self.sort else {
            return Ordering::Equal;
        };
        let ordering = match field.as_str() {
            "id" => a.1.cmp(b.1),
            "namespace" => a.0.cmp(b.0).then(a.1.cmp(b.1)),
            _ => Ordering::Equal,
        };
        if *descending {
            ordering.reverse()
        } else {
            ordering
        }
    }

    pub fn matches(&self, namespace: &str, id: &str, doc: &Value) -> bool {
        let namespace_ok = self.namespace.iter().all(|f| match f {
            NamespaceFilter::Equals(v) => namespace == v,
            NamespaceFilter::NotEquals(v) => namespace != v,
            NamespaceFilter::Prefix(v) => namespace.starts_with(v.as_str()),
            NamespaceFilter::In(values) => values.iter().any(|v| v == namespace),
            NamespaceFilter::WithChildren(v) => {
                namespace == v || namespace.starts_with(&format!("{v}."))
            }
        });
        // Kestra's full-text match: every word of the text is somewhere in the id or the
        // namespace (`q=a-flow` also finds `tx.flow.update/upd`).
        let text_ok = self.text.as_ref().is_none_or(|t| {
            let haystack = format!("{id} {namespace}").to_lowercase();
            t.to_lowercase()
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .all(|w| haystack.contains(w))
        });
        let labels_ok = self.labels.is_empty() || {
            let labels = labels_of(doc);
            self.labels.iter().all(|l| labels.contains(l))
        };
        namespace_ok && text_ok && labels_ok
    }
}

fn positive(key: &str, value: &str) -> Result<usize, ApiError> {
    let n = value.parse::<i64>().map_err(|_| {
        ApiError::Verbatim(
            422,
            format!(
                "Internal server error: Failed to convert argument [{key}] for value [{value}] \
                 due to: For input string: \"{value}\""
            ),
        )
    })?;
    usize::try_from(n)
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| below_one(key))
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
        let doc = Value::Null;
        assert!(query.matches("company.team", "x", &doc));
        assert!(!query.matches("other", "x", &doc));
        let legacy = SearchQuery::parse(&[("namespace".into(), "a.b".into())], true).unwrap();
        assert!(legacy.matches("a.b.c", "x", &doc));
        assert!(!legacy.matches("a.bc", "x", &doc));
        assert!(
            SearchQuery::parse(&[("filters[state][EQUALS]".into(), "x".into())], true).is_err()
        );
        // Kestra 2.0 ignores the legacy parameters.
        let ignored = SearchQuery::parse(&[("namespace".into(), "a.b".into())], false).unwrap();
        assert!(ignored.matches("other", "x", &doc));
        let labelled = SearchQuery::parse(&[("labels".into(), "env:prod".into())], true).unwrap();
        assert!(labelled.matches("a", "x", &serde_json::json!({"labels": {"env": "prod"}})));
        assert!(!labelled.matches("a", "x", &doc));
        let text = SearchQuery::parse(&[("q".into(), "a-flow".into())], true).unwrap();
        assert!(text.matches("tx.flow.update", "upd", &doc));
        assert!(!text.matches("tx.flow.list", "b-flow", &doc));
    }
}
