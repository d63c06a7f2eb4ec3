//! Recognises package installs in a shell command line: `uv add`, `uv pip
//! install`, `pip install`, `python -m pip install`, `poetry add`, `pdm add`,
//! `pipx install`, across `&&` / `||` / `;` / `|` chains, with their flags,
//! `-r` files and version specifiers.

/// One install command found in a command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Install {
    /// `uv add`, `pip install`, … (for messages).
    pub tool: String,
    /// Requirement strings as PEP 508 (Poetry's `name@constraint` converted).
    pub requirements: Vec<String>,
    /// Files named by `-r` / `--requirement` (as written; relative to the command's cwd).
    pub requirement_files: Vec<String>,
}

/// Splits a command line into simple commands (word lists). Quotes and
/// backslashes follow POSIX shell rules; `&&`, `||`, `;`, `|`, `&` and
/// newlines separate commands. Returns `None` for an unterminated quote.
pub fn split_commands(line: &str) -> Option<Vec<Vec<String>>> {
    let mut commands = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    let end_word = |word: &mut String, in_word: &mut bool, words: &mut Vec<String>| {
        if *in_word {
            words.push(std::mem::take(word));
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        ch => word.push(ch),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => match chars.next()? {
                            ch @ ('"' | '\\' | '$' | '`') => word.push(ch),
                            '\n' => {}
                            ch => {
                                word.push('\\');
                                word.push(ch);
                            }
                        },
                        ch => word.push(ch),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') | None => {}
                Some(ch) => {
                    in_word = true;
                    word.push(ch);
                }
            },
            '#' if !in_word => {
                // A comment runs to the end of the line.
                for ch in chars.by_ref() {
                    if ch == '\n' {
                        break;
                    }
                }
                end_word(&mut word, &mut in_word, &mut words);
                if !words.is_empty() {
                    commands.push(std::mem::take(&mut words));
                }
            }
            ';' | '&' | '|' | '\n' | '(' | ')' => {
                end_word(&mut word, &mut in_word, &mut words);
                if matches!(c, '&' | '|') && chars.peek() == Some(&c) {
                    chars.next();
                }
                if !words.is_empty() {
                    commands.push(std::mem::take(&mut words));
                }
            }
            c if c.is_whitespace() => end_word(&mut word, &mut in_word, &mut words),
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    end_word(&mut word, &mut in_word, &mut words);
    if !words.is_empty() {
        commands.push(words);
    }
    Some(commands)
}

/// Prefixes that run the rest of the words as a command.
fn strip_prefixes(mut words: &[String]) -> &[String] {
    loop {
        let Some(first) = words.first() else {
            return words;
        };
        let is_assignment = first.split_once('=').is_some_and(|(k, _)| {
            !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        if is_assignment {
            words = &words[1..];
            continue;
        }
        match first.as_str() {
            "sudo" | "env" | "time" | "command" | "exec" | "nohup" | "nice" | "then" | "do"
            | "else" | "!" => {
                words = &words[1..];
                // Options of the prefix itself (`sudo -H`, `env -i`).
                while words.first().is_some_and(|w| w.starts_with('-')) {
                    words = &words[1..];
                }
            }
            _ => return words,
        }
    }
}

fn base_name(program: &str) -> &str {
    program.rsplit('/').next().unwrap_or(program)
}

fn is_python(program: &str) -> bool {
    let b = base_name(program);
    b == "python"
        || b == "py"
        || b.strip_prefix("python")
            .is_some_and(|v| v.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

fn is_pip(program: &str) -> bool {
    let b = base_name(program);
    b == "pip"
        || b.strip_prefix("pip")
            .is_some_and(|v| v.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

/// Options that take a value, per tool (a value glued with `=` or, for
/// short options, directly after the letter is handled too).
const PIP_VALUE_OPTS: &[&str] = &[
    "-r",
    "--requirement",
    "-c",
    "--constraint",
    "-e",
    "--editable",
    "-i",
    "--index-url",
    "--extra-index-url",
    "-f",
    "--find-links",
    "-t",
    "--target",
    "--prefix",
    "--root",
    "--src",
    "--upgrade-strategy",
    "--python-version",
    "--platform",
    "--implementation",
    "--abi",
    "--only-binary",
    "--no-binary",
    "--progress-bar",
    "--trusted-host",
    "--cert",
    "--client-cert",
    "--cache-dir",
    "--log",
    "--proxy",
    "--retries",
    "--timeout",
    "--exists-action",
    "--global-option",
    "--config-settings",
    "-C",
    "--report",
    "--python",
    "-p",
    "--group",
    "--index-strategy",
    "--keyring-provider",
    "--resolution",
    "--prerelease",
    "--link-mode",
    "--reinstall-package",
    "--upgrade-package",
    "-P",
    "--no-build-isolation-package",
    "--exclude-newer",
    "--extra",
    "--default-index",
    "--index",
    "--overrides",
    "--build-constraint",
    "-b",
    "--directory",
    "--project",
    "--config-file",
    "--python-platform",
    "--torch-backend",
    "--no-binary-package",
    "--no-build-package",
    "--refresh-package",
    "--target-python",
];

const UV_ADD_VALUE_OPTS: &[&str] = &[
    "-r",
    "--requirements",
    "-c",
    "--constraints",
    "-m",
    "--marker",
    "--group",
    "--optional",
    "--extra",
    "--rev",
    "--tag",
    "--branch",
    "--bounds",
    "--package",
    "--script",
    "--index",
    "--default-index",
    "--index-url",
    "--extra-index-url",
    "-i",
    "-f",
    "--find-links",
    "--index-strategy",
    "--keyring-provider",
    "--resolution",
    "--prerelease",
    "--link-mode",
    "--python",
    "-p",
    "--directory",
    "--project",
    "--config-file",
    "--cache-dir",
    "--upgrade-package",
    "-P",
    "--reinstall-package",
    "--exclude-newer",
    "--refresh-package",
    "--no-binary-package",
    "--no-build-package",
    "--config-setting",
    "-C",
    "--color",
    "--allow-insecure-host",
    "--no-sources-package",
];

const POETRY_VALUE_OPTS: &[&str] = &[
    "-G",
    "--group",
    "-E",
    "--extras",
    "--optional",
    "--source",
    "--python",
    "--platform",
    "--markers",
    "-C",
    "--directory",
    "-P",
    "--project",
];

const PDM_VALUE_OPTS: &[&str] = &[
    "-G",
    "--group",
    "-e",
    "--editable",
    "-p",
    "--project",
    "-L",
    "--lockfile",
    "-k",
    "--skip",
    "--venv",
    "--strategy",
    "-S",
    "--update-strategy",
    "-u",
    "--config-setting",
    "-C",
];

const PIPX_VALUE_OPTS: &[&str] = &[
    "--python",
    "--index-url",
    "-i",
    "--pip-args",
    "--suffix",
    "--preinstall",
    "--spec",
    "--editable",
    "-e",
    "--fetch-python",
];

/// Options that name a requirements file whose contents get installed.
const REQ_FILE_OPTS: &[&str] = &["-r", "--requirement", "--requirements"];

/// Options whose value is itself a package to install.
const PACKAGE_VALUE_OPTS: &[&str] = &["--preinstall", "--spec"];

/// Walks the arguments after the subcommand: positionals are requirements.
fn scan(tool: &str, args: &[String], value_opts: &[&str], poetry_syntax: bool) -> Install {
    let mut out = Install {
        tool: tool.to_string(),
        ..Install::default()
    };
    let mut i = 0;
    let mut only_positionals = false;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if only_positionals || !a.starts_with('-') || a == "-" {
            push_requirement(&mut out, a, poetry_syntax);
            continue;
        }
        if a == "--" {
            only_positionals = true;
            continue;
        }
        let (opt, glued) = if a.starts_with("--") {
            match a.split_once('=') {
                Some((o, v)) => (o.to_string(), Some(v.to_string())),
                None => (a.clone(), None),
            }
        } else {
            // Bundled short options (`-dG test`, `-rreqs.txt`): the first
            // letter that takes a value ends the bundle.
            let mut found = (a.clone(), None);
            for (idx, c) in a.char_indices().skip(1) {
                let short = format!("-{c}");
                if value_opts.contains(&short.as_str()) {
                    let rest = &a[idx + c.len_utf8()..];
                    found = (short, (!rest.is_empty()).then(|| rest.to_string()));
                    break;
                }
            }
            found
        };
        if !value_opts.contains(&opt.as_str()) {
            continue;
        }
        let value = match glued {
            Some(v) => v,
            None => match args.get(i) {
                Some(v) => {
                    i += 1;
                    v.clone()
                }
                None => break,
            },
        };
        if REQ_FILE_OPTS.contains(&opt.as_str()) {
            out.requirement_files.push(value);
        } else if PACKAGE_VALUE_OPTS.contains(&opt.as_str()) {
            push_requirement(&mut out, &value, false);
        }
    }
    out
}

/// Paths, archives and URLs are not index packages; lex-align has no verdict on them.
fn is_local_or_url(arg: &str) -> bool {
    arg == "."
        || arg.starts_with("./")
        || arg.starts_with("../")
        || arg.starts_with('/')
        || arg.starts_with('~')
        || arg.contains("://")
        || arg.starts_with("git+")
        || [".whl", ".tar.gz", ".zip", ".tar.bz2", ".tgz"]
            .iter()
            .any(|ext| arg.ends_with(ext))
}

fn push_requirement(out: &mut Install, arg: &str, poetry_syntax: bool) {
    let arg = arg.trim();
    // `name @ url` direct references: judge the name only.
    if let Some((name, url)) = arg.split_once('@') {
        let name = name.trim();
        let is_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-[],".contains(c));
        if is_name && (url.contains("://") || url.trim_start().starts_with("git+")) {
            out.requirements.push(name.to_string());
            return;
        }
        if poetry_syntax && is_name {
            // Poetry: `name@^1.2`, `name@latest`, `name[extra]@~2`.
            let constraint = url.trim();
            let spec = match constraint {
                "" | "latest" | "*" => None,
                c => lex_align_manifest::poetry_constraint_to_pep440(c)
                    .ok()
                    .flatten(),
            };
            out.requirements.push(match spec {
                Some(s) => format!("{name}{s}"),
                None => name.to_string(),
            });
            return;
        }
    }
    if arg.is_empty() || is_local_or_url(arg) {
        return;
    }
    out.requirements.push(arg.to_string());
}

/// Every install in a command line.
pub fn parse_installs(line: &str) -> Vec<Install> {
    let Some(commands) = split_commands(line) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for words in &commands {
        let w = strip_prefixes(words);
        if let Some(install) = parse_simple(w) {
            if !install.requirements.is_empty() || !install.requirement_files.is_empty() {
                out.push(install);
            }
        }
    }
    out
}

fn word(w: &[String], i: usize) -> &str {
    w.get(i).map(String::as_str).unwrap_or("")
}

fn parse_simple(w: &[String]) -> Option<Install> {
    let program = base_name(word(w, 0));
    // Global options before the subcommand (`uv --quiet add`, `pip -q install`).
    let skip_globals = |from: usize, value_opts: &[&str]| -> usize {
        let mut i = from;
        while let Some(a) = w.get(i) {
            if !a.starts_with('-') {
                break;
            }
            i += if value_opts.contains(&a.as_str()) {
                2
            } else {
                1
            };
        }
        // A value option as the last word has no value: stop at the end.
        i.min(w.len())
    };
    match program {
        "uv" => {
            let i = skip_globals(
                1,
                &[
                    "--directory",
                    "--project",
                    "--config-file",
                    "--cache-dir",
                    "--color",
                    "-p",
                    "--python",
                ],
            );
            match word(w, i) {
                "add" => Some(scan("uv add", &w[i + 1..], UV_ADD_VALUE_OPTS, false)),
                "pip" if word(w, i + 1) == "install" => {
                    Some(scan("uv pip install", &w[i + 2..], PIP_VALUE_OPTS, false))
                }
                "tool" if word(w, i + 1) == "install" => Some(scan(
                    "uv tool install",
                    &w[i + 2..],
                    UV_ADD_VALUE_OPTS,
                    false,
                )),
                // `uv run pip install …` runs pip inside the project environment.
                "run" => {
                    let j = skip_globals(i + 1, UV_ADD_VALUE_OPTS);
                    parse_simple(&w[j..])
                }
                _ => None,
            }
        }
        p if is_pip(p) => {
            let i = skip_globals(
                1,
                &[
                    "--python",
                    "--cache-dir",
                    "--log",
                    "--proxy",
                    "--cert",
                    "--timeout",
                    "--retries",
                ],
            );
            (word(w, i) == "install")
                .then(|| scan("pip install", &w[i + 1..], PIP_VALUE_OPTS, false))
        }
        p if is_python(p) => {
            // `python -m pip install …` (also `python3.12 -Im pip`).
            let m = w.iter().position(|a| {
                a == "-m" || a.ends_with('m') && a.starts_with('-') && !a.starts_with("--")
            })?;
            let module = word(w, m + 1);
            if module != "pip" {
                return None;
            }
            let i = skip_globals(m + 2, &["--python", "--cache-dir", "--log", "--proxy"]);
            (word(w, i) == "install")
                .then(|| scan("pip install", &w[i + 1..], PIP_VALUE_OPTS, false))
        }
        "poetry" => {
            let i = skip_globals(1, &["-C", "--directory", "-P", "--project"]);
            (word(w, i) == "add").then(|| scan("poetry add", &w[i + 1..], POETRY_VALUE_OPTS, true))
        }
        "pdm" => {
            let i = skip_globals(1, &["-c", "--config", "-p", "--project"]);
            (word(w, i) == "add").then(|| scan("pdm add", &w[i + 1..], PDM_VALUE_OPTS, false))
        }
        "pipx" => {
            let i = skip_globals(1, &[]);
            (word(w, i) == "install")
                .then(|| scan("pipx install", &w[i + 1..], PIPX_VALUE_OPTS, false))
        }
        "conda" | "mamba" | "micromamba" => None,
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reqs(line: &str) -> Vec<String> {
        parse_installs(line)
            .into_iter()
            .flat_map(|i| i.requirements)
            .collect()
    }

    #[test]
    fn a_value_option_as_the_last_word_is_not_a_crash() {
        // Found by the shell_install fuzz target (`-c` takes a value).
        assert!(parse_installs("uv run  -\u{1}\0\0\0ist#+dock}s.t/s.t/xt -c&c").is_empty());
        for line in [
            "uv run -c",
            "uv --directory",
            "uv run --python",
            "pip --python",
            "uv pip install -c",
        ] {
            assert!(parse_installs(line).is_empty(), "{line}");
        }
        assert_eq!(reqs("uv --directory d add -c x.txt httpx"), ["httpx"]);
    }

    #[test]
    fn splits_chains_and_quotes() {
        let c = split_commands("cd app && uv add 'httpx>=0.27' ; echo \"a b\" | cat # uv add x")
            .unwrap();
        assert_eq!(
            c,
            vec![
                vec!["cd", "app"],
                vec!["uv", "add", "httpx>=0.27"],
                vec!["echo", "a b"],
                vec!["cat"]
            ]
        );
        assert!(split_commands("uv add 'unterminated").is_none());
        assert_eq!(
            split_commands("pip install foo\\\n  bar").unwrap(),
            vec![vec!["pip", "install", "foo", "bar"]]
        );
    }

    #[test]
    fn uv_add_with_flags() {
        assert_eq!(reqs("uv add requests"), ["requests"]);
        assert_eq!(
            reqs("uv add --dev --group lint 'ruff>=0.5' \"cryptography>=41,<44\""),
            ["ruff>=0.5", "cryptography>=41,<44"]
        );
        assert_eq!(reqs("uv --quiet add --optional socks pysocks"), ["pysocks"]);
        assert_eq!(
            reqs("uv add --index=internal --bounds major httpx"),
            ["httpx"]
        );
        assert_eq!(reqs("uv add -e ./lib"), Vec::<String>::new());
        assert_eq!(
            reqs("uv add 'pkg @ git+https://example.invalid/pkg'"),
            ["pkg"]
        );
        let i = parse_installs("uv add -r requirements.txt -c constraints.txt");
        assert_eq!(i[0].requirement_files, ["requirements.txt"]);
        assert!(i[0].requirements.is_empty());
    }

    #[test]
    fn pip_variants() {
        assert_eq!(reqs("pip install -U pyqt5"), ["pyqt5"]);
        assert_eq!(
            reqs("pip3 install --user 'Django>=4.2,<6'"),
            ["Django>=4.2,<6"]
        );
        assert_eq!(reqs("pip3.12 install flask==3.0.0"), ["flask==3.0.0"]);
        assert_eq!(
            reqs("python -m pip install --upgrade requests"),
            ["requests"]
        );
        assert_eq!(
            reqs("python3 -m pip install -i http://127.0.0.1:1/simple jinja2"),
            ["jinja2"]
        );
        assert_eq!(reqs("/usr/bin/python3.11 -m pip install numpy"), ["numpy"]);
        assert_eq!(
            reqs("uv pip install --system 'httpx[http2]>=0.27'"),
            ["httpx[http2]>=0.27"]
        );
        assert_eq!(reqs("sudo -H pip install requests"), ["requests"]);
        assert_eq!(reqs("PIP_NO_CACHE_DIR=1 pip install rich"), ["rich"]);
        assert_eq!(reqs("pip install --target=vendor six"), ["six"]);
        assert_eq!(
            reqs("pip install -e . && pip install ."),
            Vec::<String>::new()
        );
        assert_eq!(
            reqs("pip install ./dist/pkg-1.0-py3-none-any.whl"),
            Vec::<String>::new()
        );
        assert_eq!(reqs("uv run pip install pyyaml"), ["pyyaml"]);
        let i = parse_installs("pip install -rrequirements/dev.txt --requirement=base.txt");
        assert_eq!(i[0].requirement_files, ["requirements/dev.txt", "base.txt"]);
    }

    #[test]
    fn poetry_pdm_pipx() {
        assert_eq!(
            reqs("poetry add requests@^2.28 'httpx'"),
            ["requests>=2.28,<3.0", "httpx"].map(String::from).map(|s| {
                // Accept whatever exact spelling the shared converter gives for `^2.28`.
                if s.starts_with("requests") {
                    format!(
                        "requests{}",
                        lex_align_manifest::poetry_constraint_to_pep440("^2.28")
                            .unwrap()
                            .unwrap()
                    )
                } else {
                    s
                }
            })
        );
        assert_eq!(reqs("poetry add --group dev pytest@latest"), ["pytest"]);
        assert_eq!(reqs("poetry add -G docs 'mkdocs>=1.5'"), ["mkdocs>=1.5"]);
        assert_eq!(reqs("pdm add -dG test pytest-cov"), ["pytest-cov"]);
        assert_eq!(reqs("pdm add -G web 'fastapi>=0.110'"), ["fastapi>=0.110"]);
        assert_eq!(reqs("pipx install --python python3.11 black"), ["black"]);
        assert_eq!(
            reqs("pipx install --preinstall pyqt5 mytool"),
            ["pyqt5", "mytool"]
        );
    }

    #[test]
    fn non_installs_are_ignored() {
        for line in [
            "uv sync",
            "uv lock --upgrade",
            "pip list",
            "pip download requests",
            "python -m venv .venv",
            "python script.py install requests",
            "echo pip install requests",
            "git commit -m 'uv add httpx'",
            "poetry install",
            "npm install left-pad",
            "cat requirements.txt",
        ] {
            assert!(parse_installs(line).is_empty(), "{line}");
        }
    }

    #[test]
    fn chains_find_every_install() {
        let i = parse_installs(
            "cd svc && uv add httpx; pip install 'requests==2.31.0' || poetry add pyqt5\nuv pip install rich",
        );
        let tools: Vec<&str> = i.iter().map(|i| i.tool.as_str()).collect();
        assert_eq!(
            tools,
            ["uv add", "pip install", "poetry add", "uv pip install"]
        );
    }
}
