//! Media types of web requests and answers: which are JSON, which are
//! binary (carried as base64 in JSON), as OpenWhisk tells them apart.

/// The `type/subtype` of a `Content-Type` value, lowercased and without
/// parameters; `None` if it is not of that form.
pub fn media_type(value: &str) -> Option<String> {
    let essence = value.split(';').next()?.trim().to_ascii_lowercase();
    let (kind, subtype) = essence.split_once('/')?;
    let token = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    (token(kind) && token(subtype)).then_some(essence)
}

/// `application/json` and `*/*+json`.
pub fn is_json_family(media: &str) -> bool {
    media == "application/json" || media.ends_with("+json")
}

/// Whether content of this type is bytes rather than text: everything but
/// `text/*`, the JSON and XML families and the few textual `application`
/// types.
pub fn is_binary(media: &str) -> bool {
    let textual = media.starts_with("text/")
        || is_json_family(media)
        || media.ends_with("+xml")
        || matches!(
            media,
            "application/xml"
                | "application/javascript"
                | "application/ecmascript"
                | "application/x-www-form-urlencoded"
                | "application/x-javascript"
        );
    !textual
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_parse_and_classify() {
        assert_eq!(
            media_type("Text/HTML; charset=UTF-8").as_deref(),
            Some("text/html")
        );
        assert_eq!(media_type("nonsense"), None);
        assert_eq!(media_type("a/"), None);
        assert!(is_json_family("application/vnd.api+json"));
        assert!(is_binary("image/png"));
        assert!(is_binary("application/octet-stream"));
        assert!(!is_binary("image/svg+xml"));
        assert!(!is_binary("text/plain"));
        assert!(!is_binary("application/json"));
    }
}
