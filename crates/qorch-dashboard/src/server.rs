//! [`Dashboard`]: the HTTP server (axum, on a tokio executor of its own thread): the page,
//! its event stream, the tree's levels, and the limits (loopback by default, the token,
//! the client bound).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::config::DashboardConfig;
use crate::error::DashboardError;
use crate::feed::{Event, Feed, PoolPoint, RoundPoint, RunInfo, RunState};
use crate::tree::{Tree, TreeNode, sample};

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const STYLE_CSS: &str = include_str!("../assets/style.css");

/// How long a stopping server waits for its pages to take the last update.
const STOP_GRACE: Duration = Duration::from_secs(2);

struct App {
    feed: Feed,
    tree: std::sync::Mutex<Tree>,
    config: DashboardConfig,
    clients: AtomicUsize,
    /// Wakes the sampler when a page opens (its first tree comes at once).
    page_opened: tokio::sync::Notify,
    stopping: watch::Receiver<bool>,
}

/// A running dashboard: an HTTP server on a thread of its own, serving one page and its
/// live updates. Dropping it stops the server (as [`Dashboard::stop`]).
///
/// Routes, all `GET` (the dashboard is read-only): `/` the page (its script and style built
/// into the binary, no CDN), `/events` the page's Server-Sent Events, `/api/state` the
/// whole state as JSON, `/api/tree?node=KEY&sort=depth|rate|agents|name&limit=N` one node's
/// children (the top-level clusters without `node`), sorted, at most `N` of them (200 by
/// default, at most 1,000) with their total.
#[must_use = "the dashboard stops when dropped"]
pub struct Dashboard {
    feed: Feed,
    local_addr: SocketAddr,
    stop: Option<watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
    app: Arc<App>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Dashboard {
    /// Checks `config`, binds its address (so that a port in use is an error now, before any
    /// run) and starts serving `feed` on a thread of its own.
    ///
    /// # Errors
    ///
    /// As [`DashboardConfig::validate`]; [`DashboardError::PortInUse`] or
    /// [`DashboardError::Bind`] if the address cannot be bound; [`DashboardError::Start`].
    pub fn start(config: DashboardConfig, feed: Feed) -> Result<Dashboard, DashboardError> {
        config.validate()?;
        let addr = config.addr;
        let listener = std::net::TcpListener::bind(addr).map_err(|source| {
            if source.kind() == std::io::ErrorKind::AddrInUse {
                DashboardError::PortInUse { addr }
            } else {
                DashboardError::Bind { addr, source }
            }
        })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| DashboardError::Bind { addr, source })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| DashboardError::Bind { addr, source })?;
        let exec = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(DashboardError::Start)?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let app = Arc::new(App {
            feed: feed.clone(),
            tree: std::sync::Mutex::default(),
            config,
            clients: AtomicUsize::new(0),
            page_opened: tokio::sync::Notify::new(),
            stopping: stop_rx.clone(),
        });
        let served = Arc::clone(&app);
        let thread = std::thread::Builder::new()
            .name("qorch-dashboard".into())
            .spawn(move || exec.block_on(serve(listener, served, stop_rx)))
            .map_err(DashboardError::Start)?;
        tracing::info!("dashboard on http://{local_addr}/");
        Ok(Dashboard {
            feed,
            local_addr,
            stop: Some(stop_tx),
            thread: Some(thread),
            app,
        })
    }

    /// The address served (with the port picked, where port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The feed the pages are served from.
    pub fn feed(&self) -> &Feed {
        &self.feed
    }

    /// Pages open now (live event streams).
    pub fn clients(&self) -> usize {
        self.app.clients.load(Ordering::Relaxed)
    }

    /// Stops serving: open pages get the last update, then their streams end (waiting at
    /// most 2 seconds for them).
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(true);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        self.stop_now();
    }
}

async fn serve(listener: std::net::TcpListener, app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("dashboard: cannot serve: {e}");
            return;
        }
    };
    let sampler = tokio::spawn(sample_tree(Arc::clone(&app)));
    let router = Router::new()
        .route("/", get(index))
        .route("/app.js", get(app_js))
        .route("/style.css", get(style_css))
        .route("/events", get(events))
        .route("/api/state", get(state))
        .route("/api/tree", get(tree))
        .layer(middleware::from_fn_with_state(Arc::clone(&app), authorize))
        .with_state(Arc::clone(&app));
    let mut grace = stop.clone();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        let _ = stop.wait_for(|s| *s).await;
    });
    tokio::select! {
        r = server => {
            if let Err(e) = r {
                tracing::warn!("dashboard: {e}");
            }
        }
        () = async {
            let _ = grace.wait_for(|s| *s).await;
            tokio::time::sleep(STOP_GRACE).await;
        } => {}
    }
    sampler.abort();
}

/// Samples the tree every refresh while a page is open and a runtime is observed, or takes
/// the processes a distributed run reported since the last time.
async fn sample_tree(app: Arc<App>) {
    let every = app.config.refresh;
    let mut processes_seen = 0;
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = app.page_opened.notified() => {}
        }
        if app.clients.load(Ordering::Relaxed) == 0 {
            continue;
        }
        let (observer, processes) = {
            let s = app.feed.lock();
            let fresh = (s.process_updates != processes_seen)
                .then(|| s.processes.clone())
                .flatten();
            processes_seen = s.process_updates;
            (s.observer.clone(), fresh)
        };
        let Some(observer) = observer else {
            if let Some((p, at)) = processes {
                app.tree
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .update_processes(&p, at);
            }
            continue;
        };
        let (loads, status) = sample(&observer, every.max(Duration::from_millis(200))).await;
        let now = Instant::now();
        app.tree
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .update(&loads, status.as_ref(), now);
    }
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// Refuses requests without the token, where one is set.
async fn authorize(
    State(app): State<Arc<App>>,
    Query(q): Query<TokenQuery>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    if let Some(expected) = &app.config.token {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let given = bearer.or(q.token.as_deref());
        if !given.is_some_and(|g| same(g.as_bytes(), expected.as_bytes())) {
            return (StatusCode::UNAUTHORIZED, "a token is needed\n").into_response();
        }
    }
    next.run(request).await
}

/// Compares in time independent of where the two differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn index() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        INDEX_HTML,
    )
}

async fn app_js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        APP_JS,
    )
}

async fn style_css() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        STYLE_CSS,
    )
}

/// One update of a page: what changed since its last one.
#[derive(Serialize)]
struct Update {
    info: RunInfo,
    run: RunState,
    /// Seconds since the dashboard started.
    uptime: f64,
    rounds_finished: u64,
    rounds: Vec<RoundPoint>,
    pools: Vec<PoolPoint>,
    events: Vec<Event>,
    /// The totals of the tree; `None` until the tree is sampled (pages then ask for its
    /// levels at `/api/tree`).
    totals: Option<TreeNode>,
    /// Whether the dashboard observes a runtime in this process, or has a distributed run's
    /// processes (no tree otherwise).
    observed: bool,
}

/// Where a page's stream is: the next index of each history.
#[derive(Default, Clone, Copy)]
struct Cursor {
    rounds: u64,
    pools: u64,
    events: u64,
}

fn update(app: &App, cursor: &mut Cursor) -> Update {
    let totals = {
        let t = app
            .tree
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        t.sampled.then(|| t.totals())
    };
    let s = app.feed.lock();
    let u = Update {
        info: s.info.clone(),
        run: s.run.clone(),
        uptime: app.feed.inner.started.elapsed().as_secs_f64(),
        rounds_finished: s.rounds.end(),
        rounds: s.rounds.since(cursor.rounds),
        pools: s.pools.since(cursor.pools),
        events: s.events.since(cursor.events),
        totals,
        observed: s.observer.is_some() || s.processes.is_some(),
    };
    *cursor = Cursor {
        rounds: s.rounds.end(),
        pools: s.pools.end(),
        events: s.events.end(),
    };
    u
}

/// Counts a page's stream while it lives.
struct ClientSlot(Arc<App>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The page's event stream: an update at once, then one per refresh (what changed since
/// the last, and the tree's totals), the last one when the server stops.
async fn events(State(app): State<Arc<App>>) -> Response {
    let max = app.config.max_clients;
    if app
        .clients
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .is_err()
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("too many dashboard clients (at most {max})\n"),
        )
            .into_response();
    }
    let slot = ClientSlot(Arc::clone(&app));
    app.page_opened.notify_one();
    let stopping = app.stopping.clone();
    let start = (slot, stopping, Cursor::default(), true, false);
    let stream = futures_util::stream::unfold(
        start,
        |(slot, mut stopping, mut cursor, first, done)| async move {
            if done {
                return None;
            }
            if !first {
                let refresh = slot.0.config.refresh;
                tokio::select! {
                    () = tokio::time::sleep(refresh) => {}
                    _ = stopping.wait_for(|s| *s) => {}
                }
            }
            let u = update(&slot.0, &mut cursor);
            let last = *stopping.borrow();
            let data = serde_json::to_string(&u).unwrap_or_else(|_| "{}".into());
            let event = SseEvent::default().event("update").data(data);
            Some((
                Ok::<_, std::convert::Infallible>(event),
                (slot, stopping, cursor, false, last),
            ))
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn json<T: Serialize>(x: &T) -> Response {
    match serde_json::to_string(x) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn state(State(app): State<Arc<App>>) -> Response {
    let mut cursor = Cursor::default();
    json(&update(&app, &mut cursor))
}

#[derive(Deserialize)]
struct TreeQuery {
    node: Option<String>,
    sort: Option<TreeSort>,
    limit: Option<usize>,
}

/// The order of a level of the tree.
#[derive(Deserialize, Clone, Copy, Default)]
#[serde(rename_all = "snake_case")]
enum TreeSort {
    /// Deepest mailboxes first (then the busiest).
    #[default]
    Depth,
    /// Busiest first (then the deepest).
    Rate,
    /// Most agents first.
    Agents,
    /// By name, numbers in names compared as numbers (`c2` before `c10`).
    Name,
}

/// Rows of one level sent at most (a page says how many more there are).
const LEVEL_LIMIT: usize = 1_000;
/// Rows of one level sent by default.
const LEVEL_DEFAULT: usize = 200;

/// One level of the tree, sorted and cut.
#[derive(Serialize)]
struct Level {
    /// Nodes at this level.
    total: usize,
    /// The first `limit` of them, in the order asked for.
    nodes: Vec<TreeNode>,
}

async fn tree(State(app): State<Arc<App>>, Query(q): Query<TreeQuery>) -> Response {
    let children = app
        .tree
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .children_of(q.node.as_deref());
    let Some(mut nodes) = children else {
        return (StatusCode::NOT_FOUND, "no such node\n").into_response();
    };
    let total = nodes.len();
    sort_level(&mut nodes, q.sort.unwrap_or_default());
    nodes.truncate(q.limit.unwrap_or(LEVEL_DEFAULT).clamp(1, LEVEL_LIMIT));
    json(&Level { total, nodes })
}

fn sort_level(nodes: &mut [TreeNode], by: TreeSort) {
    let desc = |a: f64, b: f64| b.total_cmp(&a);
    match by {
        TreeSort::Depth => nodes.sort_by(|a, b| {
            b.mailbox_depth
                .cmp(&a.mailbox_depth)
                .then(desc(a.rate, b.rate))
        }),
        TreeSort::Rate => {
            nodes.sort_by(|a, b| desc(a.rate, b.rate).then(b.mailbox_depth.cmp(&a.mailbox_depth)));
        }
        TreeSort::Agents => nodes.sort_by_key(|n| std::cmp::Reverse(n.agents)),
        TreeSort::Name => nodes.sort_by_cached_key(|n| natural(&n.name)),
    }
}

/// A name as a key where runs of digits compare as numbers.
fn natural(s: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            if !digits.is_empty() {
                out.push((
                    std::mem::take(&mut text),
                    digits.parse().unwrap_or(u64::MAX),
                ));
                digits.clear();
            }
            text.push(c);
        }
    }
    out.push((text, digits.parse().unwrap_or(0)));
    out
}

#[cfg(test)]
mod tests {
    use super::{natural, same};

    #[test]
    fn names_sort_with_their_numbers() {
        let mut v = ["c10", "c2", "c1/s10", "c1/s9", "b"];
        v.sort_by_key(|s| natural(s));
        assert_eq!(v, ["b", "c1/s9", "c1/s10", "c2", "c10"]);
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
        assert!(!same(b"", b"a"));
    }
}
