//! `hello`: greets `name` (default `"World"`), like OpenWhisk's `hello.js`.
//!
//! `{"name": "Ada"}` → `{"payload": "Hello, Ada!"}`, and one log line
//! `hello: greeting Ada`.

use clemmys_guest::{Value, json, log};

fn main() {
    clemmys_guest::run(|params| {
        let name = match params.get("name") {
            None | Some(Value::Null) => "World".to_owned(),
            Some(Value::String(name)) => name.clone(),
            // `params.name` in a JS template string: render the JSON value.
            Some(other) => other.to_string(),
        };
        log!("hello: greeting {name}");
        Ok(json!({ "payload": format!("Hello, {name}!") }))
    });
}
