//! `wordcount`: counts the words, lines and characters of param `text`.
//!
//! `{"text": "a b\nc"}` → `{"words": 3, "lines": 2, "chars": 5}`. Words are
//! separated by Unicode whitespace; lines are counted like `str::lines` (a
//! last line without `\n` counts, an empty text has 0 lines); chars are
//! Unicode scalar values. Without a string `text` the result is the
//! application error `{"error": "parameter 'text' (a string) is required"}`.

use clemmys_guest::{ActionError, json};

fn main() {
    clemmys_guest::run(|params| {
        let text = params
            .get("text")
            .and_then(|v| v.as_str())
            .ok_or_else(|| ActionError::new("parameter 'text' (a string) is required"))?;
        Ok(json!({
            "words": text.split_whitespace().count(),
            "lines": text.lines().count(),
            "chars": text.chars().count(),
        }))
    });
}
