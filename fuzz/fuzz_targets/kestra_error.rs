//! `error_message` and `KestraError::from_status`: error bodies from Kestra (or whatever
//! proxy answers in its place), in Micronaut `JsonError` or RFC 9457 problem format.
#![no_main]

use kestra_operator::kestra::{KestraError, error_message};
use libfuzzer_sys::fuzz_target;

/// `truncate(_, 1000)` keeps 1000 characters and appends "...".
const MAX_MESSAGE: usize = 1003;

fuzz_target!(|body: &[u8]| {
    if let Some(message) = error_message(body) {
        let n = message.chars().count();
        assert!(n <= MAX_MESSAGE, "message of {n} characters");
    }
    for status in [0, 200, 400, 401, 404, 408, 422, 429, 500, 503, 999] {
        let error = KestraError::from_status(status, body);
        assert_eq!(
            error.is_transient(),
            matches!(status, 408 | 429 | 500..=599),
            "HTTP {status}"
        );
        let n = error.to_string().chars().count();
        assert!(
            n <= MAX_MESSAGE + 64,
            "HTTP {status}: error of {n} characters"
        );
    }
});
