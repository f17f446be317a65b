//! The key-value store: kestra-api.md section 3.

use std::sync::LazyLock;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use chrono::{DateTime, NaiveDate, SecondsFormat, TimeDelta, Utc};
use http::{HeaderMap, header};
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::app::{ApiPath, AppState, Tenant};
use crate::errors::ApiError;

static KEY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$").expect("static regex"));
static DATE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\d{4}-\d{2}-\d{2}$").expect("static regex"));
/// ISO-8601 durations with any of the date and time parts (`P1D`, `PT5S`, `P1Y2M`).
static ISO_DURATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[-+]?P(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(\d+H)?(\d+M)?(\d+([.,]\d+)?S)?)?$")
        .expect("static regex")
});
/// What `java.time.Duration.parse` accepts, which is what the `ttl` header goes through.
static JAVA_DURATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^([-+]?)P(?:([-+]?\d+)D)?(T(?:([-+]?\d+)H)?(?:([-+]?\d+)M)?(?:([-+]?\d+)(?:[.,](\d{0,9}))?S)?)?$",
    )
    .expect("static regex")
});

const KEY_RULE: &str = "Key must start with an alphanumeric character (uppercase or lowercase) \
    and can contain alphanumeric characters (uppercase or lowercase), dots (.), underscores (_), \
    and hyphens (-) only.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum KvType {
    String,
    Number,
    Boolean,
    Datetime,
    Date,
    Duration,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KvEntry {
    pub kv_type: KvType,
    pub value: Value,
    /// Starts at 1 and grows with each overwrite (`version` in 1.x, `revision` in 2.0).
    pub version: u64,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub expiration: Option<DateTime<Utc>>,
    pub description: Option<String>,
}

impl KvEntry {
    fn expired(&self, now: DateTime<Utc>) -> bool {
        self.expiration.is_some_and(|at| at <= now)
    }
}

/// How Kestra types a PUT body, which it parses as Ion (a superset of JSON). Dates, date-times
/// and durations keep the text they were sent with (a date-time is normalised to UTC, as a
/// Java `Instant` prints).
pub fn type_value(body: &str) -> (KvType, Value) {
    let text = body.trim();
    if text.starts_with('"') {
        if let Ok(s) = serde_json::from_str::<String>(text) {
            let kind = if is_iso_duration(&s) {
                KvType::Duration
            } else {
                KvType::String
            };
            return (kind, Value::String(s));
        }
    } else if text == "true" || text == "false" {
        return (KvType::Boolean, Value::Bool(text == "true"));
    } else if text == "null" {
        return (KvType::String, Value::Null);
    } else if let Ok(n) = serde_json::from_str::<serde_json::Number>(text) {
        return (KvType::Number, Value::Number(n));
    } else if DATE.is_match(text) && NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok() {
        return (KvType::Date, Value::String(text.to_owned()));
    } else if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        let utc = at.with_timezone(&Utc);
        return (
            KvType::Datetime,
            Value::String(utc.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        );
    } else if (text.starts_with('{') || text.starts_with('['))
        && let Ok(json) = serde_json::from_str::<Value>(text)
    {
        return (KvType::Json, json);
    }
    // Newest Kestra stores what it cannot parse as the raw text.
    (KvType::String, Value::String(body.to_owned()))
}

fn is_iso_duration(s: &str) -> bool {
    ISO_DURATION.is_match(s) && s.bytes().any(|b| b.is_ascii_digit()) && !s.ends_with('T')
}

/// Parses a `ttl` header the way `java.time.Duration.parse` does.
pub fn parse_ttl(text: &str) -> Option<TimeDelta> {
    let caps = JAVA_DURATION.captures(text.trim())?;
    let has_days = caps.get(2).is_some();
    let time_part = caps.get(3);
    let has_time = caps.get(4).is_some() || caps.get(5).is_some() || caps.get(6).is_some();
    // Some part is needed, and a `T` must be followed by a time part.
    if !has_time && (time_part.is_some() || !has_days) {
        return None;
    }
    let int = |i: usize| -> Option<i64> {
        caps.get(i)
            .map_or(Some(0), |m| m.as_str().trim_start_matches('+').parse().ok())
    };
    let secs = int(6)?;
    let nanos = caps.get(7).map_or(Some(0), |m| {
        format!("{:0<9}", m.as_str()).parse::<i64>().ok()
    })?;
    let nanos = if secs < 0 || caps.get(6).is_some_and(|m| m.as_str().starts_with('-')) {
        -nanos
    } else {
        nanos
    };
    let total = TimeDelta::try_days(int(2)?)?
        .checked_add(&TimeDelta::try_hours(int(4)?)?)?
        .checked_add(&TimeDelta::try_minutes(int(5)?)?)?
        .checked_add(&TimeDelta::try_seconds(secs)?)?
        .checked_add(&TimeDelta::nanoseconds(nanos))?;
    Some(if &caps[1] == "-" { -total } else { total })
}

fn check_key(key: &str) -> Result<(), ApiError> {
    if KEY.is_match(key) {
        Ok(())
    } else {
        Err(ApiError::IllegalArgument(KEY_RULE.to_owned()))
    }
}

fn millis(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[derive(Deserialize)]
pub struct KeyPath {
    namespace: String,
    key: String,
}

#[derive(Deserialize)]
pub struct NamespacePath {
    namespace: String,
}

pub async fn put(
    State(shared): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(path): ApiPath<KeyPath>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(), ApiError> {
    check_key(&path.key)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("text/plain");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !["text/plain", "application/json"]
        .iter()
        .any(|ok| essence.eq_ignore_ascii_case(ok))
    {
        return Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type '{content_type}' is not supported, send text/plain"
        )));
    }
    let header_text = |name: &str| -> Result<Option<String>, ApiError> {
        headers
            .get(name)
            .map(|v| {
                v.to_str()
                    .map(str::to_owned)
                    .map_err(|_| ApiError::IllegalArgument(format!("header {name} is not text")))
            })
            .transpose()
    };
    let ttl = match header_text("ttl")? {
        None => None,
        Some(text) => Some(parse_ttl(&text).ok_or_else(|| {
            ApiError::InvalidFormat(format!("Text cannot be parsed to a Duration: {text}"))
        })?),
    };
    let description = header_text("description")?;
    let body = std::str::from_utf8(&body)
        .map_err(|_| ApiError::IllegalArgument("Invalid JSON value: not UTF-8".to_owned()))?;
    let (kv_type, value) = type_value(body);
    let now = Utc::now();
    let expiration = ttl.and_then(|ttl| now.checked_add_signed(ttl));
    shared.write(|store| {
        let entries = store
            .tenant_mut(&tenant)
            .kv
            .entry(path.namespace)
            .or_default();
        // An expired entry is gone: overwriting it starts a new key.
        let previous = entries.get(&path.key).filter(|e| !e.expired(now));
        let entry = KvEntry {
            kv_type,
            value,
            version: previous.map_or(1, |e| e.version + 1),
            created: previous.map_or(now, |e| e.created),
            updated: now,
            expiration,
            description,
        };
        entries.insert(path.key, entry);
        Ok(())
    })
}

pub async fn get_entry(
    State(shared): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(path): ApiPath<KeyPath>,
) -> Result<Json<Value>, ApiError> {
    check_key(&path.key)?;
    let entry = shared
        .read(|store| {
            store
                .tenant(&tenant)
                .and_then(|t| t.kv.get(&path.namespace))
                .and_then(|entries| entries.get(&path.key))
                .cloned()
        })
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "No value found for key '{}' in namespace '{}'",
                path.key, path.namespace
            ))
        })?;
    if entry.expired(Utc::now()) {
        return Err(ApiError::Expired);
    }
    let mut body = json!({
        "type": entry.kv_type,
        "value": entry.value,
        "revision": entry.version,
        "version": entry.version,
        "updated": millis(entry.updated),
    });
    if let Some(at) = entry.expiration {
        body["expirationDate"] = Value::String(millis(at));
    }
    if let Some(description) = entry.description {
        body["description"] = Value::String(description);
    }
    Ok(Json(body))
}

pub async fn delete(
    State(shared): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(path): ApiPath<KeyPath>,
) -> Result<Json<bool>, ApiError> {
    check_key(&path.key)?;
    let deleted = shared.write(|store| {
        Ok(store
            .tenant_mut(&tenant)
            .kv
            .get_mut(&path.namespace)
            .and_then(|entries| entries.remove(&path.key))
            .is_some())
    })?;
    Ok(Json(deleted))
}

pub async fn list(
    State(shared): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(path): ApiPath<NamespacePath>,
) -> Json<Vec<Value>> {
    let now = Utc::now();
    let entries = shared.read(|store| {
        let Some(entries) = store
            .tenant(&tenant)
            .and_then(|t| t.kv.get(&path.namespace))
        else {
            return Vec::new();
        };
        entries
            .iter()
            .filter(|(_, e)| !e.expired(now))
            .map(|(key, e)| {
                let mut item = json!({
                    "key": key,
                    "creationDate": millis(e.created),
                    "updateDate": millis(e.updated),
                });
                if let Some(description) = &e.description {
                    item["description"] = Value::String(description.clone());
                }
                if let Some(at) = e.expiration {
                    item["expirationDate"] = Value::String(millis(at));
                }
                item
            })
            .collect()
    });
    Json(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typing_follows_the_table() {
        let cases: &[(&str, KvType, Value)] = &[
            (r#""some text""#, KvType::String, json!("some text")),
            (r#""123""#, KvType::String, json!("123")),
            ("42", KvType::Number, json!(42)),
            ("1.5", KvType::Number, json!(1.5)),
            ("true", KvType::Boolean, json!(true)),
            ("false", KvType::Boolean, json!(false)),
            ("2021-09-01", KvType::Date, json!("2021-09-01")),
            (
                "2021-09-01T01:02:03Z",
                KvType::Datetime,
                json!("2021-09-01T01:02:03Z"),
            ),
            (
                "2021-09-01T03:02:03+02:00",
                KvType::Datetime,
                json!("2021-09-01T01:02:03Z"),
            ),
            (r#""PT5S""#, KvType::Duration, json!("PT5S")),
            (r#""P1D""#, KvType::Duration, json!("P1D")),
            (r#"{"a": [1]}"#, KvType::Json, json!({"a": [1]})),
            ("[1, 2]", KvType::Json, json!([1, 2])),
            ("hello world", KvType::String, json!("hello world")),
            // Without an offset a date-time is not a DATETIME.
            (
                "2021-09-01T01:02:03",
                KvType::String,
                json!("2021-09-01T01:02:03"),
            ),
            ("2021-13-45", KvType::String, json!("2021-13-45")),
            ("{not json", KvType::String, json!("{not json")),
        ];
        for (body, kind, value) in cases {
            assert_eq!(type_value(body), (*kind, value.clone()), "body {body}");
        }
    }

    #[test]
    fn duration_pattern_needs_a_component() {
        for ok in ["PT5S", "P1D", "P1Y2M3W4DT5H6M7.5S", "PT0.5S"] {
            assert!(is_iso_duration(ok), "{ok}");
        }
        for bad in ["P", "PT", "P1DT", "5S", "pt5s", "P1H"] {
            assert!(!is_iso_duration(bad), "{bad}");
        }
    }

    #[test]
    fn ttl_parses_like_java_duration() {
        assert_eq!(parse_ttl("PT5M"), Some(TimeDelta::minutes(5)));
        assert_eq!(parse_ttl("P1DT1H"), Some(TimeDelta::hours(25)));
        assert_eq!(parse_ttl("PT1.5S"), Some(TimeDelta::milliseconds(1500)));
        assert_eq!(parse_ttl("-PT1S"), Some(TimeDelta::seconds(-1)));
        for bad in ["", "P", "PT", "5m", "P1M", "P1Y", "PT5X"] {
            assert_eq!(parse_ttl(bad), None, "{bad}");
        }
    }

    #[test]
    fn keys_follow_the_pattern() {
        assert!(check_key("my.key_1-a").is_ok());
        assert!(check_key("_hidden").is_err());
        assert!(check_key("a b").is_err());
    }
}
