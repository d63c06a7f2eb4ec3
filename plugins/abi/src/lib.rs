//! The C ABI of lex-align plugins: the same definitions as
//! `plugins/abi/lex_align_plugin.h` (ownership and threading rules are
//! documented there and in `docs/plugins.md`).
//!
//! Only type definitions live here; loading is `lex-align-plugin-host`,
//! writing a plugin in Rust is `lex-align-plugin-sdk`.

#![forbid(unsafe_code)]

use core::ffi::c_char;

/// `LEX_ALIGN_ABI_VERSION`: the version of the struct and messages this
/// crate describes.
pub const LEX_ALIGN_ABI_VERSION: u32 = 1;

/// The exported entry point's name, NUL-terminated (as `dlsym` wants it).
pub const LEX_ALIGN_PLUGIN_SYMBOL: &[u8] = b"lex_align_plugin\0";

/// `kind` of an authenticator plugin.
pub const KIND_AUTHENTICATOR: &str = "authenticator";
/// `kind` of a proposer plugin.
pub const KIND_PROPOSER: &str = "proposer";

/// `char *(*call)(const char *request_json)`.
pub type CallFn = unsafe extern "C" fn(request_json: *const c_char) -> *mut c_char;
/// `void (*free_response)(char *response_json)`.
pub type FreeResponseFn = unsafe extern "C" fn(response_json: *mut c_char);
/// `const LexAlignPlugin *lex_align_plugin(void)`.
pub type EntryFn = unsafe extern "C" fn() -> *const LexAlignPlugin;

/// `struct LexAlignPlugin`, field for field.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct LexAlignPlugin {
    /// [`LEX_ALIGN_ABI_VERSION`]; read before any other field.
    pub abi_version: u32,
    /// `[a-z0-9_-]+`, unique among loaded plugins; static, NUL-terminated.
    pub name: *const c_char,
    /// `"authenticator"` or `"proposer"`; static, NUL-terminated.
    pub kind: *const c_char,
    /// One JSON request in, one JSON response out; thread-safe.
    pub call: Option<CallFn>,
    /// Takes back a response `call` returned, exactly once.
    pub free_response: Option<FreeResponseFn>,
}

/// True for a valid plugin name: `[a-z0-9_-]+`.
pub const fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    if b.is_empty() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-') {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("oidc"));
        assert!(valid_name("my_plugin-2"));
        for bad in ["", "Oidc", "a b", "a/b", "a.b", "é"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn layout_matches_the_header() {
        // uint32_t, then four pointers (the u32 padded to pointer alignment).
        let p = core::mem::size_of::<usize>();
        assert_eq!(core::mem::size_of::<LexAlignPlugin>(), p * 5);
        assert_eq!(core::mem::align_of::<LexAlignPlugin>(), p);
    }
}
