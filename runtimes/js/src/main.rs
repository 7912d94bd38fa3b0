//! `clemmys-js`: the JavaScript engine of Clemmys, a WASI preview-1 command
//! module that the node's sandbox runs like any wasm action. One module,
//! compiled once per node, serves every JavaScript action: the action's
//! source is data it reads, not code the node compiles.
//!
//! # Protocol (with the invoker)
//!
//! stdin is one JSON object, the *envelope*:
//!
//! ```json
//! {"code": "function main(p) {...}", "main": "main",
//!  "params": {"name": "Ada"}, "env": {"__OW_ACTIVATION_ID": "..."}}
//! ```
//!
//! The engine evaluates `code` as a CommonJS-style file, finds the function
//! named `main` (a declaration, `exports.main`, or `module.exports`), calls
//! it with `params`, awaits a returned Promise (running timers until the
//! sandbox's deadline), and writes ONE JSON line to stdout:
//!
//! - `{"result": VALUE}`: what `main` returned or resolved to (a thrown
//!   error or rejected Promise is `{"result": {"error": ...}}`, as in
//!   OpenWhisk's Node runtime);
//! - `{"developerError": "message"}`: the source did not load, `main` is
//!   missing, or the result is not a dictionary.
//!
//! The invoker unwraps this into the activation's response. `console.*`
//! lines go to stderr, which the sandbox makes the activation's logs.
//!
//! # Trust
//!
//! The engine runs inside the sandbox with the action's limits; it trusts
//! nothing in its input and has no capability beyond the sandbox's (no
//! files, no network). Its own failures are reported, never panicked on.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rquickjs::context::EvalOptions;
use rquickjs::{Context, Ctx, Function, Object, Runtime, Value};
use serde::Deserialize;

/// The globals and the driver, evaluated before the action's source.
const PRELUDE: &str = include_str!("prelude.js");

/// The largest JavaScript stack, below the module's 1 MiB wasm stack, so
/// that deep recursion is a `RangeError` and not a trap.
const MAX_JS_STACK_BYTES: usize = 768 * 1024;

/// The envelope on stdin.
#[derive(Debug, Deserialize)]
struct Envelope {
    code: String,
    #[serde(default = "default_main")]
    main: String,
    #[serde(default)]
    params: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    env: BTreeMap<String, String>,
}

fn default_main() -> String {
    "main".to_owned()
}

fn main() {
    let mut input = Vec::new();
    let line = match std::io::stdin().read_to_end(&mut input) {
        Ok(_) => run(&input),
        Err(error) => developer_error(&format!(
            "The JavaScript engine could not read its input: {error}"
        )),
    };
    let mut stdout = std::io::stdout().lock();
    // Nothing else is on stdout: if it cannot be written, there is no one
    // left to tell.
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

/// The `{"developerError": ...}` line.
fn developer_error(message: &str) -> String {
    serde_json::json!({ "developerError": message }).to_string()
}

/// Whether `name` can be spliced into source as a plain identifier.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_' || first == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

/// The action's source as a function of CommonJS's free variables that
/// returns its own binding of `main` (a `function main` declaration), if it
/// has one. The source starts on the first line, so line numbers in errors
/// match the user's file.
fn wrap_source(code: &str, main: &str) -> String {
    format!(
        "(function (exports, require, module, __filename, __dirname) {{{code}\n;\
         return typeof {main} === \"function\" ? {main} : undefined;\n}})"
    )
}

/// Runs the action of the envelope in `input`; the JSON line to write.
fn run(input: &[u8]) -> String {
    let envelope: Envelope = match serde_json::from_slice(input) {
        Ok(envelope) => envelope,
        Err(error) => {
            return developer_error(&format!(
                "The JavaScript engine's input is not an envelope: {error}"
            ));
        }
    };
    if !is_identifier(&envelope.main) {
        return developer_error(&format!(
            "Initialization has failed due to: Action entrypoint '{}' is not a JavaScript identifier.",
            envelope.main
        ));
    }
    let Ok(runtime) = Runtime::new() else {
        return developer_error("The JavaScript engine could not start: out of memory.");
    };
    runtime.set_max_stack_size(MAX_JS_STACK_BYTES);
    let Ok(context) = Context::full(&runtime) else {
        return developer_error("The JavaScript engine could not start: out of memory.");
    };
    if let Some(line) = context.with(|ctx| start(&ctx, &envelope)) {
        return line;
    }
    event_loop(&runtime, &context)
}

/// Loads the prelude and the action and calls its main function. A line to
/// write if it is already decided (the source did not load).
fn start(ctx: &Ctx<'_>, envelope: &Envelope) -> Option<String> {
    if let Err(message) = install_host(ctx) {
        return Some(developer_error(&message));
    }
    let mut options = EvalOptions::default();
    options.strict = false;
    options.filename = Some("action.js".to_owned());
    let factory: Function =
        match ctx.eval_with_options(wrap_source(&envelope.code, &envelope.main), options) {
            Ok(factory) => factory,
            Err(_) => {
                let error = describe(ctx, ctx.catch());
                // Node prints the failing line; the logs get the message.
                eprintln!("{error}");
                return Some(developer_error(&format!(
                    "Initialization has failed due to: {error}"
                )));
            }
        };
    let started = (|| -> rquickjs::Result<()> {
        let params = ctx.json_parse(serde_json::to_string(&envelope.params).unwrap_or_default())?;
        let env = ctx.json_parse(serde_json::to_string(&envelope.env).unwrap_or_default())?;
        let start: Function = ctx.globals().get("__clemmys_start")?;
        start.call::<_, ()>((factory, envelope.main.as_str(), params, env))
    })();
    match started {
        Ok(()) => None,
        Err(_) => Some(developer_error(&format!(
            "The JavaScript engine failed: {}",
            describe(ctx, ctx.catch())
        ))),
    }
}

/// Defines the host functions the prelude uses, then evaluates it.
fn install_host(ctx: &Ctx<'_>) -> Result<(), String> {
    let install = || -> rquickjs::Result<()> {
        let globals: Object = ctx.globals();
        globals.set(
            "__clemmys_log",
            Function::new(ctx.clone(), |line: String| {
                let mut stderr = std::io::stderr().lock();
                let _ = writeln!(stderr, "{line}");
            })?,
        )?;
        globals.set("__clemmys_now", Function::new(ctx.clone(), now_ms)?)?;
        let mut options = EvalOptions::default();
        options.filename = Some("prelude.js".to_owned());
        ctx.eval_with_options::<(), _>(PRELUDE, options)
    };
    install().map_err(|_| {
        format!(
            "The JavaScript engine's prelude failed: {}",
            describe(ctx, ctx.catch())
        )
    })
}

/// Milliseconds since the epoch, as `Date.now()` has them.
fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64() * 1000.0)
}

/// `String(value)`, as JavaScript prints a thrown value.
fn describe<'js>(ctx: &Ctx<'js>, value: Value<'js>) -> String {
    let text = ctx
        .globals()
        .get::<_, Function>("String")
        .and_then(|to_string| to_string.call::<_, String>((value,)));
    text.unwrap_or_else(|_| "an exception that cannot be printed".to_owned())
}

/// What one turn of the loop found.
enum Turn {
    /// The action settled: the line to write.
    Done(String),
    /// Wait this long for the next timer.
    Wait(Duration),
    /// Nothing can settle the action any more.
    Stuck,
}

/// Runs promise jobs and timers until the action settles. The sandbox ends
/// the activation at its deadline, sleeping or not.
fn event_loop(runtime: &Runtime, context: &Context) -> String {
    loop {
        // An exception in a job has already rejected its promise.
        while let Ok(true) = runtime.execute_pending_job() {}
        let turn = context.with(|ctx| -> rquickjs::Result<Turn> {
            let driver: Object = ctx.globals().get("__clemmys_loop")?;
            let outcome: Function = driver.get("outcome")?;
            if let Some(line) = outcome.call::<_, Option<String>>(())? {
                return Ok(Turn::Done(line));
            }
            let next_delay: Function = driver.get("nextDelay")?;
            let delay: f64 = next_delay.call(())?;
            if delay < 0.0 {
                return Ok(Turn::Stuck);
            }
            Ok(Turn::Wait(Duration::from_secs_f64(delay / 1000.0)))
        });
        match turn {
            Ok(Turn::Done(line)) => return line,
            Ok(Turn::Stuck) => {
                return developer_error(
                    "The action's main returned a Promise that never settled \
                     (no timer or pending work is left to settle it).",
                );
            }
            Ok(Turn::Wait(delay)) => std::thread::sleep(delay),
            Err(_) => {
                return context.with(|ctx| {
                    developer_error(&format!(
                        "The JavaScript engine failed: {}",
                        describe(&ctx, ctx.catch())
                    ))
                });
            }
        }
        let fired = context.with(|ctx| -> rquickjs::Result<()> {
            let driver: Object = ctx.globals().get("__clemmys_loop")?;
            let run_due: Function = driver.get("runDue")?;
            run_due.call::<_, ()>(())
        });
        if fired.is_err() {
            // An exception thrown by a timer callback ends the action, as an
            // uncaught exception ends a Node process.
            return context.with(|ctx| {
                let error = describe(&ctx, ctx.catch());
                eprintln!("{error}");
                serde_json::json!({ "result": { "error": format!("An error has occurred: {error}") } })
                    .to_string()
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_source(code: &str, params: serde_json::Value) -> serde_json::Value {
        let input =
            serde_json::json!({"code": code, "params": params, "env": {"__OW_NAMESPACE": "guest"}});
        let line = run(input.to_string().as_bytes());
        serde_json::from_str(&line).expect("one JSON line")
    }

    #[test]
    fn main_gets_params_and_env_and_its_result_is_wrapped() {
        let answer = run_source(
            "function main(p) { return { n: p.n + 1, ns: process.env.__OW_NAMESPACE }; }",
            serde_json::json!({"n": 1}),
        );
        assert_eq!(
            answer,
            serde_json::json!({"result": {"n": 2, "ns": "guest"}})
        );
    }

    #[test]
    fn promises_wait_for_timers() {
        let answer = run_source(
            "exports.main = () => new Promise((ok) => setTimeout(() => ok({ late: true }), 5));",
            serde_json::json!({}),
        );
        assert_eq!(answer, serde_json::json!({"result": {"late": true}}));
    }

    #[test]
    fn failures_are_told_apart() {
        let thrown = run_source(
            "function main() { throw new Error('x'); }",
            serde_json::json!({}),
        );
        assert_eq!(
            thrown,
            serde_json::json!({"result": {"error": "An error has occurred: Error: x"}})
        );
        let missing = run_source("var x = 1;", serde_json::json!({}));
        assert_eq!(
            missing,
            serde_json::json!({"developerError":
                "Initialization has failed due to: Action entrypoint 'main' is not a function."})
        );
        let stuck = run_source(
            "function main() { return new Promise(() => {}); }",
            serde_json::json!({}),
        );
        assert!(
            stuck["developerError"]
                .as_str()
                .is_some_and(|m| m.contains("never settled"))
        );
        let garbage = run(b"not json");
        assert!(garbage.contains("developerError"));
    }

    #[test]
    fn only_plain_identifiers_name_main() {
        assert!(is_identifier("main"));
        assert!(is_identifier("$handler_2"));
        assert!(!is_identifier(""));
        assert!(!is_identifier("2main"));
        assert!(!is_identifier("main; evil()"));
        assert!(!is_identifier("a.b"));
    }

    #[test]
    fn the_source_keeps_its_line_numbers() {
        let wrapped = wrap_source("function main() {}", "main");
        assert!(wrapped.starts_with(
            "(function (exports, require, module, __filename, __dirname) {function main"
        ));
        assert!(wrapped.ends_with("? main : undefined;\n})"));
    }
}
