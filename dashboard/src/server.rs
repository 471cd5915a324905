//! The HTTP server: axum routes on a hyper HTTP/1.1 connection loop that
//! enforces limits, in a tokio runtime on its own thread.
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the web page: run in progress and past runs |
//! | `GET /metrics` | Prometheus text 0.0.4, or OpenMetrics 1.0 when `Accept` asks for it |
//! | `GET /api/live`, `/api/live/history` | the live state as JSON (with hit-rate history) |
//! | `GET /api/runs` | results files in the results directory |
//! | `GET /api/runs/{name}` | one results file |
//! | `GET /runs/{name}` | the page of one past run |
//! | `GET /plot/{name}/{kind}.svg` | a plot of one past run |
//! | `GET /live/plot/{kind}.svg` | a plot of the live run |
//! | `GET /static/DejaVuSans.ttf` | the font the plots use |
//!
//! Defences, all answered with a clean 4xx: run names are checked and
//! resolved inside the results directory only ([`ResultsDir`]); request
//! lines over [`Limits::max_uri_bytes`] get 414, header blocks over
//! [`Limits::max_header_bytes`] 431 (hyper's read buffer is sized to match,
//! so nothing larger is even buffered); methods other than GET/HEAD 405;
//! bodies 413. Slow clients: the request head must arrive within
//! [`Limits::header_read_timeout`], a handler must finish within
//! [`Limits::request_timeout`], a connection lives at most
//! [`Limits::connection_lifetime`], and at most
//! [`Limits::max_connections`] are open at once (further ones wait in the
//! kernel's backlog).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;

use crate::live::LiveMetrics;
use crate::page::{self, IndexPage, LivePlots};
use crate::plot::{self, PlotKind};
use crate::results::{ResultsDir, ResultsFile, RunEntry};
use crate::{Error, Result};

/// Where `cachescope serve` listens unless told otherwise (loopback only).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";

/// Limits that protect the server from bad or slow clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request target (path and query) in bytes.
    pub max_uri_bytes: usize,
    /// Largest header block (names and values) in bytes.
    pub max_header_bytes: usize,
    /// Most header fields.
    pub max_headers: usize,
    /// Largest request body in bytes (the server reads none).
    pub max_body_bytes: u64,
    /// Time allowed for a request head to arrive.
    pub header_read_timeout: Duration,
    /// Time allowed for a handler to answer.
    pub request_timeout: Duration,
    /// Longest a connection (keep-alive included) stays open.
    pub connection_lifetime: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// Largest results file served or plotted, in bytes.
    pub max_results_file_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_uri_bytes: 8 * 1024,
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            max_body_bytes: 64 * 1024,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            connection_lifetime: Duration::from_secs(300),
            max_connections: 256,
            max_results_file_bytes: 64 << 20,
        }
    }
}

/// What [`serve`] serves.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Directory of results files (past runs); `None`: no past runs.
    pub results_dir: Option<PathBuf>,
    /// The run in progress; `None`: no live section (`/metrics` then
    /// carries only the exporter's own series).
    pub live: Option<LiveMetrics>,
    /// Request limits and timeouts.
    pub limits: Limits,
    /// Seconds between refreshes of the web page's live section.
    pub refresh_seconds: u32,
    /// Title of the web page.
    pub title: String,
    /// Worker threads of the server's runtime (its own, so the caller's
    /// threads are never borrowed).
    pub worker_threads: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            results_dir: None,
            live: None,
            limits: Limits::default(),
            refresh_seconds: 2,
            title: "cachescope".into(),
            worker_threads: 2,
        }
    }
}

/// A running server. Dropping it stops the server too.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl ServerHandle {
    /// The address the server listens on (the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, closes open connections and waits for the server's
    /// thread.
    ///
    /// # Errors
    /// [`Error::Server`] if the server's thread failed.
    pub fn stop(mut self) -> Result<()> {
        self.stop_inner()
    }

    /// Blocks until the server stops (it stops only on a fatal error, so
    /// this is "serve until the process is killed").
    ///
    /// # Errors
    /// [`Error::Server`] with the reason it stopped.
    pub fn wait(mut self) -> Result<()> {
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| Error::Server("the server thread panicked".into()))?,
            None => Ok(()),
        }
    }

    fn stop_inner(&mut self) -> Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| Error::Server("the server thread panicked".into()))?,
            None => Ok(()),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

#[derive(Debug)]
struct App {
    live: LiveMetrics,
    has_live: bool,
    results: Option<ResultsDir>,
    refresh_seconds: u32,
    title: String,
}

/// Starts the server on `addr` (pass port 0 for any free port) in a tokio
/// runtime on its own thread and returns once it is listening.
///
/// # Errors
/// [`Error::Bind`] when the address cannot be bound, [`Error::Io`] when the
/// results directory does not exist, [`Error::Server`] when the runtime
/// cannot start.
pub fn serve(addr: SocketAddr, config: ServeConfig) -> Result<ServerHandle> {
    let results = match &config.results_dir {
        Some(dir) => Some(ResultsDir::open(dir, config.limits.max_results_file_bytes)?),
        None => None,
    };
    let listener = std::net::TcpListener::bind(addr).map_err(|source| Error::Bind { addr, source })?;
    listener.set_nonblocking(true).map_err(|source| Error::Bind { addr, source })?;
    let local = listener.local_addr().map_err(|source| Error::Bind { addr, source })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.worker_threads.max(1))
        .max_blocking_threads(8)
        .thread_name("cachescope-http")
        .enable_all()
        .build()
        .map_err(|e| Error::Server(format!("cannot start the runtime: {e}")))?;
    let listener = {
        let _guard = runtime.enter();
        tokio::net::TcpListener::from_std(listener).map_err(|source| Error::Bind { addr, source })?
    };
    let app = Arc::new(App {
        has_live: config.live.is_some(),
        live: config.live.clone().unwrap_or_default(),
        results,
        refresh_seconds: config.refresh_seconds,
        title: config.title.clone(),
    });
    let router = router(app, config.limits);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let limits = config.limits;
    let thread = std::thread::Builder::new()
        .name("cachescope-serve".into())
        .spawn(move || {
            runtime.block_on(accept_loop(listener, router, limits, rx));
            // Open connections are cancelled with the runtime.
            runtime.shutdown_timeout(Duration::from_secs(2));
            Ok(())
        })
        .map_err(|e| Error::Server(format!("cannot start the server thread: {e}")))?;
    Ok(ServerHandle { addr: local, shutdown: Some(tx), thread: Some(thread) })
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: Limits,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_headers)
        // Room for a full request line and header block, and no more:
        // anything larger is refused by hyper (431) before it is buffered.
        .max_buf_size((limits.max_uri_bytes + limits.max_header_bytes + 1024).max(8192));
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => return,
            p = Arc::clone(&slots).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let stream = tokio::select! {
            _ = &mut shutdown => return,
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(_) => {
                    // Out of descriptors or a connection reset before accept:
                    // back off briefly instead of spinning.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(router.clone()));
        let lifetime = limits.connection_lifetime;
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tokio::time::timeout(lifetime, conn).await;
        });
    }
}

fn router(app: Arc<App>, limits: Limits) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/metrics", get(metrics))
        .route("/api/live", get(api_live))
        .route("/api/live/history", get(api_live_history))
        .route("/api/runs", get(api_runs))
        .route("/api/runs/{*name}", get(api_run))
        .route("/runs/{*name}", get(run_page))
        .route("/plot/{*rest}", get(run_plot))
        .route("/live/plot/{file}", get(live_plot))
        .route("/static/DejaVuSans.ttf", get(font))
        .fallback(not_found)
        .with_state(app)
        .layer(middleware::from_fn_with_state(limits, guard))
}

/// Enforces [`Limits`] before any handler runs, and the handler timeout.
async fn guard(State(limits): State<Limits>, req: Request, next: Next) -> Response {
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > limits.max_uri_bytes {
        return error(StatusCode::URI_TOO_LONG, "request target too long");
    }
    let header_bytes: usize = req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    if header_bytes > limits.max_header_bytes {
        return error(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "request headers too large");
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD");
        r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    if declared > limits.max_body_bytes || req.headers().contains_key(header::TRANSFER_ENCODING) {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "request bodies are not accepted");
    }
    let mut resp = match tokio::time::timeout(limits.request_timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "the request took too long"),
    };
    resp.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    resp
}

fn error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": message }).to_string();
    (status, [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], body).into_response()
}

fn error_response(e: &Error, name: &str) -> Response {
    match e {
        Error::BadRunName { .. } => error(StatusCode::BAD_REQUEST, &e.to_string()),
        Error::UnknownRun(_) | Error::NoResultsDir => error(StatusCode::NOT_FOUND, &e.to_string()),
        Error::Plot { .. } => error(StatusCode::NOT_FOUND, &e.to_string()),
        // Do not show server paths: name the run instead.
        Error::Results { message, .. } => {
            error(StatusCode::INTERNAL_SERVER_ERROR, &format!("results `{name}` cannot be read: {message}"))
        }
        Error::Io { source, .. } => {
            error(StatusCode::INTERNAL_SERVER_ERROR, &format!("results `{name}` cannot be read: {source}"))
        }
        _ => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// Runs blocking work (file reads, plotting, encoding) off the I/O threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::Server(format!("worker failed: {e}")))
}

fn with_type(content_type: &'static str, body: impl Into<Body>) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-store")], body.into()).into_response()
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such page")
}

/// Whether the scraper prefers OpenMetrics (by the `Accept` q-values).
pub fn wants_openmetrics(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else { return false };
    let q_of = |wanted: &str| -> f64 {
        accept
            .split(',')
            .filter_map(|item| {
                let mut parts = item.split(';').map(str::trim);
                let media = parts.next()?;
                if media != wanted {
                    return None;
                }
                let q = parts.find_map(|p| p.strip_prefix("q=")).and_then(|q| q.parse().ok()).unwrap_or(1.0);
                Some(q)
            })
            .fold(-1.0, f64::max)
    };
    let om = q_of("application/openmetrics-text");
    om > 0.0 && om >= q_of("text/plain")
}

async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let om = wants_openmetrics(&headers);
    let live = app.live.clone();
    let out = blocking(move || if om { live.encode_openmetrics() } else { live.encode_prometheus_text() }).await;
    match out.and_then(|r| r) {
        Ok(text) if om => with_type("application/openmetrics-text; version=1.0.0; charset=utf-8", text),
        Ok(text) => with_type("text/plain; version=0.0.4; charset=utf-8", text),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

fn json<T: serde::Serialize>(value: &T) -> Response {
    match serde_json::to_string(value) {
        Ok(s) => with_type("application/json", s),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn api_live(State(app): State<Arc<App>>) -> Response {
    json(&app.live.snapshot(false))
}

async fn api_live_history(State(app): State<Arc<App>>) -> Response {
    json(&app.live.snapshot(true))
}

fn results_dir(app: &App) -> Result<&ResultsDir> {
    app.results.as_ref().ok_or(Error::NoResultsDir)
}

async fn api_runs(State(app): State<Arc<App>>) -> Response {
    let listed = blocking(move || results_dir(&app).and_then(ResultsDir::list)).await.and_then(|r| r);
    match listed {
        Ok(runs) => json(&runs),
        Err(e) => error_response(&e, ""),
    }
}

async fn api_run(State(app): State<Arc<App>>, UrlPath(name): UrlPath<String>) -> Response {
    let n = name.clone();
    let text = blocking(move || results_dir(&app).and_then(|d| d.read_text(&n))).await.and_then(|r| r);
    match text {
        Ok(text) => with_type("application/json", text),
        Err(e) => error_response(&e, &name),
    }
}

fn kinds_with_data(results: &ResultsFile) -> Vec<PlotKind> {
    plot::results_kinds(results)
}

async fn run_page(State(app): State<Arc<App>>, UrlPath(name): UrlPath<String>) -> Response {
    let n = name.clone();
    let html = blocking(move || {
        let results = results_dir(&app)?.read(&n)?;
        let kinds = kinds_with_data(&results);
        Ok::<_, Error>(page::run_page(&app.title, &n, &results, &kinds))
    })
    .await
    .and_then(|r| r);
    match html {
        Ok(h) => with_type("text/html; charset=utf-8", h),
        Err(e) => error_response(&e, &name),
    }
}

async fn run_plot(State(app): State<Arc<App>>, UrlPath(rest): UrlPath<String>) -> Response {
    let Some((name, file)) = rest.rsplit_once('/') else {
        return error(StatusCode::NOT_FOUND, "expected /plot/{run}/{kind}.svg");
    };
    let Some(kind) = file.strip_suffix(".svg").and_then(PlotKind::parse) else {
        return error(
            StatusCode::NOT_FOUND,
            "unknown plot; kinds: miss_ratio, byte_miss_ratio, evictions, latency (.svg)",
        );
    };
    let n = name.to_string();
    let svg = blocking(move || plot::results_svg(kind, &results_dir(&app)?.read(&n)?)).await.and_then(|r| r);
    match svg {
        Ok(s) => with_type("image/svg+xml", s),
        Err(e) => error_response(&e, name),
    }
}

async fn live_plot(State(app): State<Arc<App>>, UrlPath(file): UrlPath<String>) -> Response {
    let Some(kind) = file.strip_suffix(".svg").and_then(PlotKind::parse) else {
        return error(StatusCode::NOT_FOUND, "unknown plot; live kinds: hit_rate, latency (.svg)");
    };
    let live = app.live.clone();
    let svg = blocking(move || plot::live_svg(kind, &live.snapshot(kind == PlotKind::HitRate))).await.and_then(|r| r);
    match svg {
        Ok(s) => with_type("image/svg+xml", s),
        Err(e) => error_response(&e, ""),
    }
}

async fn font() -> Response {
    ([(header::CONTENT_TYPE, "font/ttf"), (header::CACHE_CONTROL, "public, max-age=86400")], plot::FONT_TTF)
        .into_response()
}

async fn index(State(app): State<Arc<App>>) -> Response {
    let html = blocking(move || {
        let live = app.has_live.then(|| app.live.snapshot(true));
        let plots = live.as_ref().map(|snap| LivePlots {
            svgs: page::live_plot_kinds(snap)
                .into_iter()
                .filter_map(|k| plot::live_svg(k, snap).ok().map(|s| (k, s)))
                .collect(),
        });
        let mut runs: Option<Vec<RunEntry>> = app.results.as_ref().map(|d| d.list().unwrap_or_default());
        if let Some(r) = runs.as_mut() {
            r.sort_by(|a, b| b.modified_unix_ms.cmp(&a.modified_unix_ms).then_with(|| a.name.cmp(&b.name)));
        }
        let latest = match (&app.results, runs.as_ref().and_then(|r| r.first())) {
            (Some(dir), Some(entry)) => dir.read(&entry.name).ok().map(|f| (entry.name.clone(), f)),
            _ => None,
        };
        let latest_kinds = latest.as_ref().map(|(_, f)| kinds_with_data(f));
        page::index(&IndexPage {
            title: &app.title,
            refresh_seconds: app.refresh_seconds,
            live: live.as_ref().zip(plots.as_ref()),
            runs: runs.as_deref(),
            latest: latest.as_ref().zip(latest_kinds).map(|((n, f), k)| (n.as_str(), f, k)),
        })
    })
    .await;
    match html {
        Ok(h) => with_type("text/html; charset=utf-8", h),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_negotiation() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
            wants_openmetrics(&m)
        };
        // What Prometheus 2.x sends.
        assert!(h(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        ));
        assert!(!h("text/plain;version=0.0.4"));
        assert!(!h("text/plain, application/openmetrics-text;q=0.5"));
        assert!(!h("*/*"));
        assert!(!wants_openmetrics(&HeaderMap::new()));
    }
}
