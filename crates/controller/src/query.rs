//! Query-string parameters, parsed with OpenWhisk's rules and messages.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::error::ApiError;

/// Default page size of list routes.
pub const DEFAULT_LIST_LIMIT: usize = 30;
/// Largest page size of list routes.
pub const MAX_LIST_LIMIT: usize = 200;

/// The raw query parameters of a request.
pub type Params = HashMap<String, String>;

/// The extractor of a request's [`Params`]. It reads them as axum's
/// `Query<HashMap<String, String>>` does (percent-decoded, never refused,
/// the last of repeated names counts) but straight from the URI: every
/// invoke runs it, and serde's map visitor with the extractor's error-path
/// tracking costs several times the parse itself.
pub struct QueryParams(pub Params);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(parse(parts.uri.query())))
    }
}

/// The parameters of the query string `query`.
pub fn parse(query: Option<&str>) -> Params {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// A boolean flag: absent → `default`; `true`/`false` otherwise.
pub fn flag(params: &Params, name: &str, default: bool) -> Result<bool, ApiError> {
    match params.get(name).map(String::as_str) {
        None => Ok(default),
        Some("true") | Some("") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(ApiError::bad_request(format!(
            "The value '{other}' is not a boolean for parameter '{name}'."
        ))),
    }
}

fn integer(params: &Params, name: &str, collection: &str) -> Result<Option<i64>, ApiError> {
    params
        .get(name)
        .map(|text| {
            text.parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!(
                    "The value '{text}' is not an integer for {collection}."
                ))
            })
        })
        .transpose()
}

/// `skip` and `limit` of a list route over `collection`.
pub fn paging(params: &Params, collection: &str) -> Result<(usize, usize), ApiError> {
    let skip = integer(params, "skip", collection)?.unwrap_or(0);
    let skip = usize::try_from(skip).map_err(|_| {
        ApiError::bad_request(format!(
            "The value '{skip}' is not greater than or equal to 0 for {collection}."
        ))
    })?;
    let limit = integer(params, "limit", collection)?.unwrap_or(DEFAULT_LIST_LIMIT as i64);
    let limit = usize::try_from(limit)
        .ok()
        .filter(|limit| *limit <= MAX_LIST_LIMIT)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "The value '{limit}' is not in the range of 0 to {MAX_LIST_LIMIT} for {collection}."
            ))
        })?;
    // OpenWhisk treats limit=0 as "as many as allowed".
    let limit = if limit == 0 { MAX_LIST_LIMIT } else { limit };
    Ok((skip, limit))
}

/// An epoch-milliseconds instant such as `since` or `upto`.
pub fn instant(params: &Params, name: &str) -> Result<Option<u64>, ApiError> {
    params
        .get(name)
        .map(|text| {
            text.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!(
                    "Parameter is not a valid value for epoch seconds: {text}"
                ))
            })
        })
        .transpose()
}

/// The `timeout` of a blocking invoke, in ms, at most `max`.
pub fn wait_timeout(params: &Params, max: u64) -> Result<Option<u64>, ApiError> {
    let Some(text) = params.get("timeout") else {
        return Ok(None);
    };
    match text.parse::<u64>() {
        Ok(ms) if ms <= max => Ok(Some(ms)),
        _ => Err(ApiError::bad_request(format!(
            "Timeout must be number of milliseconds up to {max}."
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_query_reads_as_axums_query_map_reads_it() {
        assert!(parse(None).is_empty());
        assert_eq!(
            parse(Some("blocking=true&result&name=a%20b+c&limit=1&limit=2")),
            params(&[
                ("blocking", "true"),
                ("result", ""),
                ("name", "a b c"),
                ("limit", "2"),
            ])
        );
        // Not UTF-8 after decoding: replaced, never refused.
        assert_eq!(parse(Some("skip=%FF")), params(&[("skip", "\u{fffd}")]));
    }

    #[test]
    fn paging_defaults_and_bounds() {
        assert_eq!(paging(&params(&[]), "actions").expect("ok"), (0, 30));
        assert_eq!(
            paging(&params(&[("skip", "5"), ("limit", "200")]), "actions").expect("ok"),
            (5, 200)
        );
        assert_eq!(
            paging(&params(&[("limit", "0")]), "actions").expect("ok"),
            (0, 200)
        );
        let err = paging(&params(&[("limit", "201")]), "actions").expect_err("too big");
        assert_eq!(
            err.message,
            "The value '201' is not in the range of 0 to 200 for actions."
        );
        let err = paging(&params(&[("skip", "-1")]), "actions").expect_err("negative");
        assert_eq!(
            err.message,
            "The value '-1' is not greater than or equal to 0 for actions."
        );
        let err = paging(&params(&[("limit", "x")]), "actions").expect_err("not a number");
        assert_eq!(err.message, "The value 'x' is not an integer for actions.");
    }

    #[test]
    fn flags_and_timeouts() {
        assert!(flag(&params(&[("blocking", "true")]), "blocking", false).expect("ok"));
        assert!(!flag(&params(&[]), "blocking", false).expect("ok"));
        assert!(flag(&params(&[("blocking", "yes")]), "blocking", false).is_err());
        assert_eq!(
            wait_timeout(&params(&[("timeout", "500")]), 60_000).expect("ok"),
            Some(500)
        );
        assert!(wait_timeout(&params(&[("timeout", "60001")]), 60_000).is_err());
    }
}
