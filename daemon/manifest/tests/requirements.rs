use std::cell::RefCell;

use lex_align_manifest::{parse_requirements, FindingKind, Scope};

fn data_dir() -> String {
    format!("{}/tests/data", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn requirements_with_includes_constraints_options_and_continuations() {
    let root = data_dir();
    let top = std::fs::read_to_string(format!("{root}/reqs/requirements.txt")).unwrap();
    let reads = RefCell::new(Vec::new());
    let read = |path: &str| {
        reads.borrow_mut().push(path.to_string());
        std::fs::read_to_string(format!("{root}/{path}")).ok()
    };
    let m = parse_requirements("reqs/requirements.txt", &top, &read);

    // base.txt includes requirements.txt back: read once, no loop.
    assert_eq!(
        *reads.borrow(),
        vec![
            "reqs/base.txt",
            "reqs/constraints/pins.txt",
            "reqs/missing.txt"
        ]
    );

    let got: Vec<(&str, Scope, &str)> = m
        .dependencies
        .iter()
        .map(|d| {
            (
                d.source.file.as_str(),
                d.scope.clone(),
                d.requirement.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("reqs/base.txt", Scope::Requirements, "pydantic>=2.7"),
            ("reqs/base.txt", Scope::Requirements, "structlog==24.2.0"),
            (
                "reqs/constraints/pins.txt",
                Scope::Constraint,
                "urllib3<2.3"
            ),
            ("reqs/constraints/pins.txt", Scope::Constraint, "idna>=3.7"),
            (
                "reqs/requirements.txt",
                Scope::Requirements,
                "celery[redis]==5.4.0"
            ),
            ("reqs/requirements.txt", Scope::Requirements, "kombu>=5.3.7"),
            (
                "reqs/requirements.txt",
                Scope::Requirements,
                "boto3>=1.34,<2 ; sys_platform == 'linux'"
            ),
            (
                "reqs/requirements.txt",
                Scope::Requirements,
                "django-storages[s3]>=1.14"
            ),
            ("reqs/requirements.txt", Scope::Requirements, "lxml===5.2.2"),
        ]
    );

    // Spans and positions, checked against the file each dependency came from.
    for d in &m.dependencies {
        let text = std::fs::read_to_string(format!("{root}/{}", d.source.file)).unwrap();
        let slice = d.source.span.slice(&text);
        assert_eq!(d.source.name_span.slice(&text), d.name);
        let before = &text[..d.source.span.start];
        assert_eq!(d.source.line as usize, before.matches('\n').count());
        assert_eq!(
            d.source.column as usize,
            before.rsplit('\n').next().unwrap().chars().count()
        );
        assert!(!slice.ends_with(char::is_whitespace), "{slice:?}");
    }
    let celery = &m.dependencies[4];
    assert_eq!(celery.source.span.slice(&top), "celery[redis]==5.4.0");
    assert_eq!(celery.source.line, 6);
    let boto = &m.dependencies[6];
    assert_eq!(
        boto.source.span.slice(&top),
        "boto3>=1.34,<2 ; sys_platform == \"linux\""
    );
    assert_eq!(boto.marker.as_deref(), Some("sys_platform == 'linux'"));
    // A continued requirement spans both physical lines.
    let storages = &m.dependencies[7];
    assert_eq!(
        storages.source.span.slice(&top),
        "django-storages[s3]\\\n>=1.14"
    );
    assert_eq!(storages.name, "django-storages");
    assert_eq!(storages.source.name_span.slice(&top), "django-storages");
    let kombu = &m.dependencies[5];
    assert_eq!(kombu.source.span.slice(&top), "kombu>=5.3.7");

    let findings: Vec<(FindingKind, &str)> = m
        .findings
        .iter()
        .map(|f| (f.kind, f.span.slice(&top)))
        .collect();
    assert_eq!(
        findings,
        vec![
            (FindingKind::Unsupported, "./vendor/legacy_parser"),
            (FindingKind::InvalidRequirement, "requests >= 2.32 garbage"),
            (FindingKind::InvalidInclude, "missing.txt"),
        ]
    );
    assert!(m.findings.iter().all(|f| f.file == "reqs/requirements.txt"));
    assert_eq!(m.findings[1].line, 16);
    assert!(m.findings[2].message.contains("reqs/missing.txt"));
}

#[test]
fn include_forms_and_cycles() {
    let files = [
        ("a.txt", "--requirement=b.txt\nattrs==23.2.0\n"),
        ("b.txt", "-rc.txt\nblack\n"),
        (
            "c.txt",
            "-r a.txt\n-r ./b.txt\n--constraint\tpins.txt\nclick>=8\n",
        ),
        ("pins.txt", "-r c.txt\nclick<9\n"),
    ];
    let read = |p: &str| {
        files
            .iter()
            .find(|(n, _)| *n == p)
            .map(|(_, t)| t.to_string())
    };
    let m = parse_requirements("a.txt", files[0].1, &read);
    let got: Vec<(String, String)> = m
        .dependencies
        .iter()
        .map(|d| {
            (
                d.scope.label(),
                format!("{}:{}", d.source.file, d.requirement),
            )
        })
        .collect();
    // pins.txt pulls c.txt (and through it a.txt and b.txt) in again as
    // constraints: each file once per scope, then the cycle ends.
    assert_eq!(
        got,
        vec![
            ("constraint".to_string(), "b.txt:black".to_string()),
            ("constraint".to_string(), "a.txt:attrs==23.2.0".to_string()),
            ("constraint".to_string(), "c.txt:click>=8".to_string()),
            ("constraint".to_string(), "pins.txt:click<9".to_string()),
            ("requirements".to_string(), "c.txt:click>=8".to_string()),
            ("requirements".to_string(), "b.txt:black".to_string()),
            (
                "requirements".to_string(),
                "a.txt:attrs==23.2.0".to_string()
            ),
        ]
    );
    assert!(m.findings.is_empty(), "{:#?}", m.findings);
}
