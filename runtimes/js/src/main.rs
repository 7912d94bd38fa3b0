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
//! Instead of `code`, the envelope may carry `"bytecode": LENGTH`: the
//! line then ends with `\n` and LENGTH bytes of QuickJS bytecode follow it,
//! what this engine's compile mode made of the action's source (below).
//! `params` and `env` are handed to `JSON.parse` as they are.
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
//! # Compile mode
//!
//! `{"code": ..., "main": ..., "compile": true}` parses and compiles the
//! wrapped source without running any of it and writes
//! `{"bytecode": "BASE64"}` (or `{"developerError": ...}` if it does not
//! compile). The invoker keeps that bytecode per plain action version and
//! sends it instead of the source: an activation then skips the parser.
//! The bytecode keeps line numbers but not the functions' source text (a
//! 100 KB script's bytecode is 52 KB instead of 377 KB), so a function's
//! `toString()` shows `[native code]` when run from bytecode.
//! QuickJS does not check bytecode it reads, so it must come from this
//! engine build; a corrupt one could only corrupt this one activation's
//! instance, inside the sandbox.
//!
//! # Pre-initialization
//!
//! `scripts/build-runtimes.sh` runs the export `wizer-initialize` once at
//! build time (with Wizer, `clemmys-preinit`) and ships the snapshot: the
//! QuickJS runtime, its context and the evaluated prelude are then already
//! in the module's memory, and `_start` only parses the envelope and the
//! action. Without a snapshot (native tests, a raw build) `_start` builds
//! the engine itself. Nothing action-specific is in the snapshot, and every
//! activation is a fresh instance of it: one activation's globals never
//! reach another. What ran at snapshot time is frozen, so randomness is
//! seeded per activation, never at initialization.
//!
//! # Trust
//!
//! The engine runs inside the sandbox with the action's limits; it trusts
//! nothing in its input and has no capability beyond the sandbox's (no
//! files, no network). Its own failures are reported, never panicked on.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::ffi::CString;
use std::io::{Read, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use rquickjs::context::EvalOptions;
use rquickjs::{Context, Ctx, Function, Object, Runtime, Value, qjs};
use serde::Deserialize;
use serde_json::value::RawValue;

/// The globals and the driver, evaluated before the action's source.
const PRELUDE: &str = include_str!("prelude.js");

/// The largest JavaScript stack, below the module's 1 MiB wasm stack, so
/// that deep recursion is a `RangeError` and not a trap.
const MAX_JS_STACK_BYTES: usize = 768 * 1024;

/// The envelope on stdin (its first line).
#[derive(Debug, Deserialize)]
struct Envelope<'a> {
    /// The action's source.
    #[serde(default, borrow)]
    code: Option<Cow<'a, str>>,
    /// Instead of `code`: the length of the bytecode after the line.
    #[serde(default)]
    bytecode: Option<usize>,
    /// Compile `code` and answer its bytecode instead of running it.
    #[serde(default)]
    compile: bool,
    #[serde(default = "default_main", borrow)]
    main: Cow<'a, str>,
    #[serde(default, borrow)]
    params: Option<&'a RawValue>,
    #[serde(default, borrow)]
    env: Option<&'a RawValue>,
}

fn default_main() -> Cow<'static, str> {
    Cow::Borrowed("main")
}

/// The action an activation runs.
#[derive(Debug, Clone, Copy)]
enum Action<'a> {
    /// Its source, parsed and compiled here.
    Source(&'a str),
    /// Its bytecode, as compile mode wrote it.
    Bytecode(&'a [u8]),
}

/// A QuickJS runtime and context with the host functions and the prelude
/// installed: everything an activation needs before the action's source.
struct Engine {
    runtime: Runtime,
    context: Context,
}

impl Engine {
    /// Builds the engine; the developer error to report if it cannot.
    fn build() -> Result<Self, String> {
        let out_of_memory = || "The JavaScript engine could not start: out of memory.".to_owned();
        let runtime = Runtime::new().map_err(|_| out_of_memory())?;
        runtime.set_max_stack_size(MAX_JS_STACK_BYTES);
        let context = Context::full(&runtime).map_err(|_| out_of_memory())?;
        context.with(|ctx| install_host(&ctx))?;
        Ok(Self { runtime, context })
    }
}

thread_local! {
    /// The engine `wizer-initialize` built; in a pre-initialized module it
    /// is part of the snapshot. The activation takes it.
    static PREBUILT: RefCell<Option<Engine>> = const { RefCell::new(None) };

    /// The state of `Math.random` (xorshift128+), seeded by `run` for each
    /// activation from WASI's `random_get`, never at snapshot time.
    static RANDOM: Cell<[u64; 2]> = const { Cell::new([0, 0]) };
}

/// Wizer's initialization function: builds the engine before any
/// activation, so that the snapshot carries it. A failure leaves nothing
/// behind; `_start` then builds the engine itself and reports it.
// Safety: `export_name` only names the export; the function is safe Rust
// with a wasm `[] -> []` signature, which is what Wizer calls.
#[unsafe(export_name = "wizer-initialize")]
pub extern "C" fn wizer_initialize() {
    if let Ok(engine) = Engine::build() {
        PREBUILT.with(|prebuilt| *prebuilt.borrow_mut() = Some(engine));
    }
}

/// Seeds `Math.random` from the platform's randomness (WASI `random_get`).
fn seed_random() -> Result<(), getrandom::Error> {
    let mut state = [0u64; 2];
    while state == [0, 0] {
        state = [getrandom::u64()?, getrandom::u64()?];
    }
    RANDOM.with(|random| random.set(state));
    Ok(())
}

/// The next `Math.random()`: a double in [0, 1) from xorshift128+, as V8's.
fn next_random() -> f64 {
    RANDOM.with(|random| {
        let [mut s1, s0] = random.get();
        s1 ^= s1 << 23;
        s1 ^= s1 >> 17;
        s1 ^= s0;
        s1 ^= s0 >> 26;
        random.set([s0, s1]);
        // The top 53 bits of the sum, scaled into [0, 1).
        (s0.wrapping_add(s1) >> 11) as f64 / (1u64 << 53) as f64
    })
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
    // The envelope is one line (JSON text has no raw line break); bytecode,
    // if any, follows it.
    let (header, trailer) = match input.iter().position(|&byte| byte == b'\n') {
        Some(end) => (&input[..end], &input[end + 1..]),
        None => (input, &input[input.len()..]),
    };
    let envelope: Envelope<'_> = match serde_json::from_slice(header) {
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
    let action = match (&envelope.code, envelope.bytecode) {
        (Some(code), None) => Action::Source(code),
        (None, Some(length)) if length == trailer.len() && !envelope.compile => {
            Action::Bytecode(trailer)
        }
        _ => {
            return developer_error(
                "The JavaScript engine's input is not an envelope: it needs either \
                 `code`, or `bytecode` and that many bytes after the line.",
            );
        }
    };
    if let Err(error) = seed_random() {
        return developer_error(&format!(
            "The JavaScript engine could not seed its random numbers: {error}"
        ));
    }
    let prebuilt = PREBUILT.with(|prebuilt| prebuilt.borrow_mut().take());
    let engine = match prebuilt.map_or_else(Engine::build, Ok) {
        Ok(engine) => engine,
        Err(message) => return developer_error(&message),
    };
    let line = match (envelope.compile, action) {
        (true, Action::Source(code)) => engine
            .context
            .with(|ctx| compile_answer(&ctx, code, &envelope.main)),
        _ => match engine.context.with(|ctx| start(&ctx, &envelope, action)) {
            Some(line) => line,
            None => event_loop(&engine.runtime, &engine.context),
        },
    };
    // In wasm the instance ends with this activation: freeing every object
    // (JS_FreeRuntime) would only cost time, and touch pages for nothing.
    if cfg!(target_family = "wasm") {
        std::mem::forget(engine);
    }
    line
}

/// Compile mode's line: `{"bytecode": BASE64}` of the wrapped source.
fn compile_answer(ctx: &Ctx<'_>, code: &str, main: &str) -> String {
    match compile_script(ctx, &wrap_source(code, main)) {
        Ok(bytecode) => serde_json::json!({
            "bytecode": base64::engine::general_purpose::STANDARD.encode(bytecode)
        })
        .to_string(),
        Err(_) => developer_error(&format!(
            "Initialization has failed due to: {}",
            describe(ctx, ctx.catch())
        )),
    }
}

/// Parses and compiles the script `source` (named `action.js`, not strict)
/// into QuickJS bytecode, running none of it.
fn compile_script(ctx: &Ctx<'_>, source: &str) -> rquickjs::Result<Vec<u8>> {
    let source = CString::new(source)?;
    let raw = ctx.as_raw().as_ptr();
    let flags = (qjs::JS_EVAL_TYPE_GLOBAL | qjs::JS_EVAL_FLAG_COMPILE_ONLY) as i32;
    // Safety: `raw` is the live context of `ctx`; `source` is
    // NUL-terminated, as JS_Eval needs, and its length excludes the NUL.
    let compiled = unsafe {
        qjs::JS_Eval(
            raw,
            source.as_ptr(),
            source.as_bytes().len() as _,
            c"action.js".as_ptr(),
            flags,
        )
    };
    // Safety: JS_Eval returns an owned value of this context; `compiled`
    // frees it on drop.
    let compiled = unsafe { Value::from_raw(ctx.clone(), compiled) };
    if compiled.is_exception() {
        return Err(rquickjs::Error::Exception);
    }
    let mut size: qjs::size_t = 0;
    // Safety: `compiled` is a live value of this context; on success
    // JS_WriteObject returns a buffer of `size` bytes that we own.
    let buffer = unsafe {
        qjs::JS_WriteObject(
            raw,
            &mut size,
            compiled.as_raw(),
            (qjs::JS_WRITE_OBJ_BYTECODE | qjs::JS_WRITE_OBJ_STRIP_SOURCE) as i32,
        )
    };
    if buffer.is_null() {
        return Err(rquickjs::Error::Exception);
    }
    // Safety: `buffer` holds `size` initialised bytes (above); it is freed
    // with the context's allocator right after the copy.
    let bytecode = unsafe { std::slice::from_raw_parts(buffer, size as usize) }.to_vec();
    // Safety: `buffer` came from JS_WriteObject on this context.
    unsafe { qjs::js_free(raw, buffer.cast()) };
    Ok(bytecode)
}

/// Reads `bytecode` (from [`compile_script`]) and runs it: the value of the
/// compiled script.
fn run_bytecode<'js>(ctx: &Ctx<'js>, bytecode: &[u8]) -> rquickjs::Result<Value<'js>> {
    let raw = ctx.as_raw().as_ptr();
    // Safety: `raw` is the live context of `ctx` and the slice is valid for
    // its length. QuickJS trusts bytecode: this engine wrote it (see the
    // module docs on what a corrupt one could do).
    let object = unsafe {
        qjs::JS_ReadObject(
            raw,
            bytecode.as_ptr(),
            bytecode.len() as _,
            qjs::JS_READ_OBJ_BYTECODE as i32,
        )
    };
    // Safety: JS_ReadObject returned `object`, owned; JS_EvalFunction takes
    // it over (an exception marker needs no freeing), and returns an owned
    // value of this context, which the `Value` frees on drop.
    let value = unsafe {
        if qjs::JS_IsException(object) {
            return Err(rquickjs::Error::Exception);
        }
        Value::from_raw(ctx.clone(), qjs::JS_EvalFunction(raw, object))
    };
    if value.is_exception() {
        return Err(rquickjs::Error::Exception);
    }
    Ok(value)
}

/// Loads the action and calls its main function. A line to write if it is
/// already decided (the source did not load).
fn start(ctx: &Ctx<'_>, envelope: &Envelope<'_>, action: Action<'_>) -> Option<String> {
    let loaded = match action {
        Action::Source(code) => {
            let mut options = EvalOptions::default();
            options.strict = false;
            options.filename = Some("action.js".to_owned());
            ctx.eval_with_options(wrap_source(code, &envelope.main), options)
        }
        Action::Bytecode(bytecode) => run_bytecode(ctx, bytecode).and_then(|value| value.get()),
    };
    let factory: Function = match loaded {
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
        let params = ctx.json_parse(json_object(envelope.params))?;
        let env = ctx.json_parse(json_object(envelope.env))?;
        let start: Function = ctx.globals().get("__clemmys_start")?;
        start.call::<_, ()>((factory, envelope.main.as_ref(), params, env))
    })();
    match started {
        Ok(()) => None,
        Err(_) => Some(developer_error(&format!(
            "The JavaScript engine failed: {}",
            describe(ctx, ctx.catch())
        ))),
    }
}

/// The JSON text of `value` if it is an object, else `{}`.
fn json_object(value: Option<&RawValue>) -> &str {
    value
        .map(RawValue::get)
        .filter(|text| text.starts_with('{'))
        .unwrap_or("{}")
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
        globals.set("__clemmys_random", Function::new(ctx.clone(), next_random)?)?;
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
    fn a_prebuilt_engine_serves_one_activation_and_random_is_reseeded() {
        wizer_initialize();
        assert!(PREBUILT.with(|prebuilt| prebuilt.borrow().is_some()));
        let source = "function main() { const g = globalThis.seen; globalThis.seen = 1; \
                      return { seen: g === 1, r: Math.random() }; }";
        let first = run_source(source, serde_json::json!({}));
        assert!(PREBUILT.with(|prebuilt| prebuilt.borrow().is_none()));
        let second = run_source(source, serde_json::json!({}));
        assert_eq!(first["result"]["seen"], false);
        assert_eq!(second["result"]["seen"], false);
        let (r1, r2) = (&first["result"]["r"], &second["result"]["r"]);
        assert!(r1.as_f64().is_some_and(|r| (0.0..1.0).contains(&r)));
        assert_ne!(r1, r2);
    }

    /// Compile mode's bytecode for `code`.
    fn compile(code: &str) -> Vec<u8> {
        let input = serde_json::json!({"code": code, "compile": true});
        let answer: serde_json::Value =
            serde_json::from_str(&run(input.to_string().as_bytes())).expect("one JSON line");
        let text = answer["bytecode"].as_str().expect("bytecode");
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .expect("base64")
    }

    /// Runs `bytecode` as the envelope's action.
    fn run_bytecode_envelope(bytecode: &[u8], params: serde_json::Value) -> serde_json::Value {
        let header = serde_json::json!({"bytecode": bytecode.len(), "params": params,
                                         "env": {"__OW_NAMESPACE": "guest"}});
        let mut input = header.to_string().into_bytes();
        input.push(b'\n');
        input.extend_from_slice(bytecode);
        serde_json::from_str(&run(&input)).expect("one JSON line")
    }

    #[test]
    fn bytecode_runs_as_its_source_does() {
        let code = "// line 1\nconst seen = [];\nfunction main(p) {\n  seen.push(1);\n  \
                    return { n: p.n * 2, ns: process.env.__OW_NAMESPACE, seen: seen.length };\n}";
        let bytecode = compile(code);
        assert!(!bytecode.is_empty());
        let params = serde_json::json!({"n": 21});
        let from_source = run_source(code, params.clone());
        let from_bytecode = run_bytecode_envelope(&bytecode, params);
        assert_eq!(from_bytecode, from_source);
        assert_eq!(
            from_bytecode,
            serde_json::json!({"result": {"n": 42, "ns": "guest", "seen": 1}})
        );
        // Errors still name the user's line.
        let thrower = compile("\n\nfunction main() {\n  throw new Error('x');\n}");
        let answer = run_bytecode_envelope(&thrower, serde_json::json!({}));
        assert_eq!(
            answer,
            serde_json::json!({"result": {"error": "An error has occurred: Error: x"}})
        );
    }

    #[test]
    fn compiling_runs_nothing_and_reports_syntax_errors() {
        // Compiling does not run the source: its top level would throw.
        let bytecode = compile("throw new Error('ran'); function main() { return {}; }");
        let answer = run_bytecode_envelope(&bytecode, serde_json::json!({}));
        assert!(
            answer["developerError"]
                .as_str()
                .is_some_and(|m| m.contains("ran")),
            "{answer}"
        );
        let input = serde_json::json!({"code": "function main( {", "compile": true});
        let answer: serde_json::Value =
            serde_json::from_str(&run(input.to_string().as_bytes())).expect("one JSON line");
        assert!(
            answer["developerError"]
                .as_str()
                .is_some_and(|m| m.starts_with("Initialization has failed due to: SyntaxError")),
            "{answer}"
        );
    }

    #[test]
    fn envelopes_without_one_action_are_refused() {
        let bytecode = compile("function main() { return {}; }");
        let mut short = serde_json::json!({"bytecode": bytecode.len() + 1})
            .to_string()
            .into_bytes();
        short.push(b'\n');
        short.extend_from_slice(&bytecode);
        for input in [
            short,
            serde_json::json!({"params": {}}).to_string().into_bytes(),
            serde_json::json!({"code": "function main() {}", "bytecode": 0})
                .to_string()
                .into_bytes(),
        ] {
            let answer: serde_json::Value =
                serde_json::from_str(&run(&input)).expect("one JSON line");
            assert!(
                answer["developerError"]
                    .as_str()
                    .is_some_and(|m| m.contains("not an envelope")),
                "{answer}"
            );
        }
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
