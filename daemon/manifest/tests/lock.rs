use std::collections::BTreeMap;

use lex_align_manifest::{
    attribute, parse_poetry_lock, parse_pylock, parse_pyproject, parse_uv_lock, Dependency,
    FindingKind, Scope,
};

fn data(name: &str) -> String {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn via_map(deps: &[Dependency]) -> BTreeMap<String, Vec<String>> {
    deps.iter()
        .filter(|d| !d.direct)
        .map(|d| (d.canonical.clone(), d.via.clone()))
        .collect()
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn uv_lock_attributes_every_transitive_package() {
    let lock_text = data("uv_project/uv.lock");
    let pyproject_text = data("uv_project/pyproject.toml");
    let locked = parse_uv_lock("uv.lock", &lock_text).unwrap();
    assert_eq!(locked.len(), 27);

    let project: Vec<_> = locked.iter().filter(|p| p.project).collect();
    assert_eq!(project.len(), 1);
    assert_eq!(project[0].canonical, "weather-api");
    assert_eq!(
        project[0].dependencies,
        strs(&[
            "fastapi",
            "httpx",
            "pydantic-settings",
            "sqlalchemy",
            "pytest",
            "ruff"
        ])
    );
    // httpx[http2] is asked for by the project, so h2 is part of httpx's closure.
    let httpx = locked.iter().find(|p| p.canonical == "httpx").unwrap();
    assert!(httpx.dependencies.contains(&"h2".to_string()));
    assert!(httpx.extras.is_empty());
    // The lock entry's span is its name.
    assert_eq!(httpx.source.span.slice(&lock_text), "httpx");
    let line = lock_text[..httpx.source.span.start].matches('\n').count() as u32;
    assert_eq!(httpx.source.line, line);
    assert_eq!(httpx.source.column, 8);

    let manifest = parse_pyproject("pyproject.toml", &pyproject_text);
    let all = attribute(&manifest.dependencies, &locked);

    let direct: Vec<(&str, Option<&str>)> = all
        .iter()
        .filter(|d| d.direct)
        .map(|d| (d.canonical.as_str(), d.locked_version.as_deref()))
        .collect();
    assert_eq!(
        direct,
        vec![
            ("fastapi", Some("0.111.0")),
            ("httpx", Some("0.27.0")),
            ("pydantic-settings", Some("2.3.4")),
            ("sqlalchemy", Some("2.0.31")),
            ("pytest", Some("8.2.2")),
            ("ruff", Some("0.5.0")),
            ("hatchling", None),
        ]
    );

    let expected: BTreeMap<String, Vec<String>> = [
        ("annotated-types", vec!["fastapi", "pydantic-settings"]),
        ("anyio", vec!["fastapi", "httpx"]),
        ("certifi", vec!["httpx"]),
        ("colorama", vec!["pytest"]),
        ("greenlet", vec!["sqlalchemy"]),
        ("h11", vec!["httpx"]),
        ("h2", vec!["httpx"]),
        ("hpack", vec!["httpx"]),
        ("httpcore", vec!["httpx"]),
        ("hyperframe", vec!["httpx"]),
        ("idna", vec!["fastapi", "httpx"]),
        ("iniconfig", vec!["pytest"]),
        ("packaging", vec!["pytest"]),
        ("pluggy", vec!["pytest"]),
        ("pydantic", vec!["fastapi", "pydantic-settings"]),
        ("pydantic-core", vec!["fastapi", "pydantic-settings"]),
        ("python-dotenv", vec!["pydantic-settings"]),
        ("sniffio", vec!["fastapi", "httpx"]),
        ("starlette", vec!["fastapi"]),
        (
            "typing-extensions",
            vec!["fastapi", "pydantic-settings", "sqlalchemy"],
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), strs(&v)))
    .collect();
    assert_eq!(via_map(&all), expected);

    let anyio = all.iter().find(|d| d.canonical == "anyio").unwrap();
    assert_eq!(anyio.scope, Scope::Lock);
    assert_eq!(anyio.requirement, "anyio==4.4.0");
    assert_eq!(anyio.locked_version.as_deref(), Some("4.4.0"));
    assert_eq!(anyio.source.file, "uv.lock");
    assert_eq!(anyio.source.span.slice(&lock_text), "anyio");
}

#[test]
fn uv_lock_alone_takes_direct_dependencies_from_the_project_entry() {
    let locked = parse_uv_lock("uv.lock", &data("uv_project/uv.lock")).unwrap();
    let all = attribute(&[], &locked);
    // With no pyproject at hand the project entry's six dependencies are the
    // roots; they are not reported as transitive.
    assert_eq!(all.len(), 20);
    assert_eq!(
        all.iter().find(|d| d.canonical == "h2").unwrap().via,
        strs(&["httpx"])
    );
}

#[test]
fn pylock_dependencies_are_followed() {
    let text = data("pylock.toml");
    let locked = parse_pylock("pylock.toml", &text).unwrap();
    assert_eq!(locked.len(), 11);
    let pyproject =
        "[project]\nname = \"cli\"\nversion = \"1\"\ndependencies = [\"httpx>=0.27\", \"rich\"]\n";
    let manifest = parse_pyproject("pyproject.toml", pyproject);
    let all = attribute(&manifest.dependencies, &locked);
    let expected: BTreeMap<String, Vec<String>> = [
        ("anyio", vec!["httpx"]),
        ("certifi", vec!["httpx"]),
        ("h11", vec!["httpx"]),
        ("httpcore", vec!["httpx"]),
        ("idna", vec!["httpx"]),
        ("markdown-it-py", vec!["rich"]),
        ("mdurl", vec!["rich"]),
        ("pygments", vec!["rich"]),
        ("sniffio", vec!["httpx"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), strs(&v)))
    .collect();
    assert_eq!(via_map(&all), expected);
    assert_eq!(all[1].locked_version.as_deref(), Some("13.7.1"));
    let mdurl = all.iter().find(|d| d.canonical == "mdurl").unwrap();
    assert_eq!(mdurl.source.span.slice(&text), "mdurl");
}

#[test]
fn poetry_lock_follows_extras_only_when_asked() {
    let text = data("poetry.lock");
    let locked = parse_poetry_lock("poetry.lock", &text).unwrap();
    assert_eq!(locked.len(), 12);
    let requests = locked.iter().find(|p| p.canonical == "requests").unwrap();
    // PySocks is optional: only through the `socks` extra, which nothing in the lock asks for.
    assert_eq!(
        requests.dependencies,
        strs(&["certifi", "charset-normalizer", "idna", "urllib3"])
    );
    assert_eq!(requests.extras["socks"], strs(&["pysocks"]));
    let urllib3 = locked.iter().find(|p| p.canonical == "urllib3").unwrap();
    assert_eq!(urllib3.extras["brotli"], strs(&["brotli", "brotlicffi"]));

    let pyproject = r#"
[tool.poetry.dependencies]
python = "^3.10"
requests = {version = "^2.31", extras = ["socks"]}
django = "~4.2.13"
stripe = "9.9.0"
"#;
    let manifest = parse_pyproject("pyproject.toml", pyproject);
    let all = attribute(&manifest.dependencies, &locked);
    let expected: BTreeMap<String, Vec<String>> = [
        ("asgiref", vec!["django"]),
        ("certifi", vec!["requests", "stripe"]),
        ("charset-normalizer", vec!["requests", "stripe"]),
        ("idna", vec!["requests", "stripe"]),
        // Only the direct `requests[socks]` asks for the extra; stripe's requests does not.
        ("pysocks", vec!["requests"]),
        ("sqlparse", vec!["django"]),
        ("typing-extensions", vec!["django", "stripe"]),
        ("tzdata", vec!["django"]),
        ("urllib3", vec!["requests", "stripe"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), strs(&v)))
    .collect();
    assert_eq!(via_map(&all), expected);
    let django = all.iter().find(|d| d.canonical == "django").unwrap();
    assert!(django.direct);
    assert_eq!(django.locked_version.as_deref(), Some("4.2.14"));
}

#[test]
fn broken_lock_files_report_where() {
    let err = parse_uv_lock(
        "uv.lock",
        "version = 1\n[[package]]\nname = \"a\nversion = \"1\"\n",
    )
    .unwrap_err();
    assert_eq!(err.kind, FindingKind::InvalidToml);
    assert_eq!(err.file, "uv.lock");
    assert_eq!(err.line, 2);
    let err = parse_pylock(
        "pylock.toml",
        "lock-version = \"1.0\"\n[[packages]]\nversion = \"1\"\n",
    )
    .unwrap_err();
    assert!(err.message.contains("no `name`"), "{}", err.message);
    assert_eq!(err.line, 1);
}
