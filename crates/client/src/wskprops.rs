//! OpenWhisk's `~/.wskprops`: `KEY=VALUE` lines read by `wsk` and by us.
//!
//! The file is shared with the Go `wsk` CLI, so saving keeps every line this
//! client does not manage (other keys, comments, blank lines) as it was, and
//! only rewrites the lines of the keys that were set.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use clemmys_whisk::AuthKey;

use crate::error::ClientError;

/// The key of the API host, e.g. `http://127.0.0.1:3233`.
pub const APIHOST: &str = "APIHOST";
/// The key of the API key, `UUID:KEY`.
pub const AUTH: &str = "AUTH";
/// The key of the default namespace.
pub const NAMESPACE: &str = "NAMESPACE";
/// The key of a client certificate chain (PEM), as in `wsk`.
pub const CERT: &str = "CERT";
/// The key of that certificate's private key (PEM), as in `wsk`.
pub const KEY: &str = "KEY";
/// Clemmys' own key: a PEM file of certificate authorities trusted for an
/// `https://` API host besides the system's (`clemmys serve --tls` writes
/// it for the authority it made). `wsk` ignores it.
pub const CACERT: &str = "CACERT";
/// The environment variable naming the properties file, as in `wsk`.
pub const CONFIG_FILE_ENV: &str = "WSK_CONFIG_FILE";

/// One line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    /// `KEY=VALUE`; `raw` is the line as read, kept until the value changes.
    Entry {
        key: String,
        value: String,
        raw: Option<String>,
    },
    /// A comment, a blank line or anything else, kept verbatim.
    Other(String),
}

/// The contents of a `wskprops` file, in order, with the path it came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WskProps {
    lines: Vec<Line>,
    path: Option<PathBuf>,
}

impl WskProps {
    /// The file `wsk` reads: `$WSK_CONFIG_FILE` when set, else `~/.wskprops`.
    pub fn default_path() -> Result<PathBuf, ClientError> {
        if let Some(path) = std::env::var_os(CONFIG_FILE_ENV).filter(|v| !v.is_empty()) {
            return Ok(PathBuf::from(path));
        }
        match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => Ok(PathBuf::from(home).join(".wskprops")),
            None => Err(ClientError::Config {
                message: format!(
                    "cannot locate ~/.wskprops because HOME is not set; set {CONFIG_FILE_ENV} to the properties file"
                ),
            }),
        }
    }

    /// Loads the [default file](Self::default_path); a missing file gives
    /// empty properties that [`save`](Self::save) will create.
    pub fn load() -> Result<Self, ClientError> {
        Self::load_from(&Self::default_path()?)
    }

    /// Loads `path`; a missing file gives empty properties bound to `path`.
    pub fn load_from(path: &Path) -> Result<Self, ClientError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(ClientError::Io {
                    action: "read",
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let mut props = Self::parse(&text);
        props.path = Some(path.to_owned());
        Ok(props)
    }

    /// Parses the text of a properties file. As in `wsk`, everything from a
    /// `#` to the end of the line is a comment, keys and values are trimmed,
    /// and a later line overrides an earlier one with the same key.
    pub fn parse(text: &str) -> Self {
        let lines = text
            .lines()
            .map(|raw| {
                let content = raw.split('#').next().unwrap_or_default().trim();
                match content.split_once('=') {
                    Some((key, value)) if !key.trim().is_empty() => Line::Entry {
                        key: key.trim().to_owned(),
                        value: value.trim().to_owned(),
                        raw: Some(raw.to_owned()),
                    },
                    _ => Line::Other(raw.to_owned()),
                }
            })
            .collect();
        Self { lines, path: None }
    }

    /// The file these properties were loaded from, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The value of `key`, if set and not empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.lines
            .iter()
            .rev()
            .find_map(|line| match line {
                Line::Entry { key: k, value, .. } if k == key => Some(value.as_str()),
                _ => None,
            })
            .filter(|value| !value.is_empty())
    }

    /// Sets `key` to `value`: the last line of `key` is rewritten in place
    /// (earlier duplicates are dropped), or a line is appended.
    pub fn set(&mut self, key: &str, value: &str) {
        let last = self
            .lines
            .iter()
            .rposition(|line| matches!(line, Line::Entry { key: k, .. } if k == key));
        let entry = Line::Entry {
            key: key.to_owned(),
            value: value.to_owned(),
            raw: None,
        };
        match last {
            Some(index) => {
                if let Some(line) = self.lines.get_mut(index) {
                    *line = entry;
                }
                let mut position = 0;
                self.lines.retain(|line| {
                    let keep = position >= index
                        || !matches!(line, Line::Entry { key: k, .. } if k == key);
                    position += 1;
                    keep
                });
            }
            None => self.lines.push(entry),
        }
    }

    /// Removes every line of `key`.
    pub fn remove(&mut self, key: &str) {
        self.lines
            .retain(|line| !matches!(line, Line::Entry { key: k, .. } if k == key));
    }

    /// Every `(key, value)` in effect, in file order.
    pub fn entries(&self) -> Vec<(&str, &str)> {
        let mut entries: Vec<(&str, &str)> = Vec::new();
        for line in &self.lines {
            if let Line::Entry { key, value, .. } = line {
                entries.retain(|(k, _)| k != key);
                entries.push((key, value));
            }
        }
        entries
    }

    /// `APIHOST`.
    pub fn api_host(&self) -> Option<&str> {
        self.get(APIHOST)
    }

    /// `AUTH`, as text.
    pub fn auth(&self) -> Option<&str> {
        self.get(AUTH)
    }

    /// `NAMESPACE`.
    pub fn namespace(&self) -> Option<&str> {
        self.get(NAMESPACE)
    }

    /// The TLS settings of the file: `CACERT`, and `CERT` with `KEY`.
    pub fn tls_options(&self) -> Result<clemmys_tls::ClientTlsOptions, ClientError> {
        let identity = match (self.get(CERT), self.get(KEY)) {
            (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
            (None, None) => None,
            _ => {
                return Err(ClientError::Config {
                    message: "CERT and KEY must be set together (a client certificate and its key)"
                        .into(),
                });
            }
        };
        Ok(clemmys_tls::ClientTlsOptions {
            ca_file: self.get(CACERT).map(PathBuf::from),
            insecure: false,
            identity,
        })
    }

    /// `AUTH`, parsed; an error names the file so the user can fix it.
    pub fn auth_key(&self) -> Result<Option<AuthKey>, ClientError> {
        self.auth()
            .map(|text| {
                text.parse::<AuthKey>().map_err(|_| ClientError::Config {
                    message: format!(
                        "AUTH in {} is not of the form UUID:KEY",
                        self.path
                            .as_deref()
                            .map_or_else(|| "the properties".into(), |p| p.display().to_string())
                    ),
                })
            })
            .transpose()
    }

    /// Writes the properties back to the file they were loaded from.
    pub fn save(&self) -> Result<(), ClientError> {
        match &self.path {
            Some(path) => self.save_to(path),
            None => Err(ClientError::Config {
                message: "these properties were not loaded from a file; use save_to".into(),
            }),
        }
    }

    /// Writes the properties to `path`, creating it readable by its owner
    /// only (it holds a secret), or rewriting it in place (a symbolic link
    /// stays a link).
    pub fn save_to(&self, path: &Path) -> Result<(), ClientError> {
        let io_error = |source| ClientError::Io {
            action: "write",
            path: path.to_owned(),
            source,
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(io_error)?;
        file.write_all(self.to_string().as_bytes())
            .map_err(io_error)?;
        file.sync_all().map_err(io_error)
    }
}

impl fmt::Display for WskProps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.lines {
            match line {
                Line::Entry { raw: Some(raw), .. } | Line::Other(raw) => writeln!(f, "{raw}")?,
                Line::Entry {
                    key,
                    value,
                    raw: None,
                } => writeln!(f, "{key}={value}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# written by hand\n\
        APIHOST=http://127.0.0.1:3233\n\
        AUTH = 23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP # guest\n\
        \n\
        APIGW_ACCESS_TOKEN=abc=def\n\
        not a property\n";

    #[test]
    fn parses_keys_values_and_comments() {
        let props = WskProps::parse(SAMPLE);
        assert_eq!(props.api_host(), Some("http://127.0.0.1:3233"));
        let auth = props.auth_key().expect("valid").expect("present");
        assert_eq!(auth.uuid, "23bc46b1-71f6-4ed5-8c54-816aa4f8c502");
        assert!(auth.key.ends_with("GIwP"));
        assert_eq!(props.get("APIGW_ACCESS_TOKEN"), Some("abc=def"));
        assert_eq!(props.namespace(), None);
        assert_eq!(props.entries().len(), 3);
    }

    #[test]
    fn later_lines_override_earlier_ones_and_empty_values_are_unset() {
        let props = WskProps::parse("NAMESPACE=a\nNAMESPACE=b\nAPIHOST=\n");
        assert_eq!(props.namespace(), Some("b"));
        assert_eq!(props.api_host(), None);
    }

    #[test]
    fn saving_preserves_unknown_lines_and_rewrites_set_keys() {
        let mut props = WskProps::parse(SAMPLE);
        props.set(APIHOST, "http://localhost:9000");
        props.set(NAMESPACE, "guest");
        let text = props.to_string();
        assert_eq!(
            text,
            "# written by hand\n\
             APIHOST=http://localhost:9000\n\
             AUTH = 23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP # guest\n\
             \n\
             APIGW_ACCESS_TOKEN=abc=def\n\
             not a property\n\
             NAMESPACE=guest\n"
        );
        assert_eq!(
            WskProps::parse(&text).api_host(),
            Some("http://localhost:9000")
        );
    }

    #[test]
    fn set_drops_earlier_duplicates_and_remove_drops_all() {
        let mut props = WskProps::parse("A=1\nB=2\nA=3\n");
        props.set("A", "4");
        assert_eq!(props.to_string(), "B=2\nA=4\n");
        props.remove("A");
        assert_eq!(props.to_string(), "B=2\n");
    }

    #[test]
    fn rejects_malformed_auth() {
        let props = WskProps::parse("AUTH=nocolon\n");
        let err = props.auth_key().expect_err("malformed");
        assert!(err.to_string().contains("UUID:KEY"), "{err}");
    }

    #[test]
    fn missing_file_loads_empty_and_save_round_trips() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("wskprops");
        let mut props = WskProps::load_from(&path).expect("missing is fine");
        assert_eq!(props.entries().len(), 0);
        props.set(AUTH, "u:k");
        props.save().expect("save");
        let again = WskProps::load_from(&path).expect("load");
        assert_eq!(again.auth(), Some("u:k"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
