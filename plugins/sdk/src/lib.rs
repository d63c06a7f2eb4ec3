//! Write a lex-align plugin in safe Rust.
//!
//! A plugin crate (`crate-type = ["cdylib", "rlib"]`) implements
//! [`AuthenticatorPlugin`] or [`ProposerPlugin`] and exports it:
//!
//! ```ignore
//! struct MyAuth { token: String }
//! impl lex_align_plugin_sdk::AuthenticatorPlugin for MyAuth {
//!     fn configure(config: &Value) -> Result<Self, PluginError> { /* … */ }
//!     fn authenticate(&self, req: &AuthRequest) -> Result<Identity, PluginError> { /* … */ }
//! }
//! lex_align_plugin_sdk::export_authenticator!("my-auth", MyAuth);
//! ```
//!
//! The macro builds the `lex_align_plugin` entry point of
//! `plugins/abi/lex_align_plugin.h`, parses each request, dispatches it,
//! catches every panic (answered as a 500 error object) and owns the
//! response strings. The messages are documented in `docs/plugins.md`.
//!
//! A panic can only be caught with `panic = "unwind"` (the default); a
//! plugin built with `panic = "abort"` takes the daemon down with it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use lex_align_plugin_abi as abi;
pub use serde_json::{self, json, Value};

/// Answered as `{"error":{"status":N,"detail":"..."}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    pub status: u16,
    pub detail: String,
}

impl PluginError {
    pub fn new(status: u16, detail: impl Into<String>) -> Self {
        PluginError {
            status,
            detail: detail.into(),
        }
    }
    /// 401: the caller is not let in.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(401, detail)
    }
    /// 400, for `configure`: the configuration is not usable.
    pub fn bad_config(detail: impl Into<String>) -> Self {
        Self::new(400, detail)
    }
    /// 502: a service the plugin calls failed.
    pub fn upstream(detail: impl Into<String>) -> Self {
        Self::new(502, detail)
    }

    /// The wire form.
    pub fn to_json(&self) -> Value {
        json!({"error": {"status": self.status, "detail": self.detail}})
    }
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.detail)
    }
}

impl std::error::Error for PluginError {}

/// op `authenticate`. Header names are lower-case; repeated headers are
/// joined with `", "`.
#[derive(Debug, Clone, Deserialize)]
pub struct AuthRequest {
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub peer: Option<String>,
}

impl AuthRequest {
    /// Case-insensitive header lookup.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The token of `Authorization: Bearer <t>`; `None` for any other shape
    /// (another scheme, an empty or spaced token, repeated headers).
    pub fn bearer(&self) -> Option<&str> {
        let value = self.header("authorization")?.trim();
        let (scheme, token) = value.split_once(' ')?;
        let token = token.trim();
        (scheme.eq_ignore_ascii_case("bearer")
            && !token.is_empty()
            && !token.contains(char::is_whitespace)
            && !token.contains(','))
        .then_some(token)
    }
}

/// Who the caller is, as an authenticator answers it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Identity {
    pub id: String,
    pub email: Option<String>,
    pub groups: Vec<String>,
}

/// op `propose`: the registry rule proposed (registry.md field names).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProposedRule {
    pub name: String,
    pub status: String,
    pub reason: Option<String>,
    pub replacement: Option<String>,
    pub min_version: Option<String>,
    pub max_version: Option<String>,
    pub expires: Option<String>,
    pub owner: Option<String>,
}

/// Who proposes and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProposalContext {
    pub source: String,
    pub project: String,
    pub requester: String,
    pub rationale: Option<String>,
    pub agent_model: Option<String>,
    pub agent_version: Option<String>,
}

/// op `propose`: the change and the requester, as the built-in proposers
/// receive them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProposeRequest {
    pub rule: ProposedRule,
    pub context: ProposalContext,
}

/// `status`: `opened | amended | applied | logged | failed`. (The host adds
/// `backend` = `"plugin:<name>"`.)
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProposalResult {
    pub status: String,
    pub url: Option<String>,
    pub branch: Option<String>,
    pub commit_sha: Option<String>,
    pub detail: String,
}

/// PEP 503 normalisation: lower case, runs of `-_.` become one `-`.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_run = false;
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_run {
                out.push('-');
            }
            in_run = true;
        } else {
            out.extend(c.to_lowercase());
            in_run = false;
        }
    }
    out
}

/// An authenticator: names the caller of one HTTP request.
pub trait AuthenticatorPlugin: Send + Sync + Sized + 'static {
    /// `config`: the JSON object from `<dir>/<name>.json` beside the
    /// library, `{}` if none.
    fn configure(config: &Value) -> Result<Self, PluginError>;
    fn authenticate(&self, req: &AuthRequest) -> Result<Identity, PluginError>;
}

/// A proposer: takes an operator's registry change somewhere for review.
pub trait ProposerPlugin: Send + Sync + Sized + 'static {
    /// `config`: the JSON object from `<dir>/<name>.json` beside the
    /// library, `{}` if none.
    fn configure(config: &Value) -> Result<Self, PluginError>;
    fn propose(&self, req: &ProposeRequest) -> Result<ProposalResult, PluginError>;
}

/// Exports an [`AuthenticatorPlugin`]: `export_authenticator!("name", Type);`
#[macro_export]
macro_rules! export_authenticator {
    ($name:literal, $ty:ty) => {
        $crate::__export_plugin!($name, b"authenticator\0", $crate::__private::Auth<$ty>);
    };
}

/// Exports a [`ProposerPlugin`]: `export_proposer!("name", Type);`
#[macro_export]
macro_rules! export_proposer {
    ($name:literal, $ty:ty) => {
        $crate::__export_plugin!($name, b"proposer\0", $crate::__private::Prop<$ty>);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __export_plugin {
    ($name:literal, $kind:expr, $disp:ty) => {
        const _: () = ::core::assert!(
            $crate::abi::valid_name($name),
            "a plugin name must match [a-z0-9_-]+"
        );

        static __LEX_ALIGN_SLOT: $crate::__private::Slot<$disp> = $crate::__private::Slot::new();

        extern "C" fn __lex_align_c_call(
            request_json: *const ::core::ffi::c_char,
        ) -> *mut ::core::ffi::c_char {
            // SAFETY: the host passes a NUL-terminated string valid for
            // the call (lex_align_plugin.h), or NULL, which is checked.
            unsafe { $crate::__private::call(&__LEX_ALIGN_SLOT, request_json) }
        }

        extern "C" fn __lex_align_c_free(response_json: *mut ::core::ffi::c_char) {
            // SAFETY: the host hands back, once, a string `call` returned.
            unsafe { $crate::__private::free(response_json) }
        }

        static __LEX_ALIGN_DESCRIPTOR: $crate::__private::Descriptor =
            $crate::__private::Descriptor::new(
                ::core::concat!($name, "\0").as_bytes(),
                $kind,
                __lex_align_c_call,
                __lex_align_c_free,
            );

        /// The entry point of `lex_align_plugin.h`.
        #[no_mangle]
        pub extern "C" fn lex_align_plugin() -> *const $crate::abi::LexAlignPlugin {
            __LEX_ALIGN_DESCRIPTOR.as_ptr()
        }

        /// One request through the real `extern "C"` call and free, for the
        /// plugin crate's tests.
        #[doc(hidden)]
        pub fn __lex_align_call(request_json: &str) -> ::std::string::String {
            $crate::__private::call_through(&__LEX_ALIGN_DESCRIPTOR, request_json)
        }
    };
}

/// What the export macros expand to; not a stable API.
#[doc(hidden)]
pub mod __private {
    use std::ffi::{c_char, CStr, CString};
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::{Mutex, OnceLock};

    use super::*;
    use crate::abi::{LexAlignPlugin, LEX_ALIGN_ABI_VERSION};

    /// The static struct a plugin hands out. Its pointers are to `'static`
    /// data and functions, so sharing it between threads is sound.
    pub struct Descriptor(LexAlignPlugin);

    // SAFETY: every pointer in it is to immutable 'static data or code.
    unsafe impl Sync for Descriptor {}

    impl Descriptor {
        /// `name` and `kind` must be NUL-terminated (the macro's literals).
        pub const fn new(
            name: &'static [u8],
            kind: &'static [u8],
            call: extern "C" fn(*const c_char) -> *mut c_char,
            free: extern "C" fn(*mut c_char),
        ) -> Descriptor {
            assert!(!name.is_empty() && name[name.len() - 1] == 0);
            assert!(!kind.is_empty() && kind[kind.len() - 1] == 0);
            Descriptor(LexAlignPlugin {
                abi_version: LEX_ALIGN_ABI_VERSION,
                name: name.as_ptr().cast(),
                kind: kind.as_ptr().cast(),
                call: Some(call),
                free_response: Some(free),
            })
        }

        pub fn as_ptr(&'static self) -> *const LexAlignPlugin {
            &self.0
        }
    }

    /// One plugin kind's request dispatch.
    pub trait Dispatch: Send + Sync + Sized + 'static {
        fn configure(config: &Value) -> Result<Self, PluginError>;
        fn handle(&self, op: &str, request: Value) -> Result<Value, PluginError>;
    }

    pub struct Auth<T>(T);
    pub struct Prop<T>(T);

    fn parse<R: serde::de::DeserializeOwned>(op: &str, request: Value) -> Result<R, PluginError> {
        serde_json::from_value(request)
            .map_err(|e| PluginError::new(400, format!("malformed {op} request: {e}")))
    }

    fn unknown_op(op: &str, kind: &str) -> PluginError {
        PluginError::new(400, format!("unknown op {op:?} for a {kind} plugin"))
    }

    impl<T: AuthenticatorPlugin> Dispatch for Auth<T> {
        fn configure(config: &Value) -> Result<Self, PluginError> {
            T::configure(config).map(Auth)
        }
        fn handle(&self, op: &str, request: Value) -> Result<Value, PluginError> {
            match op {
                "authenticate" => {
                    let req: AuthRequest = parse(op, request)?;
                    let id = self.0.authenticate(&req)?;
                    Ok(json!({ "identity": id }))
                }
                _ => Err(unknown_op(op, "authenticator")),
            }
        }
    }

    impl<T: ProposerPlugin> Dispatch for Prop<T> {
        fn configure(config: &Value) -> Result<Self, PluginError> {
            T::configure(config).map(Prop)
        }
        fn handle(&self, op: &str, request: Value) -> Result<Value, PluginError> {
            match op {
                "propose" => {
                    let req: ProposeRequest = parse(op, request)?;
                    let result = self.0.propose(&req)?;
                    Ok(json!({ "result": result }))
                }
                _ => Err(unknown_op(op, "proposer")),
            }
        }
    }

    /// The configured plugin, built once by `configure`.
    pub struct Slot<D> {
        plugin: OnceLock<D>,
        configuring: Mutex<()>,
    }

    impl<D> Slot<D> {
        #[allow(clippy::new_without_default)]
        pub const fn new() -> Self {
            Slot {
                plugin: OnceLock::new(),
                configuring: Mutex::new(()),
            }
        }
    }

    fn answer<D: Dispatch>(slot: &Slot<D>, request: &[u8]) -> Result<Value, PluginError> {
        let text = std::str::from_utf8(request)
            .map_err(|_| PluginError::new(400, "request is not UTF-8"))?;
        let request: Value = serde_json::from_str(text)
            .map_err(|e| PluginError::new(400, format!("request is not JSON: {e}")))?;
        let op = request
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| PluginError::new(400, "request has no \"op\""))?
            .to_string();
        if op == "configure" {
            // One configure at a time, and only one that succeeds.
            let _guard = slot.configuring.lock().unwrap_or_else(|p| p.into_inner());
            if slot.plugin.get().is_some() {
                return Err(PluginError::new(409, "plugin is already configured"));
            }
            let config = request.get("config").cloned().unwrap_or_else(|| json!({}));
            if !config.is_object() {
                return Err(PluginError::bad_config("\"config\" must be a JSON object"));
            }
            let plugin = D::configure(&config)?;
            let _ = slot.plugin.set(plugin);
            return Ok(json!({"ok": true}));
        }
        let plugin = slot
            .plugin
            .get()
            .ok_or_else(|| PluginError::new(503, "plugin is not configured"))?;
        plugin.handle(&op, request)
    }

    fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
        if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "a non-string panic payload".into()
        }
    }

    fn to_c(value: &Value) -> *mut c_char {
        // serde_json escapes NUL inside strings, so this cannot contain one;
        // the fallback keeps the promise never to answer NULL all the same.
        let text = serde_json::to_string(value).unwrap_or_default();
        CString::new(text)
            .unwrap_or_else(|_| {
                CString::new(r#"{"error":{"status":500,"detail":"unencodable answer"}}"#)
                    .expect("no NUL in a literal")
            })
            .into_raw()
    }

    /// `call` of the ABI.
    ///
    /// # Safety
    /// `request_json` is NULL or a NUL-terminated string valid for the call.
    pub unsafe fn call<D: Dispatch>(slot: &Slot<D>, request_json: *const c_char) -> *mut c_char {
        if request_json.is_null() {
            return to_c(&PluginError::new(400, "request is NULL").to_json());
        }
        // SAFETY: per this function's contract.
        let request = unsafe { CStr::from_ptr(request_json) }.to_bytes();
        let value = match catch_unwind(AssertUnwindSafe(|| answer(slot, request))) {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => e.to_json(),
            Err(payload) => PluginError::new(
                500,
                format!("plugin panicked: {}", panic_message(payload.as_ref())),
            )
            .to_json(),
        };
        to_c(&value)
    }

    /// `free_response` of the ABI.
    ///
    /// # Safety
    /// `response_json` is NULL or a string [`call`] returned, not yet freed.
    pub unsafe fn free(response_json: *mut c_char) {
        if !response_json.is_null() {
            // SAFETY: it came from CString::into_raw in `to_c`.
            drop(unsafe { CString::from_raw(response_json) });
        }
    }

    /// One request through the descriptor's own `call` and `free_response`.
    pub fn call_through(descriptor: &'static Descriptor, request_json: &str) -> String {
        let Ok(request) = CString::new(request_json) else {
            return PluginError::new(400, "request contains NUL")
                .to_json()
                .to_string();
        };
        let (Some(call), Some(free)) = (descriptor.0.call, descriptor.0.free_response) else {
            unreachable!("Descriptor::new sets both functions")
        };
        // SAFETY: `call` and `free` are the macro's functions over this
        // crate's `call`/`free`; the request outlives the call, and the
        // answer is read before it is freed, once.
        unsafe {
            let answer = call(request.as_ptr());
            let text = CStr::from_ptr(answer).to_string_lossy().into_owned();
            free(answer);
            text
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_pep_503() {
        assert_eq!(normalize_name("Foo.Bar__baz"), "foo-bar-baz");
        assert_eq!(normalize_name("requests"), "requests");
        assert_eq!(normalize_name("A-_-B"), "a-b");
    }

    fn req(headers: &[(&str, &str)]) -> AuthRequest {
        AuthRequest {
            method: "GET".into(),
            path: "/".into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            peer: None,
        }
    }

    #[test]
    fn bearer_is_strict() {
        assert_eq!(
            req(&[("authorization", "Bearer abc")]).bearer(),
            Some("abc")
        );
        assert_eq!(
            req(&[("Authorization", "bearer  abc ")]).bearer(),
            Some("abc")
        );
        for bad in [
            "Bearer",
            "Bearer ",
            "Basic abc",
            "Bearer a b",
            "Bearer a, Bearer b",
        ] {
            assert_eq!(req(&[("authorization", bad)]).bearer(), None, "{bad:?}");
        }
        assert_eq!(req(&[]).bearer(), None);
        assert_eq!(
            req(&[("x-forwarded-user", "ann")]).header("X-Forwarded-User"),
            Some("ann")
        );
    }
}
