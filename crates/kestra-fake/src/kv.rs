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

use crate::app::{ApiPath, ApiQuery, AppState, Tenant};
use crate::config::ErrorFormat;
use crate::errors::ApiError;

#[expect(
    clippy::expect_used,
    reason = "a literal pattern; every test that uses it would fail first"
)]
static KEY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$").expect("static regex"));
#[expect(
    clippy::expect_used,
    reason = "a literal pattern; every test that uses it would fail first"
)]
static DATE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\d{4}-\d{2}-\d{2}$").expect("static regex"));
/// ISO-8601 durations with any of the date and time parts (`P1D`, `PT5S`, `P1Y2M`).
#[expect(
    clippy::expect_used,
    reason = "a literal pattern; every test that uses it would fail first"
)]
static ISO_DURATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[-+]?P(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(\d+H)?(\d+M)?(\d+([.,]\d+)?S)?)?$")
        .expect("static regex")
});
/// What `java.time.Duration.parse` accepts, which is what the `ttl` header goes through.
#[expect(
    clippy::expect_used,
    reason = "a literal pattern; every test that uses it would fail first"
)]
static JAVA_DURATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^([-+]?)P(?:([-+]?\d+)D)?(T(?:([-+]?\d+)H)?(?:([-+]?\d+)M)?(?:([-+]?\d+)(?:[.,](\d{0,9}))?S)?)?$",
    )
    .expect("static regex")
});

/// `xxxxx-` before a key and `.ion.metadata` after it, in the storage's temporary file name.
const STORAGE_NAME_EXTRA: usize = 6 + 13;

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

/// How Kestra types a PUT body, which it parses as Ion (a superset of JSON) and keeps only the
/// first value of: unquoted `hello world` is the symbol `hello`. A date-time with an offset
/// other than `Z` is not an Ion timestamp Kestra maps to DATETIME: it comes back as JSON with
/// the text kept. Durations are re-printed the way `java.time.Duration` prints (`P1D` is
/// `PT24H`). `Err` for a date outside the years 1..9999, which Kestra answers with a 500.
pub fn type_value(body: &str) -> Result<(KvType, Value), ApiError> {
    let text = body.trim();
    if text.starts_with('"') {
        if let Ok(s) = serde_json::from_str::<String>(text) {
            return Ok(typed_text(s));
        }
    } else if text == "true" || text == "false" {
        return Ok((KvType::Boolean, Value::Bool(text == "true")));
    } else if text == "null" {
        return Ok((KvType::String, Value::Null));
    } else if let Ok(n) = serde_json::from_str::<serde_json::Number>(text) {
        return Ok((KvType::Number, Value::Number(n)));
    } else if DATE.is_match(text) && NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok() {
        check_year(&text[..4])?;
        return Ok((KvType::Date, Value::String(text.to_owned())));
    } else if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        check_year(&text[..4])?;
        if !text.ends_with('Z') && !text.ends_with('z') {
            return Ok((KvType::Json, Value::String(text.to_owned())));
        }
        let utc = at.with_timezone(&Utc);
        return Ok((
            KvType::Datetime,
            Value::String(utc.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        ));
    } else if (text.starts_with('{') || text.starts_with('['))
        && let Ok(mut json) = serde_json::from_str::<Value>(text)
    {
        integral_floats_as_integers(&mut json);
        return Ok((KvType::Json, json));
    }
    if text.starts_with('{') || text.starts_with('[') {
        return Ok((KvType::String, Value::String(body.to_owned())));
    }
    // An Ion symbol: only the first value counts; `'sym'` is a quoted symbol.
    let first = text.split_whitespace().next().unwrap_or("");
    let symbol = first
        .strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .unwrap_or(first);
    Ok(typed_text(symbol.to_owned()))
}

/// A text value: a DURATION when it reads as one, else a STRING.
fn typed_text(s: String) -> (KvType, Value) {
    if is_iso_duration(&s) {
        let printed = parse_ttl(&s).map_or(s, java_duration);
        (KvType::Duration, Value::String(printed))
    } else {
        (KvType::String, Value::String(s))
    }
}

/// `java.time.Duration.toString()`: hours, minutes and seconds only (`PT24H`, `PT1M30S`).
fn java_duration(d: TimeDelta) -> String {
    if d.is_zero() {
        return "PT0S".to_owned();
    }
    let sign = if d < TimeDelta::zero() { "-" } else { "" };
    let d = d.abs();
    let total = d.num_seconds();
    let (hours, minutes, seconds) = (total / 3600, (total % 3600) / 60, total % 60);
    let nanos = d.subsec_nanos();
    let mut out = String::from("PT");
    if hours > 0 {
        out.push_str(&format!("{sign}{hours}H"));
    }
    if minutes > 0 {
        out.push_str(&format!("{sign}{minutes}M"));
    }
    if seconds > 0 || nanos > 0 {
        let fraction = if nanos > 0 {
            format!(".{nanos:09}").trim_end_matches('0').to_owned()
        } else {
            String::new()
        };
        out.push_str(&format!("{sign}{seconds}{fraction}S"));
    }
    out
}

/// Ion reads `3.0` in a list as a decimal that Jackson writes back as `3`.
fn integral_floats_as_integers(value: &mut Value) {
    match value {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|f| n.is_f64() && f.fract() == 0.0)
                && f.abs() < 9.0e15
            {
                *n = serde_json::Number::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        Value::Object(map) => map.values_mut().for_each(integral_floats_as_integers),
        _ => {}
    }
}

/// Ion timestamps only hold the years 1 to 9999.
fn check_year(year: &str) -> Result<(), ApiError> {
    match year.parse::<u32>() {
        Ok(1..=9999) => Ok(()),
        _ => Err(ApiError::Internal(format!(
            "Year {} must be between 1 and 9999 inclusive",
            year.parse::<u32>().unwrap_or(0)
        ))),
    }
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
    if !essence.eq_ignore_ascii_case("text/plain") {
        return Err(ApiError::UnsupportedMediaType(format!(
            "Content Type [{essence}] not allowed. Allowed types: [text/plain]"
        )));
    }
    if body.is_empty() {
        return Err(ApiError::InvalidRouteParams(
            "Required Body [value] not specified".to_owned(),
        ));
    }
    // Kestra's storage writes `<5 random chars>-<key>.ion.metadata` first: past the 255
    // bytes of a file name, the file system refuses it (kv-key-names#24 of the recordings).
    if path.key.len() + STORAGE_NAME_EXTRA > 255 {
        let nonce: String = format!("{:05x}", Utc::now().timestamp_subsec_nanos() & 0xfffff);
        return Err(ApiError::NotFound(format!(
            "/app/storage/{tenant}/{}/_kv/{nonce}-{}.ion.metadata (File name too long)",
            path.namespace.replace('.', "/"),
            // The name Kestra shows keeps the first 245 characters of the key.
            path.key.chars().take(245).collect::<String>()
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
        Some(text) => {
            let ttl = parse_ttl(&text).ok_or_else(|| {
                // Released Kestra lets the parse failure through as a 500; the problem
                // generation names it.
                if shared.config.error_format == ErrorFormat::Problem {
                    ApiError::InvalidFormat(format!("Text cannot be parsed to a Duration: {text}"))
                } else {
                    ApiError::Internal("Text cannot be parsed to a Duration".to_owned())
                }
            })?;
            if ttl < TimeDelta::zero() {
                return Err(ApiError::IllegalArgument(
                    "ttl cannot be negative".to_owned(),
                ));
            }
            Some(ttl)
        }
    };
    let description = header_text("description")?;
    let body = std::str::from_utf8(&body)
        .map_err(|_| ApiError::IllegalArgument("Invalid JSON value: not UTF-8".to_owned()))?;
    let (kv_type, value) = type_value(body)?;
    let now = Utc::now();
    let expiration = ttl.and_then(|ttl| now.checked_add_signed(ttl));
    shared.write(|store| {
        let tenant = store.tenant_mut(&tenant);
        let deleted_revision = tenant
            .kv_deleted_revisions
            .get_mut(&path.namespace)
            .and_then(|keys| keys.remove(&path.key));
        let entries = tenant.kv.entry(path.namespace).or_default();
        // The revision grows with every write, across expiry and delete.
        let previous = entries.get(&path.key);
        let live = previous.filter(|e| !e.expired(now));
        let last_revision = previous.map(|e| e.version).or(deleted_revision);
        let entry = KvEntry {
            kv_type,
            value,
            version: last_revision.map_or(1, |v| v + 1),
            created: live.map_or(now, |e| e.created),
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
    // `GET .../kv/inheritance` is Kestra's inherited listing route, not the key.
    if path.key == "inheritance" {
        return Ok(Json(Value::Array(inherited(
            &shared,
            &tenant,
            &path.namespace,
        ))));
    }
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
    // Exactly these fields; a `null` value has no `value`.
    let mut body = json!({
        "type": entry.kv_type,
        "revision": entry.version,
        "updated": millis(entry.updated),
    });
    if !entry.value.is_null() {
        body["value"] = entry.value;
    }
    Ok(Json(body))
}

/// Removes a key, remembering its revision; whether a live (unexpired) key was there.
fn remove_key(store: &mut crate::store::TenantStore, namespace: &str, key: &str) -> bool {
    let Some(entry) = store.kv.get_mut(namespace).and_then(|e| e.remove(key)) else {
        return false;
    };
    store
        .kv_deleted_revisions
        .entry(namespace.to_owned())
        .or_default()
        .insert(key.to_owned(), entry.version);
    !entry.expired(Utc::now())
}

pub async fn delete(
    State(shared): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(path): ApiPath<KeyPath>,
) -> Result<Json<bool>, ApiError> {
    check_key(&path.key)?;
    let deleted = shared.write(|store| {
        Ok(remove_key(
            store.tenant_mut(&tenant),
            &path.namespace,
            &path.key,
        ))
    })?;
    Ok(Json(deleted))
}

#[derive(Deserialize)]
pub struct BulkDelete {
    #[serde(default)]
    keys: Vec<String>,
}

/// `DELETE /namespaces/{namespace}/kv` with `{"keys": [...]}`: the keys that were deleted.
pub async fn delete_many(
    State(shared): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(path): ApiPath<NamespacePath>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: BulkDelete = serde_json::from_slice(&body)
        .map_err(|e| ApiError::Internal(format!("Cannot read the keys: {e}")))?;
    let deleted = shared.write(|store| {
        let tenant = store.tenant_mut(&tenant);
        Ok(request
            .keys
            .into_iter()
            .filter(|key| remove_key(tenant, &path.namespace, key))
            .collect::<Vec<_>>())
    })?;
    Ok(Json(json!({ "keys": deleted })))
}

/// A listing row: `version` in Kestra 1.x, `revision` in 2.0.
fn row(namespace: &str, key: &str, e: &KvEntry, v2: bool) -> Value {
    let mut item = json!({
        "namespace": namespace,
        "key": key,
        "creationDate": millis(e.created),
        "updateDate": millis(e.updated),
    });
    item[if v2 { "revision" } else { "version" }] = json!(e.version);
    if let Some(description) = &e.description {
        item["description"] = Value::String(description.clone());
    }
    if let Some(at) = e.expiration {
        item["expirationDate"] = Value::String(millis(at));
    }
    item
}

/// The live entries of a namespace as listing rows, by key.
fn rows(shared: &AppState, tenant: &str, namespace: &str) -> Vec<Value> {
    let now = Utc::now();
    let v2 = shared.config.kestra_version.is_v2();
    shared.read(|store| {
        store
            .tenant(tenant)
            .and_then(|t| t.kv.get(namespace))
            .map(|entries| {
                entries
                    .iter()
                    .filter(|(_, e)| !e.expired(now))
                    .map(|(key, e)| row(namespace, key, e, v2))
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// `GET .../kv/inheritance`: the entries of the parent namespaces, nearest first, a key
/// shadowed by a nearer parent shown once (the namespace's own keys are not part of it).
fn inherited(shared: &AppState, tenant: &str, namespace: &str) -> Vec<Value> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    let mut current = namespace;
    while let Some((parent, _)) = current.rsplit_once('.') {
        for item in rows(shared, tenant, parent) {
            let key = item["key"].as_str().unwrap_or("").to_owned();
            if seen.insert(key) {
                out.push(item);
            }
        }
        current = parent;
    }
    out
}

/// `GET /namespaces/{namespace}/kv` (Kestra 1.x; 2.0 only has DELETE there).
pub async fn list(
    State(shared): State<AppState>,
    Tenant(tenant): Tenant,
    ApiPath(path): ApiPath<NamespacePath>,
) -> Result<Json<Vec<Value>>, ApiError> {
    if shared.config.kestra_version.is_v2() {
        return Err(ApiError::MethodNotAllowed(format!(
            "Method [GET] not allowed for URI [{}]. Allowed methods: [DELETE]",
            kv_list_uri(&shared, &tenant, &path.namespace)
        )));
    }
    Ok(Json(rows(&shared, &tenant, &path.namespace)))
}

fn kv_list_uri(shared: &AppState, tenant: &str, namespace: &str) -> String {
    if shared.config.legacy_root {
        format!("/api/v1/namespaces/{namespace}/kv")
    } else {
        format!("/api/v1/{tenant}/namespaces/{namespace}/kv")
    }
}

/// A namespace condition of the KV search.
enum NamespaceFilter {
    Equals(String),
    NotEquals(String),
    StartsWith(String),
    Prefix(String),
    In(Vec<String>),
}

#[expect(
    clippy::expect_used,
    reason = "a literal pattern; every test that uses it would fail first"
)]
static FILTER_KEY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^filters\[(\w+)\]\[(\w+)\]$").expect("static regex"));

/// `GET /kv?filters[namespace][EQUALS]=..&page=..&size=..&sort=key:asc`: the tenant-wide,
/// paged KV listing (both lines; 2.0's replacement of the per-namespace listing).
pub async fn search(
    State(shared): State<AppState>,
    Tenant(tenant): Tenant,
    ApiQuery(params): ApiQuery<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let v2 = shared.config.kestra_version.is_v2();
    let (mut page, mut size, mut descending) = (1_i64, 10_i64, false);
    let mut filters = Vec::new();
    let mut text: Option<String> = None;
    for (key, value) in &params {
        match key.as_str() {
            "page" | "size" => {
                let n = value.parse::<i64>().map_err(|_| {
                    ApiError::Verbatim(
                        422,
                        format!(
                            "Internal server error: Failed to convert argument [{key}] for \
                             value [{value}] due to: For input string: \"{value}\""
                        ),
                    )
                })?;
                if key == "page" {
                    page = n;
                } else {
                    size = n;
                }
            }
            "sort" => {
                let (field, order) = value.split_once(':').unwrap_or((value.as_str(), "asc"));
                if field != "key" {
                    return Err(if v2 {
                        ApiError::IllegalArgument(format!(
                            "The sort field '{field}' does not exist on this resource."
                        ))
                    } else {
                        ApiError::Internal(format!("SQL [select ... order by \"{field}\"]"))
                    });
                }
                descending = order.eq_ignore_ascii_case("desc");
            }
            _ => {
                let Some(caps) = FILTER_KEY.captures(key) else {
                    continue; // Unknown parameters (also the legacy `namespace=`) are ignored.
                };
                let op = &caps[2];
                crate::filters::check(&caps[1], op, v2)?;
                match (&caps[1], op) {
                    ("namespace", "EQUALS") => filters.push(NamespaceFilter::Equals(value.clone())),
                    ("namespace", "NOT_EQUALS") => {
                        filters.push(NamespaceFilter::NotEquals(value.clone()));
                    }
                    ("namespace", "STARTS_WITH") => {
                        filters.push(NamespaceFilter::StartsWith(value.clone()));
                    }
                    ("namespace", "PREFIX") => filters.push(NamespaceFilter::Prefix(value.clone())),
                    ("namespace", "IN") => filters.push(NamespaceFilter::In(
                        value.split(',').map(|s| s.trim().to_owned()).collect(),
                    )),
                    ("q", _) => text = Some(value.clone()),
                    (field, _) => {
                        return Err(ApiError::IllegalArgument(format!(
                            "Unsupported field '{field}'. Expected one of: [namespace, q]"
                        )));
                    }
                }
            }
        }
    }
    if size == 0 {
        return Err(ApiError::IllegalArgument("Size cannot be 0".to_owned()));
    }
    if size < 0 {
        return Err(ApiError::IllegalArgument(
            "Unpaged data are not supported".to_owned(),
        ));
    }
    if page < 1 {
        // H2's refusal of a negative offset, with the statement of a namespace listing
        // (kv-types+kv-list#10 of the recordings).
        let statement = "select *, count(*) over () \"total_count\" from (select \"value\" \
            from kv_metadata where (\"tenant_id\" = cast(? as varchar) and \"deleted\" = \
            cast(? as boolean) and (\"expiration_date\" > cast(? as timestamp with time zone) \
            or \"expiration_date\" is null) and \"namespace\" = cast(? as varchar) and \
            \"last\" = cast(? as boolean))) \"page\" offset ? rows fetch next ? rows only";
        return Err(ApiError::Internal(format!(
            "SQL [{statement}]; Invalid value \"CAST({} AS BIGINT)\" for parameter \
             \"result OFFSET\"; SQL statement:\n{statement} [90008-240]",
            (page - 1).saturating_mul(size)
        )));
    }
    let now = Utc::now();
    let mut matches: Vec<(String, String, Value)> = shared.read(|store| {
        let Some(t) = store.tenant(&tenant) else {
            return Vec::new();
        };
        t.kv.iter()
            .filter(|(namespace, _)| {
                filters.iter().all(|f| match f {
                    NamespaceFilter::Equals(v) => *namespace == v,
                    NamespaceFilter::NotEquals(v) => *namespace != v,
                    NamespaceFilter::StartsWith(v) => namespace.starts_with(v.as_str()),
                    NamespaceFilter::Prefix(v) => {
                        *namespace == v || namespace.starts_with(&format!("{v}."))
                    }
                    NamespaceFilter::In(values) => values.iter().any(|v| v == *namespace),
                })
            })
            .flat_map(|(namespace, entries)| {
                entries
                    .iter()
                    .filter(|(key, e)| {
                        !e.expired(now) && text.as_ref().is_none_or(|t| key.contains(t.as_str()))
                    })
                    .map(move |(key, e)| {
                        (key.clone(), namespace.clone(), row(namespace, key, e, v2))
                    })
            })
            .collect()
    });
    matches.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    if descending {
        matches.reverse();
    }
    let total = matches.len();
    let skip = usize::try_from((page - 1).saturating_mul(size)).unwrap_or(usize::MAX);
    let take = usize::try_from(size).unwrap_or(usize::MAX);
    let results: Vec<Value> = matches
        .into_iter()
        .skip(skip)
        .take(take)
        .map(|(_, _, row)| row)
        .collect();
    // Kestra counts the rows of the page's query: past the end the total is 0.
    let total = if results.is_empty() { 0 } else { total };
    Ok(Json(json!({ "results": results, "total": total })))
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
            // An offset other than Z: JSON, the text kept (kv-types#36).
            (
                "2021-09-01T03:02:03+02:00",
                KvType::Json,
                json!("2021-09-01T03:02:03+02:00"),
            ),
            (r#""PT5S""#, KvType::Duration, json!("PT5S")),
            ("PT5M", KvType::Duration, json!("PT5M")),
            (r#""P1D""#, KvType::Duration, json!("PT24H")),
            (r#""PT90S""#, KvType::Duration, json!("PT1M30S")),
            (r#""PT5M later""#, KvType::String, json!("PT5M later")),
            (r#"{"a": [1]}"#, KvType::Json, json!({"a": [1]})),
            ("[1, 2]", KvType::Json, json!([1, 2])),
            (
                r#"[1,"two",3.0,true]"#,
                KvType::Json,
                json!([1, "two", 3, true]),
            ),
            // Only the first Ion value counts.
            ("hello world", KvType::String, json!("hello")),
            ("line1\nline2\n", KvType::String, json!("line1")),
            ("'sym'", KvType::String, json!("sym")),
            ("null", KvType::String, Value::Null),
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
            assert_eq!(
                type_value(body).ok(),
                Some((*kind, value.clone())),
                "body {body}"
            );
        }
    }

    #[test]
    fn years_outside_ion_timestamps_are_refused() {
        for body in ["0000-01-01", "0000-01-01T00:00:00Z"] {
            let error = type_value(body).err().map(|e| e.to_string());
            assert_eq!(
                error.as_deref(),
                Some("Internal server error: Year 0 must be between 1 and 9999 inclusive"),
                "{body}"
            );
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
