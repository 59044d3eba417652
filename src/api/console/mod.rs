//! The web console: the night at a glance in a browser, served by the bot
//! itself on `server.listen` beside the API. Server-rendered HTML, no
//! script, nothing fetched from elsewhere (a strict Content-Security-
//! Policy says so), usable on a phone and from the keyboard.
//!
//! Pages: what fires and what is about to (with its `for` countdown),
//! runs waiting for a person, runs in progress, silences, and on every
//! page what the bot cannot see and whether automation is paused;
//! incidents with their review and timeline; runs with their steps.
//! Lists are paged ([`views::PAGE_ROWS`] a page).
//!
//! Who may read and act is [`auth`]'s: with sign-in on, a person signed
//! in with their own token acts through the same commands, grammar, roles
//! and audit as chat (a click is `approve RUN` typed by that person); a
//! caller with the API's bearer token reads. Every action is a form post
//! with a CSRF token, from the console's own origin.
//!
//! The edge only: the control loop and the store are read here, commands
//! go through [`crate::command::handle`], and the pages are drawn by the
//! pure functions in [`views`].

pub mod auth;
mod html;
mod markdown;
mod views;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tokio::sync::oneshot;

use super::Api;
use crate::control::{Command, Status};
use crate::roles::RoleMap;
use auth::{Bearer, Gate, SignIn, Visitor};
use html::{Corner, Frame, esc};

/// How the console lets people in (`server.console`), and what it needs
/// to act for them.
#[derive(Clone)]
pub struct Settings {
    pub sign_in: SignIn,
    /// With sign-in on: whether pages can be read without signing in.
    pub open_to_viewers: bool,
    /// How long a sign-in lasts.
    pub session: Duration,
    /// Who holds which role (`chat.roles`), read at every request.
    pub roles: RoleMap,
    /// What commands run against; `None` where nothing can act (tests of
    /// the read-only pages).
    pub commands: Option<Arc<crate::command::Ctx>>,
    /// Room for live pages' event streams ([`MAX_STREAMS`]).
    pub streams: Arc<tokio::sync::Semaphore>,
    /// With `sign_in: proxy`: the proxy's header and addresses.
    pub proxy: Option<crate::config::ProxySignIn>,
    /// The Slack user groups roles are granted to, where chat is Slack
    /// and `chat.roles` names groups; `None`: roles are by user id only.
    pub groups: Option<Arc<dyn crate::roles::GroupLookup>>,
    /// Scheduled checklist runs still to come, as the checklist runner
    /// publishes them; `None` where nothing runs checklists.
    pub ahead: Option<tokio::sync::watch::Receiver<Vec<crate::preflight::task::Upcoming>>>,
}

/// Live pages open at once: a night's on-call and their screens, with
/// room to spare; each costs a status read a second.
pub const MAX_STREAMS: usize = 64;

impl Settings {
    /// From `server.console` and `chat.roles`; `commands` where this
    /// process acts (not on a follower replica).
    pub fn new(
        c: &crate::config::ConsoleConfig,
        roles: RoleMap,
        commands: Option<Arc<crate::command::Ctx>>,
    ) -> Settings {
        Settings {
            sign_in: c.sign_in,
            open_to_viewers: c.open_to_viewers,
            session: c.session.to_std(),
            roles,
            commands,
            streams: Arc::new(tokio::sync::Semaphore::new(MAX_STREAMS)),
            proxy: c.proxy.clone(),
            groups: None,
            ahead: None,
        }
    }

    /// With the Slack user groups roles are granted to.
    pub fn with_groups(mut self, groups: Option<Arc<dyn crate::roles::GroupLookup>>) -> Settings {
        self.groups = groups;
        self
    }

    /// With the checklist runner's schedule, for the home page.
    pub fn with_ahead(
        mut self,
        ahead: tokio::sync::watch::Receiver<Vec<crate::preflight::task::Upcoming>>,
    ) -> Settings {
        self.ahead = Some(ahead);
        self
    }
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            sign_in: SignIn::Off,
            open_to_viewers: false,
            session: Duration::from_secs(12 * 3600),
            roles: RoleMap::default(),
            commands: None,
            streams: Arc::new(tokio::sync::Semaphore::new(MAX_STREAMS)),
            proxy: None,
            groups: None,
            ahead: None,
        }
    }
}

/// How long a page waits for the control loop or the store.
const WAIT: Duration = Duration::from_secs(10);

/// The longest command a form may carry; chat's are far shorter.
const MAX_COMMAND: usize = 2000;

/// The longest form body the console reads.
const MAX_FORM: usize = 8 * 1024;

/// What a browser may do with a console page: show it with its inline
/// style, run the console's own script (`/console.js`, for live pages),
/// ask this server for changes and post its forms back here. No inline
/// script runs, nothing loads from elsewhere, no other site may frame it.
const CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The console's routes; the API's router gives them its state.
pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/", get(now))
        .route("/alerts", get(alerts))
        .route("/alerts/pending", get(pending))
        .route("/checklists", get(checklists))
        .route("/silences", get(silences))
        .route("/incidents", get(incidents))
        .route("/incidents/{id}", get(incident))
        .route("/incidents/{id}/charts/{seq}", get(chart))
        .route("/runs", get(runs))
        .route("/runs/{id}", get(run))
        .route("/signin", get(signin_form).post(signin))
        .route("/signout", post(signout))
        .route("/act", post(act))
        .route("/events", get(events))
        .route("/console.js", get(script))
}

fn html_response(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Not `no-referrer`: with it, browsers send `Origin: null` on the
    // console's own form posts, which the origin check must refuse.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn redirect(to: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// What every page needs from the control loop: the status (for the
/// banners) or, on a follower, nothing (it does not know).
async fn status(api: &Api) -> Result<Option<Status>, String> {
    if api
        .replica
        .as_ref()
        .is_some_and(|r| !matches!(r.role(), crate::front::Role::Leading { .. }))
    {
        return Ok(None);
    }
    let (reply, answer) = oneshot::channel();
    let asked = async {
        api.control
            .send(Command::Status(reply))
            .await
            .map_err(|_| "the control loop has stopped".to_owned())?;
        answer
            .await
            .map_err(|_| "the control loop did not answer".to_owned())
    };
    match tokio::time::timeout(WAIT, asked).await {
        Ok(r) => r.map(Some),
        Err(_) => Err("the control loop is busy".into()),
    }
}

async fn store<T, E: std::fmt::Display>(
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(WAIT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "console: cannot read the store");
            Err("cannot read the store (the cause is in firebreak's log)".into())
        }
        Err(_) => Err("the store did not answer in time".into()),
    }
}

/// A request's headers and the address it came from: behind a proxy,
/// the proxy's, which decides whether its sign-in header is believed.
pub struct Ask {
    pub headers: HeaderMap,
    pub peer: Option<std::net::IpAddr>,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Ask {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Ask, Self::Rejection> {
        Ok(Ask {
            headers: parts.headers.clone(),
            peer: parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        })
    }
}

/// Who is signed in, by the console's way of signing in, and what the
/// request claims besides ([`auth::Claim`]).
async fn person(api: &Api, ask: &Ask) -> Result<(Option<Visitor>, auth::Claim), String> {
    match (api.console.sign_in, &api.console.proxy) {
        (SignIn::Tokens, _) => Ok((session_person(api, &ask.headers).await?, auth::Claim::None)),
        (SignIn::Proxy, Some(p)) => Ok(match auth::proxied(p, &ask.headers, ask.peer) {
            Ok(Some((user, name))) => (
                proxy_person(api, &ask.headers, user, name).await?,
                auth::Claim::None,
            ),
            Ok(None) => (None, auth::Claim::None),
            Err(claim) => {
                tracing::warn!(peer = ?ask.peer, ?claim, "console: a sign-in header was refused");
                crate::metrics::get()
                    .console_signins
                    .with(&["refused_header"])
                    .inc();
                (None, claim)
            }
        }),
        _ => Ok((None, auth::Claim::None)),
    }
}

/// The person the proxy named, with the role `chat.roles` gives their
/// chat user id (none: not signed in), and the CSRF token of this
/// browser's cookie, minted when it has none yet.
async fn proxy_person(
    api: &Api,
    headers: &HeaderMap,
    user: String,
    name: String,
) -> Result<Option<Visitor>, String> {
    let Some(role) = role_of(api, &user).await else {
        return Ok(None);
    };
    let (secret, mint) = match auth::cookie(headers, auth::CSRF_COOKIE).filter(|c| !c.is_empty()) {
        Some(c) => (c.to_owned(), None),
        None => {
            let fresh =
                auth::mint("").map_err(|e| format!("reading the system's randomness: {e}"))?;
            let set = auth::csrf_cookie(&fresh, auth::over_https(headers));
            (fresh, Some(set))
        }
    };
    Ok(Some(Visitor::Person {
        actor: crate::command::Actor {
            id: user,
            name,
            role,
        },
        csrf: auth::csrf_for(&secret),
        mint,
    }))
}

/// How long a page waits for Slack to say which user groups someone is
/// in; past it, the page goes on with the roles given by id only.
const GROUPS_WAIT: Duration = Duration::from_secs(2);

/// The role `chat.roles` gives chat user `user`, by id or, when roles are
/// granted to Slack user groups, by the groups Slack says they are in.
async fn role_of(api: &Api, user: &str) -> Option<crate::roles::Role> {
    let groups = match &api.console.groups {
        None => Vec::new(),
        Some(g) => match tokio::time::timeout(GROUPS_WAIT, g.groups_of(user)).await {
            Ok(groups) => groups,
            Err(_) => {
                tracing::warn!(%user, "console: Slack did not say in time which user groups they are in; their role is by id only");
                Vec::new()
            }
        },
    };
    api.console.roles.resolve(user, &groups)
}

/// The signed-in person this request's session cookie names, if it names
/// a live session of someone who still has a role.
async fn session_person(api: &Api, headers: &HeaderMap) -> Result<Option<Visitor>, String> {
    let Some(secret) = auth::cookie(headers, auth::SESSION_COOKIE).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let digest = auth::digest(secret);
    let Some(s) = store(api.store.console_session(&digest, api.clock.now())).await? else {
        return Ok(None);
    };
    let Some(role) = role_of(api, &s.user).await else {
        return Ok(None);
    };
    Ok(Some(Visitor::Person {
        actor: crate::command::Actor {
            id: s.user,
            name: s.name,
            role,
        },
        csrf: auth::csrf_for(secret),
        mint: None,
    }))
}

/// The API's bearer token as this request presents it, by the API's own
/// check.
fn bearer(api: &Api, headers: &HeaderMap) -> Bearer {
    if api.token.is_none() || !headers.contains_key(header::AUTHORIZATION) {
        return Bearer::None;
    }
    match super::check_token(api, headers) {
        Ok(()) => Bearer::Right,
        Err(_) => Bearer::Wrong,
    }
}

/// Whether a form's CSRF token is the one expected, in constant time.
fn csrf_matches(given: &str, expected: &str) -> bool {
    super::same(given.as_bytes(), expected.as_bytes())
}

/// Who is asking, or the answer that turns them away.
async fn visitor(api: &Api, ask: &Ask) -> Result<Visitor, Response> {
    let (person, claim) = match person(api, ask).await {
        Ok(p) => p,
        Err(e) => return Err(trouble(api, &e)),
    };
    let c = &api.console;
    match auth::decide(
        c.sign_in,
        c.open_to_viewers,
        api.token.is_some(),
        bearer(api, &ask.headers),
        person,
        claim,
    ) {
        Gate::Read(v) => Ok(v),
        Gate::SignInFirst => Err(redirect("/signin")),
        Gate::Refused(why) => {
            let mut resp = bare(
                api,
                "Not signed in",
                &format!("<p>{}.</p>", esc(why)),
                StatusCode::UNAUTHORIZED,
            );
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            Err(resp)
        }
    }
}

/// A whole page, live: the frame with this status's banners (and chat's
/// backlog, read from the store) around `main`.
async fn page(
    api: &Api,
    who: &Visitor,
    status: Option<&Status>,
    title: &str,
    main: &str,
    code: StatusCode,
) -> Response {
    page_as(api, who, status, title, main, code, true).await
}

/// [`page`], or one that is not redrawn as things change (an answer to a
/// post, which fetching again would not reproduce).
async fn page_as(
    api: &Api,
    who: &Visitor,
    status: Option<&Status>,
    title: &str,
    main: &str,
    code: StatusCode,
    live: bool,
) -> Response {
    let now = api.clock.now();
    let mut banners = status.map(|s| views::banners(s, now)).unwrap_or_default();
    // A store that does not answer is said by the page's own reads; the
    // banner is only for a backlog it can see.
    let outbox = store(api.store.outbox_summary()).await.ok();
    if let Some(crate::store::OutboxSummary {
        depth,
        oldest: Some(oldest),
        ..
    }) = outbox
    {
        banners.extend(views::chat_behind(depth, oldest, now));
    }
    if status.is_none()
        && let Some(r) = &api.replica
    {
        banners.push(html::Banner {
            level: html::Level::Warn,
            text: format!(
                "{}: this replica does not lead, so it does not know what fires now; the leader's console does.",
                r.describe()
            ),
        });
    }
    let label;
    let corner = match who {
        Visitor::Person { actor, csrf, .. } => {
            label = format!("{} ({})", actor.label(), actor.role);
            Corner::Person {
                label: &label,
                // Behind a proxy, signing out is the proxy's.
                csrf: (api.console.sign_in == SignIn::Tokens).then_some(csrf.as_str()),
            }
        }
        _ if api.console.sign_in == SignIn::Tokens => Corner::SignIn,
        _ => Corner::Nothing,
    };
    let said = outbox.map_or(0, |o| o.last_seq);
    let drawn = crate::chat::blocks::utc(now);
    let frame = Frame {
        title,
        banners: &banners,
        drawn: &drawn,
        corner,
        moment: live.then(|| views::moment(status, said)),
    };
    let mut resp = html_response(code, frame.page(main));
    // A browser the proxy signed in gets its CSRF secret with its first
    // page; its forms carry the token derived from it.
    if let Visitor::Person {
        mint: Some(set), ..
    } = who
        && let Ok(v) = HeaderValue::from_str(set)
    {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// A page for someone not (yet) let in: no banners, no names.
fn bare(_api: &Api, title: &str, main: &str, code: StatusCode) -> Response {
    let frame = Frame {
        title,
        banners: &[],
        drawn: "",
        corner: Corner::Nothing,
        moment: None,
    };
    html_response(code, frame.page(main))
}

fn trouble(api: &Api, why: &str) -> Response {
    bare(
        api,
        "Not available",
        &format!("<p>{}. Try again in a moment.</p>", esc(why)),
        StatusCode::SERVICE_UNAVAILABLE,
    )
}

async fn not_found(
    api: &Api,
    who: &Visitor,
    status: Option<&Status>,
    what: &str,
    back: &str,
) -> Response {
    page(
        api,
        who,
        status,
        "Not found",
        &format!("<p>{} <a href=\"{back}\">See the list</a>.</p>", esc(what)),
        StatusCode::NOT_FOUND,
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    page: Option<usize>,
}

type Param<Q> = Result<Query<Q>, axum::extract::rejection::QueryRejection>;
type PageParam = Param<PageQuery>;

/// A list's query, or the page saying which parameters it takes
/// (`params`, HTML).
fn query<Q>(api: &Api, q: Param<Q>, params: &str) -> Result<Q, Box<Response>> {
    q.map(|Query(q)| q).map_err(|_| {
        Box::new(bare(
            api,
            "Bad request",
            &format!("<p>The parameters are {params}.</p>"),
            StatusCode::BAD_REQUEST,
        ))
    })
}

/// What a list page starts with: who asks (or the answer turning them
/// away), and the status for the banners.
async fn list_start(api: &Api, ask: &Ask) -> Result<(Visitor, Option<Status>), Box<Response>> {
    let who = visitor(api, ask).await.map_err(Box::new)?;
    Ok((who, status(api).await.ok().flatten()))
}

/// [`list_start`] for a list that only pages: also which page.
async fn paged_start(
    api: &Api,
    ask: &Ask,
    q: PageParam,
) -> Result<(Visitor, usize, Option<Status>), Box<Response>> {
    let who = visitor(api, ask).await.map_err(Box::new)?;
    let q = query(api, q, "<code>page</code>, a number from 1")?;
    Ok((who, q.page.unwrap_or(1), status(api).await.ok().flatten()))
}

/// A filter field as the form sends it: empty is unset. Bounded, since
/// it is drawn back into the page and sent to the store.
fn given(api: &Api, name: &str, v: Option<String>) -> Result<Option<String>, Box<Response>> {
    let Some(v) = v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if v.len() > views::MAX_FILTER {
        return Err(Box::new(bare(
            api,
            "Bad request",
            &format!(
                "<p>The filter <code>{}</code> takes at most {} bytes.</p>",
                esc(name),
                views::MAX_FILTER
            ),
            StatusCode::BAD_REQUEST,
        )));
    }
    Ok(Some(v))
}

/// The query of a list filtered by one field.
trait OneFilter {
    /// The field's name.
    const FIELD: &str;
    /// Every parameter the list takes (HTML), for a bad request's page.
    const PARAMS: &str;
    /// The page asked for and the field's value.
    fn parts(self) -> (Option<usize>, Option<String>);
}

/// [`list_start`] for a list filtered by one field: also which page,
/// and the field's value.
async fn filtered_start<Q: OneFilter>(
    api: &Api,
    ask: &Ask,
    q: Param<Q>,
) -> Result<(Visitor, Option<Status>, usize, Option<String>), Box<Response>> {
    let (who, status) = list_start(api, ask).await?;
    let (page, value) = query(api, q, Q::PARAMS)?.parts();
    Ok((who, status, page.unwrap_or(1), given(api, Q::FIELD, value)?))
}

/// How many names a filter's choice offers at most.
const MAX_CHOICES: i64 = 200;

/// The longest name a console token is issued with, in characters.
pub const MAX_TOKEN_NAME: usize = 80;

/// Issues a sign-in token for chat user `user`: the token (to hand to
/// them, once) and what the store keeps of it.
pub async fn issue_token(
    store: &crate::store::Store,
    user: &str,
    name: &str,
    now: crate::clock::Millis,
) -> anyhow::Result<(String, crate::store::ConsoleToken)> {
    // Shown on every page and in `console-token list`'s tab-separated
    // lines: bounded, one line.
    let name = name.trim();
    if name.chars().count() > MAX_TOKEN_NAME || name.chars().any(char::is_control) {
        anyhow::bail!(
            "the name is at most {MAX_TOKEN_NAME} characters on one line, without tabs or control characters"
        );
    }
    let secret = auth::mint(auth::TOKEN_PREFIX)
        .map_err(|e| anyhow::anyhow!("reading the system's randomness: {e}"))?;
    let digest = auth::digest(&secret);
    let token = crate::store::ConsoleToken {
        id: auth::token_id(&digest),
        user: user.to_owned(),
        name: if name.is_empty() { user } else { name }.to_owned(),
        created_at: now,
        revoked_at: None,
    };
    store.add_console_token(&token, &digest).await?;
    Ok((secret, token))
}

/// What a visitor's forms need, when they may act at all.
fn acts(who: &Visitor, back: &str) -> Option<views::Acts> {
    who.person().map(|(actor, csrf)| views::Acts {
        role: actor.role,
        csrf: csrf.to_owned(),
        back: back.to_owned(),
    })
}

/// `GET /`.
pub async fn now(State(api): State<Arc<Api>>, ask: Ask) -> Response {
    let who = match visitor(&api, &ask).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let status = match status(&api).await {
        Ok(s) => s,
        Err(e) => return trouble(&api, &e),
    };
    let recent = match store(api.store.incident_summaries(0, RECENT_INCIDENTS)).await {
        Ok(r) => r,
        Err(e) => return trouble(&api, &e),
    };
    let checklist = store(api.store.newest_checklist_runs(None, 0, 1))
        .await
        .unwrap_or_default();
    // Extras: a store that cannot say leaves them out.
    let steps = if status.as_ref().is_some_and(|s| !s.running.is_empty()) {
        store(api.store.current_steps()).await.unwrap_or_default()
    } else {
        Vec::new()
    };
    let ahead = api
        .console
        .ahead
        .as_ref()
        .map(|a| a.borrow().clone())
        .unwrap_or_default();
    let leader = api.replica.as_ref().map(|r| r.describe());
    let mut cards = Vec::new();
    for i in &recent {
        if let Ok(Some(json)) = store(api.store.newest_card(&i.incident)).await
            && let Ok(Glance { card: Some(c), .. }) = serde_json::from_str(&json)
        {
            cards.push((i.incident.clone(), c.status));
        }
    }
    let main = match &status {
        Some(s) => views::now_page(
            s,
            &views::Home {
                recent: &recent,
                checklist: checklist.first(),
                ahead: &ahead,
                steps: &steps,
                cards: &cards,
                leader: leader.as_deref(),
            },
            api.clock.now(),
            acts(&who, "/").as_ref(),
        ),
        None => "<p>Open the leader's console for the live picture; incidents and runs are listed here from the shared store.</p>".to_owned(),
    };
    page(&api, &who, status.as_ref(), "Now", &main, StatusCode::OK).await
}

/// How many of the newest incidents the home page lists.
const RECENT_INCIDENTS: i64 = 5;

/// `GET /alerts`.
pub async fn alerts(State(api): State<Arc<Api>>, ask: Ask, q: PageParam) -> Response {
    let (who, n, status) = match paged_start(&api, &ask, q).await {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let Some(s) = &status else {
        return follower_page(&api, &who, "Alerts").await;
    };
    let main = views::alerts_page(
        &views::paged(&s.firing, n),
        api.clock.now(),
        acts(&who, "/alerts").as_ref(),
    );
    page(&api, &who, status.as_ref(), "Alerts", &main, StatusCode::OK).await
}

/// `GET /alerts/pending`.
pub async fn pending(State(api): State<Arc<Api>>, ask: Ask, q: PageParam) -> Response {
    let (who, n, status) = match paged_start(&api, &ask, q).await {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let Some(s) = &status else {
        return follower_page(&api, &who, "Pending alerts").await;
    };
    let main = views::pending_page(&views::paged(&s.pending, n), api.clock.now());
    page(
        &api,
        &who,
        status.as_ref(),
        "Pending alerts",
        &main,
        StatusCode::OK,
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChecklistsQuery {
    page: Option<usize>,
    checklist: Option<String>,
}

impl OneFilter for ChecklistsQuery {
    const FIELD: &str = "checklist";
    const PARAMS: &str = "<code>checklist</code> (a name) and <code>page</code> (a number from 1)";
    fn parts(self) -> (Option<usize>, Option<String>) {
        (self.page, self.checklist)
    }
}

/// `GET /checklists`, `?checklist=NAME` for one checklist's runs.
pub async fn checklists(
    State(api): State<Arc<Api>>,
    ask: Ask,
    q: Param<ChecklistsQuery>,
) -> Response {
    let (who, status, n, checklist) = match filtered_start(&api, &ask, q).await {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let name = checklist.as_deref();
    let total = match store(api.store.checklist_run_count(name)).await {
        Ok(t) => usize::try_from(t).unwrap_or(0),
        Err(e) => return trouble(&api, &e),
    };
    // Only the page asked for is read.
    let (n, pages, skip) = views::page_of(total, n);
    let read = async {
        let rows = store(
            api.store
                .newest_checklist_runs(name, skip, views::PAGE_ROWS as i64),
        )
        .await?;
        let names = store(api.store.checklist_names(MAX_CHOICES)).await?;
        Ok::<_, String>((rows, names))
    };
    let (rows, names) = match read.await {
        Ok(r) => r,
        Err(e) => return trouble(&api, &e),
    };
    let list = views::Paged {
        rows: &rows,
        page: n,
        pages,
        total,
    };
    let filters = views::Filters {
        action: "/checklists",
        fields: vec![views::Field::Choice {
            name: "checklist",
            options: names,
            chosen: name,
        }],
    };
    let back = filters.base();
    let main = views::checklists_page(&list, acts(&who, &back).as_ref(), &filters);
    page(
        &api,
        &who,
        status.as_ref(),
        "Checklists",
        &main,
        StatusCode::OK,
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilencesQuery {
    page: Option<usize>,
    matching: Option<String>,
}

impl OneFilter for SilencesQuery {
    const FIELD: &str = "matching";
    const PARAMS: &str = "<code>matching</code> (text) and <code>page</code> (a number from 1)";
    fn parts(self) -> (Option<usize>, Option<String>) {
        (self.page, self.matching)
    }
}

/// `GET /silences`, `?matching=TEXT` for those with TEXT in their
/// matchers, author, comment or id.
pub async fn silences(State(api): State<Arc<Api>>, ask: Ask, q: Param<SilencesQuery>) -> Response {
    let (who, status, n, matching) = match filtered_start(&api, &ask, q).await {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let Some(s) = &status else {
        return follower_page(&api, &who, "Silences").await;
    };
    let shown: std::borrow::Cow<'_, [crate::control::SilenceView]> = match &matching {
        None => s.silences.as_slice().into(),
        Some(m) => s
            .silences
            .iter()
            .filter(|x| views::silence_has(x, m))
            .cloned()
            .collect::<Vec<_>>()
            .into(),
    };
    let filters = views::Filters {
        action: "/silences",
        fields: vec![views::Field::Text {
            name: "matching",
            value: matching.as_deref(),
        }],
    };
    let back = filters.base();
    let main = views::silences_page(
        &views::paged(&shown, n),
        api.clock.now(),
        acts(&who, &back).as_ref(),
        &filters,
    );
    page(
        &api,
        &who,
        status.as_ref(),
        "Silences",
        &main,
        StatusCode::OK,
    )
    .await
}

/// What a follower replica says where only the leader knows.
async fn follower_page(api: &Api, who: &Visitor, title: &str) -> Response {
    page(
        api,
        who,
        None,
        title,
        "<p>Open the leader's console: only it knows what fires now.</p>",
        StatusCode::OK,
    )
    .await
}

/// `GET /incidents`.
pub async fn incidents(State(api): State<Arc<Api>>, ask: Ask, q: PageParam) -> Response {
    let (who, n, status) = match paged_start(&api, &ask, q).await {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let total = match store(api.store.incident_count()).await {
        Ok(t) => usize::try_from(t).unwrap_or(0),
        Err(e) => return trouble(&api, &e),
    };
    // Only the page asked for is read, and no timeline: a store of 10,000
    // incidents costs one aggregate query.
    let (n, pages, skip) = views::page_of(total, n);
    let rows = match store(api.store.incident_summaries(skip, views::PAGE_ROWS as i64)).await {
        Ok(r) => r,
        Err(e) => return trouble(&api, &e),
    };
    let listed = views::Paged {
        rows: &rows,
        page: n,
        pages,
        total,
    };
    let main = views::incidents_page(&listed, status.as_ref());
    page(
        &api,
        &who,
        status.as_ref(),
        "Incidents",
        &main,
        StatusCode::OK,
    )
    .await
}

/// `GET /incidents/ID`.
pub async fn incident(
    State(api): State<Arc<Api>>,
    ask: Ask,
    Path(id): Path<String>,
    q: PageParam,
) -> Response {
    let (who, n, status) = match paged_start(&api, &ask, q).await {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let entries = match store(api.store.timeline(&id)).await {
        Ok(e) => e,
        Err(e) => return trouble(&api, &e),
    };
    if entries.is_empty() {
        let what = format!("There is no incident {:?}.", crate::human::clip(&id, 80));
        return not_found(&api, &who, status.as_ref(), &what, "/incidents").await;
    }
    let audience = store(api.store.audience(&id)).await.unwrap_or_default();
    let review = crate::incident::Review::new(&id, entries).with_audience(&audience);
    let shown = views::paged(&review.entries, n);
    let chat = in_chat(&api, &id).await;
    let back = format!("/incidents/{}", html::seg(&id));
    let main = views::incident_page(&review, &shown, &chat, acts(&who, &back).as_ref());
    let title = format!("Incident {}", crate::human::clip(&id, 80));
    page(&api, &who, status.as_ref(), &title, &main, StatusCode::OK).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunsQuery {
    page: Option<usize>,
    runbook: Option<String>,
    state: Option<String>,
    incident: Option<String>,
}

/// How many of an incident's charts its page shows: one per alert that
/// fired first in it, so a storm's incident would have thousands.
const MAX_CHARTS: i64 = 12;

/// What chat has of incident `id`: its newest card and its charts. An
/// extra on the page: a store that cannot say leaves it out (logged).
async fn in_chat(api: &Api, id: &str) -> views::InChat {
    let message = |json: &str| serde_json::from_str::<crate::chat::ChatMessage>(json).ok();
    let card = match store(api.store.newest_card(id)).await {
        Ok(c) => c.as_deref().and_then(message).and_then(|m| m.card),
        Err(e) => {
            tracing::warn!(error = %e, incident = %id, "cannot read the incident's card");
            None
        }
    };
    let charts = match store(api.store.charts(id, MAX_CHARTS)).await {
        Ok(rows) => rows
            .iter()
            .filter_map(|(seq, json)| {
                let g: Glance = serde_json::from_str(json).ok()?;
                Some((*seq, g.image?.title))
            })
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, incident = %id, "cannot read the incident's charts");
            Vec::new()
        }
    };
    views::InChat { card, charts }
}

/// The parts of a queued chat message that lists show, read alone: a
/// chart's title without decoding its PNG, a card's state without its
/// alerts. The message is the bot's own, written by the outbox.
#[derive(Deserialize)]
struct Glance {
    card: Option<GlanceCard>,
    image: Option<GlanceImage>,
}

#[derive(Deserialize)]
struct GlanceCard {
    status: crate::chat::card::Status,
}

#[derive(Deserialize)]
struct GlanceImage {
    title: String,
}

/// `GET /incidents/ID/charts/N`: chart N of the incident, the PNG chat
/// was given.
pub async fn chart(
    State(api): State<Arc<Api>>,
    ask: Ask,
    Path((id, seq)): Path<(String, String)>,
) -> Response {
    let who = match visitor(&api, &ask).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let found = match seq.parse::<i64>() {
        Ok(n) => match store(api.store.chart(&id, n)).await {
            Ok(json) => json
                .and_then(|j| serde_json::from_str::<crate::chat::ChatMessage>(&j).ok())
                .and_then(|m| m.image),
            Err(e) => return trouble(&api, &e),
        },
        Err(_) => None,
    };
    let Some(image) = found else {
        let what = format!(
            "There is no chart {:?} of incident {:?}; charts are kept with chat's messages, a week.",
            crate::human::clip(&seq, 20),
            crate::human::clip(&id, 80)
        );
        let back = format!("/incidents/{}", html::seg(&id));
        return not_found(&api, &who, None, &what, &back).await;
    };
    let mut resp = (StatusCode::OK, image.png).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    // A chart never changes once drawn; only the signed-in may see it.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400, immutable"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// `GET /runs`, `?runbook=&state=&incident=` for those runs only.
pub async fn runs(State(api): State<Arc<Api>>, ask: Ask, q: Param<RunsQuery>) -> Response {
    let start = async {
        let (who, status) = list_start(&api, &ask).await?;
        let q = query(
            &api,
            q,
            "<code>runbook</code>, <code>state</code>, <code>incident</code> and <code>page</code> (a number from 1)",
        )?;
        let state = match given(&api, "state", q.state)? {
            None => None,
            Some(s) => Some(crate::run_state::RunState::parse(&s).ok_or_else(|| {
                let known: Vec<&str> = crate::run_state::RunState::all()
                    .map(|s| s.as_str())
                    .collect();
                Box::new(bare(
                    &api,
                    "Bad request",
                    &format!(
                        "<p>There is no run state {}; the states are {}.</p>",
                        esc(&format!("{s:?}")),
                        esc(&known.join(", "))
                    ),
                    StatusCode::BAD_REQUEST,
                ))
            })?),
        };
        let filter = crate::store::RunFilter {
            runbook: given(&api, "runbook", q.runbook)?,
            state,
            incident: given(&api, "incident", q.incident)?,
        };
        Ok::<_, Box<Response>>((who, status, q.page.unwrap_or(1), filter))
    };
    let (who, status, n, filter) = match start.await {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let total = match store(api.store.run_count(&filter)).await {
        Ok(t) => usize::try_from(t).unwrap_or(0),
        Err(e) => return trouble(&api, &e),
    };
    // Only the page asked for is read.
    let (n, pages, skip) = views::page_of(total, n);
    let read = async {
        let rows = store(
            api.store
                .newest_runs(&filter, skip, views::PAGE_ROWS as i64),
        )
        .await?;
        let names = store(api.store.run_runbooks(MAX_CHOICES)).await?;
        Ok::<_, String>((rows, names))
    };
    let (rows, runbooks) = match read.await {
        Ok(r) => r,
        Err(e) => return trouble(&api, &e),
    };
    let list = views::Paged {
        rows: &rows,
        page: n,
        pages,
        total,
    };
    let filters = views::Filters {
        action: "/runs",
        fields: vec![
            views::Field::Choice {
                name: "runbook",
                options: runbooks,
                chosen: filter.runbook.as_deref(),
            },
            views::Field::Choice {
                name: "state",
                options: crate::run_state::RunState::all()
                    .map(|s| s.as_str().to_owned())
                    .collect(),
                chosen: filter.state.map(|s| s.as_str()),
            },
            views::Field::Text {
                name: "incident",
                value: filter.incident.as_deref(),
            },
        ],
    };
    let main = views::runs_page(&list, &filters);
    page(&api, &who, status.as_ref(), "Runs", &main, StatusCode::OK).await
}

/// `GET /runs/ID`.
pub async fn run(State(api): State<Arc<Api>>, ask: Ask, Path(id): Path<String>) -> Response {
    let who = match visitor(&api, &ask).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let status = status(&api).await.ok().flatten();
    let r = match store(api.store.run(&id)).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            let what = format!("There is no run {:?}.", crate::human::clip(&id, 80));
            return not_found(&api, &who, status.as_ref(), &what, "/runs").await;
        }
        Err(e) => return trouble(&api, &e),
    };
    let steps = match store(api.store.steps(&id)).await {
        Ok(s) => s,
        Err(e) => return trouble(&api, &e),
    };
    let back = format!("/runs/{}", html::seg(&id));
    let main = views::run_page(&r, &steps, acts(&who, &back).as_ref());
    let title = format!("Run {}", crate::human::clip(&id, 80));
    page(&api, &who, status.as_ref(), &title, &main, StatusCode::OK).await
}

/// A form body, read with a bound.
fn form<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, String> {
    if body.len() > MAX_FORM {
        return Err(format!(
            "the form is {} bytes; the console reads at most {MAX_FORM}",
            body.len()
        ));
    }
    serde_urlencoded::from_bytes(body)
        .map_err(|e| format!("the form is not one of the console's: {e}"))
}

fn refused(api: &Api, code: StatusCode, why: &str) -> Response {
    bare(
        api,
        "Refused",
        &format!(
            "<p>{}</p><p><a href=\"/\">Back to the console</a></p>",
            esc(why)
        ),
        code,
    )
}

/// `GET /signin`.
pub async fn signin_form(State(api): State<Arc<Api>>) -> Response {
    if api.console.sign_in == SignIn::Off {
        return bare(
            &api,
            "Sign in",
            "<p>Sign-in is off, so the console only shows; people act from chat or the terminal. To act here, set <code>server.console.sign_in: tokens</code> and issue tokens with <code>firebreak console-token add</code>.</p>",
            StatusCode::OK,
        );
    }
    if api.console.sign_in == SignIn::Proxy {
        return bare(
            &api,
            "Sign in",
            "<p>Signing in is the proxy's in front of the console: open the console at its address to sign in there.</p>",
            StatusCode::OK,
        );
    }
    bare(&api, "Sign in", &views::signin_form(None), StatusCode::OK)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignInForm {
    token: String,
}

/// `POST /signin`: a token for a session.
pub async fn signin(State(api): State<Arc<Api>>, headers: HeaderMap, body: Bytes) -> Response {
    if api.console.sign_in != SignIn::Tokens {
        return refused(
            &api,
            StatusCode::FORBIDDEN,
            "Sign-in with a token is off (server.console.sign_in).",
        );
    }
    if !auth::same_origin(&headers) {
        return refused(
            &api,
            StatusCode::FORBIDDEN,
            "This sign-in did not come from the console's own page.",
        );
    }
    let f: SignInForm = match form(&body) {
        Ok(f) => f,
        Err(e) => return refused(&api, StatusCode::BAD_REQUEST, &e),
    };
    let token = f.token.trim();
    let wrong = |api: &Api| {
        crate::metrics::get()
            .console_signins
            .with(&["refused"])
            .inc();
        bare(
            api,
            "Sign in",
            &views::signin_form(Some(
                "That is not a live token: it was never issued here, or it was revoked.",
            )),
            StatusCode::UNAUTHORIZED,
        )
    };
    if token.len() > 200 || !token.starts_with(auth::TOKEN_PREFIX) {
        return wrong(&api);
    }
    let found = match store(api.store.console_token_by_digest(&auth::digest(token))).await {
        Ok(t) => t,
        Err(e) => return trouble(&api, &e),
    };
    let Some(t) = found else {
        return wrong(&api);
    };
    if role_of(&api, &t.user).await.is_none() {
        crate::metrics::get()
            .console_signins
            .with(&["no_role"])
            .inc();
        return refused(
            &api,
            StatusCode::FORBIDDEN,
            &format!(
                "The token is {}'s ({}), who has no role under chat.roles; ask whoever runs firebreak to give them one.",
                t.name, t.user
            ),
        );
    }
    let secret = match auth::mint("") {
        Ok(s) => s,
        Err(e) => return trouble(&api, &format!("cannot read the system's randomness: {e}")),
    };
    let now = api.clock.now();
    let session = crate::store::ConsoleSession {
        user: t.user.clone(),
        name: t.name.clone(),
        token_id: t.id.clone(),
        expires_at: now + api.console.session.as_millis() as i64,
    };
    if let Err(e) = store(
        api.store
            .open_console_session(&auth::digest(&secret), &session, now),
    )
    .await
    {
        return trouble(&api, &e);
    }
    tracing::info!(user = %t.user, token = %t.id, "console: signed in");
    crate::metrics::get().console_signins.with(&["ok"]).inc();
    let mut resp = redirect("/");
    let cookie = auth::session_cookie(
        &secret,
        api.console.session.as_secs(),
        auth::over_https(&headers),
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignOutForm {
    csrf: String,
}

/// `POST /signout`.
pub async fn signout(State(api): State<Arc<Api>>, headers: HeaderMap, body: Bytes) -> Response {
    let f: SignOutForm = match form(&body) {
        Ok(f) => f,
        Err(e) => return refused(&api, StatusCode::BAD_REQUEST, &e),
    };
    let Some(secret) = auth::cookie(&headers, auth::SESSION_COOKIE) else {
        return redirect("/signin");
    };
    if !auth::same_origin(&headers) || !csrf_matches(&f.csrf, &auth::csrf_for(secret)) {
        return refused(
            &api,
            StatusCode::FORBIDDEN,
            "This sign-out did not come from the console's own page.",
        );
    }
    if let Err(e) = store(
        api.store
            .close_console_session(&auth::digest(secret), api.clock.now()),
    )
    .await
    {
        return trouble(&api, &e);
    }
    let mut resp = redirect("/signin");
    if let Ok(v) = HeaderValue::from_str(&auth::cleared_cookie()) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActForm {
    csrf: String,
    command: String,
    back: Option<String>,
}

/// Where to send someone after an action: a path of this console, never
/// another site (`//host` or `/\host` would leave it).
fn local(back: Option<&str>) -> &str {
    match back {
        Some(b)
            if b.starts_with('/')
                && !b.starts_with("//")
                && !b.contains('\\')
                && b.len() <= 300 =>
        {
            b
        }
        _ => "/",
    }
}

/// `POST /act`: one chat command, typed or clicked, by the signed-in
/// person, answered on a page.
pub async fn act(State(api): State<Arc<Api>>, ask: Ask, body: Bytes) -> Response {
    let m = crate::metrics::get();
    if api.console.sign_in == SignIn::Off {
        m.console_actions.with(&["refused"]).inc();
        return refused(
            &api,
            StatusCode::FORBIDDEN,
            "Sign-in is off, so the console cannot act for anyone; use chat or the terminal.",
        );
    }
    let Some(ctx) = api.console.commands.clone() else {
        m.console_actions.with(&["refused"]).inc();
        return refused(
            &api,
            StatusCode::SERVICE_UNAVAILABLE,
            "This replica does not lead, so it cannot act; use the leader's console.",
        );
    };
    let who = match person(&api, &ask).await {
        Ok((Some(v), auth::Claim::None)) => v,
        Ok(_) => {
            m.console_actions.with(&["refused"]).inc();
            return refused(
                &api,
                StatusCode::UNAUTHORIZED,
                "Sign in to act: every action is taken by a named person.",
            );
        }
        Err(e) => return trouble(&api, &e),
    };
    let Some((actor, csrf)) = who.person() else {
        return redirect("/signin");
    };
    let f: ActForm = match form(&body) {
        Ok(f) => f,
        Err(e) => return refused(&api, StatusCode::BAD_REQUEST, &e),
    };
    if !auth::same_origin(&ask.headers) || !csrf_matches(&f.csrf, csrf) {
        m.console_actions.with(&["refused"]).inc();
        tracing::warn!(user = %actor.id, "console: an action without this session's CSRF token or from another origin was refused");
        return refused(
            &api,
            StatusCode::FORBIDDEN,
            "This action did not come from a console page of your session; reload the page and try again.",
        );
    }
    let line = f.command.trim();
    if line.len() > MAX_COMMAND || line.contains(['\n', '\r']) {
        return refused(
            &api,
            StatusCode::BAD_REQUEST,
            &format!("A command is one line of at most {MAX_COMMAND} bytes."),
        );
    }
    let reply = crate::command::handle(&ctx, actor, line).await;
    m.console_actions.with(&["answered"]).inc();
    tracing::info!(user = %actor.id, command = %crate::human::clip(line, 120), "console: command");
    let back = local(f.back.as_deref());
    let status = status(&api).await.ok().flatten();
    let main = views::answer(line, &reply.text, back, acts(&who, back).as_ref());
    page_as(
        &api,
        &who,
        status.as_ref(),
        "Answer",
        &main,
        StatusCode::OK,
        false,
    )
    .await
}

#[cfg(test)]
mod tests;

/// The console's script, compiled in.
const SCRIPT: &str = include_str!("console.js");

/// `GET /console.js`.
pub async fn script() -> Response {
    let mut resp = html_response(StatusCode::OK, SCRIPT.to_owned());
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    // Asked again each time, so a new binary's script is what runs.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// How often a live page's stream looks for a change: a person sees it
/// within this, and each open page costs one status and one small store
/// read per period.
const LIVE_POLL: Duration = Duration::from_secs(1);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    since: Option<u64>,
}

/// What a live page's stream holds while it is open.
struct Watching {
    api: Arc<Api>,
    last: Option<u64>,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

/// `GET /events`: server-sent events for the console's script, one
/// `change` each time what the pages show differs from the moment the
/// page was drawn at (`?since=`) or last told. Open to whoever may read
/// the pages; at most [`Settings::streams`] at once, then 503 (the page
/// still works, reloaded by hand).
pub async fn events(
    State(api): State<Arc<Api>>,
    ask: Ask,
    q: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Err(r) = visitor(&api, &ask).await {
        return r;
    }
    let since = q.ok().and_then(|Query(q)| q.since);
    let Ok(slot) = api.console.streams.clone().try_acquire_owned() else {
        let mut resp = StatusCode::SERVICE_UNAVAILABLE.into_response();
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
        return resp;
    };
    let watching = Watching {
        api,
        last: since,
        _slot: slot,
    };
    let stream = futures_util::stream::unfold(watching, |mut w| async move {
        loop {
            tokio::select! {
                _ = w.api.shutdown.cancelled() => return None,
                _ = tokio::time::sleep(LIVE_POLL) => {}
            }
            let Ok(status) = status(&w.api).await else {
                continue;
            };
            let Ok(outbox) = store(w.api.store.outbox_summary()).await else {
                continue;
            };
            let said = outbox.last_seq;
            let now = views::moment(status.as_ref(), said);
            if w.last != Some(now) {
                w.last = Some(now);
                let event = axum::response::sse::Event::default()
                    .event("change")
                    .data(now.to_string());
                return Some((Ok::<_, std::convert::Infallible>(event), w));
            }
        }
    });
    axum::response::sse::Sse::new(stream)
        .keep_alive(axum::response::sse::KeepAlive::default())
        .into_response()
}
