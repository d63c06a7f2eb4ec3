//! Inputs the fuzz targets (tests/fuzz) found; each must give findings or
//! dependencies, never a panic.

use lex_align_manifest::{parse_pyproject, parse_requirements};

// pep508_rs 0.9.2 panics (`PackageName` validation should match PEP 508
// parsing) on a name ending in `.`, `-` or `_` that is followed by a
// character that is not part of a name; a typo such as `requests- >=2`
// takes the parser down instead of giving an invalid-requirement finding.

#[test]
fn fuzz_pep508_name_requirements_line() {
    let m = parse_requirements(
        "requirements.txt",
        "pydantic>=2.7\nstru2.]\nidna>=3.7\n",
        &|_| None,
    );
    assert_eq!(m.dependencies.len(), 2);
    assert_eq!(m.findings.len(), 1);
}

#[test]
fn fuzz_pep508_name_pyproject_dependency() {
    let text = "[project]\nname = \"svc\"\nversion = \"0.1.0\"\ndependencies = [\"httpx- >=0.27\", \"click\"]\n";
    let m = parse_pyproject("pyproject.toml", text);
    assert_eq!(m.dependencies.len(), 1);
    assert_eq!(m.findings.len(), 1);
}

// The same for an extra: `httpx[http2-]` panics (`ExtraName` validation
// should match PEP 508 parsing).
#[test]
fn fuzz_pep508_extra_requirements_line() {
    let m = parse_requirements(
        "requirements.txt",
        "requests[socks-]==2.31\nidna\n",
        &|_| None,
    );
    assert_eq!(m.dependencies.len(), 1);
    assert_eq!(m.findings.len(), 1);
}

// pep508_rs 0.9.2 slices its input at a byte offset inside a multi-byte
// character while reporting a bad marker (cursor.rs: `byte index … is not a
// char boundary`).
#[test]
fn fuzz_pep508_marker_multibyte() {
    let line = "pywin32>=306 ; platform_release != 'Vi'''sta\u{2122} \u{1f40d}'";
    let m = parse_requirements("requirements.txt", &format!("{line}\nidna\n"), &|_| None);
    assert_eq!(m.dependencies.len(), 1);
    assert_eq!(m.findings.len(), 1);
}
