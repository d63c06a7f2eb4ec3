//! Package names: PEP 508 grammar check and PEP 503 canonical form.

/// Longest name we accept. Real project names are far shorter; the cap keeps
/// hostile input out of URLs, cache keys and the audit log.
pub const MAX_NAME_LEN: usize = 200;

/// PEP 503 normal form: lowercase, every run of `-`, `_`, `.` becomes one `-`.
/// Surrounding whitespace is ignored (registry keys are often hand-typed).
pub fn canonicalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_sep = false;
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_sep {
                out.push('-');
            }
            in_sep = true;
        } else {
            out.extend(c.to_lowercase());
            in_sep = false;
        }
    }
    out
}

/// The PEP 508 name grammar: ASCII letters and digits, with `-`, `_`, `.`
/// allowed only between them (`^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$`),
/// at most [`MAX_NAME_LEN`] characters.
pub fn validate(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("package name must not be empty".to_string());
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(format!(
            "package name is {} characters long; at most {MAX_NAME_LEN} are allowed",
            name.chars().count()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "invalid package name {name:?}: character {bad:?} is not allowed (PEP 508 names use letters, digits, '-', '_' and '.')"
        ));
    }
    let first = name.chars().next().unwrap_or('-');
    let last = name.chars().last().unwrap_or('-');
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return Err(format!(
            "invalid package name {name:?}: it must start and end with a letter or digit (PEP 508)"
        ));
    }
    // The grammar above is exactly what pep508_rs accepts; asking it too keeps
    // us honest if the two ever diverge.
    pep508_rs::PackageName::new(name.to_string())
        .map(|_| ())
        .map_err(|e| format!("invalid package name {name:?}: {e}"))
}

/// How many "did you mean" names a verdict carries at most.
pub const MAX_SUGGESTIONS: usize = 3;

/// Names among `candidates` close to `name`, closest first: a typo or a
/// hallucinated variant of a real package (`reqeusts`, `python-dateutils`,
/// `py-yaml`). Compared in canonical form, and once more with separators
/// dropped so `pyyaml` and `py-yaml` count as the same spelling. Short names
/// allow one edit, longer ones two; the name itself is never suggested.
pub fn similar_names<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let wanted = canonicalize(name);
    let bare = |s: &str| s.replace('-', "");
    let wanted_bare = bare(&wanted);
    let budget = if wanted_bare.chars().count() <= 5 {
        1
    } else {
        2
    };
    let mut found: Vec<(usize, String)> = Vec::new();
    for cand in candidates {
        let c = canonicalize(cand);
        if c == wanted || c.is_empty() || found.iter().any(|(_, f)| *f == c) {
            continue;
        }
        // Cheap reject before the quadratic distance.
        if c.len().abs_diff(wanted.len()) > budget + 1 {
            continue;
        }
        let d = strsim::damerau_levenshtein(&wanted, &c)
            .min(strsim::damerau_levenshtein(&wanted_bare, &bare(&c)));
        if d <= budget {
            found.push((d, c));
        }
    }
    found.sort();
    found.truncate(MAX_SUGGESTIONS);
    found.into_iter().map(|(_, c)| c).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_names_are_suggested_closest_first() {
        let known = [
            "requests",
            "httpx",
            "pyyaml",
            "python-dateutil",
            "numpy",
            "urllib3",
        ];
        assert_eq!(similar_names("reqeusts", known), ["requests"]);
        assert_eq!(similar_names("Requets", known), ["requests"]);
        assert_eq!(similar_names("py-yaml", known), ["pyyaml"]);
        assert_eq!(
            similar_names("python_dateutils", known),
            ["python-dateutil"]
        );
        assert_eq!(similar_names("nunpy", known), ["numpy"]);
        // Itself, or nothing close: no suggestion.
        assert!(similar_names("requests", known).is_empty());
        assert!(similar_names("flask", known).is_empty());
        // Short names allow one edit only: `httpz` is one away, `htz` two.
        assert_eq!(similar_names("httpz", known), ["httpx"]);
        assert!(similar_names("htz", ["httpx"]).is_empty());
    }

    #[test]
    fn suggestions_are_capped_deduplicated_and_ordered() {
        let known = ["abcdeg", "abcdef", "abcdeh", "abcdei", "ABCDEF", "abcdxx"];
        let got = similar_names("abcdez", known);
        assert_eq!(got.len(), MAX_SUGGESTIONS);
        assert_eq!(got, ["abcdef", "abcdeg", "abcdeh"]);
    }

    #[test]
    fn canonical_form_collapses_separator_runs() {
        assert_eq!(canonicalize("Foo--Bar"), "foo-bar");
        assert_eq!(canonicalize("foo_.-bar"), "foo-bar");
        assert_eq!(canonicalize(" zope.event "), "zope-event");
        assert_eq!(canonicalize("PyYAML"), "pyyaml");
        assert_eq!(canonicalize("python_dateutil"), "python-dateutil");
        assert_eq!(canonicalize("typing.Extensions"), "typing-extensions");
    }

    #[test]
    fn grammar_is_enforced() {
        for ok in ["a", "A1", "foo-bar", "foo_bar.baz", "zope.interface", "9x"] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
        for bad in [
            "", "-foo", "foo-", "foo bar", "foo/bar", "../etc", "foo@1", "é",
        ] {
            assert!(validate(bad).is_err(), "{bad} accepted");
        }
        let long = "a".repeat(MAX_NAME_LEN + 1);
        assert!(validate(&long).unwrap_err().contains("at most 200"));
        assert!(validate(&"a".repeat(MAX_NAME_LEN)).is_ok());
    }
}
