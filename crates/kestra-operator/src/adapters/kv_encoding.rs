//! How a spec value becomes the body Kestra types the way the user means (`kestra-api.md` §3),
//! and how a stored value is compared with it.

use std::sync::LazyLock;

use k8s_openapi::jiff::tz::TimeZone;
use k8s_openapi::jiff::{SignedDuration, Span, SpanRelativeTo, Timestamp, civil::Date};
use regex::Regex;
use serde_json::Value;

use crate::crd::KvType;
use crate::kestra::KvEntry;

/// The PUT body and what Kestra will store for it.
#[derive(Clone, Debug, PartialEq)]
pub struct Encoded {
    /// The request body (Ion/JSON text: strings quoted, dates bare).
    pub body: String,
    /// The type Kestra infers from `body`.
    pub type_: KvType,
    /// The value as Kestra's GET returns it.
    pub expected: Value,
}

impl std::hash::Hash for Encoded {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.body.hash(state);
        self.type_.hash(state);
    }
}

/// Java's `Duration.parse` grammar: days, hours, minutes, seconds.
#[expect(
    clippy::expect_used,
    reason = "a literal pattern; every test that uses it would fail first"
)]
static DURATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^[-+]?P(?:[-+]?[0-9]+D)?(?:T(?:[-+]?[0-9]+H)?(?:[-+]?[0-9]+M)?(?:[-+]?[0-9]+(?:[.,][0-9]{0,9})?S)?)?$")
        .expect("static regex")
});
/// An Ion timestamp with a time and an offset.
#[expect(
    clippy::expect_used,
    reason = "a literal pattern; every test that uses it would fail first"
)]
static DATETIME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?(?:Z|[+-][0-9]{2}:[0-9]{2})$")
        .expect("static regex")
});

/// A string Kestra stores as DURATION even when quoted.
pub fn looks_like_duration(text: &str) -> bool {
    let upper = text.to_ascii_uppercase();
    DURATION.is_match(text) && !upper.ends_with('P') && !upper.ends_with('T')
}

fn quoted(text: &str) -> String {
    Value::String(text.to_string()).to_string()
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

fn string(text: &str, type_: KvType) -> Encoded {
    Encoded {
        body: quoted(text),
        type_,
        expected: Value::String(text.to_string()),
    }
}

/// Encode `value` (from `spec.value`, or a referenced key as a string) for `spec.type`.
pub fn encode(value: &Value, forced: Option<KvType>) -> Result<Encoded, String> {
    let mismatch = |t: KvType, hint: &str| {
        Err(format!(
            "spec.type {} cannot hold the {} value given{hint}",
            t.as_str(),
            kind_of(value)
        ))
    };
    match (forced, value) {
        (_, Value::Null) => Err("spec.value is null: give a value, or use valueFrom".to_string()),
        (None, Value::String(s)) if looks_like_duration(s) => Ok(string(s, KvType::Duration)),
        (None | Some(KvType::String), Value::String(s)) => {
            if forced.is_some() && looks_like_duration(s) {
                return Err(format!(
                    "Kestra always stores {s:?} as DURATION (it reads like an ISO-8601 duration): set spec.type to DURATION"
                ));
            }
            Ok(string(s, KvType::String))
        }
        (None | Some(KvType::Number), Value::Number(n)) => Ok(Encoded {
            body: n.to_string(),
            type_: KvType::Number,
            expected: Value::Number(n.clone()),
        }),
        (None | Some(KvType::Boolean), Value::Bool(b)) => Ok(Encoded {
            body: b.to_string(),
            type_: KvType::Boolean,
            expected: Value::Bool(*b),
        }),
        (None | Some(KvType::Json), Value::Object(_) | Value::Array(_)) => Ok(Encoded {
            body: value.to_string(),
            type_: KvType::Json,
            expected: value.clone(),
        }),
        (Some(KvType::String), Value::Number(_) | Value::Bool(_)) => {
            Ok(string(&value.to_string(), KvType::String))
        }
        (Some(KvType::Number), Value::String(s)) => {
            match serde_json::from_str::<serde_json::Number>(s.trim()) {
                Ok(n) => Ok(Encoded {
                    body: n.to_string(),
                    type_: KvType::Number,
                    expected: Value::Number(n),
                }),
                Err(_) => Err(format!(
                    "spec.type NUMBER needs a number, and {s:?} is not one"
                )),
            }
        }
        (Some(KvType::Boolean), Value::String(s)) => match s.trim() {
            "true" | "false" => {
                let b = s.trim() == "true";
                Ok(Encoded {
                    body: b.to_string(),
                    type_: KvType::Boolean,
                    expected: Value::Bool(b),
                })
            }
            _ => Err(format!(
                "spec.type BOOLEAN needs true or false, and {s:?} is neither"
            )),
        },
        (Some(KvType::Date), Value::String(s)) => {
            let text = s.trim();
            match text.parse::<Date>() {
                Ok(date) if text.len() == 10 && in_kestra_years(date.year()) => Ok(Encoded {
                    body: text.to_string(),
                    type_: KvType::Date,
                    expected: Value::String(text.to_string()),
                }),
                _ => Err(format!(
                    "spec.type DATE needs a date from 0001-01-01 to 9999-12-31 such as 2026-01-31, \
                     and {s:?} is not one"
                )),
            }
        }
        (Some(KvType::Datetime), Value::String(s)) => {
            let text = s.trim();
            // Kestra keeps a date-time as DATETIME only in UTC (`Z`): with another offset it
            // stores type JSON, so the instant is written in UTC.
            let utc = DATETIME
                .is_match(text)
                .then(|| text.parse::<Timestamp>().ok())
                .flatten()
                .filter(|t| in_kestra_years(t.to_zoned(TimeZone::UTC).year()));
            match utc {
                Some(instant) => Ok(Encoded {
                    body: instant.to_string(),
                    type_: KvType::Datetime,
                    expected: Value::String(instant.to_string()),
                }),
                None => Err(format!(
                    "spec.type DATETIME needs a date-time with an offset, in the years 0001 to 9999 \
                     (UTC), such as 2026-01-31T10:00:00Z, and {s:?} is not one"
                )),
            }
        }
        (Some(KvType::Duration), Value::String(s)) => {
            if looks_like_duration(s.trim()) {
                Ok(string(s.trim(), KvType::Duration))
            } else {
                Err(format!(
                    "spec.type DURATION needs an ISO-8601 duration such as PT5M or P1DT2H, and {s:?} is not one"
                ))
            }
        }
        (Some(KvType::Json), Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(parsed @ (Value::Object(_) | Value::Array(_))) => Ok(Encoded {
                body: parsed.to_string(),
                type_: KvType::Json,
                expected: parsed,
            }),
            _ => Err(format!(
                "spec.type JSON needs an object or a list (or a string holding one), and {s:?} is neither"
            )),
        },
        (Some(t), _) => mismatch(t, ""),
    }
}

/// Kestra (Java's `LocalDate`, as 1.3 parses it) refuses years outside 1 to 9999 with a 500.
fn in_kestra_years(year: i16) -> bool {
    (1..=9999).contains(&year)
}

/// Two date-time texts name the same instant (compared as texts when either does not parse).
pub fn same_instant(a: &str, b: &str) -> bool {
    match (a.parse::<Timestamp>(), b.parse::<Timestamp>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// An ISO-8601 duration where a day is 24 hours, as Java's `Duration` reads it.
fn parse_duration(text: &str) -> Option<SignedDuration> {
    let span: Span = text.trim().parse().ok()?;
    span.to_duration(SpanRelativeTo::days_are_24_hours()).ok()
}

fn same_duration(a: &Value, b: &Value) -> bool {
    match (
        a.as_str().and_then(parse_duration),
        b.as_str().and_then(parse_duration),
    ) {
        (Some(a), Some(b)) => a == b,
        _ => a == b,
    }
}

/// Whether two floats are equal but for the last bits. serde_json (without its
/// `float_roundtrip` feature) may read a long number a unit or two in the last place away
/// from the double Kestra stored for it: `1.8446184467420742e+24` comes back as
/// `1.8446184467420745e24`. Comparing exactly would rewrite such a value forever.
fn same_float(a: f64, b: f64) -> bool {
    a == b
        || (a.is_finite()
            && b.is_finite()
            && a.is_sign_negative() == b.is_sign_negative()
            && a.to_bits().abs_diff(b.to_bits()) <= 4)
}

/// JSON equality, with floats compared by [`same_float`].
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            matches!((x.as_f64(), y.as_f64()), (Some(x), Some(y)) if same_float(x, y))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// Whether Kestra's stored entry equals what `encoded` would store.
pub fn matches(encoded: &Encoded, stored: &KvEntry) -> bool {
    if stored.type_ != encoded.type_.as_str() {
        return false;
    }
    match encoded.type_ {
        KvType::Number => match (encoded.expected.as_f64(), stored.value.as_f64()) {
            (Some(a), Some(b)) if encoded.expected.is_f64() || stored.value.is_f64() => {
                same_float(a, b)
            }
            (Some(a), Some(b)) => a == b,
            _ => false,
        },
        KvType::Datetime => match (encoded.expected.as_str(), stored.value.as_str()) {
            (Some(a), Some(b)) => same_instant(a, b),
            _ => encoded.expected == stored.value,
        },
        KvType::Duration => same_duration(&encoded.expected, &stored.value),
        KvType::Json => same_json(&encoded.expected, &stored.value),
        _ => encoded.expected == stored.value,
    }
}

/// The expiry time of a write with `ttl` made `now`.
pub fn expiry(ttl: &str, now: Timestamp) -> Option<Timestamp> {
    now.checked_add(parse_duration(ttl)?).ok()
}

/// A `ttl` the schema lets through but no expiry can be computed for (a part too large: past
/// the year 9999), with why.
pub fn check_ttl(ttl: &str, now: Timestamp) -> Result<(), String> {
    match expiry(ttl, now) {
        Some(_) => Ok(()),
        None => Err(format!(
            "spec.ttl {ttl:?} is too long: the entry would expire after the year 9999"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(type_: &str, value: Value) -> KvEntry {
        KvEntry {
            type_: type_.into(),
            value,
            expiration_date: None,
        }
    }

    #[test]
    fn a_ttl_must_end_before_the_year_10000() {
        let now = Timestamp::UNIX_EPOCH;
        assert!(check_ttl("PT5M", now).is_ok());
        assert!(check_ttl("P36500D", now).is_ok());
        let err = check_ttl("P99999999999999D", now).unwrap_err();
        assert!(err.contains("too long"), "{err}");
    }

    #[test]
    fn encoding_table_without_type() {
        let cases = [
            (json!("value1"), "\"value1\"", KvType::String),
            (json!("123"), "\"123\"", KvType::String),
            (json!("PT5S"), "\"PT5S\"", KvType::Duration),
            (json!("P1D"), "\"P1D\"", KvType::Duration),
            (json!(42), "42", KvType::Number),
            (json!(1.5), "1.5", KvType::Number),
            (json!(true), "true", KvType::Boolean),
            (json!({"a": [1, 2]}), "{\"a\":[1,2]}", KvType::Json),
            (json!([1, "x"]), "[1,\"x\"]", KvType::Json),
            (
                json!("with \"quotes\"\nand newline"),
                "\"with \\\"quotes\\\"\\nand newline\"",
                KvType::String,
            ),
        ];
        for (value, body, type_) in cases {
            let encoded = encode(&value, None).unwrap();
            assert_eq!(encoded.body, body, "{value}");
            assert_eq!(encoded.type_, type_, "{value}");
        }
    }

    #[test]
    fn encoding_table_with_type() {
        let cases = [
            (json!("2021-09-01"), KvType::Date, "2021-09-01"),
            (
                json!("2021-09-01T01:02:03Z"),
                KvType::Datetime,
                "2021-09-01T01:02:03Z",
            ),
            // Kestra stores an offset other than Z as type JSON: sent in UTC.
            (
                json!("2021-09-01T01:02:03.5+02:00"),
                KvType::Datetime,
                "2021-08-31T23:02:03.5Z",
            ),
            (
                json!("2026-12-01T10:00:00+02:00"),
                KvType::Datetime,
                "2026-12-01T08:00:00Z",
            ),
            (json!("PT1H30M"), KvType::Duration, "\"PT1H30M\""),
            (json!("42"), KvType::Number, "42"),
            (json!(" 1.25 "), KvType::Number, "1.25"),
            (json!("false"), KvType::Boolean, "false"),
            (json!(7), KvType::String, "\"7\""),
            (json!("{\"k\": 1}"), KvType::Json, "{\"k\":1}"),
            (json!({"k": 1}), KvType::Json, "{\"k\":1}"),
        ];
        for (value, type_, body) in cases {
            let encoded = encode(&value, Some(type_)).unwrap();
            assert_eq!(encoded.body, body, "{value} as {type_:?}");
            assert_eq!(encoded.type_, type_);
        }
    }

    #[test]
    fn wrong_pairings_are_refused_with_a_reason() {
        let cases = [
            (json!("abc"), KvType::Number),
            (json!("yes"), KvType::Boolean),
            (json!("2021-13-01"), KvType::Date),
            (json!("0000-01-01"), KvType::Date),
            (json!("0000-06-01T00:00:00Z"), KvType::Datetime),
            (json!("0001-01-01T00:30:00+01:00"), KvType::Datetime),
            (json!("2021-09-01T01:02:03"), KvType::Datetime),
            (json!("5 minutes"), KvType::Duration),
            (json!("not json"), KvType::Json),
            (json!("\"a string\""), KvType::Json),
            (json!(true), KvType::Number),
            (json!([1]), KvType::String),
            (json!(1), KvType::Date),
            (json!("PT5M"), KvType::String),
        ];
        for (value, type_) in cases {
            let err = encode(&value, Some(type_)).unwrap_err();
            assert!(
                err.contains("spec.type") || err.contains("DURATION"),
                "{value} as {type_:?}: {err}"
            );
        }
        assert!(encode(&Value::Null, None).is_err());
    }

    #[test]
    fn comparison_follows_kestra_normalisation() {
        let n = encode(&json!(42), None).unwrap();
        assert!(matches(&n, &entry("NUMBER", json!(42.0))));
        assert!(!matches(&n, &entry("NUMBER", json!(43))));
        assert!(!matches(&n, &entry("STRING", json!("42"))));
        let d = encode(&json!("P1D"), Some(KvType::Duration)).unwrap();
        assert!(matches(&d, &entry("DURATION", json!("PT24H"))));
        let t = encode(&json!("2021-09-01T03:02:03+02:00"), Some(KvType::Datetime)).unwrap();
        assert!(matches(
            &t,
            &entry("DATETIME", json!("2021-09-01T01:02:03Z"))
        ));
        let s = encode(&json!("hello"), None).unwrap();
        assert!(matches(&s, &entry("STRING", json!("hello"))));
        assert!(!matches(&s, &entry("STRING", json!("hello!"))));
        let j = encode(&json!({"b": 1, "a": 2}), None).unwrap();
        assert!(matches(&j, &entry("JSON", json!({"a": 2, "b": 1}))));
    }

    /// Found by `fuzz/fuzz_targets/kv_encoding.rs`: a long number did not match what Kestra
    /// echoes for its own body, so the entry was rewritten at every resync.
    #[test]
    fn long_numbers_match_their_echo() {
        for (text, type_) in [
            ("1844618446742074207370954", None),
            ("1844618446742074207370954", Some(KvType::Number)),
            ("[1844618446742074207370954]", None),
            (
                "{\"a\": {\"b\": [1844618446742074207370954]}}",
                Some(KvType::Json),
            ),
        ] {
            let value = match type_ {
                Some(KvType::Number | KvType::Json) => json!(text),
                _ => serde_json::from_str(text).unwrap(),
            };
            let encoded = encode(&value, type_).unwrap();
            let echoed: Value = serde_json::from_str(&encoded.body).unwrap();
            let stored = entry(encoded.type_.as_str(), echoed);
            assert!(
                matches(&encoded, &stored),
                "{text} as {type_:?}: {encoded:?}"
            );
        }
        // A real change is still one.
        let n = encode(&json!(1.5), None).unwrap();
        assert!(!matches(&n, &entry("NUMBER", json!(1.5000000001))));
        let j = encode(&json!({"a": 1.5}), None).unwrap();
        assert!(!matches(&j, &entry("JSON", json!({"a": 1.25}))));
        let big = encode(&json!([u64::MAX]), None).unwrap();
        assert!(!matches(&big, &entry("JSON", json!([u64::MAX - 1]))));
        let big = encode(&json!(1u64 << 60), None).unwrap();
        assert!(!matches(&big, &entry("NUMBER", json!((1u64 << 60) + 512))));
    }

    #[test]
    fn expiry_adds_the_ttl() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(
            expiry("PT5M", now).unwrap().to_string(),
            "2026-01-01T00:05:00Z"
        );
        assert_eq!(
            expiry("P1D", now).unwrap().to_string(),
            "2026-01-02T00:00:00Z"
        );
        assert!(expiry("bogus", now).is_none());
    }
}
