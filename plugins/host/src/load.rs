//! Opening one library and reading its descriptor, in the order that keeps
//! a foreign library from being misread: the entry symbol, then the ABI
//! version, and only for version 1 the other fields.

use std::ffi::CStr;
use std::path::Path;

use lex_align_plugin_abi::{
    EntryFn, LexAlignPlugin, KIND_AUTHENTICATOR, KIND_PROPOSER, LEX_ALIGN_ABI_VERSION,
    LEX_ALIGN_PLUGIN_SYMBOL,
};
use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};

use crate::pool::Native;
use crate::Kind;

/// What could be read before a failure, for the report.
#[derive(Debug, Default)]
pub(crate) struct Partial {
    pub abi: Option<u32>,
    pub name: Option<String>,
    pub kind: Option<String>,
}

pub(crate) struct Opened {
    pub name: String,
    pub kind: Kind,
    pub native: Native,
}

pub(crate) const MAX_NAME: usize = 64;

/// A static string of the descriptor, checked.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string valid for the process.
unsafe fn read_str(p: *const std::ffi::c_char, field: &str) -> Result<String, String> {
    if p.is_null() {
        return Err(format!("{field} is NULL"));
    }
    // SAFETY: per the function's contract (the ABI's: static strings).
    let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
    if bytes.len() > 256 {
        return Err(format!("{field} is longer than 256 bytes"));
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| format!("{field} is not UTF-8"))
}

pub(crate) fn open(path: &Path, partial: &mut Partial) -> Result<Opened, String> {
    // RTLD_NOW: an unresolved symbol fails here, not in the middle of a
    // call. The library's initialisers run now; there is no way round that
    // for native code, which is why plugin directories must be trusted.
    //
    // SAFETY: loading runs foreign code; the operator chose these files.
    let lib = unsafe { Library::open(Some(path), RTLD_NOW | RTLD_LOCAL) }
        .map_err(|e| format!("cannot load the library: {e}"))?;
    // Never unloaded: threads may still be inside it, and its pointers are
    // handed out for the life of the process.
    let lib: &'static Library = Box::leak(Box::new(lib));
    // SAFETY: the symbol's type is the ABI's entry point.
    let entry = unsafe { lib.get::<EntryFn>(LEX_ALIGN_PLUGIN_SYMBOL) }.map_err(|_| {
        "no entry symbol `lex_align_plugin` (is it a lex-align plugin, built against lex_align_plugin.h?)"
            .to_string()
    })?;
    let entry: EntryFn = *entry;
    // SAFETY: the entry point of the ABI takes nothing and returns a
    // pointer to a descriptor valid for the process, or NULL.
    let desc = unsafe { entry() };
    if desc.is_null() {
        return Err("lex_align_plugin() returned NULL".into());
    }
    // The version alone first: the rest of the struct is only known for
    // the versions this host implements.
    // SAFETY: every version of the struct starts with a uint32_t version.
    let abi = unsafe { std::ptr::addr_of!((*desc).abi_version).read() };
    partial.abi = Some(abi);
    if abi != LEX_ALIGN_ABI_VERSION {
        return Err(format!(
            "ABI version {abi}; this daemon implements version {LEX_ALIGN_ABI_VERSION}"
        ));
    }
    // SAFETY: a version-1 descriptor is a LexAlignPlugin.
    let d: LexAlignPlugin = unsafe { desc.read() };
    // SAFETY: version 1 promises static NUL-terminated strings (or NULL).
    let name = unsafe { read_str(d.name, "name") }?;
    partial.name = Some(name.clone());
    // SAFETY: as above.
    let kind_text = unsafe { read_str(d.kind, "kind") }?;
    partial.kind = Some(kind_text.clone());
    if !crate::valid_plugin_name(&name) {
        return Err(format!(
            "bad name {:?}: a plugin name is 1-{MAX_NAME} characters of [a-z0-9_-]",
            crate::messages::clean_text(&name)
        ));
    }
    let kind = match kind_text.as_str() {
        KIND_AUTHENTICATOR => Kind::Authenticator,
        KIND_PROPOSER => Kind::Proposer,
        other => {
            return Err(format!(
                "unknown kind {:?}; use \"authenticator\" or \"proposer\"",
                crate::messages::clean_text(other)
            ))
        }
    };
    let (Some(call), Some(free)) = (d.call, d.free_response) else {
        return Err("call or free_response is NULL".into());
    };
    Ok(Opened {
        name,
        kind,
        native: Native { call, free },
    })
}
