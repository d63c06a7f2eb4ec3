//! The language server: document store, diagnostics scheduler, hover, code
//! actions and commands.
//!
//! Ordering: tower-lsp-server runs handlers concurrently, so document
//! notifications are applied by [`Ordered`], a service wrapper whose `call`
//! runs synchronously in message order; the `LanguageServer` handlers for
//! them do nothing. Every mutation bumps the document's generation; a
//! diagnostics run publishes only if its generation is still current,
//! under a lock that serialises publishes, so a slow answer for an old
//! version can never overwrite a newer one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use lex_align_engine::registry::Status;
use lex_align_engine::verdict::{Decision, Verdict};
use lex_align_manifest::{replace_dependency, replace_requirement, Dependency, TextChange};
use serde::Deserialize;
use serde_json::{json, Value};
use tower::Service;
use tower_lsp_server::jsonrpc::{self, Request, Response};
use tower_lsp_server::ls_types::notification::Progress;
use tower_lsp_server::ls_types::*;
use tower_lsp_server::{Client, LanguageServer, LspService};

use crate::analysis::{self, Code, DocKind, Parsed, Problem, Severity, Verdicts};
use crate::backend::{EvalItem, PolicyBackend, RuleProposal};
use crate::convert::{self, Encoding};
use crate::fixes;
use crate::settings::LspOptions;

/// The command that files an approval request.
pub const REQUEST_APPROVAL_COMMAND: &str = "lexAlign.requestApproval";
/// The command that proposes a registry rule (operator mode).
pub const PROPOSE_RULE_COMMAND: &str = "lexAlign.proposeRule";
/// Items per evaluation call when progress is reported.
const PROGRESS_CHUNK: usize = 25;
/// The code action kind of "apply every safe fix".
pub const FIX_ALL_KIND: &str = "source.fixAll.lexAlign";
/// The code action kind of the operator's "propose registry rule" actions:
/// a refactor of the policy, not a fix of the file.
pub const PROPOSE_RULE_KIND: &str = "refactor.lexAlign.proposeRule";

struct Doc {
    text: String,
    version: i32,
    generation: u64,
    kind: DocKind,
    path: Option<PathBuf>,
    verdicts: Verdicts,
    /// Whether a full evaluation finished once (progress is for the first).
    evaluated: bool,
}

pub(crate) struct Shared {
    client: Client,
    backend: Arc<dyn PolicyBackend>,
    options: RwLock<LspOptions>,
    encoding: RwLock<Encoding>,
    docs: Mutex<HashMap<Uri, Doc>>,
    /// Bumped on every policy event: verdicts computed before it are dropped.
    epoch: AtomicU64,
    next_generation: AtomicU64,
    next_token: AtomicU64,
    /// Held across "is this still current?" and the send, so publishes go
    /// out in generation order.
    publish: tokio::sync::Mutex<()>,
    supports_progress: RwLock<bool>,
    supports_configuration: RwLock<bool>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere must not take the whole session down with it.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read<T: Clone>(m: &RwLock<T>) -> T {
    m.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

fn write<T>(m: &RwLock<T>, value: T) {
    *m.write().unwrap_or_else(std::sync::PoisonError::into_inner) = value;
}

/// A snapshot of a document taken for background work.
struct Snapshot {
    text: String,
    version: i32,
    generation: u64,
    kind: DocKind,
    path: Option<PathBuf>,
    verdicts: Verdicts,
    evaluated: bool,
}

impl Shared {
    fn snapshot(&self, uri: &Uri) -> Option<Snapshot> {
        let docs = lock(&self.docs);
        docs.get(uri).map(|d| Snapshot {
            text: d.text.clone(),
            version: d.version,
            generation: d.generation,
            kind: d.kind,
            path: d.path.clone(),
            verdicts: d.verdicts.clone(),
            evaluated: d.evaluated,
        })
    }

    fn generation(&self, uri: &Uri) -> Option<u64> {
        lock(&self.docs).get(uri).map(|d| d.generation)
    }

    /// Reads a file beside a document: an open editor buffer wins over disk.
    fn read_file(&self, path: &Path) -> Option<String> {
        if let Some(uri) = Uri::from_file_path(path) {
            if let Some(doc) = lock(&self.docs).get(&uri) {
                return Some(doc.text.clone());
            }
        }
        std::fs::read_to_string(path).ok()
    }

    /// The document's dependencies, limited to the `scopes` setting.
    fn parse(&self, snap: &Snapshot) -> Parsed {
        let mut parsed = analysis::parse(snap.kind, snap.path.as_deref(), &snap.text, &|p| {
            self.read_file(p)
        });
        let options = read(&self.options);
        if !options.scopes.is_empty() {
            parsed.direct.retain(|d| options.checks(&d.scope));
            // A lock file's packages count under `lock`, and only through
            // a direct dependency that is still checked.
            if options.checks(&lex_align_manifest::Scope::Lock) {
                let direct = &parsed.direct;
                parsed
                    .transitive
                    .retain(|t| direct.iter().any(|d| t.via.contains(&d.canonical)));
            } else {
                parsed.transitive.clear();
            }
        }
        parsed
    }

    /// Overlays client settings; what could not be used is logged to the
    /// client, so a typo in a setting does not go unnoticed.
    async fn merge_settings(&self, value: &Value) {
        let problems = {
            let mut opts = read(&self.options);
            let problems = opts.merge(value);
            write(&self.options, opts);
            problems
        };
        for p in problems {
            tracing::warn!("{p}");
            self.client.log_message(MessageType::WARNING, p).await;
        }
    }

    fn project(&self, path: Option<&Path>) -> String {
        if let Some(p) = read(&self.options).project {
            return p;
        }
        path.and_then(Path::parent)
            .and_then(Path::file_name)
            .map_or_else(
                || "default".to_string(),
                |n| n.to_string_lossy().into_owned(),
            )
    }

    // ---- document sync (called in message order by `Ordered`) ----

    fn did_open(self: &Arc<Self>, params: DidOpenTextDocumentParams) {
        let uri = params.text_document.uri;
        let path = uri.to_file_path().map(|p| p.into_owned());
        let name = path.as_deref().and_then(Path::file_name).map_or_else(
            || uri.as_str().rsplit('/').next().unwrap_or("").to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let kind = DocKind::of(&name);
        let generation = self.next_generation.fetch_add(1, AtomicOrdering::SeqCst);
        lock(&self.docs).insert(
            uri.clone(),
            Doc {
                text: params.text_document.text,
                version: params.text_document.version,
                generation,
                kind,
                path,
                verdicts: Verdicts::new(),
                evaluated: false,
            },
        );
        // Opening is not typing: judge at once, no debounce.
        self.schedule(uri, false);
    }

    fn did_change(self: &Arc<Self>, params: DidChangeTextDocumentParams) {
        let uri = params.text_document.uri;
        let enc = read(&self.encoding);
        let generation = self.next_generation.fetch_add(1, AtomicOrdering::SeqCst);
        {
            let mut docs = lock(&self.docs);
            let Some(doc) = docs.get_mut(&uri) else {
                tracing::warn!(
                    "didChange for a document that is not open: {}",
                    uri.as_str()
                );
                return;
            };
            for change in params.content_changes {
                match change.range {
                    Some(range) => {
                        let start = convert::offset(&doc.text, range.start, enc);
                        let end = convert::offset(&doc.text, range.end, enc).max(start);
                        doc.text.replace_range(start..end, &change.text);
                    }
                    None => doc.text = change.text,
                }
            }
            doc.version = params.text_document.version;
            doc.generation = generation;
        }
        self.schedule(uri, true);
    }

    fn did_close(self: &Arc<Self>, params: DidCloseTextDocumentParams) {
        let uri = params.text_document.uri;
        lock(&self.docs).remove(&uri);
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let _guard = this.publish.lock().await;
            this.client.publish_diagnostics(uri, Vec::new(), None).await;
        });
    }

    // ---- diagnostics ----

    /// Publishes registry-only diagnostics at once, then (after the
    /// debounce when `debounce`) the full verdicts.
    fn schedule(self: &Arc<Self>, uri: Uri, debounce: bool) {
        let this = Arc::clone(self);
        tokio::spawn(async move { this.run_diagnostics(uri, debounce).await });
    }

    async fn run_diagnostics(self: Arc<Self>, uri: Uri, debounce: bool) {
        let Some(snap) = self.snapshot(&uri) else {
            return;
        };
        if snap.kind == DocKind::Other {
            return;
        }
        let parsed = self.parse(&snap);
        self.publish(&uri, &snap, &parsed, &snap.verdicts).await;

        if debounce {
            tokio::time::sleep(Duration::from_millis(read(&self.options).debounce_ms)).await;
            if self.generation(&uri) != Some(snap.generation) {
                return;
            }
        }
        let mut wanted: Vec<EvalItem> = parsed
            .direct
            .iter()
            .map(analysis::eval_item)
            .chain(parsed.transitive.iter().map(analysis::transitive_item))
            .filter(|item| !snap.verdicts.contains_key(item))
            .collect();
        wanted.sort_by(|a, b| (&a.requirement, &a.version).cmp(&(&b.requirement, &b.version)));
        wanted.dedup();
        if wanted.is_empty() {
            return;
        }
        let epoch = self.epoch.load(AtomicOrdering::SeqCst);
        let project = self.project(snap.path.as_deref());
        let progress = !snap.evaluated && wanted.len() >= read(&self.options).progress_threshold;
        let verdicts = match self.evaluate(wanted.clone(), &project, progress).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("evaluation failed: {e}");
                self.publish_unavailable(&uri, &snap, &parsed, &e).await;
                return;
            }
        };
        let merged = {
            let mut docs = lock(&self.docs);
            let Some(doc) = docs.get_mut(&uri) else {
                return;
            };
            if self.epoch.load(AtomicOrdering::SeqCst) == epoch {
                // A verdict is about the requirement text, not the version
                // of the document, so it stays useful after further edits.
                for (item, verdict) in wanted.into_iter().zip(verdicts) {
                    doc.verdicts.insert(item, verdict);
                }
                doc.evaluated = true;
            }
            doc.verdicts.clone()
        };
        self.publish(&uri, &snap, &parsed, &merged).await;
    }

    async fn evaluate(
        &self,
        items: Vec<EvalItem>,
        project: &str,
        progress: bool,
    ) -> Result<Vec<Verdict>, String> {
        let token = if progress && read(&self.supports_progress) {
            let n = self.next_token.fetch_add(1, AtomicOrdering::SeqCst);
            let token = NumberOrString::String(format!("lex-align/evaluate/{n}"));
            self.client
                .create_work_done_progress(token.clone())
                .await
                .ok()
                .map(|()| token)
        } else {
            None
        };
        let Some(token) = token else {
            let n = items.len();
            let verdicts = self.backend.evaluate(items, project).await?;
            return check_len(verdicts, n);
        };
        let total = items.len();
        self.progress(
            &token,
            WorkDoneProgress::Begin(WorkDoneProgressBegin {
                title: "lex-align".to_string(),
                cancellable: Some(false),
                message: Some(format!("checking {total} dependencies")),
                percentage: Some(0),
            }),
        )
        .await;
        // Batches, so the editor can show the work advancing; all in flight
        // at once, so progress costs no extra round trips upstream.
        let mut tasks = tokio::task::JoinSet::new();
        for (i, chunk) in items.chunks(PROGRESS_CHUNK).enumerate() {
            let backend = Arc::clone(&self.backend);
            let chunk = chunk.to_vec();
            let project = project.to_string();
            tasks.spawn(async move {
                let n = chunk.len();
                let result = backend
                    .evaluate(chunk, &project)
                    .await
                    .and_then(|v| check_len(v, n));
                (i, result)
            });
        }
        let mut chunks: Vec<Option<Vec<Verdict>>> = vec![None; tasks.len()];
        let mut done = 0;
        let mut result = Ok(());
        while let Some(joined) = tasks.join_next().await {
            let (i, verdicts) = match joined {
                Ok((i, Ok(v))) => (i, v),
                Ok((_, Err(e))) => {
                    result = Err(e);
                    break;
                }
                Err(e) => {
                    result = Err(format!("evaluation task failed: {e}"));
                    break;
                }
            };
            done += verdicts.len();
            chunks[i] = Some(verdicts);
            self.progress(
                &token,
                WorkDoneProgress::Report(WorkDoneProgressReport {
                    cancellable: Some(false),
                    message: Some(format!("{done}/{total} dependencies")),
                    percentage: Some((done * 100 / total.max(1)) as u32),
                }),
            )
            .await;
        }
        let out: Vec<Verdict> = chunks.into_iter().flatten().flatten().collect();
        self.progress(
            &token,
            WorkDoneProgress::End(WorkDoneProgressEnd {
                message: Some("done".to_string()),
            }),
        )
        .await;
        result.map(|()| out)
    }

    async fn progress(&self, token: &ProgressToken, value: WorkDoneProgress) {
        self.client
            .send_notification::<Progress>(ProgressParams {
                token: token.clone(),
                value: ProgressParamsValue::WorkDone(value),
            })
            .await;
    }

    async fn publish(&self, uri: &Uri, snap: &Snapshot, parsed: &Parsed, verdicts: &Verdicts) {
        let problems = analysis::problems(parsed, verdicts, self.backend.as_ref());
        self.send(uri, snap, problems).await;
    }

    /// The backend could not answer at all: registry diagnostics stay, and
    /// every dependency without a verdict says the check did not run.
    async fn publish_unavailable(&self, uri: &Uri, snap: &Snapshot, parsed: &Parsed, error: &str) {
        let mut problems = analysis::problems(parsed, &snap.verdicts, self.backend.as_ref());
        for dep in &parsed.direct {
            if snap.verdicts.contains_key(&analysis::eval_item(dep))
                || problems.iter().any(|p| p.span == dep.source.span)
            {
                continue;
            }
            problems.push(Problem {
                span: dep.source.span,
                severity: Severity::Information,
                code: Code::UpstreamUnavailable,
                message: format!(
                    "{} was not checked: lex-align is unavailable ({error})",
                    dep.name
                ),
                canonical: Some(dep.canonical.clone()),
            });
        }
        self.send(uri, snap, problems).await;
    }

    async fn send(&self, uri: &Uri, snap: &Snapshot, problems: Vec<Problem>) {
        let enc = read(&self.encoding);
        let base = read(&self.options).docs_base_url;
        let diagnostics = problems
            .iter()
            .map(|p| to_diagnostic(&snap.text, p, enc, &base))
            .collect();
        let _guard = self.publish.lock().await;
        if self.generation(uri) != Some(snap.generation) {
            return;
        }
        self.client
            .publish_diagnostics(uri.clone(), diagnostics, Some(snap.version))
            .await;
    }

    /// A policy event: forget every verdict and re-judge every open document.
    fn refresh_all(self: &Arc<Self>) {
        self.epoch.fetch_add(1, AtomicOrdering::SeqCst);
        let uris: Vec<Uri> = {
            let mut docs = lock(&self.docs);
            for doc in docs.values_mut() {
                doc.verdicts.clear();
                doc.generation = self.next_generation.fetch_add(1, AtomicOrdering::SeqCst);
            }
            docs.keys().cloned().collect()
        };
        for uri in uris {
            self.schedule(uri, false);
        }
    }

    /// Settings changed: re-publish every open document from its cached
    /// verdicts (asking only for what is missing).
    fn republish_all(self: &Arc<Self>) {
        let uris: Vec<Uri> = {
            let mut docs = lock(&self.docs);
            for doc in docs.values_mut() {
                doc.generation = self.next_generation.fetch_add(1, AtomicOrdering::SeqCst);
            }
            docs.keys().cloned().collect()
        };
        for uri in uris {
            self.schedule(uri, false);
        }
    }

    /// The verdict for `dep`, from the cache or asked now (hover, code actions).
    async fn verdict_for(&self, uri: &Uri, project: &str, item: EvalItem) -> Option<Verdict> {
        if let Some(v) = lock(&self.docs)
            .get(uri)
            .and_then(|d| d.verdicts.get(&item).cloned())
        {
            return Some(v);
        }
        let epoch = self.epoch.load(AtomicOrdering::SeqCst);
        let v = self
            .backend
            .evaluate(vec![item.clone()], project)
            .await
            .ok()?
            .into_iter()
            .next()?;
        if self.epoch.load(AtomicOrdering::SeqCst) == epoch {
            if let Some(doc) = lock(&self.docs).get_mut(uri) {
                doc.verdicts.insert(item, v.clone());
            }
        }
        Some(v)
    }

    async fn configure_from_client(&self) {
        if !read(&self.supports_configuration) {
            return;
        }
        let items = vec![ConfigurationItem {
            scope_uri: None,
            section: Some("lexAlign".to_string()),
        }];
        if let Ok(values) = self.client.configuration(items).await {
            if let Some(v) = values.first() {
                self.merge_settings(v).await;
            }
        }
    }
}

fn check_len(verdicts: Vec<Verdict>, n: usize) -> Result<Vec<Verdict>, String> {
    if verdicts.len() == n {
        Ok(verdicts)
    } else {
        Err(format!(
            "the policy backend answered {} verdicts for {n} requirements",
            verdicts.len()
        ))
    }
}

fn to_diagnostic(text: &str, p: &Problem, enc: Encoding, docs_base: &str) -> Diagnostic {
    let severity = match p.severity {
        Severity::Error => DiagnosticSeverity::ERROR,
        Severity::Warning => DiagnosticSeverity::WARNING,
        Severity::Information => DiagnosticSeverity::INFORMATION,
        Severity::Hint => DiagnosticSeverity::HINT,
    };
    let href = format!("{docs_base}#{}", p.code.as_str())
        .parse::<Uri>()
        .ok();
    Diagnostic {
        range: convert::range(text, p.span.start, p.span.end, enc),
        severity: Some(severity),
        code: Some(NumberOrString::String(p.code.as_str().to_string())),
        code_description: href.map(|href| CodeDescription { href }),
        source: Some("lex-align".to_string()),
        message: p.message.clone(),
        related_information: None,
        tags: None,
        data: p.canonical.as_ref().map(|c| json!({ "package": c })),
    }
}

/// Markdown-escapes text that came from upstream (reasons, license
/// strings, advisory ids), so it renders as text and never as markup.
pub fn escape_markdown(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '{' | '}' | '[' | ']' | '(' | ')' | '#' | '+' | '-' | '.'
            | '!' | '|' | '<' | '>' | '~' | '&' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

fn hover_markdown(
    dep: &Dependency,
    verdict: Option<&Verdict>,
    rule: Option<&crate::backend::RuleInfo>,
    transitive: &[(&Dependency, Option<Verdict>)],
) -> String {
    let e = escape_markdown;
    let mut md = format!(
        "**{}** `{}`\n\n",
        e(&dep.name),
        dep.requirement.replace('`', "'")
    );
    match verdict {
        Some(v) => {
            md.push_str(&format!("**{}**: {}\n\n", v.verdict.as_str(), e(&v.reason)));
            if let Some(r) = &v.resolved_version {
                md.push_str(&format!("- judged version: {}\n", e(r)));
            }
            if let Some(l) = &v.license {
                md.push_str(&format!("- license: {}\n", e(l)));
            }
            if let Some(s) = &v.registry_status {
                md.push_str(&format!("- registry status: {}\n", e(s)));
            }
            if let Some(r) = &v.replacement {
                md.push_str(&format!("- replacement: {}\n", e(r)));
            }
            if let Some(c) = &v.version_constraint {
                md.push_str(&format!("- version constraint: {}\n", e(c)));
            }
            if let Some(s) = &v.suggested_requirement {
                md.push_str(&format!("- suggested requirement: {}\n", e(s)));
            }
            if let Some(u) = &v.upstream_error {
                md.push_str(&format!("- upstream unavailable: {}\n", e(u)));
            }
        }
        None => md.push_str("not evaluated yet\n\n"),
    }
    if let Some(rule) = rule {
        md.push_str(&format!("- registry rule: {}", rule.status.as_str()));
        if let Some(r) = &rule.reason {
            md.push_str(&format!(" ({})", e(r)));
        }
        md.push('\n');
    }
    if let Some(locked) = &dep.locked_version {
        md.push_str(&format!("- locked version: {}\n", e(locked)));
    }
    if let Some(v) = verdict {
        if !v.advisories.is_empty() {
            md.push_str("\n| advisory | aliases | score | fixed in |\n|---|---|---|---|\n");
            for a in &v.advisories {
                let score = a
                    .score
                    .map_or_else(|| "n/a".to_string(), |s| format!("{s:.1}"));
                let mut id = e(&a.id);
                if a.malicious {
                    id.push_str(" (malicious)");
                }
                md.push_str(&format!(
                    "| {id} | {} | {} | {} |\n",
                    e(&a.aliases.join(", ")),
                    e(&score),
                    e(a.fixed_version.as_deref().unwrap_or("none"))
                ));
            }
        }
        if let Some(safe) = analysis::first_safe_version(v) {
            md.push_str(&format!("\nfirst safe version: {}\n", e(&safe)));
        }
    }
    for (t, tv) in transitive {
        let status = tv.as_ref().map_or("not evaluated", |v| v.verdict.as_str());
        md.push_str(&format!(
            "\n- pulls in {} {}: {}",
            e(&t.name),
            e(t.locked_version.as_deref().unwrap_or("?")),
            status
        ));
        if let Some(v) = tv {
            if v.verdict != Decision::Allowed {
                md.push_str(&format!(" ({})", e(&v.reason)));
            }
        }
    }
    md
}

/// The LSP front: everything except document sync, which [`Ordered`] applies.
pub(crate) struct Server {
    pub(crate) shared: Arc<Shared>,
}

impl Server {
    fn dep_at(&self, snap: &Snapshot, parsed: &Parsed, pos: Position) -> Option<Dependency> {
        let offset = convert::offset(&snap.text, pos, read(&self.shared.encoding));
        parsed
            .direct
            .iter()
            .find(|d| d.source.span.start <= offset && offset <= d.source.span.end)
            .cloned()
    }

    /// One text edit replacing `dep`'s requirement with `new` (format-preserving).
    fn edit(&self, text: &str, dep: &Dependency, new: &str) -> TextEdit {
        let replaced = replace_requirement(text, dep.source.span, new);
        let tail = text.len() - dep.source.span.end;
        let new_text = replaced[dep.source.span.start..replaced.len() - tail].to_string();
        let enc = read(&self.shared.encoding);
        TextEdit {
            range: convert::range(text, dep.source.span.start, dep.source.span.end, enc),
            new_text,
        }
    }

    /// The text edits of a manifest-crate edit.
    fn text_edits(&self, text: &str, changes: &[TextChange]) -> Vec<TextEdit> {
        let enc = read(&self.shared.encoding);
        changes
            .iter()
            .map(|c| TextEdit {
                range: convert::range(text, c.span.start, c.span.end, enc),
                new_text: c.new_text.clone(),
            })
            .collect()
    }

    /// The `lexAlign.proposeRule` argument `{name, status, reason?,
    /// replacement?, rationale?, project?}`; only honoured in operator mode.
    fn proposal_args(&self, arg: Option<Value>) -> jsonrpc::Result<(RuleProposal, String)> {
        let options = read(&self.shared.options);
        if !options.operator {
            return Err(jsonrpc::Error::invalid_params(
                "registry proposals from the editor need the setting lexAlign.operator = true",
            ));
        }
        #[derive(Deserialize)]
        struct Args {
            name: String,
            status: String,
            reason: Option<String>,
            replacement: Option<String>,
            rationale: Option<String>,
            project: Option<String>,
        }
        let args: Args = arg
            .and_then(|a| serde_json::from_value(a).ok())
            .ok_or_else(|| {
                jsonrpc::Error::invalid_params(
                    "expected one argument {name, status, reason?, replacement?, rationale?, project?}",
                )
            })?;
        let status = Status::parse(&args.status).ok_or_else(|| {
            jsonrpc::Error::invalid_params(format!(
                "status {:?} is not one of preferred, approved, deprecated, version-constrained, banned",
                args.status
            ))
        })?;
        let project = args
            .project
            .filter(|p| !p.trim().is_empty())
            .or(options.project)
            .unwrap_or_else(|| "default".to_string());
        let proposal = RuleProposal {
            name: args.name,
            status,
            reason: args.reason,
            replacement: args.replacement,
            rationale: args.rationale,
        };
        Ok((proposal, project))
    }

    fn workspace_edit(uri: &Uri, edits: Vec<TextEdit>) -> WorkspaceEdit {
        WorkspaceEdit {
            changes: Some(HashMap::from([(uri.clone(), edits)])),
            document_changes: None,
            change_annotations: None,
        }
    }

    /// The safe fixes for one dependency: a version change that satisfies
    /// the policy without changing which package is used.
    fn safe_fix(text: &str, dep: &Dependency, v: &Verdict) -> Option<(String, String)> {
        let raw = dep.source.span.slice(text);
        if !analysis::rewritable(dep) || v.verdict != Decision::Denied {
            return None;
        }
        if let Some(s) = v
            .suggested_requirement
            .as_deref()
            .and_then(|s| fixes::tighten(dep, raw, s))
        {
            return Some((format!("Change {} to {s}", dep.name), s));
        }
        if let Some(safe) = analysis::first_safe_version(v) {
            let new = fixes::move_to(dep, raw, &safe);
            return Some((
                format!("Upgrade {} to {safe} (first safe version)", dep.name),
                new,
            ));
        }
        None
    }
}

impl LanguageServer for Server {
    async fn initialize(&self, params: InitializeParams) -> jsonrpc::Result<InitializeResult> {
        let caps = &params.capabilities;
        let utf8 = caps
            .general
            .as_ref()
            .and_then(|g| g.position_encodings.as_ref())
            .is_some_and(|encs| encs.contains(&PositionEncodingKind::UTF8));
        write(
            &self.shared.encoding,
            if utf8 {
                Encoding::Utf8
            } else {
                Encoding::Utf16
            },
        );
        write(
            &self.shared.supports_progress,
            caps.window
                .as_ref()
                .and_then(|w| w.work_done_progress)
                .unwrap_or(false),
        );
        write(
            &self.shared.supports_configuration,
            caps.workspace
                .as_ref()
                .and_then(|w| w.configuration)
                .unwrap_or(false),
        );
        if let Some(init) = &params.initialization_options {
            self.shared.merge_settings(init).await;
        }
        Ok(InitializeResult {
            capabilities: ServerCapabilities {
                position_encoding: Some(if utf8 {
                    PositionEncodingKind::UTF8
                } else {
                    PositionEncodingKind::UTF16
                }),
                text_document_sync: Some(TextDocumentSyncCapability::Kind(
                    TextDocumentSyncKind::INCREMENTAL,
                )),
                hover_provider: Some(HoverProviderCapability::Simple(true)),
                code_action_provider: Some(CodeActionProviderCapability::Options(
                    CodeActionOptions {
                        code_action_kinds: Some(vec![
                            CodeActionKind::QUICKFIX,
                            CodeActionKind::new(FIX_ALL_KIND),
                            CodeActionKind::new(PROPOSE_RULE_KIND),
                        ]),
                        work_done_progress_options: WorkDoneProgressOptions::default(),
                        resolve_provider: None,
                    },
                )),
                execute_command_provider: Some(ExecuteCommandOptions {
                    commands: vec![
                        REQUEST_APPROVAL_COMMAND.to_string(),
                        PROPOSE_RULE_COMMAND.to_string(),
                    ],
                    work_done_progress_options: WorkDoneProgressOptions::default(),
                }),
                ..ServerCapabilities::default()
            },
            server_info: Some(ServerInfo {
                name: "lex-align".to_string(),
                version: Some(env!("CARGO_PKG_VERSION").to_string()),
            }),
            offset_encoding: None,
        })
    }

    async fn initialized(&self, _: InitializedParams) {
        self.shared.configure_from_client().await;
    }

    async fn shutdown(&self) -> jsonrpc::Result<()> {
        Ok(())
    }

    async fn did_change_configuration(&self, params: DidChangeConfigurationParams) {
        if let Some(section) = params.settings.get("lexAlign") {
            self.shared.merge_settings(section).await;
        } else {
            self.shared.configure_from_client().await;
        }
        // `scopes` may have changed what is shown; verdicts stay valid.
        self.shared.republish_all();
    }

    async fn hover(&self, params: HoverParams) -> jsonrpc::Result<Option<Hover>> {
        let uri = params.text_document_position_params.text_document.uri;
        let Some(snap) = self.shared.snapshot(&uri) else {
            return Ok(None);
        };
        let parsed = self.shared.parse(&snap);
        let Some(dep) = self.dep_at(
            &snap,
            &parsed,
            params.text_document_position_params.position,
        ) else {
            return Ok(None);
        };
        let project = self.shared.project(snap.path.as_deref());
        let verdict = self
            .shared
            .verdict_for(&uri, &project, analysis::eval_item(&dep))
            .await;
        let rule = self.shared.backend.registry_rule(&dep.canonical);
        let transitive: Vec<(&Dependency, Option<Verdict>)> = parsed
            .transitive
            .iter()
            .filter(|t| t.via.contains(&dep.canonical))
            .map(|t| (t, snap.verdicts.get(&analysis::transitive_item(t)).cloned()))
            .collect();
        let value = hover_markdown(&dep, verdict.as_ref(), rule.as_ref(), &transitive);
        let enc = read(&self.shared.encoding);
        Ok(Some(Hover {
            contents: HoverContents::Markup(MarkupContent {
                kind: MarkupKind::Markdown,
                value,
            }),
            range: Some(convert::range(
                &snap.text,
                dep.source.span.start,
                dep.source.span.end,
                enc,
            )),
        }))
    }

    async fn code_action(
        &self,
        params: CodeActionParams,
    ) -> jsonrpc::Result<Option<CodeActionResponse>> {
        let uri = params.text_document.uri;
        let Some(snap) = self.shared.snapshot(&uri) else {
            return Ok(None);
        };
        let parsed = self.shared.parse(&snap);
        let enc = read(&self.shared.encoding);
        let start = convert::offset(&snap.text, params.range.start, enc);
        let end = convert::offset(&snap.text, params.range.end, enc);
        let project = self.shared.project(snap.path.as_deref());
        let wants = |kind: &str| {
            params.context.only.as_ref().is_none_or(|only| {
                only.iter()
                    .any(|k| kind == k.as_str() || kind.starts_with(&format!("{}.", k.as_str())))
            })
        };
        let mut actions: Vec<CodeActionOrCommand> = Vec::new();

        if wants(CodeActionKind::QUICKFIX.as_str()) {
            for dep in parsed
                .direct
                .iter()
                .filter(|d| d.source.span.start <= end && start <= d.source.span.end)
            {
                let Some(v) = self
                    .shared
                    .verdict_for(&uri, &project, analysis::eval_item(dep))
                    .await
                else {
                    continue;
                };
                let diagnostics: Vec<Diagnostic> = params
                    .context
                    .diagnostics
                    .iter()
                    .filter(|d| {
                        d.data
                            .as_ref()
                            .and_then(|x| x.get("package"))
                            .and_then(Value::as_str)
                            == Some(dep.canonical.as_str())
                    })
                    .cloned()
                    .collect();
                let quickfix = |title: String, edits: Vec<TextEdit>, preferred: bool| {
                    CodeActionOrCommand::CodeAction(CodeAction {
                        title,
                        kind: Some(CodeActionKind::QUICKFIX),
                        diagnostics: (!diagnostics.is_empty()).then(|| diagnostics.clone()),
                        edit: Some(Self::workspace_edit(&uri, edits)),
                        command: None,
                        is_preferred: Some(preferred),
                        disabled: None,
                        data: None,
                    })
                };
                let replacement = v.replacement.clone().or_else(|| {
                    self.shared
                        .backend
                        .registry_rule(&dep.canonical)
                        .and_then(|r| r.replacement)
                });
                // Poetry entries too: the manifest crate edits their tables.
                if let (Some(replacement), true) = (
                    replacement,
                    dep.url.is_none() && v.verdict == Decision::Denied,
                ) {
                    let rv = if fixes::style(dep) == fixes::Style::Unpinned {
                        None
                    } else {
                        let item = EvalItem {
                            requirement: replacement.clone(),
                            version: None,
                        };
                        self.shared
                            .verdict_for(&uri, &project, item)
                            .await
                            .and_then(|rv| rv.resolved_version)
                    };
                    if let Some(r) =
                        replace_dependency(&snap.text, dep, &replacement, rv.as_deref())
                    {
                        let edits = self.text_edits(&snap.text, &r.changes);
                        actions.push(quickfix(fixes::replacement_title(dep, &r), edits, true));
                    }
                }
                if let Some((title, new)) = Self::safe_fix(&snap.text, dep, &v) {
                    let edits = vec![self.edit(&snap.text, dep, &new)];
                    actions.push(quickfix(title, edits, actions.is_empty()));
                }
                if v.verdict == Decision::Denied && analysis::rewritable(dep) {
                    let raw = dep.source.span.slice(&snap.text);
                    for name in &v.suggestions {
                        let new = fixes::rename(dep, raw, name);
                        let edits = vec![self.edit(&snap.text, dep, &new)];
                        let title = format!("Did you mean {name}? Rename {} to {name}", dep.name);
                        actions.push(quickfix(title, edits, actions.is_empty()));
                    }
                }
                if v.is_requestable || v.verdict == Decision::ProvisionallyAllowed {
                    let rationale = format!(
                        "Needed by {project}: {} (requested from the editor)",
                        dep.requirement
                    );
                    actions.push(CodeActionOrCommand::CodeAction(CodeAction {
                        title: format!("Request approval for {}", dep.name),
                        kind: Some(CodeActionKind::QUICKFIX),
                        diagnostics: (!diagnostics.is_empty()).then(|| diagnostics.clone()),
                        edit: None,
                        command: Some(Command {
                            title: format!("Request approval for {}", dep.name),
                            command: REQUEST_APPROVAL_COMMAND.to_string(),
                            arguments: Some(vec![json!({ "package": dep.canonical, "rationale": rationale, "project": project })]),
                        }),
                        is_preferred: Some(false),
                        disabled: None,
                        data: None,
                    }));
                }
            }
        }

        if wants(PROPOSE_RULE_KIND) && read(&self.shared.options).operator {
            for dep in parsed
                .direct
                .iter()
                .filter(|d| d.source.span.start <= end && start <= d.source.span.end)
            {
                let current = self
                    .shared
                    .backend
                    .registry_rule(&dep.canonical)
                    .map(|r| r.status);
                for status in [Status::Preferred, Status::Approved, Status::Banned] {
                    if current == Some(status) {
                        continue;
                    }
                    let title = format!(
                        "lex-align: propose registry rule for {} ({})",
                        dep.canonical,
                        status.as_str()
                    );
                    let args = json!({
                        "name": dep.canonical,
                        "status": status.as_str(),
                        "reason": format!("Proposed from the editor (project {project})."),
                        "project": project,
                    });
                    actions.push(CodeActionOrCommand::CodeAction(CodeAction {
                        title: title.clone(),
                        kind: Some(CodeActionKind::new(PROPOSE_RULE_KIND)),
                        diagnostics: None,
                        edit: None,
                        command: Some(Command {
                            title,
                            command: PROPOSE_RULE_COMMAND.to_string(),
                            arguments: Some(vec![args]),
                        }),
                        is_preferred: Some(false),
                        disabled: None,
                        data: None,
                    }));
                }
            }
        }

        if wants(FIX_ALL_KIND) {
            let mut edits = Vec::new();
            for dep in &parsed.direct {
                if let Some(v) = snap.verdicts.get(&analysis::eval_item(dep)) {
                    if let Some((_, new)) = Self::safe_fix(&snap.text, dep, v) {
                        edits.push(self.edit(&snap.text, dep, &new));
                    }
                }
            }
            if !edits.is_empty() {
                actions.push(CodeActionOrCommand::CodeAction(CodeAction {
                    title: format!("Apply {} safe lex-align fix(es)", edits.len()),
                    kind: Some(CodeActionKind::new(FIX_ALL_KIND)),
                    diagnostics: None,
                    edit: Some(Self::workspace_edit(&uri, edits)),
                    command: None,
                    is_preferred: None,
                    disabled: None,
                    data: None,
                }));
            }
        }
        Ok(Some(actions))
    }

    async fn execute_command(
        &self,
        params: ExecuteCommandParams,
    ) -> jsonrpc::Result<Option<LSPAny>> {
        let arg = params.arguments.into_iter().next();
        let (subject, outcome) = match params.command.as_str() {
            REQUEST_APPROVAL_COMMAND => {
                #[derive(Deserialize)]
                struct Args {
                    package: String,
                    rationale: String,
                    project: String,
                }
                let args: Args = arg
                    .and_then(|a| serde_json::from_value(a).ok())
                    .ok_or_else(|| {
                        jsonrpc::Error::invalid_params(
                            "expected one argument {package, rationale, project}",
                        )
                    })?;
                let outcome = self
                    .shared
                    .backend
                    .request_approval(&args.package, &args.rationale, &args.project)
                    .await;
                (format!("approval request for {}", args.package), outcome)
            }
            PROPOSE_RULE_COMMAND => {
                let (proposal, project) = self.proposal_args(arg)?;
                let outcome = self.shared.backend.propose_rule(&proposal, &project).await;
                (
                    format!(
                        "registry proposal for {} ({})",
                        proposal.name,
                        proposal.status.as_str()
                    ),
                    outcome,
                )
            }
            other => {
                return Err(jsonrpc::Error::invalid_params(format!(
                    "unknown command {other}"
                )))
            }
        };
        match outcome {
            Ok(message) => {
                self.shared
                    .client
                    .show_message(MessageType::INFO, &message)
                    .await;
                Ok(Some(Value::String(message)))
            }
            Err(e) => {
                let message = format!("{subject} failed: {e}");
                self.shared
                    .client
                    .show_message(MessageType::ERROR, &message)
                    .await;
                Err(jsonrpc::Error {
                    code: jsonrpc::ErrorCode::InternalError,
                    message: message.into(),
                    data: None,
                })
            }
        }
    }
}

/// Applies document notifications in the order they arrived, before the
/// framework hands them to concurrently running handlers.
pub(crate) struct Ordered {
    pub(crate) inner: LspService<Server>,
    pub(crate) shared: Arc<Shared>,
}

impl Ordered {
    fn apply(&self, req: &Request) {
        let params = || req.params().cloned().unwrap_or(Value::Null);
        let result = match req.method() {
            "textDocument/didOpen" => {
                serde_json::from_value(params()).map(|p| self.shared.did_open(p))
            }
            "textDocument/didChange" => {
                serde_json::from_value(params()).map(|p| self.shared.did_change(p))
            }
            "textDocument/didClose" => {
                serde_json::from_value(params()).map(|p| self.shared.did_close(p))
            }
            _ => Ok(()),
        };
        if let Err(e) = result {
            tracing::warn!("ignoring malformed {}: {e}", req.method());
        }
    }
}

impl Service<Request> for Ordered {
    type Response = Option<Response>;
    type Error = tower_lsp_server::ExitedError;
    type Future = <LspService<Server> as Service<Request>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        self.apply(&req);
        self.inner.call(req)
    }
}

pub(crate) fn new_shared(
    client: Client,
    backend: Arc<dyn PolicyBackend>,
    options: LspOptions,
) -> Arc<Shared> {
    Arc::new(Shared {
        client,
        backend,
        options: RwLock::new(options),
        encoding: RwLock::new(Encoding::Utf16),
        docs: Mutex::new(HashMap::new()),
        epoch: AtomicU64::new(0),
        next_generation: AtomicU64::new(1),
        next_token: AtomicU64::new(1),
        publish: tokio::sync::Mutex::new(()),
        supports_progress: RwLock::new(false),
        supports_configuration: RwLock::new(false),
    })
}

pub(crate) fn refresh_all(shared: &Arc<Shared>) {
    shared.refresh_all();
}
