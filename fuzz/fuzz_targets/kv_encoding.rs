//! `encode` and `matches`: a KestraKeyValue's `spec.value` (or a referenced Secret/ConfigMap
//! key) turned into the PUT body Kestra types as the user means, then compared with what a
//! GET returns.
//!
//! Every input is tried as a string value and, when it is JSON, as that JSON value, each with
//! no `spec.type` and with each of the seven types.
#![no_main]

use jiff::{Timestamp, civil::Date};
use kestra_operator::adapters::kv_encoding::{encode, looks_like_duration, matches};
use kestra_operator::crd::KvType;
use kestra_operator::kestra::KvEntry;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const TYPES: [Option<KvType>; 8] = [
    None,
    Some(KvType::String),
    Some(KvType::Number),
    Some(KvType::Boolean),
    Some(KvType::Datetime),
    Some(KvType::Date),
    Some(KvType::Duration),
    Some(KvType::Json),
];

fn check(value: &Value, forced: Option<KvType>) {
    let Ok(encoded) = encode(value, forced) else {
        return;
    };
    if let Some(t) = forced {
        assert_eq!(encoded.type_, t, "{value} forced to {t:?}");
    }
    // The body is what Kestra reads: JSON text, except dates and date-times, which are bare.
    // Kestra's GET gives the value back; for JSON bodies, as the body's own text.
    let echoed = match encoded.type_ {
        KvType::Date => {
            assert!(encoded.body.parse::<Date>().is_ok(), "{:?}", encoded.body);
            Value::String(encoded.body.clone())
        }
        KvType::Datetime => {
            assert!(
                encoded.body.parse::<Timestamp>().is_ok(),
                "{:?}",
                encoded.body
            );
            Value::String(encoded.body.clone())
        }
        _ => serde_json::from_str(&encoded.body)
            .unwrap_or_else(|e| panic!("body {:?} is not JSON: {e}", encoded.body)),
    };
    match encoded.type_ {
        KvType::Number => assert!(echoed.is_number(), "{:?}", encoded.body),
        KvType::Json => assert!(
            echoed.is_object() || echoed.is_array(),
            "{:?}",
            encoded.body
        ),
        KvType::Boolean => assert!(echoed.is_boolean(), "{:?}", encoded.body),
        _ => assert_eq!(echoed, encoded.expected, "body {:?}", encoded.body),
    }
    let stored = |value: Value| KvEntry {
        type_: encoded.type_.as_str().to_string(),
        value,
        expiration_date: None,
    };
    assert!(
        matches(&encoded, &stored(echoed.clone())),
        "{encoded:?} does not match its echo {echoed}"
    );
    // Kestra stores a quoted string that reads like a duration as DURATION, so a STRING
    // body must never read like one.
    if encoded.type_ == KvType::String {
        let text = encoded
            .expected
            .as_str()
            .expect("a STRING's value is a string");
        assert!(!looks_like_duration(text), "{text:?} typed STRING");
    }
    assert!(
        matches(&encoded, &stored(encoded.expected.clone())),
        "{encoded:?} does not match itself"
    );
    // The stored value, given back with its type, encodes to the same body.
    let again = encode(&encoded.expected, Some(encoded.type_))
        .unwrap_or_else(|e| panic!("{encoded:?}: its own value is refused: {e}"));
    assert_eq!(again.body, encoded.body);
    assert_eq!(again.type_, encoded.type_);
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = looks_like_duration(text);
    let as_string = Value::String(text.to_string());
    let as_json = serde_json::from_str::<Value>(text).ok();
    for forced in TYPES {
        check(&as_string, forced);
        if let Some(json) = &as_json {
            check(json, forced);
        }
    }
});
