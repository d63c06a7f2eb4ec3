//! Index discovery from environment variables and uv/pip config files in a
//! temporary HOME and project directory.

use std::collections::HashMap;
use std::path::Path;

use lex_align_upstream::{discover_index_with, IndexKind, IndexSetting};

struct Scene {
    _tmp: tempfile::TempDir,
    home: std::path::PathBuf,
    project: std::path::PathBuf,
    etc_pip: std::path::PathBuf,
    env: HashMap<String, String>,
}

impl Scene {
    fn new() -> Scene {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home/me");
        let project = tmp.path().join("work/repo/sub/dir");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&project).unwrap();
        let etc_pip = tmp.path().join("etc/pip.conf");
        Scene {
            home,
            project,
            etc_pip,
            env: HashMap::new(),
            _tmp: tmp,
        }
    }

    fn set(&mut self, k: &str, v: &str) -> &mut Self {
        self.env.insert(k.to_owned(), v.to_owned());
        self
    }

    fn write(&self, path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn discover(&self) -> Option<IndexSetting> {
        let env = |k: &str| self.env.get(k).cloned();
        discover_index_with(
            &env,
            Some(&self.home),
            Some(&self.project),
            Some(&self.etc_pip),
        )
    }

    fn url(&self) -> Option<String> {
        self.discover().map(|s| s.url)
    }
}

#[test]
fn nothing_configured_gives_none() {
    let s = Scene::new();
    assert_eq!(s.discover(), None);
}

#[test]
fn each_source_in_order_of_precedence() {
    let mut s = Scene::new();
    // Fill every source, lowest precedence first, checking after each that
    // the new one takes over.
    s.write(
        &s.etc_pip,
        "[global]\nindex-url = http://etc.example/simple\n",
    );
    assert_eq!(s.url().as_deref(), Some("http://etc.example/simple"));

    s.write(
        &s.home.join(".pip/pip.conf"),
        "[global]\nindex-url = http://legacy-user.example/simple\n",
    );
    assert_eq!(
        s.url().as_deref(),
        Some("http://legacy-user.example/simple")
    );

    s.write(
        &s.home.join(".config/pip/pip.conf"),
        "[global]\nindex-url = http://user.example/simple\n",
    );
    assert_eq!(s.url().as_deref(), Some("http://user.example/simple"));

    let pip_file = s.home.join("custom-pip.ini");
    s.write(
        &pip_file,
        "[global]\nindex_url: http://pipfile.example/simple/\n",
    );
    s.set("PIP_CONFIG_FILE", pip_file.to_str().unwrap());
    let got = s.discover().unwrap();
    assert_eq!(got.url, "http://pipfile.example/simple/");
    assert!(got.source.contains("custom-pip.ini"), "{}", got.source);

    s.set("PIP_INDEX_URL", "http://pip-env.example/simple");
    assert_eq!(s.discover().unwrap().source, "PIP_INDEX_URL");

    s.write(
        &s.home.join(".config/uv/uv.toml"),
        "index-url = \"http://uv-user.example/simple\"\n",
    );
    assert_eq!(s.url().as_deref(), Some("http://uv-user.example/simple"));

    // The nearest uv.toml above the working directory beats the user one.
    let repo = s.project.parent().unwrap().parent().unwrap().to_path_buf();
    s.write(
        &repo.join("uv.toml"),
        "[[index]]\nname = \"extra\"\nurl = \"http://extra.example/simple\"\n\n[[index]]\nname = \"corp\"\nurl = \"http://uv-project.example/root/+simple/\"\ndefault = true\n",
    );
    let got = s.discover().unwrap();
    assert_eq!(got.url, "http://uv-project.example/root/+simple/");
    assert_eq!(
        got.kind,
        IndexKind::Simple,
        "no /simple suffix: no JSON API to derive"
    );
    assert!(got.source.contains("uv.toml"), "{}", got.source);

    s.set("UV_INDEX_URL", "http://uv-index-url.example/simple");
    assert_eq!(s.discover().unwrap().source, "UV_INDEX_URL");
    s.set("UV_DEFAULT_INDEX", "http://uv-default.example/simple");
    let got = s.discover().unwrap();
    assert_eq!(
        (got.source.as_str(), got.kind),
        ("UV_DEFAULT_INDEX", IndexKind::Auto)
    );

    s.set("PYPI_API_URL", "http://original.example/pypi");
    let got = s.discover().unwrap();
    assert_eq!(
        (got.url.as_str(), got.kind),
        ("http://original.example/pypi", IndexKind::Json)
    );

    s.set("LEXALIGN_INDEX_URL", "http://ours.example/simple/");
    let got = s.discover().unwrap();
    assert_eq!(
        got,
        IndexSetting {
            url: "http://ours.example/simple/".to_owned(),
            kind: IndexKind::Auto,
            source: "LEXALIGN_INDEX_URL".to_owned(),
        }
    );
}

#[test]
fn uv_pip_section_is_read() {
    let s = Scene::new();
    s.write(
        &s.project.join("uv.toml"),
        "[pip]\nindex-url = \"http://uv-pip.example/simple\"\n",
    );
    let got = s.discover().unwrap();
    assert_eq!(got.url, "http://uv-pip.example/simple");
    assert!(
        got.source.ends_with("uv.toml [pip] index-url"),
        "{}",
        got.source
    );
}

#[test]
fn blank_values_and_files_without_an_index_are_skipped() {
    let mut s = Scene::new();
    s.set("LEXALIGN_INDEX_URL", "  ")
        .set("UV_DEFAULT_INDEX", "");
    s.write(
        &s.project.join("uv.toml"),
        "cache-dir = \"/tmp/uv-cache\"\n[[index]]\nurl = \"http://not-default.example/simple\"\n",
    );
    s.write(
        &s.home.join(".config/pip/pip.conf"),
        "[install]\nindex-url = http://install-only.example/simple\n",
    );
    s.write(&s.etc_pip, "[global]\ncert = /etc/ssl/certs/ca.crt\n");
    assert_eq!(s.discover(), None);
    // A uv.toml that does not parse is ignored rather than fatal.
    s.write(
        &s.home.join(".config/uv/uv.toml"),
        "index-url = [unclosed\n",
    );
    s.set("PIP_INDEX_URL", "http://fallback.example/simple");
    assert_eq!(s.url().as_deref(), Some("http://fallback.example/simple"));
}
