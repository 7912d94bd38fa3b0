//! [`ClientError`]: everything that can go wrong between a caller and the API
//! host, worded so that a user can act on it.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

/// A failure of a client call.
///
/// Each variant names who failed: the API host answered with an error
/// ([`Api`](Self::Api)), it could not be reached
/// ([`Transport`](Self::Transport)), it answered something this client does
/// not understand ([`Decode`](Self::Decode)), or the caller's configuration
/// is unusable (the rest).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The API host answered with an HTTP error status. `message` and `code`
    /// come from OpenWhisk's `{"error": …, "code": …}` body when it has one
    /// (`code` is the request id to quote in a bug report).
    #[error("{message} ({})", ApiDetail { status: *status, code: code.as_deref() })]
    Api {
        /// The HTTP status.
        status: u16,
        /// The server's message.
        message: String,
        /// The server's request id, when it sent one.
        code: Option<String>,
    },
    /// The API host could not be reached, or the connection broke.
    #[error("could not reach the API host {api_host}")]
    Transport {
        /// The API host that was tried.
        api_host: String,
        /// What the HTTP stack reported.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The TLS handshake with the API host failed: most often its
    /// certificate is not from an authority this client trusts.
    #[error("TLS with {api_host} failed: {reason} ({hint})")]
    TlsHandshake {
        /// The API host that was tried.
        api_host: String,
        /// What rustls reported.
        reason: String,
        /// What to try, for what rustls reported.
        hint: &'static str,
    },
    /// The API host answered with a body this client cannot read.
    #[error("the API host sent an unexpected {what}: {detail}")]
    Decode {
        /// What was being read, e.g. "activation".
        what: &'static str,
        /// What was wrong with it.
        detail: String,
    },
    /// The TLS settings (authorities, client certificate) cannot be used.
    #[error("TLS settings for '{api_host}': {source}")]
    Tls {
        /// The API host as configured.
        api_host: String,
        /// What was wrong.
        source: clemmys_tls::TlsError,
    },
    /// The API host is not a usable `http://host[:port][/path]` address.
    #[error("invalid API host '{api_host}': {reason}")]
    InvalidApiHost {
        /// The API host as configured.
        api_host: String,
        /// Why it is unusable.
        reason: String,
    },
    /// An entity name that OpenWhisk would refuse.
    #[error("invalid name '{name}': {source}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// Why it is invalid.
        #[source]
        source: clemmys_whisk::NameError,
    },
    /// The client's configuration (credentials, properties) is unusable.
    #[error("{message}")]
    Config {
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A properties file could not be read or written.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// "read" or "write".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

impl ClientError {
    /// The HTTP status of an [`Api`](Self::Api) error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether this is an API error with `status`.
    pub fn is_status(&self, status: u16) -> bool {
        self.status() == Some(status)
    }

    /// The error for a response of `status` with `body`: OpenWhisk's
    /// `{"error": "…", "code": "…"}` when the body is that, otherwise the
    /// start of the body (or the status's reason) as the message.
    pub fn from_response(status: u16, body: &[u8]) -> Self {
        #[derive(Deserialize)]
        struct ErrorBody {
            error: serde_json::Value,
            #[serde(default)]
            code: Option<serde_json::Value>,
        }
        if let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body) {
            let message = match parsed.error {
                serde_json::Value::String(text) => text,
                other => other.to_string(),
            };
            let code = match parsed.code {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::String(text)) => Some(text),
                Some(other) => Some(other.to_string()),
            };
            return Self::Api {
                status,
                message,
                code,
            };
        }
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        let message = if text.is_empty() {
            hyper::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("request failed")
                .to_owned()
        } else {
            truncate_chars(text, 300)
        };
        Self::Api {
            status,
            message,
            code: None,
        }
    }

    pub(crate) fn decode(what: &'static str, detail: impl fmt::Display) -> Self {
        Self::Decode {
            what,
            detail: detail.to_string(),
        }
    }
}

/// The parenthesised part of an API error: `HTTP 404, code abc`.
struct ApiDetail<'a> {
    status: u16,
    code: Option<&'a str>,
}

impl fmt::Display for ApiDetail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        if let Some(code) = self.code {
            write!(f, ", code {code}")?;
        }
        Ok(())
    }
}

fn truncate_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(max).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_openwhisk_error_bodies() {
        let err = ClientError::from_response(
            404,
            br#"{"error":"The requested resource does not exist.","code":"a1b2"}"#,
        );
        match &err {
            ClientError::Api {
                status,
                message,
                code,
            } => {
                assert_eq!(*status, 404);
                assert_eq!(message, "The requested resource does not exist.");
                assert_eq!(code.as_deref(), Some("a1b2"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            err.to_string(),
            "The requested resource does not exist. (HTTP 404, code a1b2)"
        );
        assert!(err.is_status(404));
    }

    #[test]
    fn accepts_numeric_codes_and_missing_codes() {
        let err =
            ClientError::from_response(409, br#"{"error":"resource already exists","code":4711}"#);
        assert_eq!(
            err.to_string(),
            "resource already exists (HTTP 409, code 4711)"
        );
        let err = ClientError::from_response(400, br#"{"error":"bad"}"#);
        assert_eq!(err.to_string(), "bad (HTTP 400)");
    }

    #[test]
    fn falls_back_to_body_text_or_reason() {
        let err = ClientError::from_response(502, b"Bad Gateway from proxy\n");
        assert_eq!(err.to_string(), "Bad Gateway from proxy (HTTP 502)");
        let err = ClientError::from_response(503, b"");
        assert_eq!(err.to_string(), "Service Unavailable (HTTP 503)");
        let long = "x".repeat(1000);
        let err = ClientError::from_response(500, long.as_bytes());
        assert!(err.to_string().len() < 400);
    }
}
