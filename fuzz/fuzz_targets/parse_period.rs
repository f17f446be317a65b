//! `parse_period`: durations such as `30s`, `5m`, `1h30m`, `500ms` (operator flags and settings).
#![no_main]

use std::time::Duration;

use kestra_operator::engine::parse_period;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(period) = parse_period(text) else {
        return;
    };
    assert!(!period.is_zero(), "{text:?}");
    // Parts add up: one more second is one second longer (or overflows to None).
    let longer = parse_period(&format!("{}1s", text.trim()));
    if let Some(expected) = period.checked_add(Duration::from_secs(1)) {
        assert_eq!(longer, Some(expected), "{text:?}");
    }
});
