//! `parse_period`: durations such as `30s`, `5m`, `1h30m`, `500ms` (operator flags and settings),
//! read by kube's Go-format parser: never a panic, zero or a negative period.
#![no_main]

use std::time::Duration;

use kestra_operator::engine::{PERIOD_MAX_LEN, parse_period};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(period) = parse_period(text) else {
        return;
    };
    assert!(!period.is_zero(), "{text:?}");
    // Parts add up: one more second is one second longer (or overflows, or is too long a text,
    // to None).
    let longer_text = format!("{}1s", text.trim());
    let longer = parse_period(&longer_text);
    if let Some(expected) = period.checked_add(Duration::from_secs(1))
        && longer_text.len() <= PERIOD_MAX_LEN
    {
        assert_eq!(longer, Some(expected), "{text:?}");
    }
});
