//! The LSP server (tower-lsp): document synchronisation, debounced analysis, and the
//! dispatch of requests to `features`.
//!
//! Edits bump a generation counter; an analysis starts after a short quiet period
//! ([`DEBOUNCE`]) and runs on a blocking thread, and it is installed only if no newer edit
//! arrived meanwhile. Its diagnostics carry the versions of the documents it saw, and are
//! never published after those of a newer analysis, so the editor cannot end up showing
//! stale ones. Requests read the latest installed analysis and never wait for one in
//! progress.

use crate::features;
use crate::workspace::{Document, Snapshot, Workspace, materialize_stdlib};
use medic_compiler::parser::ParseCache;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower_lsp::jsonrpc::{Error, Result};
use tower_lsp::lsp_types::*;
use tower_lsp::{Client, ClientSocket, LanguageServer, LspService, Server};

/// Quiet period after an edit before analysing: long enough to batch a burst of keystrokes,
/// short enough to stay well inside the 50 ms diagnostics budget.
pub const DEBOUNCE: Duration = Duration::from_millis(10);

pub struct Backend {
    client: Client,
    workspace: Arc<Mutex<Workspace>>,
    /// Item parses reused between analyses; only the analysis task takes this lock.
    parse_cache: Arc<Mutex<ParseCache>>,
    generation: Arc<AtomicU64>,
    /// The generation whose diagnostics were published last; held while publishing, so
    /// that the publications of two analyses never interleave or arrive out of order.
    published: Arc<tokio::sync::Mutex<u64>>,
}

/// A server and its client socket, for in-process use (tests, benchmarks).
pub fn service() -> (LspService<Backend>, ClientSocket) {
    LspService::new(|client| Backend {
        client,
        workspace: Arc::new(Mutex::new(Workspace::new(materialize_stdlib()))),
        parse_cache: Arc::new(Mutex::new(ParseCache::new())),
        generation: Arc::new(AtomicU64::new(0)),
        published: Arc::new(tokio::sync::Mutex::new(0)),
    })
}

/// Serves LSP on standard input and output until the client exits.
pub async fn run_stdio() {
    let (service, socket) = service();
    Server::new(tokio::io::stdin(), tokio::io::stdout(), socket)
        .serve(service)
        .await;
}

impl Backend {
    fn lock(&self) -> std::sync::MutexGuard<'_, Workspace> {
        // A panic while holding the lock would poison it; the data is still consistent
        // (every update is a single assignment), so keep serving.
        self.workspace
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn navigation(&self, uri: &Url) -> Option<Arc<Snapshot>> {
        self.lock().navigation_snapshot(uri)
    }

    /// The analyses to answer a position request with, each with the position translated
    /// into the text that analysis saw: the current analysis first, then the last one in
    /// which the file parsed. A position inside text that changed since an analysis cannot
    /// be translated, and that analysis is skipped.
    fn locate(&self, uri: &Url, position: Position) -> Vec<(Arc<Snapshot>, Position)> {
        let workspace = self.lock();
        let Some(document) = workspace.documents.get(uri) else {
            return Vec::new();
        };
        let offset = features::offset(document.lines(), position);
        let text = document.text().to_string();
        let mut candidates: Vec<Arc<Snapshot>> = workspace.current.iter().cloned().collect();
        if let Some(good) = workspace.last_good.get(uri)
            && !candidates
                .iter()
                .any(|candidate| Arc::ptr_eq(candidate, good))
        {
            candidates.push(Arc::clone(good));
        }
        drop(workspace);
        candidates
            .into_iter()
            .filter_map(|snapshot| {
                let file = snapshot.file_id(uri)?;
                let seen = snapshot.lines(file)?;
                let mapped = translate(&text, seen.text(), offset)?;
                let position = features::position(seen, mapped);
                Some((snapshot, position))
            })
            .collect()
    }

    fn current(&self) -> Option<Arc<Snapshot>> {
        self.lock().current.clone()
    }

    /// Schedules an analysis of the workspace after the debounce period.
    fn schedule(&self, delay: Duration) {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let latest = Arc::clone(&self.generation);
        let workspace = Arc::clone(&self.workspace);
        let parse_cache = Arc::clone(&self.parse_cache);
        let published = Arc::clone(&self.published);
        let client = self.client.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if latest.load(Ordering::SeqCst) != generation {
                return;
            }
            let analysed = tokio::task::spawn_blocking(move || {
                let inputs = workspace
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .inputs();
                let snapshot = {
                    let mut cache = parse_cache
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    Snapshot::build(inputs, &mut cache)
                };
                // Checked under the lock, so that a newer analysis installed meanwhile is
                // never replaced by this older one.
                let mut guard = workspace
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if latest.load(Ordering::SeqCst) != generation {
                    return None;
                }
                Some(guard.install(snapshot))
            })
            .await;
            let Ok(Some(snapshot)) = analysed else {
                return;
            };
            let mut last_published = published.lock().await;
            if *last_published > generation {
                return;
            }
            *last_published = generation;
            for (uri, diagnostics) in features::diagnostics(&snapshot) {
                let version = snapshot.version(&uri);
                client.publish_diagnostics(uri, diagnostics, version).await;
            }
        });
    }
}

/// Maps an offset of `new` into `old` when the text around it did not change: inside their
/// common prefix, or inside their common suffix.
fn translate(new: &str, old: &str, offset: usize) -> Option<usize> {
    if new == old {
        return Some(offset);
    }
    let prefix = new
        .bytes()
        .zip(old.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    if offset <= prefix {
        return Some(offset);
    }
    let suffix = new
        .bytes()
        .rev()
        .zip(old.bytes().rev())
        .take_while(|(a, b)| a == b)
        .count()
        .min(new.len() - prefix)
        .min(old.len() - prefix);
    let from_end = new.len().checked_sub(offset)?;
    (from_end <= suffix)
        .then(|| old.len() - from_end)
        .filter(|mapped| old.is_char_boundary(*mapped))
}

#[tower_lsp::async_trait]
impl LanguageServer for Backend {
    async fn initialize(&self, params: InitializeParams) -> Result<InitializeResult> {
        #[allow(
            deprecated,
            reason = "root_uri is what older clients such as Neovim 0.7 send"
        )]
        let root = params
            .workspace_folders
            .as_ref()
            .and_then(|folders| folders.first())
            .map(|folder| folder.uri.clone())
            .or(params.root_uri);
        if let Some(path) = root.and_then(|uri| uri.to_file_path().ok()) {
            self.lock().load_directory(&path);
        }
        let legend = SemanticTokensLegend {
            token_types: features::TOKEN_TYPES.to_vec(),
            token_modifiers: Vec::new(),
        };
        Ok(InitializeResult {
            capabilities: ServerCapabilities {
                text_document_sync: Some(TextDocumentSyncCapability::Kind(
                    TextDocumentSyncKind::FULL,
                )),
                hover_provider: Some(HoverProviderCapability::Simple(true)),
                completion_provider: Some(CompletionOptions {
                    trigger_characters: Some(vec![".".into(), "(".into(), " ".into(), ",".into()]),
                    ..CompletionOptions::default()
                }),
                definition_provider: Some(OneOf::Left(true)),
                references_provider: Some(OneOf::Left(true)),
                rename_provider: Some(OneOf::Right(RenameOptions {
                    prepare_provider: Some(true),
                    work_done_progress_options: WorkDoneProgressOptions::default(),
                })),
                document_symbol_provider: Some(OneOf::Left(true)),
                document_formatting_provider: Some(OneOf::Left(true)),
                code_action_provider: Some(CodeActionProviderCapability::Simple(true)),
                semantic_tokens_provider: Some(
                    SemanticTokensServerCapabilities::SemanticTokensOptions(
                        SemanticTokensOptions {
                            legend,
                            full: Some(SemanticTokensFullOptions::Bool(true)),
                            range: None,
                            work_done_progress_options: WorkDoneProgressOptions::default(),
                        },
                    ),
                ),
                ..ServerCapabilities::default()
            },
            server_info: Some(ServerInfo {
                name: "medic".into(),
                version: Some(env!("CARGO_PKG_VERSION").into()),
            }),
        })
    }

    async fn initialized(&self, _: InitializedParams) {
        self.schedule(Duration::ZERO);
    }

    async fn shutdown(&self) -> Result<()> {
        Ok(())
    }

    async fn did_open(&self, params: DidOpenTextDocumentParams) {
        let document = params.text_document;
        // A standard library file opened through "go to definition" is not a runbook.
        if self.lock().std_uris.contains(&document.uri) {
            return;
        }
        // The line index is built before taking the lock, which analyses also need.
        let indexed = Document::new(document.text, Some(document.version));
        self.lock().documents.insert(document.uri, indexed);
        self.schedule(Duration::ZERO);
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        // Full synchronisation: the last change holds the whole text.
        let Some(change) = params.content_changes.into_iter().last() else {
            return;
        };
        let document = Document::new(change.text, Some(params.text_document.version));
        self.lock()
            .documents
            .insert(params.text_document.uri, document);
        self.schedule(DEBOUNCE);
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        // The file stays part of the workspace with its text on disk, if it has one.
        let uri = params.text_document.uri;
        let on_disk = uri
            .to_file_path()
            .ok()
            .and_then(|path| std::fs::read_to_string(path).ok());
        {
            let mut workspace = self.lock();
            match on_disk {
                Some(text) => {
                    workspace
                        .documents
                        .insert(uri.clone(), Document::new(text, None));
                }
                None => {
                    workspace.documents.remove(&uri);
                    workspace.last_good.remove(&uri);
                }
            }
        }
        // A file that is gone keeps no diagnostics in the editor.
        if !self.lock().documents.contains_key(&uri) {
            self.client.publish_diagnostics(uri, Vec::new(), None).await;
        }
        self.schedule(DEBOUNCE);
    }

    async fn did_change_watched_files(&self, params: DidChangeWatchedFilesParams) {
        // Files changed on disk by other programs: re-read those the editor does not hold open.
        {
            let mut workspace = self.lock();
            for change in params.changes {
                let open = workspace
                    .documents
                    .get(&change.uri)
                    .is_some_and(|document| document.version.is_some());
                if open {
                    continue;
                }
                let text = change
                    .uri
                    .to_file_path()
                    .ok()
                    .and_then(|path| std::fs::read_to_string(path).ok());
                match (change.typ, text) {
                    (FileChangeType::DELETED, _) | (_, None) => {
                        workspace.documents.remove(&change.uri);
                    }
                    (_, Some(text)) => {
                        workspace
                            .documents
                            .insert(change.uri, Document::new(text, None));
                    }
                }
            }
        }
        self.schedule(DEBOUNCE);
    }

    async fn hover(&self, params: HoverParams) -> Result<Option<Hover>> {
        let position = params.text_document_position_params;
        let uri = &position.text_document.uri;
        Ok(self
            .locate(uri, position.position)
            .into_iter()
            .find_map(|(snapshot, at)| features::hover(&snapshot, uri, at)))
    }

    async fn goto_definition(
        &self,
        params: GotoDefinitionParams,
    ) -> Result<Option<GotoDefinitionResponse>> {
        let position = params.text_document_position_params;
        let uri = &position.text_document.uri;
        Ok(self
            .locate(uri, position.position)
            .into_iter()
            .find_map(|(snapshot, at)| features::definition(&snapshot, uri, at))
            .map(GotoDefinitionResponse::Scalar))
    }

    async fn references(&self, params: ReferenceParams) -> Result<Option<Vec<Location>>> {
        let position = params.text_document_position;
        let uri = &position.text_document.uri;
        let include = params.context.include_declaration;
        Ok(self
            .locate(uri, position.position)
            .into_iter()
            .map(|(snapshot, at)| features::references(&snapshot, uri, at, include))
            .find(|found| !found.is_empty()))
    }

    async fn prepare_rename(
        &self,
        params: TextDocumentPositionParams,
    ) -> Result<Option<PrepareRenameResponse>> {
        Ok(self
            .current()
            .and_then(|snapshot| {
                features::prepare_rename(&snapshot, &params.text_document.uri, params.position)
            })
            .map(PrepareRenameResponse::Range))
    }

    async fn rename(&self, params: RenameParams) -> Result<Option<WorkspaceEdit>> {
        let position = params.text_document_position;
        let Some(snapshot) = self.current() else {
            return Ok(None);
        };
        features::rename(
            &snapshot,
            &position.text_document.uri,
            position.position,
            &params.new_name,
        )
        .map_err(Error::invalid_params)
    }

    async fn document_symbol(
        &self,
        params: DocumentSymbolParams,
    ) -> Result<Option<DocumentSymbolResponse>> {
        Ok(self.navigation(&params.text_document.uri).map(|snapshot| {
            DocumentSymbolResponse::Nested(features::document_symbols(
                &snapshot,
                &params.text_document.uri,
            ))
        }))
    }

    async fn formatting(&self, params: DocumentFormattingParams) -> Result<Option<Vec<TextEdit>>> {
        let document = self
            .lock()
            .documents
            .get(&params.text_document.uri)
            .cloned();
        Ok(document.and_then(|document| features::formatting(document.lines())))
    }

    async fn code_action(&self, params: CodeActionParams) -> Result<Option<CodeActionResponse>> {
        Ok(self.current().map(|snapshot| {
            features::code_actions(&snapshot, &params.text_document.uri, params.range)
        }))
    }

    async fn completion(&self, params: CompletionParams) -> Result<Option<CompletionResponse>> {
        let position = params.text_document_position;
        let uri = position.text_document.uri;
        let document = self.lock().documents.get(&uri).cloned();
        let (Some(document), Some(snapshot)) = (document, self.navigation(&uri)) else {
            return Ok(None);
        };
        Ok(Some(CompletionResponse::Array(features::completion(
            &snapshot,
            document.lines(),
            position.position,
        ))))
    }

    async fn semantic_tokens_full(
        &self,
        params: SemanticTokensParams,
    ) -> Result<Option<SemanticTokensResult>> {
        Ok(self.navigation(&params.text_document.uri).map(|snapshot| {
            SemanticTokensResult::Tokens(SemanticTokens {
                result_id: None,
                data: features::semantic_tokens(&snapshot, &params.text_document.uri),
            })
        }))
    }
}
