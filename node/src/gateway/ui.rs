//! The web UI: a few server-rendered pages over the gateway's own API, with a small script
//! (built into the binary, like the style sheet) for what needs one: uploads with progress,
//! making, renaming and removing names, and checks.
//!
//! - `GET /` — the node: who it is, its introducer, the storage servers it knows, its own
//!   storage and upkeep.
//! - `GET /files?path=P` — a directory of the node's tree (`/` is its root; `ALIAS:/` the
//!   root of an alias): names, sizes, times, and what can be done to them.
//! - `GET /file?path=P` — a file: its caps, size, encoding, where its shares are, and check,
//!   verify and repair.
//! - `GET /operations` — uploads, downloads and checks, running and recent.
//!
//! The pages need a session like any request (`cairn -d DIR webopen`); without one, they
//! say how to get one. They load nothing from elsewhere and link nowhere else, and go out
//! under a Content-Security-Policy that lets only the gateway's own script and style run:
//! names in a shared directory are chosen by whoever shares it, and are only ever text here.

use super::activity::Record;
use super::{status, tree, ApiError, Gateway};
use crate::api;
use crate::commands::{describe_run, every, listing_time, relative};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytesize::ByteSize;
use cairn_codec::Cap;
use maud::{html, Markup, DOCTYPE};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// What the pages' responses allow: the gateway's own script and style, nothing else.
pub const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

const STYLE: &str = include_str!("ui/cairn.css");
const SCRIPT: &str = include_str!("ui/cairn.js");

/// The paths of the pages (GETs that answer with HTML).
pub fn is_page(path: &str) -> bool {
    matches!(path, "/" | "/files" | "/file" | "/operations")
}

/// The paths of the built-in assets, served to anyone: they hold nothing of the node's.
pub fn is_asset(path: &str) -> bool {
    matches!(path, "/ui/cairn.css" | "/ui/cairn.js")
}

pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

fn asset(content_type: &'static str, text: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, content_type),
        (header::CACHE_CONTROL, "no-cache"),
    ];
    (headers, text).into_response()
}

/// Which page the navigation marks as the one shown.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tab {
    Overview,
    Files,
    Operations,
}

/// A whole page: `body` under the node's header and navigation.
fn page(
    status: StatusCode,
    nickname: &str,
    title: &str,
    tab: Option<Tab>,
    body: Markup,
) -> Response {
    let link = |target: Tab, href: &str, label: &str| {
        html! {
            @if tab == Some(target) { a href=(href) aria-current="page" { (label) } }
            @else { a href=(href) { (label) } }
        }
    };
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · cairn" }
                link rel="stylesheet" href="/ui/cairn.css";
                script src="/ui/cairn.js" defer {}
            }
            body {
                header {
                    a.brand href="/" { "cairn" }
                    span.nickname { (nickname) }
                    nav {
                        (link(Tab::Overview, "/", "Overview"))
                        (link(Tab::Files, "/files", "Files"))
                        (link(Tab::Operations, "/operations", "Operations"))
                    }
                }
                main {
                    h1 { (title) }
                    p #notice role="alert" hidden {}
                    (body)
                }
            }
        }
    };
    let headers = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        // Pages show caps: never kept by a cache.
        (header::CACHE_CONTROL, "no-store"),
    ];
    (status, headers, markup.into_string()).into_response()
}

/// A page that says what went wrong.
fn error_page(g: &Gateway, title: &str, tab: Tab, error: ApiError) -> Response {
    let body = html! { p.error { (error.message) } };
    page(error.status, &g.nickname, title, Some(tab), body)
}

/// The page a browser without a session gets.
pub fn login_needed() -> Response {
    let body = html! {
        p { "This page needs a session. On the machine the node runs on, run" }
        pre { "cairn -d NODE_DIRECTORY webopen" }
        p { "and open the one-time link it prints (it is good for five minutes, once)." }
    };
    page(StatusCode::UNAUTHORIZED, "", "Log in", None, body)
}

/// `v` made safe for a URL's query.
fn encoded(v: &str) -> String {
    utf8_percent_encode(v, NON_ALPHANUMERIC).to_string()
}

fn files_url(path: &str) -> String {
    format!("/files?path={}", encoded(path))
}

fn file_url(path: &str) -> String {
    format!("/file?path={}", encoded(path))
}

/// Where a file downloads from, to be saved as `name`.
fn download_url(cap: &str, name: &str) -> String {
    format!("/uri/{}?filename={}", encoded(cap), encoded(name))
}

/// `name` in directory `dir`.
fn join(dir: &str, name: &str) -> String {
    match dir.ends_with('/') {
        true => format!("{dir}{name}"),
        false => format!("{dir}/{name}"),
    }
}

/// A path's root (`/` or `ALIAS:/`) and the names below it.
fn split_path(path: &str) -> (String, Vec<&str>) {
    let (prefix, rest) = match path.split_once(':') {
        Some((alias, rest)) if !alias.contains('/') => (format!("{alias}:"), rest),
        _ => (String::new(), path),
    };
    let names = rest.split('/').filter(|n| !n.is_empty()).collect();
    (prefix, names)
}

fn size(bytes: u64) -> String {
    ByteSize(bytes).to_string()
}

fn ago(secs: u64) -> String {
    match secs {
        0 => "just now".to_owned(),
        s => format!("{} ago", humantime::format_duration(Duration::from_secs(s))),
    }
}

fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

// ---- the overview ----

pub async fn overview(State(g): State<Arc<Gateway>>) -> Response {
    let s = match status(State(g.clone())).await {
        Ok(status) => status.0,
        Err(error) => return error_page(&g, "Overview", Tab::Overview, error),
    };
    let body = html! {
        section {
            h2 { "This node" }
            dl {
                dt { "Nickname" } dd { (s.nickname) }
                dt { "Node id" } dd { code { (s.node_id) } }
                dt { "Roles" } dd { (s.roles.join(", ")) }
                dt { "Version" } dd { (s.version) }
                dt { "Up for" } dd { (humantime::format_duration(Duration::from_secs(s.uptime_secs))) }
                dt { "Address" } dd { (s.address) }
                @if let Some(e) = &s.encoding {
                    dt { "Uploads" }
                    dd { (e.shares_needed) "-of-" (e.shares_total) ", happy when on "
                         (e.shares_happy) " servers" }
                }
            }
        }
        @if let Some(connected) = s.introducer_connected {
            section {
                h2 { "Introducer" }
                p {
                    @if connected { span.good { "connected" } }
                    @else { span.bad { "not connected" } }
                    @if let Some(error) = &s.introducer_error { " — " (error) }
                }
            }
        }
        @if s.introducer_connected.is_some() {
            section {
                h2 { "Storage servers (" (s.servers_connected) " of " (s.servers.len()) " connected)" }
                div.scroll { table {
                    thead { tr {
                        th { "Server" } th { "Address" } th { "Connection" }
                        th { "Announced" } th.num { "Shares" } th.num { "Used" } th.num { "Free" }
                    } }
                    tbody { @for server in &s.servers { (server_row(server)) } }
                } }
            }
        }
        @if let Some(storage) = &s.storage { (own_storage(storage)) }
        @if let Some(upkeep) = &s.upkeep { (upkeep_section(upkeep)) }
    };
    page(
        StatusCode::OK,
        &g.nickname,
        "Overview",
        Some(Tab::Overview),
        body,
    )
}

fn server_row(server: &api::Server) -> Markup {
    let up = matches!(server.connection.as_str(), "connected" | "local");
    html! {
        tr {
            td { (server.nickname) br; code.small { (short_id(&server.id)) } }
            td { (server.address) }
            td {
                span class=(if up { "good" } else { "bad" }) { (server.connection) }
                @if let Some(error) = &server.last_error { br; span.small { (error) } }
            }
            td {
                (ago(server.announced_secs_ago))
                @if !server.announced_recently { " " span.bad { "(stale)" } }
            }
            td.num { (server.figures.shares) }
            td.num { (size(server.figures.used_bytes)) }
            td.num { (size(server.figures.free_space)) }
        }
    }
}

fn own_storage(storage: &api::OwnStorage) -> Markup {
    let c = &storage.collector;
    let pass = |p: &api::CollectorPass| {
        format!(
            "started {}: {} files examined, {} shares ({}) removed, {} shares ({}) lapse \
             within a week, {} errors",
            relative(p.started),
            p.files_examined,
            p.shares_removed,
            size(p.bytes_freed),
            p.shares_lapsing,
            size(p.bytes_lapsing),
            p.errors
        )
    };
    html! {
        section {
            h2 { "This node's storage" }
            dl {
                dt { "Shares held" } dd { (storage.figures.shares) }
                dt { "Used" } dd { (size(storage.figures.used_bytes)) }
                dt { "Free" } dd { (size(storage.figures.free_space)) }
                dt { "Reserved" } dd { (size(storage.reserved_bytes)) }
                dt { "Being uploaded" } dd { (storage.incoming_shares) " shares" }
                dt { "Leases" } dd { (storage.leases) " on " (storage.leased_files) " files" }
                dt { "Corruption advisories" } dd { (storage.advisories_received) }
                dt { "Expiry" } dd { (c.expire) }
                @if let Some(p) = &c.current { dt { "Collecting" } dd { (pass(p)) } }
                @if let Some(p) = &c.last { dt { "Last collection" } dd { (pass(p)) } }
                @if let Some(next) = c.next_pass { dt { "Next collection" } dd { (relative(next)) } }
            }
        }
    }
}

fn upkeep_section(u: &api::Upkeep) -> Markup {
    let run = describe_run;
    html! {
        section {
            h2 { "Upkeep" }
            dl {
                dt { "Lease renewal" } dd { (every(u.renewal_interval_secs)) }
                @if let Some(r) = &u.last_renewal { dt { "Last renewal" } dd { (run(r)) } }
                @if let Some(at) = u.next_renewal { dt { "Next renewal" } dd { (relative(at)) } }
                dt { "Repair" } dd { (every(u.repair_interval_secs)) }
                @if let Some(r) = &u.last_repair { dt { "Last repair" } dd { (run(r)) } }
                @if let Some(at) = u.next_repair { dt { "Next repair" } dd { (relative(at)) } }
                @if let Some(r) = &u.running { dt { "Running" } dd { (r.kind) ", " (run(r)) } }
            }
        }
    }
}

// ---- the directory browser ----

#[derive(Deserialize)]
pub struct PathQuery {
    #[serde(default)]
    path: Option<String>,
}

pub async fn files(State(g): State<Arc<Gateway>>, Query(q): Query<PathQuery>) -> Response {
    let path = q.path.unwrap_or_else(|| "/".to_owned());
    match directory(&g, &path).await {
        Ok(body) => page(StatusCode::OK, &g.nickname, "Files", Some(Tab::Files), body),
        Err(error) => error_page(&g, "Files", Tab::Files, error),
    }
}

async fn directory(g: &Gateway, path: &str) -> Result<Markup, ApiError> {
    let roots = match &g.tree {
        Some(tree) => tree.roots()?,
        None => Vec::new(),
    };
    let this = tree::lookup(g, path).await?;
    if this.kind != "dir" {
        return Err(ApiError::bad_request(format!(
            "{path} is a file, not a directory"
        )));
    }
    let mut entries = tree::list(g, path).await?;
    entries.sort_by(|a, b| (a.kind != "dir", &a.name).cmp(&(b.kind != "dir", &b.name)));
    let writable = this.write_cap.is_some();
    let (prefix, names) = split_path(path);
    Ok(html! {
        nav.roots aria-label="roots" {
            "Roots: "
            @for root in &roots {
                @let start = if root == crate::nodedir::ROOT_ALIAS { "/".to_owned() } else { format!("{root}:/") };
                a href=(files_url(&start)) { (root) ":" }
                " "
            }
        }
        nav.crumbs aria-label="path" {
            a href=(files_url(&format!("{prefix}/"))) {
                @if prefix.is_empty() { "cairn:" } @else { (prefix) }
            }
            @for (i, name) in names.iter().enumerate() {
                " / "
                a href=(files_url(&format!("{prefix}/{}", names[..=i].join("/")))) { (name) }
            }
        }
        @if writable {
            div.actions {
                form.upload data-action="upload" data-dir=(path) {
                    label { "Upload " input type="file" name="files" multiple required; }
                    button type="submit" { "Upload" }
                    progress hidden max="1" value="0" {}
                    span.progress-text {}
                }
                form data-action="mkdir" data-dir=(path) {
                    label { "New directory " input type="text" name="name" required; }
                    button type="submit" { "Create" }
                }
            }
        } @else {
            p.small { "Read-only: this directory was shared with you by its read cap." }
        }
        div.scroll { table.listing {
            thead { tr { th { "Name" } th.num { "Size" } th.mtime { "Modified" } th { } } }
            tbody {
                @if entries.is_empty() { tr { td colspan="4" { em { "empty" } } } }
                @for entry in &entries { (entry_row(path, entry, writable)) }
            }
        } }
        details.caps {
            summary { "Share this directory" }
            p.small { "Anyone with the read cap can list and read everything below here; \
                       with the write cap, change it too." }
            @if let Some(read) = &this.read_cap { p { "Read cap: " code.cap { (read) } } }
            @if let Some(write) = &this.write_cap { p { "Write cap: " code.cap { (write) } } }
        }
    })
}

fn entry_row(dir: &str, entry: &api::Entry, writable: bool) -> Markup {
    let path = join(dir, &entry.name);
    let is_dir = entry.kind == "dir";
    html! {
        tr data-name=(entry.name) {
            td.name {
                @if is_dir { a.dir href=(files_url(&path)) { (entry.name) "/" } }
                @else { a.file href=(file_url(&path)) { (entry.name) } }
            }
            td.num { @if let Some(bytes) = entry.size { (size(bytes)) } }
            td.mtime { @if let Some(t) = entry.mtime { (listing_time(t)) } }
            td.row-actions {
                @if let Some(cap) = &entry.cap {
                    a.download href=(download_url(cap, &entry.name)) { "Download" }
                }
                @if writable {
                    details {
                        summary { "More" }
                        form data-action="rename" data-path=(path) data-dir=(dir) {
                            input type="text" name="to" value=(entry.name) aria-label="new name" required;
                            button type="submit" { "Rename" }
                        }
                        form data-action="unlink" data-path=(path) {
                            button.danger type="submit" { "Remove" }
                        }
                    }
                }
            }
        }
    }
}

// ---- a file ----

pub async fn file(State(g): State<Arc<Gateway>>, Query(q): Query<PathQuery>) -> Response {
    let path = q.path.unwrap_or_default();
    match file_body(&g, &path).await {
        Ok(body) => page(StatusCode::OK, &g.nickname, "File", Some(Tab::Files), body),
        Err(error) => error_page(&g, "File", Tab::Files, error),
    }
}

async fn file_body(g: &Arc<Gateway>, path: &str) -> Result<Markup, ApiError> {
    let entry = tree::lookup(g, path).await?;
    let Some(cap_text) = entry.cap.clone() else {
        return Err(ApiError::bad_request(format!(
            "{path} is a directory, not a file"
        )));
    };
    let cap = cap_text
        .parse::<Cap>()
        .map_err(|e| ApiError::bad_request(format!("{path} holds a cap that is not one: {e}")))?;
    let (encoding, verify_cap) = match &cap {
        Cap::Chk(c) => (
            format!(
                "{}-of-{}: any {} of its {} shares rebuild it",
                c.k, c.n, c.k, c.n
            ),
            Some(c.verifier().to_string()),
        ),
        _ => (
            "literal: the file is in its cap, and on no server".to_owned(),
            None,
        ),
    };
    // The servers' names, for the share table the script fills in (ids alone, if the
    // status cannot be had).
    let nicknames: serde_json::Map<String, serde_json::Value> = match status(State(g.clone())).await
    {
        Ok(status) => status
            .0
            .servers
            .into_iter()
            .map(|s| (s.id, s.nickname.into()))
            .collect(),
        Err(_) => serde_json::Map::new(),
    };
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    let dir = if dir.is_empty() || dir.ends_with(':') {
        format!("{dir}/")
    } else {
        dir.to_owned()
    };
    Ok(html! {
        nav.crumbs { a href=(files_url(&dir)) { "← " (dir) } }
        h2.filename { (name) }
        dl {
            dt { "Size" } dd { (entry.size.map(size).unwrap_or_default()) }
            @if let Some(t) = entry.mtime { dt { "Modified" } dd { (listing_time(t)) } }
            dt { "Encoding" } dd { (encoding) }
            dt { "Read cap" } dd { code.cap { (cap_text) } }
            @if let Some(v) = &verify_cap { dt { "Verify cap" } dd { code.cap { (v) } } }
        }
        p { a.download href=(download_url(&cap_text, name)) { "Download" } }
        @if verify_cap.is_some() {
            section #health data-cap=(cap_text) data-nicknames=(serde_json::Value::Object(nicknames)) {
                h2 { "Health" }
                p {
                    button type="button" data-check="check" { "Check" } " "
                    button type="button" data-check="verify" { "Verify" } " "
                    button type="button" data-check="repair" { "Verify and repair" }
                }
                p.small { "Check asks every server which shares it holds; verify also reads \
                           every share and proves it against the cap; repair rebuilds what \
                           is missing or bad." }
                div #report {}
            }
        }
    })
}

// ---- operations ----

pub async fn operations(State(g): State<Arc<Gateway>>) -> Response {
    let shot = g.metrics.activity.snapshot();
    let body = html! {
        section data-running=(shot.running.len()) {
            h2 { "Running (" (shot.running.len()) ")" }
            (operation_table(&shot.running))
        }
        section {
            h2 { "Recent" }
            (operation_table(&shot.finished))
        }
    };
    page(
        StatusCode::OK,
        &g.nickname,
        "Operations",
        Some(Tab::Operations),
        body,
    )
}

fn operation_table(records: &[Record]) -> Markup {
    html! {
        @if records.is_empty() { p { em { "none" } } }
        @else {
            div.scroll { table.operations {
                thead { tr {
                    th { "Kind" } th { "What" } th { "Started" } th.num { "Took" }
                    th { "Progress" } th.num { "Rate" } th { "Outcome" }
                } }
                tbody { @for r in records { (operation_row(r)) } }
            } }
        }
    }
}

fn operation_row(r: &Record) -> Markup {
    let started = r
        .started
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let elapsed = r.elapsed();
    let took = match elapsed.as_secs_f64() {
        secs if secs < 1.0 => format!("{} ms", elapsed.as_millis()),
        secs => format!("{secs:.1} s"),
    };
    html! {
        tr.operation data-kind=(r.kind.label()) {
            td { (r.kind.label()) }
            td { (r.what) }
            td { (relative(started)) }
            td.num { (took) }
            td {
                @if r.outcome.is_some() {
                    @if r.done > 0 { (size(r.done)) }
                } @else {
                    (r.phase)
                    @if r.done > 0 || r.total.is_some() { ": " (size(r.done)) }
                    @if let Some(total) = r.total {
                        " of " (size(total)) " " progress max=(total.max(1)) value=(r.done) {}
                    }
                }
            }
            td.num { @if let Some(rate) = r.rate() { (size(rate as u64)) "/s" } }
            td {
                @match &r.outcome {
                    None => span { "running" },
                    Some(Ok(())) => span.good { "succeeded" },
                    Some(Err(why)) => span.bad { "failed: " (why) },
                }
            }
        }
    }
}
