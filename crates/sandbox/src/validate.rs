//! Deploy-time checks: is this code a WASI preview-1 command the sandbox can
//! run? Cheap (validation and a scan of the import and export sections, no
//! compilation), so the controller can reject bad code when it is uploaded.

use wasmparser::{ExternalKind, Parser, Payload};

use crate::InvalidModule;

/// The only import module actions may use.
pub(crate) const WASI_MODULE: &str = "wasi_snapshot_preview1";
/// The entry point of a WASI command.
pub(crate) const DEFAULT_ENTRY: &str = "_start";

/// Checks that `code` is valid WebAssembly for `engine`, imports only WASI
/// preview 1 and exports the function `entry` (`_start` if `None`).
pub(crate) fn check_module(
    engine: &wasmtime::Engine,
    code: &[u8],
    entry: Option<&str>,
) -> Result<(), InvalidModule> {
    if !code.starts_with(b"\0asm") {
        return Err(InvalidModule::NotWasm);
    }
    wasmtime::Module::validate(engine, code)
        .map_err(|error| InvalidModule::Malformed(format!("{error:#}")))?;
    let entry = entry.unwrap_or(DEFAULT_ENTRY);
    let mut exports_entry = false;
    for payload in Parser::new(0).parse_all(code) {
        match payload.map_err(malformed)? {
            Payload::ImportSection(imports) => {
                for import in imports.into_imports() {
                    let import = import.map_err(malformed)?;
                    if import.module != WASI_MODULE {
                        return Err(InvalidModule::ForeignImport {
                            module: import.module.to_owned(),
                            name: import.name.to_owned(),
                        });
                    }
                }
            }
            Payload::ExportSection(exports) => {
                for export in exports {
                    let export = export.map_err(malformed)?;
                    exports_entry |= export.name == entry && export.kind == ExternalKind::Func;
                }
                // Imports come before exports; nothing later matters here.
                break;
            }
            _ => {}
        }
    }
    if !exports_entry {
        return Err(InvalidModule::MissingEntry {
            entry: entry.to_owned(),
        });
    }
    Ok(())
}

fn malformed(error: wasmparser::BinaryReaderError) -> InvalidModule {
    InvalidModule::Malformed(error.to_string())
}
