//! The few GitLab REST v4 calls a proposal needs. The token goes in the
//! `PRIVATE-TOKEN` header and nowhere else; every text that leaves this
//! module (errors included) has it scrubbed, since a server or proxy may
//! echo the request back.

use std::io::Read;
use std::sync::Arc;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Value};

use crate::config::GitLabConfig;

/// Everything but RFC 3986 unreserved characters: GitLab wants `/` in an
/// id, file path or branch encoded as `%2F`.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Largest body read from GitLab (a registry file is far smaller).
const MAX_BODY: u64 = 8 << 20;

pub fn encode(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

pub struct Api {
    base: String,
    project: String,
    token: String,
    agent: ureq::Agent,
}

/// An open merge request.
#[derive(Debug, Clone)]
pub struct MergeRequest {
    pub iid: u64,
    pub web_url: String,
}

impl Api {
    pub fn new(cfg: &GitLabConfig) -> Api {
        let mut builder = ureq::AgentBuilder::new()
            .timeout_connect(cfg.timeout)
            .timeout(cfg.timeout)
            // A redirect could carry the token header to another host.
            .redirects(0)
            .user_agent(concat!(
                "lex-align-plugin-gitlab/",
                env!("CARGO_PKG_VERSION")
            ));
        if cfg.api_url.starts_with("https://") {
            builder = builder.tls_config(native_tls_config());
        }
        Api {
            base: format!("{}/projects/{}", cfg.api_url, encode(&cfg.project)),
            project: cfg.project.clone(),
            token: cfg.token.clone(),
            agent: builder.build(),
        }
    }

    /// The text with every occurrence of the token replaced.
    pub fn scrub(&self, text: &str) -> String {
        if self.token.is_empty() {
            text.to_string()
        } else {
            text.replace(&self.token, "[redacted]")
        }
    }

    /// Does `branch` exist?
    pub fn branch_exists(&self, branch: &str) -> Result<bool, String> {
        let what = "reading the branch";
        match self.send(
            "GET",
            &format!("/repository/branches/{}", encode(branch)),
            &[],
            None,
        ) {
            Ok(_) => Ok(true),
            Err(Failure::Status(404, msg)) if msg.contains("Branch Not Found") => Ok(false),
            Err(f) => Err(self.describe(what, f)),
        }
    }

    /// The file at `reference`, `None` when the file is not there.
    pub fn read_file(&self, path: &str, reference: &str) -> Result<Option<String>, String> {
        match self.send(
            "GET",
            &format!("/repository/files/{}/raw", encode(path)),
            &[("ref", reference)],
            None,
        ) {
            Ok(text) => Ok(Some(text)),
            Err(Failure::Status(404, msg)) if msg.contains("File Not Found") => Ok(None),
            Err(f) => Err(self.describe(&format!("reading {path} at {reference}"), f)),
        }
    }

    /// One commit of `content` to `path` on `branch` (created from
    /// `start_branch` when given); answers the commit id.
    #[allow(clippy::too_many_arguments)]
    pub fn commit(
        &self,
        branch: &str,
        start_branch: Option<&str>,
        path: &str,
        create: bool,
        content: &str,
        message: &str,
        author: (Option<&str>, Option<&str>),
    ) -> Result<String, String> {
        let mut body = json!({
            "branch": branch,
            "commit_message": message,
            "actions": [{
                "action": if create { "create" } else { "update" },
                "file_path": path,
                "content": content,
            }],
        });
        if let Some(start) = start_branch {
            body["start_branch"] = json!(start);
        }
        if let Some(name) = author.0 {
            body["author_name"] = json!(name);
        }
        if let Some(email) = author.1 {
            body["author_email"] = json!(email);
        }
        let text = self
            .send("POST", "/repository/commits", &[], Some(&body))
            .map_err(|f| self.describe("committing the registry change", f))?;
        let v = self.json(&text, "the commit answer")?;
        v.get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| "GitLab's commit answer has no `id`".to_string())
    }

    /// The open merge request from `branch`, if any.
    pub fn open_merge_request(&self, branch: &str) -> Result<Option<MergeRequest>, String> {
        let text = self
            .send(
                "GET",
                "/merge_requests",
                &[("state", "opened"), ("source_branch", branch)],
                None,
            )
            .map_err(|f| self.describe("listing merge requests", f))?;
        let v = self.json(&text, "the merge request list")?;
        let list = v
            .as_array()
            .ok_or_else(|| "GitLab's merge request list is not a list".to_string())?;
        // The filter is the server's; check it all the same before
        // commenting on someone else's merge request.
        Ok(list
            .iter()
            .filter(|m| {
                m.get("source_branch").and_then(Value::as_str) == Some(branch)
                    && m.get("state").and_then(Value::as_str) == Some("opened")
            })
            .find_map(merge_request))
    }

    pub fn create_merge_request(
        &self,
        branch: &str,
        target: &str,
        title: &str,
        description: &str,
    ) -> Result<MergeRequest, String> {
        let body = json!({
            "source_branch": branch,
            "target_branch": target,
            "title": title,
            "description": description,
            "remove_source_branch": true,
        });
        let text = self
            .send("POST", "/merge_requests", &[], Some(&body))
            .map_err(|f| self.describe("opening the merge request", f))?;
        let v = self.json(&text, "the merge request answer")?;
        merge_request(&v)
            .ok_or_else(|| "GitLab's merge request answer has no `iid`/`web_url`".into())
    }

    pub fn comment(&self, iid: u64, body: &str) -> Result<(), String> {
        self.send(
            "POST",
            &format!("/merge_requests/{iid}/notes"),
            &[],
            Some(&json!({ "body": body })),
        )
        .map(|_| ())
        .map_err(|f| self.describe(&format!("commenting on merge request !{iid}"), f))
    }

    fn send(
        &self,
        method: &str,
        route: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<String, Failure> {
        let mut req = self
            .agent
            .request(method, &format!("{}{route}", self.base))
            .set("PRIVATE-TOKEN", &self.token)
            .set("Accept", "application/json");
        for (k, v) in query {
            req = req.query(k, v);
        }
        let result = match body {
            Some(b) => req
                .set("Content-Type", "application/json")
                .send_string(&b.to_string()),
            None => req.call(),
        };
        match result {
            Ok(resp) => read_body(resp).map_err(Failure::Transport),
            Err(ureq::Error::Status(code, resp)) => {
                let text = read_body(resp).unwrap_or_default();
                Err(Failure::Status(code, message_of(&text)))
            }
            Err(ureq::Error::Transport(t)) => Err(Failure::Transport(t.to_string())),
        }
    }

    fn json(&self, text: &str, what: &str) -> Result<Value, String> {
        serde_json::from_str(text)
            .map_err(|_| format!("GitLab answered {what} with something that is not JSON"))
    }

    /// The error detail: what we were doing, GitLab's answer, token scrubbed.
    fn describe(&self, what: &str, f: Failure) -> String {
        let text = match f {
            Failure::Status(401, msg) => format!(
                "GitLab refused the token (HTTP 401: {msg}) while {what} in project {}; check the token and its `api` scope",
                self.project
            ),
            Failure::Status(403, msg) => format!(
                "GitLab forbade {what} in project {} (HTTP 403: {msg}); the token needs Developer access and the `api` scope",
                self.project
            ),
            Failure::Status(code, msg) => {
                format!("GitLab answered HTTP {code} while {what} in project {}: {msg}", self.project)
            }
            Failure::Transport(t) => format!("cannot reach GitLab while {what}: {t}"),
        };
        self.scrub(&text)
    }
}

enum Failure {
    Status(u16, String),
    Transport(String),
}

fn merge_request(v: &Value) -> Option<MergeRequest> {
    Some(MergeRequest {
        iid: v.get("iid")?.as_u64()?,
        web_url: v.get("web_url")?.as_str()?.to_string(),
    })
}

fn read_body(resp: ureq::Response) -> Result<String, String> {
    let mut text = String::new();
    resp.into_reader()
        .take(MAX_BODY)
        .read_to_string(&mut text)
        .map_err(|e| format!("reading GitLab's answer failed: {e}"))?;
    Ok(text)
}

/// GitLab's `message` (a string, a list or an object of field errors), else
/// the start of the body; at most 300 characters.
fn message_of(text: &str) -> String {
    let msg = match serde_json::from_str::<Value>(text) {
        Ok(v) => match v.get("message").or_else(|| v.get("error")) {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => text.to_string(),
        },
        Err(_) => text.to_string(),
    };
    let msg = msg.trim();
    if msg.is_empty() {
        return "no message".into();
    }
    let mut out: String = msg.chars().take(300).collect();
    if out.len() < msg.len() {
        out.push('…');
    }
    out
}

fn native_tls_config() -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    // No readable store leaves no roots: https calls then fail, closed.
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().unwrap_or_default());
    let config = rustls::ClientConfig::builder_with_provider(
        rustls::crypto::ring::default_provider().into(),
    )
    .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
    .expect("the ring provider supports TLS 1.2 and 1.3")
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_fully_encoded() {
        assert_eq!(encode("group/sub/proj"), "group%2Fsub%2Fproj");
        assert_eq!(
            encode("lex-align/approval/my-pkg"),
            "lex-align%2Fapproval%2Fmy-pkg"
        );
        assert_eq!(encode("conf/registry.yml"), "conf%2Fregistry.yml");
        assert_eq!(encode("a b?c#d"), "a%20b%3Fc%23d");
    }

    #[test]
    fn messages_are_short() {
        assert_eq!(
            message_of(r#"{"message":"401 Unauthorized"}"#),
            "401 Unauthorized"
        );
        assert_eq!(
            message_of(r#"{"message":["Another open merge request already exists"]}"#),
            r#"["Another open merge request already exists"]"#
        );
        assert_eq!(message_of(&"x".repeat(1000)).chars().count(), 301);
        assert_eq!(message_of(""), "no message");
    }
}
