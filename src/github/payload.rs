//! The JSON document of a delivery, from its raw body: the body itself, or the `payload` field
//! when GitHub is set to send `application/x-www-form-urlencoded`. The signature covers the raw
//! body either way, so this runs after verification.

/// Why a body holds no JSON document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("body is not UTF-8")]
    NotUtf8,
    #[error("form body has no payload field")]
    NoPayloadField,
    #[error("form body has more than one payload field")]
    SeveralPayloadFields,
}

/// Whether a `Content-Type` value is a form (parameters such as `; charset=utf-8` allowed).
pub fn is_form(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|value| {
        value.split(';').next().is_some_and(|kind| {
            kind.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    })
}

/// The JSON text of a delivery. Takes the body by value so a JSON body becomes the text
/// without a copy; a form body is decoded once into a new string.
pub fn json_document(content_type: Option<&str>, body: Vec<u8>) -> Result<String, PayloadError> {
    if !is_form(content_type) {
        return String::from_utf8(body).map_err(|_| PayloadError::NotUtf8);
    }
    let mut payloads = form_urlencoded::parse(&body)
        .filter(|(key, _)| key == "payload")
        .map(|(_, value)| value);
    let payload = payloads.next().ok_or(PayloadError::NoPayloadField)?;
    if payloads.next().is_some() {
        // Two documents under one signature: which one is meant is ambiguous, so neither.
        return Err(PayloadError::SeveralPayloadFields);
    }
    // The decoder replaces invalid UTF-8 with U+FFFD silently; a JSON body is refused for it,
    // and so is a form's.
    if payload.contains('\u{fffd}') && !payload_is_utf8(&body) {
        return Err(PayloadError::NotUtf8);
    }
    Ok(payload.into_owned())
}

/// Whether the `payload` value of the form, percent-decoded, is UTF-8 as sent.
fn payload_is_utf8(body: &[u8]) -> bool {
    body.split(|byte| *byte == b'&').all(|pair| {
        let mut parts = pair.splitn(2, |byte| *byte == b'=');
        let key = decode_component(parts.next().unwrap_or_default());
        let value = decode_component(parts.next().unwrap_or_default());
        key != b"payload" || std::str::from_utf8(&value).is_ok()
    })
}

/// A form component as bytes: `+` is a space, `%XX` a byte.
fn decode_component(component: &[u8]) -> Vec<u8> {
    let spaced: Vec<u8> = component
        .iter()
        .map(|byte| if *byte == b'+' { b' ' } else { *byte })
        .collect();
    percent_decode(&spaced)
}

fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut output = Vec::with_capacity(input.len());
    let mut index = 0;
    while index < input.len() {
        let byte = input[index];
        if byte == b'%'
            && let Some(hex) = input.get(index + 1..index + 3)
            && let Ok(text) = std::str::from_utf8(hex)
            && let Ok(value) = u8::from_str_radix(text, 16)
        {
            output.push(value);
            index += 3;
            continue;
        }
        output.push(byte);
        index += 1;
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

    #[test]
    fn json_bodies_are_taken_as_they_are() {
        let body = br#"{"zen":"hi"}"#.to_vec();
        assert_eq!(
            json_document(Some("application/json"), body.clone()).unwrap(),
            r#"{"zen":"hi"}"#
        );
        assert_eq!(json_document(None, body).unwrap(), r#"{"zen":"hi"}"#);
        assert_eq!(
            json_document(None, b"\xff".to_vec()),
            Err(PayloadError::NotUtf8)
        );
    }

    #[test]
    fn forms_give_their_payload_field() {
        let json = r#"{"a":"b & c = d%"}"#;
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("other", "x")
            .append_pair("payload", json)
            .finish();
        assert_eq!(json_document(FORM, form.into_bytes()).unwrap(), json);
        assert!(is_form(Some(
            "Application/X-WWW-Form-Urlencoded; charset=utf-8"
        )));
        assert!(!is_form(Some("application/x-www-form-urlencodedX")));
        assert_eq!(
            json_document(FORM, b"x=1".to_vec()),
            Err(PayloadError::NoPayloadField)
        );
        assert_eq!(
            json_document(FORM, b"payload=1&payload=2".to_vec()),
            Err(PayloadError::SeveralPayloadFields)
        );
        assert_eq!(
            json_document(FORM, b"payload=%ff".to_vec()),
            Err(PayloadError::NotUtf8)
        );
        // A real U+FFFD sent as UTF-8 is kept.
        assert_eq!(
            json_document(FORM, b"payload=%EF%BF%BD".to_vec()).unwrap(),
            "\u{fffd}"
        );
    }
}
