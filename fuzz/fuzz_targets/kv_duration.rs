//! `expiry` and `looks_like_duration`: a KestraKeyValue's `spec.ttl` and duration-like values.
#![no_main]

use jiff::Timestamp;
use kestra_operator::adapters::kv_encoding::{encode, expiry, looks_like_duration};
use kestra_operator::crd::KvType;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// What the CRD admits as `spec.ttl`: its schema pattern and its CEL rule.
fn admitted_ttl(text: &str) -> bool {
    static PATTERN: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"^P([0-9]+D)?(T([0-9]+H)?([0-9]+M)?([0-9]+([.][0-9]+)?S)?)?$").unwrap()
    });
    PATTERN.is_match(text) && text != "P" && !text.ends_with('T')
}

/// Every number in `text` is small enough (at most 6 digits, at most 9 fraction digits,
/// which is all Java's `Duration` reads) for an expiry within jiff's range.
fn modest(text: &str) -> bool {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let longest = |s: &str| {
        s.split(|c: char| !c.is_ascii_digit())
            .map(str::len)
            .max()
            .unwrap_or(0)
    };
    longest(whole) <= 6 && longest(fraction) <= 9
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    for at in [Timestamp::MIN, now, Timestamp::MAX] {
        let _ = expiry(text, at);
    }
    if admitted_ttl(text) && modest(text) {
        let at = expiry(text, now).unwrap_or_else(|| panic!("admitted ttl {text:?} has no expiry"));
        assert!(at >= now, "{text:?} expires before it is written");
    }
    if looks_like_duration(text) {
        let encoded = encode(&Value::String(text.to_string()), None).unwrap();
        assert_eq!(encoded.type_, KvType::Duration);
        assert!(encode(&Value::String(text.to_string()), Some(KvType::String)).is_err());
    }
});
