//! Reading a descriptor needs `unsafe`, as the host does; the plugin code
//! itself needs none (tests/proposer.rs forbids it outright).
#![allow(unsafe_code)]

use lex_align_plugin_sdk::abi::LexAlignPlugin;
use std::ffi::CStr;

pub fn descriptor_fields(raw: *const LexAlignPlugin) -> (u32, String, String) {
    // SAFETY: `raw` came from the SDK's entry point: a 'static descriptor
    // whose strings are NUL-terminated literals.
    unsafe {
        let d = &*raw;
        (
            d.abi_version,
            CStr::from_ptr(d.name).to_string_lossy().into_owned(),
            CStr::from_ptr(d.kind).to_string_lossy().into_owned(),
        )
    }
}
