//! `clemmys-preinit IN OUT`: pre-initializes the WASI command module `IN`
//! with Wizer and writes the snapshot to `OUT`. A host-side build tool,
//! run by `scripts/build-runtimes.sh` on the JavaScript engine
//! (`runtimes/js`), whose `wizer-initialize` export builds QuickJS and
//! evaluates the prelude.
//!
//! The module is instantiated once with an empty WASI context (no
//! arguments, environment, stdin or files), its `wizer-initialize` export
//! runs, and its memory and globals become the new module's initial state;
//! the export is removed. A module without that export (already
//! pre-initialized) is copied unchanged, so reruns are harmless. `OUT` is
//! written through a temporary file and renamed: `IN` and `OUT` may be the
//! same path, and a hard link to `IN` (cargo's) is left untouched.
//!
//! It trusts its input: it is our own build output.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::task::{Context as TaskContext, Poll, Waker};

use wasmtime::error::Context as _;
use wasmtime::{Engine, Instance, Linker, Module, Result, Store, Val, bail};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::{self, WasiP1Ctx};
use wasmtime_wizer::{InstanceState, SnapshotVal, ValType, Wizer};

/// The export Wizer runs (its default name).
const INIT_FUNC: &str = "wizer-initialize";

fn main() -> Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(input), Some(output), None) = (args.next(), args.next(), args.next()) else {
        bail!("usage: clemmys-preinit IN.wasm OUT.wasm");
    };
    let (input, output) = (PathBuf::from(input), PathBuf::from(output));
    let wasm = std::fs::read(&input).with_context(|| format!("reading {}", input.display()))?;
    let engine = Engine::default();
    let exports_init = Module::new(&engine, &wasm)
        .with_context(|| format!("compiling {}", input.display()))?
        .get_export(INIT_FUNC)
        .is_some();
    let snapshot = if exports_init {
        preinitialize(&engine, &wasm)?
    } else {
        eprintln!(
            "clemmys-preinit: {} has no `{INIT_FUNC}` export (already pre-initialized?): copied",
            input.display()
        );
        wasm
    };
    write_atomically(&output, &snapshot)
}

/// Runs `wasm`'s `wizer-initialize` and returns the snapshot module.
fn preinitialize(engine: &Engine, wasm: &[u8]) -> Result<Vec<u8>> {
    let wizer = Wizer::new();
    let (cx, instrumented) = wizer.instrument(wasm)?;
    let module = Module::new(engine, &instrumented).context("compiling the instrumented module")?;
    let mut linker = Linker::<WasiP1Ctx>::new(engine);
    p1::add_to_linker_sync(&mut linker, |ctx| ctx)?;
    let mut store = Store::new(engine, WasiCtxBuilder::new().build_p1());
    let instance = linker.instantiate(&mut store, &module)?;
    instance
        .get_typed_func::<(), ()>(&mut store, INIT_FUNC)?
        .call(&mut store, ())
        .with_context(|| format!("running `{INIT_FUNC}`"))?;
    let mut state = Snapshotted {
        store: &mut store,
        instance,
    };
    complete(wizer.snapshot(&cx, &mut state))
}

/// The instance's state as Wizer reads it.
struct Snapshotted<'a> {
    store: &'a mut Store<WasiP1Ctx>,
    instance: Instance,
}

impl InstanceState for Snapshotted<'_> {
    async fn global_get(&mut self, name: &str, _: ValType) -> SnapshotVal {
        // Wizer asks only for the globals its instrumentation exported.
        let global = self.instance.get_global(&mut *self.store, name);
        match global.map(|global| global.get(&mut *self.store)) {
            Some(Val::I32(x)) => SnapshotVal::I32(x),
            Some(Val::I64(x)) => SnapshotVal::I64(x),
            Some(Val::F32(x)) => SnapshotVal::F32(x),
            Some(Val::F64(x)) => SnapshotVal::F64(x),
            Some(Val::V128(x)) => SnapshotVal::V128(x.as_u128()),
            other => panic!("Wizer asked for global `{name}`, which is {other:?}"),
        }
    }

    async fn memory_contents(&mut self, name: &str, contents: impl FnOnce(&[u8]) + Send) {
        let memory = self.instance.get_memory(&mut *self.store, name);
        // Wizer asks only for the memories its instrumentation exported.
        let memory = memory.unwrap_or_else(|| panic!("Wizer asked for missing memory `{name}`"));
        contents(memory.data(&*self.store));
    }
}

/// Drives `future` to its end. Wizer's snapshot is async only because
/// `InstanceState` may be; ours answers at once, so it never waits.
fn complete<T>(future: impl Future<Output = Result<T>>) -> Result<T> {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut TaskContext::from_waker(Waker::noop()))
    {
        Poll::Ready(result) => result,
        Poll::Pending => bail!("Wizer's snapshot waited for something that never comes"),
    }
}

/// Writes `bytes` to a temporary file beside `path` and renames it there.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".preinit-tmp");
    let temporary = PathBuf::from(temporary);
    std::fs::write(&temporary, bytes)
        .with_context(|| format!("writing {}", temporary.display()))?;
    std::fs::rename(&temporary, path)
        .with_context(|| format!("renaming {} to {}", temporary.display(), path.display()))
}
