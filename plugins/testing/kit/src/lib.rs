//! Plugins for tests, without a nested cargo build.
//!
//! The Rust test plugins (`lex-align-test-auth`, `lex-align-test-proposer`)
//! are `cdylib` crates: a test package that lists them as dev-dependencies
//! makes cargo build their shared libraries next to its test binaries
//! (`target/<profile>/deps/`), where [`rust_plugin`] finds them. The C ones
//! are compiled by [`c_plugin`] with the system C compiler (the one that
//! links Rust, so it is there wherever the tests build).
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `rust_plugin` names of the test plugins.
pub const TEST_AUTH: &str = "lex_align_test_auth";
pub const TEST_PROPOSER: &str = "lex_align_test_proposer";

/// The shared library of a cdylib dev-dependency (`lib_name` with
/// underscores), as cargo built it for this test binary.
pub fn rust_plugin(lib_name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let deps = exe.parent().expect("the test binary's directory");
    let file = format!(
        "{}{lib_name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    for dir in [deps.to_path_buf(), deps.join("..")] {
        let p = dir.join(&file);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "{file} not found beside {}: list its crate as a dev-dependency of the test's package",
        exe.display()
    )
}

/// A C source of plugins/testing/c.
#[derive(Debug, Clone, Copy)]
pub enum CSource {
    /// The working authenticator `c-auth` (auth.c).
    Auth,
    /// The failure matrix (broken.c), one `-D` flag per misbehaviour.
    Broken,
}

fn testing_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The ABI header's directory.
pub fn header_dir() -> PathBuf {
    testing_dir().join("../abi")
}

/// Compiles `source` with `defines` (`NAME` or `NAME=value`) into
/// `out_dir/<file_stem>.so`: `cc -shared -fPIC -I plugins/abi`.
pub fn c_plugin(source: CSource, defines: &[&str], out_dir: &Path, file_stem: &str) -> PathBuf {
    let src = testing_dir().join("c").join(match source {
        CSource::Auth => "auth.c",
        CSource::Broken => "broken.c",
    });
    let out = out_dir.join(format!("{file_stem}.{}", std::env::consts::DLL_EXTENSION));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let mut cmd = Command::new(&cc);
    cmd.args(["-shared", "-fPIC", "-O1", "-Wall", "-I"])
        .arg(header_dir())
        .arg(&src)
        .arg("-o")
        .arg(&out);
    for d in defines {
        cmd.arg(format!("-D{d}"));
    }
    let result = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cc}: {e}"));
    assert!(
        result.status.success(),
        "{cc} failed on {}: {}",
        src.display(),
        String::from_utf8_lossy(&result.stderr)
    );
    out
}

/// Copies a library into a plugin directory as `file_name` (a copy is a
/// new file, so every test gets a fresh instance of a plugin's state even
/// within one process), with `<plugin>.json` beside it when `config` is
/// given as (plugin name, JSON text).
pub fn install(lib: &Path, dir: &Path, file_stem: &str, config: Option<(&str, &str)>) -> PathBuf {
    std::fs::create_dir_all(dir).expect("plugin dir");
    let to = dir.join(format!("{file_stem}.{}", std::env::consts::DLL_EXTENSION));
    std::fs::copy(lib, &to).expect("copy plugin");
    if let Some((name, json)) = config {
        std::fs::write(dir.join(format!("{name}.json")), json).expect("plugin config");
    }
    to
}
