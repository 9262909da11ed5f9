//! Payload indexing: never panics (or overflows the stack), and whatever it accepts parses as a
//! `serde_json::Value`, as the sinks parse it.
#![no_main]

use herald::github::{IndexedEvent, MAX_DEPTH, nesting_depth};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((_, text)) = IndexedEvent::parse(data) {
        assert!(nesting_depth(data) <= MAX_DEPTH);
        assert!(serde_json::from_str::<serde_json::Value>(text).is_ok());
    }
});
