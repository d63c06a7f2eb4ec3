//! The plugin's configuration (`gitlab.json` beside the library), checked
//! once at `configure`.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

pub struct GitLabConfig {
    /// `https://gitlab.example/api/v4`, without a trailing slash.
    pub api_url: String,
    /// Numeric id or `group/project` path (encoded when put in a route).
    pub project: String,
    pub token: String,
    pub file_path: String,
    pub default_branch: String,
    pub author_name: Option<String>,
    pub author_email: Option<String>,
    pub timeout: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    api_url: Option<String>,
    project: Option<Value>,
    token: Option<String>,
    token_env: Option<String>,
    file_path: Option<String>,
    default_branch: Option<String>,
    author_name: Option<String>,
    author_email: Option<String>,
    timeout_ms: Option<u64>,
}

impl GitLabConfig {
    /// `env` reads an environment variable (the process's, in production).
    pub fn from_json(
        config: &Value,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<GitLabConfig, String> {
        // serde's message can quote a value; a misplaced token must not be
        // repeated, so only the shape of the mistake is told.
        let raw: Raw = serde_json::from_value(config.clone()).map_err(|e| {
            let msg = e.to_string();
            match msg.split_once("unknown field `") {
                Some((_, rest)) => format!(
                    "invalid gitlab configuration: unknown key `{}",
                    rest.split('`').next().unwrap_or("")
                ) + "`",
                None => "invalid gitlab configuration: a key has the wrong type (strings expected; `project` may be a number, `timeout_ms` a number)".into(),
            }
        })?;
        let api_url = raw
            .api_url
            .map(|u| u.trim().trim_end_matches('/').to_string())
            .filter(|u| !u.is_empty())
            .ok_or("`api_url` is required (e.g. https://gitlab.example/api/v4); there is no default host")?;
        check_url(&api_url)?;
        let project = match raw.project {
            Some(Value::String(s)) if !s.trim().is_empty() => {
                s.trim().trim_matches('/').to_string()
            }
            Some(Value::Number(n)) if n.as_u64().is_some() => n.to_string(),
            None => return Err("`project` is required (a numeric id or `group/project`)".into()),
            Some(_) => {
                return Err("`project` must be a numeric id or a `group/project` path".into())
            }
        };
        let token = match raw.token.filter(|t| !t.trim().is_empty()) {
            Some(t) => t.trim().to_string(),
            None => {
                let var = raw.token_env.unwrap_or_else(|| "GITLAB_TOKEN".into());
                env(&var)
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| {
                        format!("no GitLab token: set `token`, or the environment variable {var} (`token_env` names another)")
                    })?
            }
        };
        // A header value cannot carry a line break; refuse rather than send half.
        if token.chars().any(|c| c.is_control()) {
            return Err("the GitLab token contains control characters".into());
        }
        let file_path = raw
            .file_path
            .map(|p| p.trim().trim_start_matches('/').to_string())
            .unwrap_or_else(|| "registry.yml".into());
        if file_path.is_empty() || file_path.split('/').any(|s| s == ".." || s.is_empty()) {
            return Err("`file_path` must be a relative path inside the repository".into());
        }
        let default_branch = raw
            .default_branch
            .map(|b| b.trim().to_string())
            .unwrap_or_else(|| "main".into());
        if default_branch.is_empty() {
            return Err("`default_branch` must not be empty".into());
        }
        let timeout_ms = raw.timeout_ms.unwrap_or(10_000);
        if timeout_ms == 0 {
            return Err("`timeout_ms` must be above 0".into());
        }
        Ok(GitLabConfig {
            api_url,
            project,
            token,
            file_path,
            default_branch,
            author_name: raw.author_name.filter(|s| !s.trim().is_empty()),
            author_email: raw.author_email.filter(|s| !s.trim().is_empty()),
            timeout: Duration::from_millis(timeout_ms),
        })
    }
}

/// https, or plain http to this machine only: the token travels in a header.
fn check_url(url: &str) -> Result<(), String> {
    if let Some(rest) = url.strip_prefix("https://") {
        return if rest.is_empty() {
            Err("`api_url` has no host".into())
        } else {
            Ok(())
        };
    }
    match url.strip_prefix("http://") {
        Some(rest) if is_loopback_authority(rest) => Ok(()),
        Some(_) => Err(
            "`api_url` must be https (plain http is accepted only for 127.0.0.1, ::1 or localhost): the token would travel in clear"
                .into(),
        ),
        None => Err("`api_url` must be an http(s) URL".into()),
    }
}

fn is_loopback_authority(rest: &str) -> bool {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn defaults_and_token_from_env() {
        let c = GitLabConfig::from_json(
            &json!({"api_url": "https://gitlab.example/api/v4/", "project": 42}),
            |v| (v == "GITLAB_TOKEN").then(|| "glpat-env".to_string()),
        )
        .unwrap();
        assert_eq!(c.api_url, "https://gitlab.example/api/v4");
        assert_eq!(c.project, "42");
        assert_eq!(c.token, "glpat-env");
        assert_eq!(c.file_path, "registry.yml");
        assert_eq!(c.default_branch, "main");
        let c = GitLabConfig::from_json(
            &json!({"api_url": "https://g.example/api/v4", "project": "team/reg", "token_env": "MY_TOKEN"}),
            |v| (v == "MY_TOKEN").then(|| "t2".to_string()),
        )
        .unwrap();
        assert_eq!(c.token, "t2");
    }

    #[test]
    fn mistakes_are_refused_without_quoting_the_token() {
        let cases = [
            json!({"project": 1, "token": "t"}),
            json!({"api_url": "http://gitlab.example/api/v4", "project": 1, "token": "t"}),
            json!({"api_url": "gitlab.example", "project": 1, "token": "t"}),
            json!({"api_url": "https://g.example/api/v4", "token": "t"}),
            json!({"api_url": "https://g.example/api/v4", "project": 1}),
            json!({"api_url": "https://g.example/api/v4", "project": 1, "token": "t", "file_path": "../x.yml"}),
            json!({"api_url": "https://g.example/api/v4", "project": 1, "token": "t\nX-Evil: 1"}),
            json!({"api_url": "https://g.example/api/v4", "project": 1, "tokn": "glpat-secret-value"}),
            json!({"api_url": "https://g.example/api/v4", "project": 1, "token": ["glpat-secret-value"]}),
        ];
        for c in cases {
            let e = GitLabConfig::from_json(&c, no_env)
                .err()
                .unwrap_or_else(|| panic!("{c} accepted"));
            assert!(!e.contains("glpat-secret-value"), "{e}");
        }
        assert!(GitLabConfig::from_json(
            &json!({"api_url": "http://127.0.0.1:8080/api/v4", "project": 1, "token": "t"}),
            no_env
        )
        .is_ok());
    }
}
