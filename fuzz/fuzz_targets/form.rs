//! Form decoding: never panics on any body, and a form-encoded payload decodes back to itself.
#![no_main]

use herald::github::json_document;
use libfuzzer_sys::fuzz_target;

const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

fuzz_target!(|data: &[u8]| {
    let _ = json_document(FORM, data.to_vec());
    if let Ok(text) = std::str::from_utf8(data) {
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", text)
            .finish();
        assert_eq!(json_document(FORM, form.into_bytes()).unwrap(), text);
    }
});
