//! Running git for the proposers: a reduced environment (PATH, HOME, no
//! prompts), configuration passed through `GIT_CONFIG_*` variables (never
//! argv, never `.git/config`), a deadline per command, and every secret
//! redacted from what is surfaced.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::ProposerError;
use crate::config::Secret;

/// A git command that hangs (a stuck network, a lock) must not hold the
/// proposer's lock forever.
const GIT_TIMEOUT: Duration = Duration::from_secs(180);

/// How much of git's stderr an error quotes.
const STDERR_QUOTE: usize = 600;

#[derive(Clone)]
pub(crate) struct Git {
    env: Vec<(String, String)>,
    config: Vec<(String, Secret)>,
    secrets: Vec<String>,
}

impl Git {
    pub(crate) fn new() -> Git {
        let mut env = vec![
            ("GIT_TERMINAL_PROMPT".to_string(), "0".to_string()),
            // Stable English messages in the errors we quote.
            ("LC_ALL".to_string(), "C".to_string()),
            // ssh must fail rather than ask (host key, passphrase).
            (
                "GIT_SSH_COMMAND".to_string(),
                "ssh -o BatchMode=yes".to_string(),
            ),
        ];
        for k in ["PATH", "HOME"] {
            if let Some(v) = std::env::var_os(k) {
                env.push((k.to_string(), v.to_string_lossy().into_owned()));
            }
        }
        Git {
            env,
            // A user's `commit.gpgsign` would make every daemon commit fail
            // (no agent, no prompt).
            config: vec![("commit.gpgsign".into(), Secret::new("false"))],
            secrets: Vec::new(),
        }
    }

    /// Author and committer of the commits this runner makes.
    pub(crate) fn with_author(mut self, name: &str, email: &str) -> Git {
        for (k, v) in [
            ("GIT_AUTHOR_NAME", name),
            ("GIT_AUTHOR_EMAIL", email),
            ("GIT_COMMITTER_NAME", name),
            ("GIT_COMMITTER_EMAIL", email),
        ] {
            self.env.push((k.to_string(), v.to_string()));
        }
        self
    }

    /// Sends `Authorization: <value>` to URLs under `scope` only (git's
    /// `http.<url>.extraHeader`), through the environment: the token is in
    /// no argv (process listings) and no file.
    pub(crate) fn with_auth_header(mut self, scope: &str, value: Secret, secrets: &[&str]) -> Git {
        self.config.push((
            format!("http.{scope}.extraHeader"),
            Secret::new(format!("Authorization: {}", value.expose())),
        ));
        self.secrets.push(value.expose().to_string());
        self.secrets.extend(
            secrets
                .iter()
                .filter(|s| !s.is_empty())
                .map(|s| s.to_string()),
        );
        self
    }

    /// Redacted from every message, without being sent anywhere.
    pub(crate) fn with_secrets(mut self, secrets: &[&str]) -> Git {
        self.secrets.extend(
            secrets
                .iter()
                .filter(|s| !s.is_empty())
                .map(|s| s.to_string()),
        );
        self
    }

    /// The environment a git process gets (tests check what is in it).
    pub(crate) fn environment(&self) -> Vec<(String, String)> {
        let mut env = self.env.clone();
        env.push(("GIT_CONFIG_COUNT".into(), self.config.len().to_string()));
        for (i, (k, v)) in self.config.iter().enumerate() {
            env.push((format!("GIT_CONFIG_KEY_{i}"), k.clone()));
            env.push((format!("GIT_CONFIG_VALUE_{i}"), v.expose().to_string()));
        }
        env
    }

    /// `text` with every secret replaced and URL credentials removed.
    pub(crate) fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            out = out.replace(s.as_str(), "***");
        }
        redact_userinfo(&out)
    }

    /// Runs `git <args>` in `dir`; stdout on exit 0, else a
    /// `git operation failed: …` error quoting (redacted) stderr.
    pub(crate) fn run(&self, dir: &Path, args: &[&str]) -> Result<String, ProposerError> {
        let (code, stdout, stderr) = self.exec(dir, args)?;
        if code == Some(0) {
            return Ok(stdout);
        }
        Err(self.failure(args, code, &stderr))
    }

    /// Exit 0 → true, 1 → false (`diff --quiet`), anything else an error.
    pub(crate) fn check(&self, dir: &Path, args: &[&str]) -> Result<bool, ProposerError> {
        match self.exec(dir, args)? {
            (Some(0), _, _) => Ok(true),
            (Some(1), _, _) => Ok(false),
            (code, _, stderr) => Err(self.failure(args, code, &stderr)),
        }
    }

    fn failure(&self, args: &[&str], code: Option<i32>, stderr: &str) -> ProposerError {
        let sub = args.first().copied().unwrap_or("git");
        let mut quoted = self.redact(stderr.trim());
        if quoted.len() > STDERR_QUOTE {
            let mut cut = quoted.len() - STDERR_QUOTE;
            while !quoted.is_char_boundary(cut) {
                cut += 1;
            }
            quoted = format!("…{}", &quoted[cut..]);
        }
        let code = code.map_or("a signal".to_string(), |c| c.to_string());
        ProposerError(format!(
            "git operation failed: git {sub} exited with {code}: {quoted}"
        ))
    }

    fn exec(
        &self,
        dir: &Path,
        args: &[&str],
    ) -> Result<(Option<i32>, String, String), ProposerError> {
        let sub = args.first().copied().unwrap_or("git");
        let mut child = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env_clear()
            .envs(self.environment())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                ProposerError(format!(
                    "git operation failed: cannot run git {sub} in {}: {e}",
                    dir.display()
                ))
            })?;
        let out = child.stdout.take().map(drain);
        let err = child.stderr.take().map(drain);
        let deadline = Instant::now() + GIT_TIMEOUT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(ProposerError(format!(
                        "git operation failed: git {sub} did not finish within {} s and was stopped",
                        GIT_TIMEOUT.as_secs()
                    )));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => {
                    return Err(ProposerError(format!(
                        "git operation failed: waiting for git {sub}: {e}"
                    )))
                }
            }
        };
        let collect = |h: Option<std::thread::JoinHandle<Vec<u8>>>| {
            h.and_then(|h| h.join().ok())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        Ok((status.code(), collect(out), collect(err)))
    }
}

fn drain<R: Read + Send + 'static>(mut r: R) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// `scheme://user:pass@host` → `scheme://***@host`, wherever it occurs.
pub(crate) fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || c == '\'' || c == '"')
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str("***");
                rest = &tail[at..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

/// The top of the git work tree holding `dir`, if any.
pub(crate) fn work_tree_root(dir: &Path) -> Result<PathBuf, ProposerError> {
    let out = Git::new().run(dir, &["rev-parse", "--show-toplevel"])?;
    let root = PathBuf::from(out.trim());
    if root.as_os_str().is_empty() {
        return Err(ProposerError(format!(
            "git operation failed: {} is not inside a git work tree",
            dir.display()
        )));
    }
    Ok(root)
}

/// `git --version`, or why git cannot run.
pub(crate) fn version() -> Result<String, String> {
    let dir = std::env::temp_dir();
    Git::new()
        .run(&dir, &["--version"])
        .map(|v| v.trim().to_string())
        .map_err(|e| e.0)
}

/// The rules of `git check-ref-format --branch`, for names we build or are
/// given (they end up in argv and in refspecs).
pub(crate) fn valid_branch(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with(['-', '/', '.'])
        && !name.ends_with(['/', '.'])
        && !name.ends_with(".lock")
        && !name.contains("..")
        && !name.contains("//")
        && !name.contains("@{")
        && !name.contains("/.")
        && name != "@"
        && !name
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_and_secrets_are_redacted() {
        assert_eq!(
            redact_userinfo(
                "fatal: unable to access 'https://x-access-token:ghp_abc@host/o/r.git/': 403"
            ),
            "fatal: unable to access 'https://***@host/o/r.git/': 403"
        );
        assert_eq!(
            redact_userinfo("see https://host/a and ssh://git@h2/x"),
            "see https://host/a and ssh://***@h2/x"
        );
        let git =
            Git::new().with_auth_header("https://host/", Secret::new("Basic QUJD"), &["tok-123"]);
        assert_eq!(git.redact("a tok-123 b Basic QUJD c"), "a *** b *** c");
    }

    #[test]
    fn configuration_goes_through_the_environment() {
        let git = Git::new().with_author("bot", "bot@x").with_auth_header(
            "https://host/",
            Secret::new("Basic QUJD"),
            &[],
        );
        let env = git.environment();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("GIT_TERMINAL_PROMPT"), Some("0"));
        assert_eq!(get("GIT_CONFIG_COUNT"), Some("2"));
        assert_eq!(
            get("GIT_CONFIG_KEY_1"),
            Some("http.https://host/.extraHeader")
        );
        assert_eq!(get("GIT_CONFIG_VALUE_1"), Some("Authorization: Basic QUJD"));
        assert_eq!(get("GIT_COMMITTER_EMAIL"), Some("bot@x"));
        // Nothing else of the daemon's environment.
        assert!(env
            .iter()
            .all(|(k, _)| k.starts_with("GIT_") || k == "PATH" || k == "HOME" || k == "LC_ALL"));
    }

    #[test]
    fn branch_names() {
        for ok in ["main", "lex-align/approval/foo-bar", "release-1.2"] {
            assert!(valid_branch(ok), "{ok}");
        }
        for bad in [
            "", "-x", "a..b", "a b", "a:b", "x.lock", "/a", "a/", "a//b", "@", "a@{1", "a/.b",
        ] {
            assert!(!valid_branch(bad), "{bad}");
        }
    }
}
