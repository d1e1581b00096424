//! The node's local HTTP gateway, which the CLI talks to (as Tahoe-LAFS's CLI talks to its
//! node's web API). Everything streams: an upload's body is spooled to a temporary file in
//! the node directory (the convergent key needs a pass over the whole file before encoding
//! starts, and the uploader may re-read parts), and a download's plaintext goes out as the
//! downloader verifies it, a few chunks at a time.
//!
//! - `PUT /uri` — upload the body; returns [`api::Uploaded`] (JSON).
//! - `GET /uri/CAP` — the file's bytes (`Content-Length` is the cap's size: a download that
//!   fails part-way ends the connection early, so no client mistakes a prefix for the file).
//! - `GET /vdrive/list?path=P`, `GET /vdrive/lookup?path=P`, `POST /vdrive/mkdir?path=P`,
//!   `POST /vdrive/link?path=P&cap=C[&replace=true]`, `POST /vdrive/rename?from=A&to=B`,
//!   `POST /vdrive/unlink?path=P`.
//! - `POST /operations/cancel?id=ID` — cancel the upload named `ID` (its `PUT /uri` carried
//!   `X-Cairn-Operation: ID`; see [`operations`]).
//! - `POST /check?cap=CAP[&verify=true][&repair=true]` — a file's health, and its repair
//!   ([`api::Checked`]; see [`upkeep`]).
//! - `GET /status` — [`api::Status`] (JSON).
//! - `POST /login-url` — a one-time login URL for a browser ([`api::LoginUrl`]);
//!   `GET /login?code=C` trades it for a session cookie.
//!
//! Every request passes the checks of [`auth`] first (its `Host`, its origin, the API token
//! or a session): the gateway is reachable by every web page its user visits. Failures are
//! JSON [`api::Failure`]s with a status code that says what kind.

mod activity;
pub mod auth;
pub mod metrics;
pub mod operations;
pub mod schedule;
pub mod tree;
mod ui;
mod upkeep;

use crate::api;
use crate::config::Shares;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use cairn_actors::local::{DownloadError, LocalRequest, LocalResponse, UploadError};
use cairn_actors::storage::{CollectorStatus, Pass};
use cairn_actors::vdrive::{VdriveError, VdriveOp, VdriveReply};
use cairn_actors::{NodeId, Service, Time};
use cairn_codec::{self as codec, Cap, CapKind, EncodingParams};
use cairn_net::host::{FnSource, HostError, LocalEvent, LocalHandle, PlaintextSource, SeekSource};
use cairn_net::transport::{Furl, PeerState, Transport};
use cairn_net::Node;
use futures_util::StreamExt;
use serde::Deserialize;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

/// Plaintext chunks a download may have ready for a slow HTTP client: the downloader waits
/// (its output is acknowledged only as chunks are taken) once these are queued.
const DOWNLOAD_CHUNKS_QUEUED: usize = 4;

/// How big an upload may be, and how much disk its spool must leave free.
#[derive(Clone, Copy, Debug)]
pub struct UploadLimits {
    /// The largest file accepted.
    pub max_size: u64,
    /// Spooling stops (and the upload fails) rather than leave less than this free.
    pub spool_reserve: u64,
}

/// Bytes spooled between checks of the spool's free space.
const SPOOL_CHECK_INTERVAL: u64 = 64 << 20;

/// What the gateway serves from.
pub struct Gateway {
    /// Who may use it.
    pub auth: auth::Auth,
    /// Its own base URL, `http://127.0.0.1:PORT`.
    pub base_url: String,
    pub limits: UploadLimits,
    pub node: Node,
    pub transport: Arc<Transport>,
    pub nickname: String,
    pub roles: Vec<&'static str>,
    pub convergence: Vec<u8>,
    /// Encoding parameters and happiness, if the node runs a client.
    pub encoding: Option<(EncodingParams, usize)>,
    /// Where upload bodies are spooled (anonymous files, gone when closed).
    pub spool_dir: PathBuf,
    /// Uploads their clients named, so that they can cancel them.
    pub operations: operations::Operations,
    /// The introducer the node's client uses, if it runs one.
    pub introducers: Vec<NodeId>,
    /// Scheduled lease renewal and repair, if the node runs a client.
    pub upkeep: Option<Arc<schedule::Schedule>>,
    /// The node's tree of directories, if it runs a client.
    pub tree: Option<tree::Tree>,
    pub metrics: Arc<metrics::Metrics>,
    /// Serve `/metrics` without credentials (`[gateway] metrics_public`).
    pub metrics_public: bool,
    /// When the node started.
    pub started: Instant,
    /// `[storage] reserved_space`, if the node runs a storage server.
    pub storage_reserved: u64,
}

/// Serves `gateway` on `listener` until `stop` turns true.
pub async fn serve(listener: TcpListener, gateway: Arc<Gateway>, mut stop: watch::Receiver<bool>) {
    let app = Router::new()
        .route("/", get(ui::overview))
        .route("/files", get(ui::files))
        .route("/file", get(ui::file))
        .route("/operations", get(ui::operations))
        .route("/ui/cairn.css", get(ui::style))
        .route("/ui/cairn.js", get(ui::script))
        .route("/status", get(status))
        .route("/metrics", get(metrics::metrics))
        .route("/uri", put(upload))
        .route("/operations/cancel", post(cancel_operation))
        .route("/check", post(upkeep::check))
        .route("/uri/{cap}", get(download))
        .route("/vdrive/list", get(list))
        .route("/vdrive/lookup", get(lookup))
        .route("/vdrive/mkdir", post(mkdir))
        .route("/vdrive/link", post(link))
        .route("/vdrive/rename", post(rename))
        .route("/vdrive/unlink", post(unlink))
        .route("/vdrive/import", post(import))
        .route("/login-url", post(login_url))
        .route("/login", get(login))
        // Upload bodies go to disk as they arrive, never into memory.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(gateway.clone(), guard))
        .with_state(gateway);
    let stopped = async move {
        let _ = stop.wait_for(|stop| *stop).await;
    };
    if let Err(error) = axum::serve(listener, app)
        .with_graceful_shutdown(stopped)
        .await
    {
        tracing::error!("the gateway stopped: {error}");
    }
}

/// Turns away what [`auth`] refuses, before any handler runs; marks every answer as not for
/// sniffing or referring, and file bodies as never to run as a page of the gateway's origin.
async fn guard(State(g): State<Arc<Gateway>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let checked = g
        .auth
        .check_origin(request.headers())
        .and_then(|()| match path {
            "/login" => Ok(()), // the one-time code is the credential
            "/metrics" if g.metrics_public => Ok(()),
            path if ui::is_asset(path) => Ok(()),
            _ => g.auth.check_credentials(request.headers()),
        });
    if let Err(refusal) = checked {
        tracing::warn!(path, ?refusal, "gateway: request refused");
        let mut response = match refusal {
            auth::Refusal::NoCredentials if ui::is_page(path) => ui::login_needed(),
            refusal => refusal.into_response(),
        };
        secure(response.headers_mut(), false);
        return response;
    }
    let file = path.starts_with("/uri/");
    let mut response = next.run(request).await;
    secure(response.headers_mut(), file);
    response
}

/// Marks every answer as not for sniffing, framing or referring; a file's body as never to
/// run as a page of the gateway's origin, and everything else as running only the gateway's
/// own script and style.
fn secure(headers: &mut HeaderMap, file: bool) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    let policy = match file {
        true => "sandbox",
        false => ui::PAGE_POLICY,
    };
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(policy),
    );
}

/// A failed request: its status and what to tell the user.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = api::Failure {
            error: self.message,
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<HostError> for ApiError {
    fn from(error: HostError) -> Self {
        match error {
            HostError::NoActor(Service::Client) => ApiError::bad_request(
                "this node runs no client (it has no [client] section): use a client node's \
                 directory",
            ),
            HostError::Source(e) => ApiError::internal(format!("reading the spooled upload: {e}")),
            other => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, other.to_string()),
        }
    }
}

impl From<io::Error> for ApiError {
    fn from(error: io::Error) -> Self {
        ApiError::internal(format!("the node's disk: {error}"))
    }
}

// ---- files ----

/// `PUT /uri`'s query: this upload's encoding, over the node's.
#[derive(Deserialize)]
struct UploadQuery {
    shares_needed: Option<usize>,
    shares_happy: Option<usize>,
    shares_total: Option<usize>,
    /// The file's name, for the operations page only.
    name: Option<String>,
}

/// The most of a name or cap an operation's description shows.
const DESCRIPTION_CHARS: usize = 60;

/// `text` cut to [`DESCRIPTION_CHARS`].
fn describe(text: &str) -> String {
    match text.char_indices().nth(DESCRIPTION_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// A cap, for the operations page, without what it grants: the file's storage index and
/// size.
fn cap_label(text: &str) -> String {
    let file = |si: codec::StorageIndex, size: u64| format!("{si:?}, {}", bytesize::ByteSize(size));
    match text.parse::<Cap>() {
        Ok(Cap::Chk(cap)) => file(cap.key.storage_index(), cap.size),
        Ok(Cap::ChkVerifier(cap)) => file(cap.storage_index, cap.size),
        Ok(Cap::Lit(lit)) => format!("a literal file of {} bytes", lit.data.len()),
        Ok(Cap::Dir(_)) => "a directory".to_owned(),
        Err(_) => "not a cap".to_owned(),
    }
}

async fn upload(
    State(g): State<Arc<Gateway>>,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<api::Uploaded>, ApiError> {
    let what = describe(q.name.as_deref().unwrap_or("a file"));
    let operation = g.metrics.start(metrics::Kind::Upload, what);
    let uploaded = upload_body(&g, q, headers, body, &operation).await;
    if let Ok(Json(receipt)) = &uploaded {
        g.metrics.bytes(metrics::Direction::In, receipt.size);
    }
    operation.end(uploaded.as_ref().map(|_| ()));
    uploaded
}

async fn upload_body(
    g: &Arc<Gateway>,
    q: UploadQuery,
    headers: HeaderMap,
    body: Body,
    operation: &metrics::Operation,
) -> Result<Json<api::Uploaded>, ApiError> {
    let declared = declared_length(&headers)?;
    if let Some(size) = declared.filter(|&size| size > g.limits.max_size) {
        return Err(too_large(size, g.limits.max_size));
    }
    let (params, happy) = g
        .encoding
        .ok_or_else(|| ApiError::from(HostError::NoActor(Service::Client)))?;
    let node_shares = Shares {
        needed: params.k,
        happy,
        total: params.n,
    };
    let (params, happy) = node_shares
        .with(q.shares_needed, q.shares_happy, q.shares_total)
        .check(params.max_segment_size)
        .map_err(|e| ApiError::bad_request(format!("this upload's encoding: {e:#}")))?;
    // With the size known up front, the key pass runs as the bytes arrive.
    let keyer = match declared {
        Some(size) if CapKind::for_size(size) == CapKind::Chk => Some(
            codec::ConvergentKeyer::new(&g.convergence, params, size)
                .map_err(|e| ApiError::bad_request(format!("cannot upload this file: {e}")))?,
        ),
        _ => None,
    };
    let received = |size| operation.progress("receiving", size, declared);
    let (mut file, size, keyer) = spool(&g.spool_dir, g.limits, body, keyer, received).await?;
    if let Some(declared) = declared.filter(|&declared| declared != size) {
        return Err(ApiError::bad_request(format!(
            "the upload's body has {size} bytes but its Content-Length said {declared}"
        )));
    }
    if CapKind::for_size(size) == CapKind::Lit {
        let mut data = Vec::new();
        file.rewind()?;
        file.read_to_end(&mut data)?;
        let cap =
            codec::lit_cap(&data).ok_or_else(|| ApiError::internal("literal file too large"))?;
        return Ok(Json(api::Uploaded {
            cap: Cap::Lit(cap).to_string(),
            size,
            happiness: 0,
            placement: Default::default(),
        }));
    }
    let (file, key) = match keyer {
        Some(keyer) => (file, keyer.finish()),
        None => key_pass(file, g.convergence.clone(), params, size).await?,
    };
    let request = LocalRequest::Upload {
        key,
        params,
        happy,
        size,
    };
    let named = operations::operation_id(
        headers
            .get(operations::OPERATION_HEADER)
            .and_then(|v| v.to_str().ok()),
    );
    if named
        .as_deref()
        .is_some_and(|id| g.operations.cancelled_before_start(id))
    {
        return Err(upload_error(UploadError::Cancelled));
    }
    let handle = g.node.request(Service::Client, request).await?;
    if let Some(id) = &named {
        if !g.operations.started(id, handle.id()) {
            return Err(upload_error(UploadError::Cancelled)); // dropping the handle cancels
        }
    }
    // The uploader reads the file in order, a segment at a time: how far it read is how far
    // it got.
    let mut source = SeekSource(file);
    let mut read_to = 0;
    let mut tracked = FnSource(|offset: u64, max: usize| {
        let data = source.read_at(offset, max)?;
        read_to = read_to.max(offset + data.len() as u64);
        operation.progress("encoding and placing shares", read_to, Some(size));
        Ok(data)
    });
    let uploaded = handle.upload(&mut tracked).await;
    if let Some(id) = &named {
        g.operations.ended(id);
    }
    match uploaded? {
        LocalResponse::Uploaded(Ok(receipt)) => Ok(Json(api::Uploaded {
            cap: Cap::Chk(receipt.cap).to_string(),
            size,
            happiness: receipt.happiness,
            placement: receipt
                .placement
                .into_iter()
                .map(|(share, nodes)| (share.0, nodes.iter().map(NodeId::to_string).collect()))
                .collect(),
        })),
        LocalResponse::Uploaded(Err(error)) => Err(upload_error(error)),
        other => Err(unexpected(&other)),
    }
}

/// The request's `Content-Length`, if it has one.
fn declared_length(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(header::CONTENT_LENGTH) else {
        return Ok(None);
    };
    let length = value
        .to_str()
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ApiError::bad_request("the Content-Length is not a number"))?;
    Ok(Some(length))
}

/// Writes `body` to an anonymous file in `dir`, feeding `keyer` as it goes; the file, its
/// size and the keyer. Stops at `limits`: a body over the largest upload, or a spool that
/// would leave less than the reserve free.
async fn spool(
    dir: &Path,
    limits: UploadLimits,
    body: Body,
    mut keyer: Option<codec::ConvergentKeyer>,
    received: impl Fn(u64),
) -> Result<(File, u64, Option<codec::ConvergentKeyer>), ApiError> {
    let mut file = BufWriter::with_capacity(1 << 20, tempfile::tempfile_in(dir)?);
    let mut size = 0u64;
    let mut checked_at = 0u64;
    check_spool_space(dir, limits)?;
    let mut chunks = body.into_data_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::bad_request(format!("the upload's body broke off: {e}")))?;
        size += chunk.len() as u64;
        if size > limits.max_size {
            return Err(too_large(size, limits.max_size));
        }
        if size - checked_at >= SPOOL_CHECK_INTERVAL {
            check_spool_space(dir, limits)?;
            checked_at = size;
        }
        if let Some(keyer) = &mut keyer {
            keyer.update(&chunk);
        }
        file.write_all(&chunk)?;
        received(size);
    }
    let file = file.into_inner().map_err(|e| e.into_error())?;
    Ok((file, size, keyer))
}

fn too_large(size: u64, max: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the upload has {} or more, over this node's largest upload of {} ([gateway] \
             max_upload_size in cairn.toml)",
            bytesize::ByteSize(size),
            bytesize::ByteSize(max)
        ),
    )
}

/// Fails unless the spool's file system keeps more than the reserve free.
fn check_spool_space(dir: &Path, limits: UploadLimits) -> Result<(), ApiError> {
    let free = fs4::available_space(dir)?;
    if free <= limits.spool_reserve.saturating_add(SPOOL_CHECK_INTERVAL) {
        return Err(ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            format!(
                "the node's disk has {} free, and uploads are spooled there only while more \
                 than {} stays free ([gateway] spool_reserve in cairn.toml)",
                bytesize::ByteSize(free),
                bytesize::ByteSize(limits.spool_reserve)
            ),
        ));
    }
    Ok(())
}

/// The convergent key of the spooled file, read again from its start (off the I/O threads).
async fn key_pass(
    mut file: File,
    secret: Vec<u8>,
    params: EncodingParams,
    size: u64,
) -> Result<(File, codec::Key), ApiError> {
    tokio::task::spawn_blocking(move || {
        file.rewind()?;
        let key = codec::convergent_key(&secret, params, size, &mut file)
            .map_err(|e| ApiError::internal(format!("the key pass failed: {e}")))?;
        Ok((file, key))
    })
    .await
    .map_err(|e| ApiError::internal(format!("the key pass stopped: {e}")))?
}

fn upload_error(error: UploadError) -> ApiError {
    let status = match error {
        UploadError::NotHappy { .. } => StatusCode::SERVICE_UNAVAILABLE,
        UploadError::Invalid(_) | UploadError::Input(_) => StatusCode::BAD_REQUEST,
        UploadError::Deadline => StatusCode::GATEWAY_TIMEOUT,
        UploadError::Cancelled => StatusCode::CONFLICT,
    };
    ApiError::new(status, format!("upload failed: {error}"))
}

/// `GET /uri/CAP`'s query.
#[derive(Deserialize)]
struct DownloadQuery {
    /// Save the file under this name (`Content-Disposition: attachment`), rather than show it.
    filename: Option<String>,
}

async fn download(
    State(g): State<Arc<Gateway>>,
    UrlPath(cap): UrlPath<String>,
    Query(q): Query<DownloadQuery>,
) -> Result<Response, ApiError> {
    let mut operation = Some(g.metrics.start(metrics::Kind::Download, cap_label(&cap)));
    let mut response = download_body(&g, cap, &mut operation).await;
    // A download that streams takes its operation along, and ends it when it ends.
    if let Some(operation) = operation {
        operation.end(response.as_ref().map(|_| ()));
    }
    if let (Ok(response), Some(name)) = (&mut response, q.filename) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, attachment(&name));
    }
    response
}

/// `Content-Disposition` for a file saved as `name`: the name itself (RFC 6266/8187), and a
/// plain-ASCII stand-in for browsers that read only that.
fn attachment(name: &str) -> HeaderValue {
    let plain: String = name
        .chars()
        .map(
            |c| match c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ') {
                true => c,
                false => '_',
            },
        )
        .collect();
    let exact = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
    let value = format!("attachment; filename=\"{plain}\"; filename*=UTF-8''{exact}");
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("attachment"))
}

async fn download_body(
    g: &Arc<Gateway>,
    cap: String,
    operation: &mut Option<metrics::Operation>,
) -> Result<Response, ApiError> {
    let cap: Cap = cap
        .parse()
        .map_err(|e| ApiError::bad_request(format!("{cap:?} is not a cap: {e}")))?;
    let cap =
        match cap {
            Cap::Lit(lit) => {
                g.metrics
                    .bytes(metrics::Direction::Out, lit.data.len() as u64);
                return Ok(octets(lit.data.len() as u64, Body::from(lit.data)));
            }
            Cap::ChkVerifier(_) => return Err(ApiError::bad_request(
                "a verify cap can check a file but not read it: give its read cap (URI:CHK:...)",
            )),
            Cap::Dir(_) => {
                return Err(ApiError::bad_request(
                    "a directory cap names a directory, not a file: list it instead",
                ))
            }
            Cap::Chk(cap) => cap,
        };
    let size = cap.size;
    let mut handle = g
        .node
        .request(Service::Client, LocalRequest::Download { cap })
        .await?;
    // Wait for the first verified bytes (or the failure) so that a download that cannot
    // start gets an error status rather than an empty 200.
    let first = match handle.next_event().await? {
        LocalEvent::Output(data) => data,
        LocalEvent::Reply(LocalResponse::Downloaded(Err(error))) => {
            return Err(download_error(error))
        }
        LocalEvent::Reply(other) => return Err(unexpected(&other)),
        LocalEvent::Pull(_) => return Err(ApiError::internal("a download asked for plaintext")),
    };
    let (chunks, body) = mpsc::channel(DOWNLOAD_CHUNKS_QUEUED);
    if let Some(operation) = operation.take() {
        let sending = Sending {
            operation,
            metrics: g.metrics.clone(),
            size,
        };
        tokio::spawn(forward_download(handle, first, chunks, sending));
    }
    Ok(octets(size, Body::from_stream(ReceiverStream::new(body))))
}

/// A download under way: counted as its bytes go out.
struct Sending {
    operation: metrics::Operation,
    metrics: Arc<metrics::Metrics>,
    size: u64,
}

/// Passes a download's verified plaintext to the HTTP body; on failure, ends the body with
/// an error (the connection is cut short of its Content-Length).
async fn forward_download(
    mut handle: LocalHandle,
    first: Vec<u8>,
    chunks: mpsc::Sender<io::Result<Bytes>>,
    sending: Sending,
) {
    let Sending {
        operation,
        metrics,
        size,
    } = sending;
    let mut sent = 0;
    let mut next: Result<Bytes, ApiError> = Ok(Bytes::from(first));
    loop {
        let chunk = match next {
            Ok(chunk) => chunk,
            Err(failure) => {
                let _ = chunks
                    .send(Err(io::Error::other(failure.message.clone())))
                    .await;
                return operation.end(Err(&failure));
            }
        };
        let chunk_size = chunk.len() as u64;
        if chunks.send(Ok(chunk)).await.is_err() {
            let why = "the HTTP client went away part-way";
            return operation.end(Err(&ApiError::new(StatusCode::CONFLICT, why)));
        }
        sent += chunk_size;
        metrics.bytes(metrics::Direction::Out, chunk_size);
        operation.progress("sending", sent, Some(size));
        next = match handle.next_event().await {
            Ok(LocalEvent::Output(data)) => Ok(Bytes::from(data)),
            Ok(LocalEvent::Reply(LocalResponse::Downloaded(Ok(_)))) => {
                return operation.end(Ok(()))
            }
            Ok(LocalEvent::Reply(LocalResponse::Downloaded(Err(error)))) => {
                tracing::warn!("download failed part-way: {error}");
                Err(download_error(error))
            }
            Ok(LocalEvent::Reply(other)) => Err(unexpected(&other)),
            Ok(LocalEvent::Pull(_)) => Err(ApiError::internal("a download asked for plaintext")),
            Err(error) => Err(ApiError::from(error)),
        };
    }
}

fn octets(size: u64, body: Body) -> Response {
    let headers = [
        (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
        (header::CONTENT_LENGTH, size.to_string()),
    ];
    (headers, body).into_response()
}

fn download_error(error: DownloadError) -> ApiError {
    let status = match error {
        DownloadError::NotEnoughShares { .. } => StatusCode::GONE,
        DownloadError::Corrupt(_) => StatusCode::UNPROCESSABLE_ENTITY,
        DownloadError::Deadline => StatusCode::GATEWAY_TIMEOUT,
        DownloadError::Cancelled => StatusCode::CONFLICT,
    };
    ApiError::new(status, format!("download failed: {error}"))
}

fn unexpected(response: &LocalResponse) -> ApiError {
    ApiError::internal(format!(
        "the client actor answered out of turn: {response:?}"
    ))
}

// ---- the vdrive ----

#[derive(Deserialize)]
struct PathQuery {
    path: String,
}

#[derive(Deserialize)]
struct LinkQuery {
    path: String,
    cap: String,
    #[serde(default)]
    replace: bool,
    /// The file's modification time, Unix seconds.
    #[serde(default)]
    mtime: Option<u64>,
}

#[derive(Deserialize)]
struct RenameQuery {
    from: String,
    to: String,
}

async fn list(
    State(g): State<Arc<Gateway>>,
    Query(q): Query<PathQuery>,
) -> Result<Json<Vec<api::Entry>>, ApiError> {
    tree::list(&g, &q.path).await.map(Json)
}

async fn lookup(
    State(g): State<Arc<Gateway>>,
    Query(q): Query<PathQuery>,
) -> Result<Json<api::Entry>, ApiError> {
    tree::lookup(&g, &q.path).await.map(Json)
}

async fn mkdir(State(g): State<Arc<Gateway>>, Query(q): Query<PathQuery>) -> Result<(), ApiError> {
    tree::mkdir(&g, &q.path).await
}

async fn link(State(g): State<Arc<Gateway>>, Query(q): Query<LinkQuery>) -> Result<(), ApiError> {
    tree::link(&g, &q.path, &q.cap, q.replace, q.mtime).await
}

async fn rename(
    State(g): State<Arc<Gateway>>,
    Query(q): Query<RenameQuery>,
) -> Result<(), ApiError> {
    tree::rename(&g, &q.from, &q.to).await
}

async fn unlink(State(g): State<Arc<Gateway>>, Query(q): Query<PathQuery>) -> Result<(), ApiError> {
    tree::unlink(&g, &q.path).await
}

#[derive(Deserialize)]
struct ImportQuery {
    to: String,
}

/// Copies the grid's old global tree (every name in it) under `to` in the node's tree.
async fn import(
    State(g): State<Arc<Gateway>>,
    Query(q): Query<ImportQuery>,
) -> Result<Json<api::Imported>, ApiError> {
    tree::import(&g, &q.to).await.map(Json)
}

async fn vdrive(g: &Gateway, op: VdriveOp) -> Result<VdriveReply, ApiError> {
    let handle = g
        .node
        .request(Service::Client, LocalRequest::Vdrive(op))
        .await?;
    match handle.response().await? {
        LocalResponse::Vdrive(Ok(reply)) => Ok(reply),
        LocalResponse::Vdrive(Err(error)) => Err(vdrive_error(error)),
        other => Err(unexpected(&other)),
    }
}

fn vdrive_error(error: VdriveError) -> ApiError {
    let status = match error {
        VdriveError::NotFound(_) => StatusCode::NOT_FOUND,
        VdriveError::AlreadyExists(_) => StatusCode::CONFLICT,
        VdriveError::NotADirectory(_)
        | VdriveError::IsADirectory(_)
        | VdriveError::InvalidPath(..)
        | VdriveError::InvalidCap(_) => StatusCode::BAD_REQUEST,
        VdriveError::Storage(_) | VdriveError::Unreachable(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    ApiError::new(status, error.to_string())
}

#[derive(Deserialize)]
struct OperationQuery {
    id: String,
}

/// Cancels the upload named `id` (or, if it has not started, makes sure it never does).
async fn cancel_operation(
    State(g): State<Arc<Gateway>>,
    Query(q): Query<OperationQuery>,
) -> Result<Json<api::Cancelled>, ApiError> {
    let id = operations::operation_id(Some(&q.id))
        .ok_or_else(|| ApiError::bad_request("an operation id is 1-64 letters, digits or -"))?;
    let running = match g.operations.cancel(&id) {
        Some(local) => {
            g.node.cancel(local).await;
            true
        }
        None => false,
    };
    Ok(Json(api::Cancelled { running }))
}

// ---- status ----

async fn status(State(g): State<Arc<Gateway>>) -> Result<Json<api::Status>, ApiError> {
    let peers: HashMap<NodeId, (PeerState, Option<String>)> = g
        .transport
        .peers()
        .into_iter()
        .map(|peer| (peer.id, (peer.state, peer.last_error)))
        .collect();
    let report = if g.encoding.is_some() {
        let handle = g
            .node
            .request(Service::Client, LocalRequest::Status)
            .await?;
        match handle.response().await? {
            LocalResponse::Status(report) => Some(report),
            other => return Err(unexpected(&other)),
        }
    } else {
        None
    };
    let servers: Vec<api::Server> = report
        .iter()
        .flat_map(|r| &r.servers)
        .map(|s| api::Server {
            id: s.id.to_string(),
            address: public_address(&s.address),
            // This node's own storage server is reached without a connection.
            connection: match peers.get(&s.id) {
                _ if s.id == g.node.id() => "local".to_owned(),
                Some((state, _)) => state.to_string(),
                None => "idle".to_owned(),
            },
            last_error: peers.get(&s.id).and_then(|(_, e)| e.clone()),
            nickname: s.nickname.clone(),
            figures: s.figures,
            announced_recently: s.reachable,
            announced_secs_ago: s.heard_ago.as_secs(),
        })
        .collect();
    let storage = match g.roles.contains(&"storage") {
        true => {
            let handle = g
                .node
                .request(Service::Storage, LocalRequest::Status)
                .await?;
            match handle.response().await? {
                LocalResponse::Storage(r) => Some(api::OwnStorage {
                    figures: r.figures,
                    reserved_bytes: g.storage_reserved,
                    incoming_shares: r.status.incoming_shares,
                    leased_files: r.status.leased_files,
                    leases: r.status.leases,
                    advisories_received: r.status.advisories_received,
                    collector: collector_json(&r.collector),
                }),
                other => return Err(unexpected(&other)),
            }
        }
        false => None,
    };
    Ok(Json(api::Status {
        storage,
        upkeep: g.upkeep.as_ref().map(|s| s.status()),
        encoding: g.encoding.map(|(params, happy)| api::Encoding {
            shares_needed: params.k,
            shares_happy: happy,
            shares_total: params.n,
        }),
        node_id: g.node.id().to_string(),
        nickname: g.nickname.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_secs: g.started.elapsed().as_secs(),
        roles: g.roles.iter().map(|r| (*r).to_owned()).collect(),
        address: g.transport.furl().address(),
        // The client heard from an introducer lately, and a connection to one is still up
        // (or one runs here).
        introducer_connected: report.as_ref().map(|r| {
            let up = g.introducers.iter().any(|id| {
                *id == g.node.id()
                    || peers
                        .get(id)
                        .is_some_and(|(state, _)| *state == PeerState::Connected)
            });
            r.introducer_connected && up
        }),
        introducer_error: g
            .introducers
            .iter()
            .find_map(|id| peers.get(id).and_then(|(_, e)| e.clone())),
        actor_restarts: g.node.restarts(),
        servers_connected: servers
            .iter()
            .filter(|s| s.connection == "connected" || s.connection == "local")
            .count(),
        servers,
    }))
}

fn collector_json(c: &CollectorStatus) -> api::Collector {
    let secs = |t: Time| t.0 / 1_000_000_000;
    let pass = |p: &Pass| api::CollectorPass {
        started: secs(p.started),
        finished: p.finished.map(secs),
        files_examined: p.files_examined,
        shares_removed: p.shares_removed,
        bytes_freed: p.bytes_freed,
        shares_lapsing: p.shares_lapsing,
        bytes_lapsing: p.bytes_lapsing,
        errors: p.errors,
    };
    api::Collector {
        expire: crate::config::describe_expiry(c.expiry),
        current: c.current.as_ref().map(pass),
        last: c.last.as_ref().map(pass),
        next_pass: c.next_pass.map(secs),
    }
}

/// Where a server listens, without the secret its announced FURL carries: status output is
/// read by people and shown in pages, and a FURL's secret is a credential.
fn public_address(announced: &str) -> String {
    match announced.parse::<Furl>() {
        Ok(furl) => furl.address(),
        Err(_) => "(an address that is not a FURL)".to_owned(),
    }
}

// ---- browser sessions ----

async fn login_url(State(g): State<Arc<Gateway>>) -> Json<api::LoginUrl> {
    let code = g.auth.new_login_code();
    Json(api::LoginUrl {
        url: format!("{}/login?code={code}", g.base_url),
        valid_secs: auth::LOGIN_CODE_LIFETIME.as_secs(),
    })
}

#[derive(Deserialize)]
struct LoginQuery {
    code: String,
}

async fn login(
    State(g): State<Arc<Gateway>>,
    Query(q): Query<LoginQuery>,
) -> Result<Response, ApiError> {
    let Some(cookie) = g.auth.log_in(&q.code) else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "this login link was used already or has expired: `cairn -d DIR webopen` makes \
             a new one",
        ));
    };
    let mut response = Redirect::to("/").into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(response)
}
