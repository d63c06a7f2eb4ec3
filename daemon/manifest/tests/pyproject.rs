use lex_align_manifest::{
    diff, parse_pyproject, position, replace_requirement, ChangeKind, Dependency, FindingKind,
    Manifest, Scope,
};

fn data(name: &str) -> String {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn find<'a>(m: &'a Manifest, canonical: &str, scope: &Scope) -> &'a Dependency {
    m.dependencies
        .iter()
        .find(|d| d.canonical == canonical && &d.scope == scope)
        .unwrap_or_else(|| {
            panic!(
                "{canonical} in {scope:?} not found in {:#?}",
                m.dependencies
            )
        })
}

/// The (line, column) of the n-th occurrence of `needle`, computed independently.
fn line_col(text: &str, needle: &str) -> (u32, u32, usize) {
    let offset = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} not in text"));
    let before = &text[..offset];
    let line = before.matches('\n').count() as u32;
    let col = before.rsplit('\n').next().unwrap().chars().count() as u32;
    (line, col, offset)
}

#[test]
fn every_table_of_a_full_pyproject() {
    let text = data("pyproject_full.toml");
    let m = parse_pyproject("pyproject.toml", &text);

    let scopes: Vec<(String, String)> = m
        .dependencies
        .iter()
        .map(|d| (d.scope.label(), d.canonical.clone()))
        .collect();
    let expected: Vec<(&str, &str)> = vec![
        ("runtime", "fastapi"),
        ("runtime", "requests"),
        ("runtime", "tomli"),
        ("runtime", "cryptography"),
        ("runtime", "pyyaml"),
        ("runtime", "uvicorn"),
        ("optional:postgres", "psycopg"),
        ("optional:s3", "boto3"),
        ("optional:s3", "aiobotocore"),
        ("optional:windows", "pywin32"),
        ("optional:windows", "colorama"),
        ("group:test", "pytest"),
        ("group:test", "pytest-cov"),
        ("group:lint", "ruff"),
        ("group:lint", "mypy"),
        ("group:dev", "pytest"),
        ("group:dev", "pytest-cov"),
        ("group:dev", "ruff"),
        ("group:dev", "mypy"),
        ("group:dev", "ipython"),
        ("group:docs", "mkdocs-material"),
        ("build", "hatchling"),
        ("build", "hatch-vcs"),
        ("uv-dev", "pre-commit"),
        ("uv-constraint", "urllib3"),
        ("uv-override", "werkzeug"),
    ];
    let expected: Vec<(String, String)> = expected
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(scopes, expected);

    // Spans cover exactly the requirement text, without quotes.
    for d in &m.dependencies {
        let (start, end) = (d.source.span.start, d.source.span.end);
        let quote = &text[start - 1..start];
        assert!(quote == "\"" || quote == "'", "{:?}", d.source);
        assert_eq!(&text[end..end + 1], quote, "{:?}", d.source);
        assert_eq!(d.source.name_span.slice(&text), d.name);
        assert!(d.direct);
    }

    let requests = find(&m, "requests", &Scope::Runtime);
    let raw = "Requests[socks] >= 2.31 ; python_version < '3.13'";
    assert_eq!(requests.source.span.slice(&text), raw);
    assert_eq!(requests.name, "Requests");
    assert_eq!(requests.specifier.as_deref(), Some(">=2.31"));
    assert_eq!(requests.extras, vec!["socks"]);
    assert_eq!(
        requests.marker.as_deref(),
        Some("python_full_version < '3.13'")
    );
    assert_eq!(
        requests.requirement,
        "requests[socks]>=2.31 ; python_full_version < '3.13'"
    );
    let (line, col, offset) = line_col(&text, raw);
    assert_eq!(requests.source.span.start, offset);
    assert_eq!((requests.source.line, requests.source.column), (line, col));
    assert_eq!((line, col), (13, 5)); // line 14, column 6 in 1-based terms

    let tomli = find(&m, "tomli", &Scope::Runtime);
    assert_eq!(
        tomli.source.span.slice(&text),
        "tomli>=2.0; python_version < \"3.11\""
    );
    let pyyaml = find(&m, "pyyaml", &Scope::Runtime);
    assert_eq!(pyyaml.name, "PyYAML");
    assert_eq!(pyyaml.specifier.as_deref(), Some("==6.0.1"));
    let crypto = find(&m, "cryptography", &Scope::Runtime);
    assert_eq!(crypto.specifier.as_deref(), Some(">=41,<44"));

    // Included groups: the dependency keeps the span where it is written.
    let pytest_test = find(&m, "pytest", &Scope::Group("test".into()));
    let pytest_dev = find(&m, "pytest", &Scope::Group("dev".into()));
    assert_eq!(pytest_test.source, pytest_dev.source);
    assert_eq!(pytest_dev.source.span.slice(&text), "pytest>=8");

    // One invalid requirement and one missing include-group; the rest parsed.
    assert_eq!(m.findings.len(), 2, "{:#?}", m.findings);
    let bad = &m.findings[0];
    assert_eq!(bad.kind, FindingKind::InvalidRequirement);
    assert_eq!(bad.span.slice(&text), "not a valid requirement!!");
    let (line, col, _) = line_col(&text, "not a valid requirement!!");
    assert_eq!((bad.line, bad.column), (line, col));
    assert!(
        bad.message.contains("not a valid requirement!!"),
        "{}",
        bad.message
    );
    let missing = &m.findings[1];
    assert_eq!(missing.kind, FindingKind::InvalidInclude);
    assert_eq!(missing.span.slice(&text), "missing");
    assert!(missing.message.contains("no such dependency group"));
}

#[test]
fn utf16_and_utf8_positions_after_non_ascii_text() {
    let text = data("pyproject_full.toml");
    let m = parse_pyproject("pyproject.toml", &text);
    let colorama = find(&m, "colorama", &Scope::Optional("windows".into()));
    assert_eq!(colorama.source.span.slice(&text), "colorama>=0.4");
    let line_text = text.lines().nth(colorama.source.line as usize).unwrap();
    let prefix = "windows = [\"pywin32>=306 ; platform_release != 'Vista™ 🐍'\", \"";
    assert!(line_text.starts_with(prefix), "{line_text}");
    // chars: ™ and 🐍 are one each; UTF-16: 🐍 is a surrogate pair; UTF-8: 3 and 4 bytes.
    let chars = prefix.chars().count() as u32;
    assert_eq!(colorama.source.column, chars);
    assert_eq!(
        position(&text, colorama.source.span.start, true),
        (colorama.source.line, chars + 1)
    );
    assert_eq!(
        position(&text, colorama.source.span.start, false),
        (colorama.source.line, prefix.len() as u32)
    );
    assert_eq!(prefix.len() as u32, chars + 2 + 3);
    assert_eq!(
        lex_align_manifest::offset_at(&text, colorama.source.line, chars + 1, true),
        colorama.source.span.start
    );
}

#[test]
fn invalid_toml_is_one_finding_with_the_parser_position() {
    let text = "[project]\nname = \"x\"\ndependencies = [\"requests\",\n\"httpx\" \"oops\"]\n";
    let m = parse_pyproject("pyproject.toml", text);
    assert!(m.dependencies.is_empty());
    assert_eq!(m.findings.len(), 1);
    let f = &m.findings[0];
    assert_eq!(f.kind, FindingKind::InvalidToml);
    assert_eq!(f.line, 3);
    assert_eq!(f.file, "pyproject.toml");
    assert!(f.message.starts_with("invalid TOML"), "{}", f.message);
}

#[test]
fn include_group_cycles_end_with_a_finding() {
    let text = r#"
[dependency-groups]
a = ["attrs", {include-group = "B"}]
b = ["black", {include-group = "a"}]
"#;
    let m = parse_pyproject("pyproject.toml", text);
    let a: Vec<&str> = m
        .dependencies
        .iter()
        .filter(|d| d.scope == Scope::Group("a".into()))
        .map(|d| d.canonical.as_str())
        .collect();
    assert_eq!(a, vec!["attrs", "black"]);
    let b: Vec<&str> = m
        .dependencies
        .iter()
        .filter(|d| d.scope == Scope::Group("b".into()))
        .map(|d| d.canonical.as_str())
        .collect();
    assert_eq!(b, vec!["black", "attrs"]);
    assert_eq!(m.findings.len(), 2, "{:#?}", m.findings);
    assert!(m
        .findings
        .iter()
        .all(|f| f.kind == FindingKind::InvalidInclude && f.message.contains("cycle")));
}

#[test]
fn poetry_tables_become_pep508() {
    let text = data("poetry_pyproject.toml");
    let m = parse_pyproject("pyproject.toml", &text);
    let reqs: Vec<(String, String)> = m
        .dependencies
        .iter()
        .map(|d| (d.scope.label(), d.requirement.clone()))
        .collect();
    let expected = [
        ("poetry", "requests[socks]>=2.31, <3.0"),
        ("poetry", "django>=4.2.13, <4.3.0"),
        ("poetry", "celery>=5.3, <6"),
        ("poetry", "ruamel-yaml==0.18.*"),
        ("poetry", "stripe==9.9.0"),
        (
            "poetry",
            "tomli>=2.0.1, <3.0.0 ; python_full_version < '3.11'",
        ),
        (
            "poetry",
            "numpy>=1.26, <1.27 ; python_full_version < '3.13'",
        ),
        ("poetry", "numpy>=2.1, <3.0 ; python_full_version >= '3.13'"),
        ("poetry", "legacy-crypto"),
        ("build", "poetry-core>=1.0.0"),
        ("poetry-group:dev", "black>=24.4, <25.0"),
        ("poetry-group:test", "pytest>=8.2, <9.0"),
        (
            "poetry-group:test",
            "pytest-django>=4.8, <5.0 ; sys_platform != 'win32'",
        ),
    ];
    let mut got = reqs.clone();
    got.sort();
    let mut want: Vec<(String, String)> = expected
        .iter()
        .map(|(a, b)| (a.to_string(), b.replace(", ", ",")))
        .collect();
    want.sort();
    assert_eq!(got, want);

    let django = find(&m, "django", &Scope::PoetryMain);
    assert_eq!(django.source.span.slice(&text), "django = \"~4.2.13\"");
    assert_eq!(django.source.name_span.slice(&text), "django");
    let ruamel = find(&m, "ruamel-yaml", &Scope::PoetryMain);
    assert_eq!(ruamel.name, "ruamel.yaml");
    assert_eq!(ruamel.source.name_span.slice(&text), "ruamel.yaml");
    let requests = find(&m, "requests", &Scope::PoetryMain);
    assert_eq!(
        requests.source.span.slice(&text),
        "requests = {version = \"^2.31\", extras = [\"socks\"]}"
    );
    assert!(!m.dependencies.iter().any(|d| d.canonical == "python"));

    let kinds: Vec<(FindingKind, &str)> = m
        .findings
        .iter()
        .map(|f| (f.kind, f.span.slice(&text)))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (
                FindingKind::Unsupported,
                "internal-lib = {git = \"https://git.example.com/billing/internal-lib.git\", tag = \"v1.2.0\"}"
            ),
            (FindingKind::Unsupported, "legacy-crypto = \"^1.0 || ^2.0\""),
            (FindingKind::InvalidRequirement, "bad = \"^banana\""),
        ]
    );
}

#[test]
fn diff_reports_added_changed_and_removed_per_scope() {
    let old = data("pyproject_full.toml");
    let new = old
        .replace("\"cryptography>=41,<44\"", "\"cryptography>=39\"")
        .replace(
            "\"PyYAML==6.0.1\",",
            "\"PyYAML==6.0.1\",\n    \"leftpad-py>=0.1\",",
        )
        .replace("\"pytest-cov>=5\"", "\"pytest-cov[toml]>=5\"")
        .replace("postgres = [\"psycopg[binary]>=3.1\"]\n", "");
    let changes = diff(
        &parse_pyproject("pyproject.toml", &old),
        &parse_pyproject("pyproject.toml", &new),
    );
    let got: Vec<(ChangeKind, String, String)> = changes
        .iter()
        .map(|c| {
            (
                c.kind,
                c.dependency.scope.label(),
                c.dependency.requirement.clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                ChangeKind::SpecifierChanged,
                "runtime".into(),
                "cryptography>=39".into()
            ),
            (
                ChangeKind::Added,
                "runtime".into(),
                "leftpad-py>=0.1".into()
            ),
            (
                ChangeKind::SpecifierChanged,
                "group:test".into(),
                "pytest-cov[toml]>=5".into()
            ),
            (
                ChangeKind::SpecifierChanged,
                "group:dev".into(),
                "pytest-cov[toml]>=5".into()
            ),
            (
                ChangeKind::Removed,
                "optional:postgres".into(),
                "psycopg[binary]>=3.1".into()
            ),
        ]
    );
    // The changed dependency points at the new text.
    let crypto = &changes[0].dependency;
    assert_eq!(crypto.source.span.slice(&new), "cryptography>=39");
    assert!(diff(&parse_pyproject("p", &old), &parse_pyproject("p", &old)).is_empty());
}

#[test]
fn replace_requirement_round_trips_through_the_parser() {
    let text = data("pyproject_full.toml");
    let m = parse_pyproject("pyproject.toml", &text);
    let tomli = find(&m, "tomli", &Scope::Runtime);
    let edited = replace_requirement(
        &text,
        tomli.source.span,
        "tomli>=2.0.1; python_version < \"3.11\"",
    );
    // Only the string's content changed; quotes and the rest are byte-identical.
    assert_eq!(
        &edited[..tomli.source.span.start],
        &text[..tomli.source.span.start]
    );
    assert!(edited.contains("'tomli>=2.0.1; python_version < \"3.11\"',"));
    let m2 = parse_pyproject("pyproject.toml", &edited);
    let tomli2 = find(&m2, "tomli", &Scope::Runtime);
    assert_eq!(tomli2.specifier.as_deref(), Some(">=2.0.1"));
    assert_eq!(m2.dependencies.len(), m.dependencies.len());

    let requests = find(&m, "requests", &Scope::Runtime);
    let edited = replace_requirement(
        &text,
        requests.source.span,
        "httpx[socks]>=0.27 ; python_version < \"3.13\"",
    );
    let m3 = parse_pyproject("pyproject.toml", &edited);
    assert_eq!(m3.findings.len(), m.findings.len());
    let httpx = find(&m3, "httpx", &Scope::Runtime);
    assert_eq!(httpx.extras, vec!["socks"]);
    assert_eq!(
        httpx.source.span.slice(&edited),
        "httpx[socks]>=0.27 ; python_version < '3.13'"
    );
}

#[test]
fn escaped_strings_keep_the_whole_span() {
    let text = "[project]\ndependencies = [\"caf\\u00e9-lib>=1\", \"\"\"\nattrs>=23\"\"\"]\n";
    let m = parse_pyproject("pyproject.toml", text);
    // `é` is not a valid name character: one finding, spanning the raw content.
    assert_eq!(m.findings.len(), 1);
    assert_eq!(m.findings[0].span.slice(text), "caf\\u00e9-lib>=1");
    let attrs = &m.dependencies[0];
    assert_eq!(attrs.source.span.slice(text), "attrs>=23");
    assert_eq!(attrs.source.line, 2);
}
