//! The daemon's config file (`firebreak.yaml`) and its defaults.
//!
//! Raw types mirror the YAML with `deny_unknown_fields`; [`Config::load`]
//! validates them into [`Config`], collecting every problem with its
//! location. Every field has a default, so a small setup is a few lines and
//! `firebreak demo` needs no file at all.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::diag::{Collector, Diagnostics, Pos, Sp, from_yaml, one_of};
use crate::duration::PromDuration;
use crate::labels::Labels;
use crate::roles::{Grant, Role, RoleMap};

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub scrape: Vec<ScrapeTarget>,
    /// Evaluate rules against this Prometheus-compatible API instead of
    /// scraping.
    pub remote: Option<RemoteSource>,
    pub evaluation_interval: PromDuration,
    pub external_labels: Labels,
    pub alert_paths: Vec<String>,
    pub runbook_paths: Vec<String>,
    /// `rules.paths` was left out: `alerts` is read if it is there, and
    /// without it there are no rules, which is no error (a config that
    /// only takes pushed alerts, or runs runbooks by hand, has none).
    pub alert_paths_defaulted: bool,
    /// As `alert_paths_defaulted`, for `runbooks.paths` and `runbooks`.
    pub runbook_paths_defaulted: bool,
    /// Named HTTP endpoints that runbook `http` steps may call; no other
    /// host is reachable from a runbook.
    pub targets: BTreeMap<String, Target>,
    pub secrets: BTreeMap<String, SecretSource>,
    pub chat: ChatConfig,
    pub store_url: String,
    /// The leader lease of replicas on a PostgreSQL store (`store.lease`):
    /// how long a dead leader can hold up action, and how long a leader
    /// rides out a store that does not answer before it stops acting.
    pub store_lease: PromDuration,
    pub automation_paused: bool,
    /// Alert labels whose values group alerts into one incident.
    pub incident_group_by: Vec<String>,
    /// How each open incident's audience is measured (`incidents.audience`);
    /// `None`: cards show no audience.
    pub audience: Option<AudienceConfig>,
    /// The bot's own HTTP server (`server`).
    pub server: ServerConfig,
}

/// `server`: the bot's HTTP server: its API (pushed alerts, reads),
/// health and metrics, and Slack's request URLs. Left out, nothing listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    pub listen: Option<std::net::SocketAddr>,
    /// The secret whose value `/api/` requests must bear
    /// (`Authorization: Bearer ...`); `None` leaves the API open to
    /// whoever reaches the port.
    pub token_secret: Option<String>,
    /// Request bodies larger than this are refused (413).
    pub max_body_bytes: usize,
    /// How long a pushed alert without `endsAt` stays firing after it was
    /// last pushed (Alertmanager's `resolve_timeout`).
    pub resolve_timeout: PromDuration,
    /// A dead-man's switch: alerts are expected to be pushed at least this
    /// often (an always-firing `Watchdog` alert that Alertmanager repeats,
    /// or Prometheus's own resends); none within it is said in chat as
    /// blindness. `None`: pushes are not expected.
    pub deadman: Option<PromDuration>,
    /// The web console served beside the API (`server.console`).
    pub console: ConsoleConfig,
}

/// `server.console`: who may read the web console and act from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleConfig {
    pub sign_in: SignIn,
    /// With sign-in on, pages can be read without signing in.
    pub open_to_viewers: bool,
    /// How long a sign-in lasts.
    pub session: PromDuration,
    /// The address people open the console at (behind a proxy, its public
    /// one): named where the bot says chat refuses it.
    pub url: Option<url::Url>,
    /// With `sign_in: proxy`: which header names the person, and whose
    /// word for it is taken.
    pub proxy: Option<ProxySignIn>,
}

/// `server.console.proxy`: sign-in done by an authenticating reverse
/// proxy in front (oauth2-proxy, a company's SSO gateway), which names
/// the person in a header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxySignIn {
    /// The header with the person's immutable id (lower case).
    pub user_header: String,
    /// A header with a name to show beside it, if the proxy sends one.
    pub name_header: Option<String>,
    /// The peers allowed to set those headers: the proxy's addresses. A
    /// request with the header from anyone else is refused.
    pub trusted: Vec<Cidr>,
    /// The proxy's id of a person -> their chat user id, whose role in
    /// `chat.roles` they have; an id not listed is taken as a chat user
    /// id itself.
    pub users: BTreeMap<String, String>,
}

/// `s` as an HTTP header name (RFC 9110's token), lower case, or `None`.
fn header_name(s: &str) -> Option<String> {
    let s = s.trim();
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    (!s.is_empty() && s.len() <= 100 && s.chars().all(tchar)).then(|| s.to_ascii_lowercase())
}

/// An address block: `10.0.0.0/8`, `::1/128`, or one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: std::net::IpAddr,
    bits: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let net: std::net::IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an address or address/bits"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            Some(b) => match b.trim().parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("{s:?}: the bits after / go from 0 to {max}")),
            },
        };
        Ok(Cidr { net, bits })
    }

    /// Whether `ip` is in the block. An IPv4 address reached over IPv6
    /// (`::ffff:10.0.0.1`) is taken as the IPv4 one.
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let (a, b, width) = match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                (u128::from(u32::from(n)), u128::from(u32::from(i)), 32)
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => (u128::from(n), u128::from(i), 128),
            _ => return false,
        };
        let shift = width - u32::from(self.bits);
        shift >= 128 || (a >> shift) == (b >> shift)
    }
}

/// How people sign in to the web console.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignIn {
    /// Nobody signs in; the console only shows.
    Off,
    /// Per-person tokens issued with `firebreak console-token add`.
    Tokens,
    /// An authenticating proxy in front names the person in a header
    /// (`server.console.proxy`).
    Proxy,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            sign_in: SignIn::Off,
            open_to_viewers: false,
            session: PromDuration::from_secs(12 * 3600),
            url: None,
            proxy: None,
        }
    }
}

/// Room for about 10,000 alerts in one request.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 << 20;

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: None,
            token_secret: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            resolve_timeout: PromDuration::from_secs(300),
            deadman: None,
            console: ConsoleConfig::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ScrapeTarget {
    pub name: String,
    pub url: url::Url,
    pub interval: PromDuration,
    pub timeout: PromDuration,
    pub labels: Labels,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RemoteSource {
    pub url: url::Url,
    pub timeout: PromDuration,
    pub retries: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub name: String,
    pub url: url::Url,
    pub timeout: PromDuration,
    /// Name of a secret sent as `Authorization: Bearer <secret>`.
    pub bearer_secret: Option<String>,
    /// The target applies a request with a given `Idempotency-Key` at most
    /// once, so a POST that was in flight when the bot died may be sent
    /// again on restart.
    pub idempotency_keys: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    Env(String),
    File(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatConfig {
    /// Channel where incidents are posted.
    pub channel: String,
    /// Post to Slack instead of the console.
    pub slack: Option<SlackConfig>,
    /// Who may do what with chat commands (`chat.roles`).
    pub roles: RoleMap,
}

/// `chat.slack`: the Slack Web API. Secrets are named, not given: the
/// config file never holds a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlackConfig {
    /// The secret holding the bot token (`xoxb-...`).
    pub bot_token_secret: String,
    /// The secret holding the app's signing secret: with it, slash
    /// commands, buttons and events arrive over HTTP at `server.listen`,
    /// each request verified with it.
    pub signing_secret: Option<String>,
    /// The secret holding an app-level token (`xapp-...`, scope
    /// `connections:write`): with it, they arrive over Socket Mode
    /// instead, for a bot without a public URL.
    pub app_token_secret: Option<String>,
    /// The Web API base; tests point it at a local fake.
    pub api_url: url::Url,
    /// How long one Web API request may take.
    pub timeout: PromDuration,
    /// The hosts a request's `response_url` may name (host names, or `*.`
    /// and a domain); answers are never posted anywhere else. Slack's own
    /// unless set; tests add their fake's address.
    pub response_hosts: Vec<String>,
}

/// Slack's Web API, where `chat.slack.api_url` points unless told otherwise.
pub const SLACK_API_URL: &str = "https://slack.com/api/";

/// Where `firebreak sim` listens unless told otherwise.
pub const DEFAULT_SIM_ADDR: &str = "127.0.0.1:9100";

impl Config {
    /// Every place the config names a secret: (secret, field), in field
    /// order. What these name is what `firebreak run` needs to work: the
    /// chat adapter, the API's token, the targets' credentials.
    pub fn secret_uses(&self) -> Vec<(String, String)> {
        let mut uses = Vec::new();
        if let Some(s) = &self.chat.slack {
            uses.push((
                s.bot_token_secret.clone(),
                "chat.slack.bot_token_secret".into(),
            ));
            if let Some(n) = &s.signing_secret {
                uses.push((n.clone(), "chat.slack.signing_secret".into()));
            }
            if let Some(n) = &s.app_token_secret {
                uses.push((n.clone(), "chat.slack.app_token_secret".into()));
            }
        }
        if let Some(n) = &self.server.token_secret {
            uses.push((n.clone(), "server.token_secret".into()));
        }
        for (name, t) in &self.targets {
            if let Some(n) = &t.bearer_secret {
                uses.push((n.clone(), format!("targets.{name}.bearer_token_secret")));
            }
        }
        uses
    }

    /// The getting-started setup used when no config file is given: watch
    /// and mitigate a local `firebreak sim`. A config file starts from
    /// empty sources and targets instead, so production never points at a
    /// simulator by accident.
    pub fn for_simulator(addr: &str) -> Config {
        let base = url::Url::parse(&format!("http://{addr}/")).expect("socket address makes a URL");
        let mut c = Config::default();
        c.scrape.push(ScrapeTarget {
            name: "sim".into(),
            url: base.join("metrics").expect("static path"),
            interval: PromDuration::from_secs(15),
            timeout: PromDuration::from_secs(10),
            labels: Labels::new(),
        });
        c.targets.insert(
            "platform".into(),
            Target {
                name: "platform".into(),
                url: base,
                timeout: PromDuration::from_secs(10),
                bearer_secret: None,
                // The simulator remembers its last 10,000 keys.
                idempotency_keys: true,
            },
        );
        c.chat.channel = "#live-incidents".into();
        c.audience = Some(AudienceConfig::for_simulator());
        c
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            scrape: Vec::new(),
            remote: None,
            evaluation_interval: PromDuration::from_secs(60),
            external_labels: Labels::new(),
            alert_paths: vec!["alerts".into()],
            runbook_paths: vec!["runbooks".into()],
            alert_paths_defaulted: true,
            runbook_paths_defaulted: true,
            targets: BTreeMap::new(),
            secrets: BTreeMap::new(),
            chat: ChatConfig {
                channel: "#incidents".into(),
                slack: None,
                roles: RoleMap::default(),
            },
            store_url: "sqlite://firebreak.db".into(),
            store_lease: DEFAULT_LEASE,
            automation_paused: false,
            incident_group_by: vec!["event".into()],
            audience: None,
            server: ServerConfig::default(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    sources: RawSources,
    #[serde(default)]
    rules: RawRules,
    #[serde(default)]
    runbooks: RawRunbooks,
    #[serde(default)]
    targets: BTreeMap<String, Sp<RawTarget>>,
    #[serde(default)]
    secrets: BTreeMap<String, Sp<RawSecret>>,
    #[serde(default)]
    chat: RawChat,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    automation: RawAutomation,
    #[serde(default)]
    incidents: RawIncidents,
    #[serde(default)]
    server: RawServer,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<Sp<String>>,
    token_secret: Option<Sp<String>>,
    max_body_bytes: Option<Sp<u64>>,
    resolve_timeout: Option<Sp<String>>,
    deadman: Option<Sp<String>>,
    console: Option<RawConsole>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConsole {
    sign_in: Option<Sp<String>>,
    open_to_viewers: Option<bool>,
    session: Option<Sp<String>>,
    url: Option<Sp<String>>,
    proxy: Option<Sp<RawProxy>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProxy {
    user_header: Sp<String>,
    name_header: Option<Sp<String>>,
    trusted: Vec<Sp<String>>,
    #[serde(default)]
    users: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSources {
    #[serde(default)]
    scrape: Vec<Sp<RawScrape>>,
    prometheus: Option<Sp<RawRemote>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRemote {
    url: Sp<String>,
    timeout: Option<Sp<String>>,
    retries: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScrape {
    name: Sp<String>,
    url: Sp<String>,
    interval: Option<Sp<String>>,
    timeout: Option<Sp<String>>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRules {
    paths: Option<Vec<String>>,
    evaluation_interval: Option<Sp<String>>,
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRunbooks {
    paths: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    url: Sp<String>,
    timeout: Option<Sp<String>>,
    bearer_token_secret: Option<Sp<String>>,
    #[serde(default)]
    idempotency_keys: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    env: Option<String>,
    file: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawChat {
    channel: Option<String>,
    slack: Option<Sp<RawSlack>>,
    roles: Option<Sp<RawRoles>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlack {
    bot_token_secret: Sp<String>,
    signing_secret: Option<Sp<String>>,
    app_token_secret: Option<Sp<String>>,
    api_url: Option<Sp<String>>,
    timeout: Option<Sp<String>>,
    response_hosts: Option<Sp<Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoles {
    commander: Option<Sp<RawGrant>>,
    responder: Option<Sp<RawGrant>>,
    viewer: Option<Sp<RawGrant>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrant {
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    everyone: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStore {
    url: Option<Sp<String>>,
    lease: Option<Sp<String>>,
}

/// Ten seconds: a dead leader is replaced in about 11s, and a store that
/// stalls for less than 8s costs nothing.
pub const DEFAULT_LEASE: PromDuration = PromDuration::from_secs(10);

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAutomation {
    paused: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawIncidents {
    group_by: Option<Vec<String>>,
    audience: Option<Sp<RawAudience>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudience {
    every: Option<Sp<String>>,
    follow_for: Option<Sp<String>>,
    listening: Option<Sp<String>>,
    at_risk: Option<Sp<String>>,
    without_us: Option<Sp<String>>,
}

/// `incidents.audience`: PromQL templates over the incident's `group_by`
/// labels (`labels.event`), checked as far as they can be before a run.
fn audience(c: &mut Collector<'_>, raw: &Sp<RawAudience>) -> AudienceConfig {
    let mut query = |v: &Option<Sp<String>>, field: &str| -> Option<String> {
        let sp = v.as_ref()?;
        let field = format!("incidents.audience.{field}");
        if let Err(e) = check_query(&sp.value) {
            c.err(Pos::of(sp), &field, e);
        }
        for w in crate::runbook::template::promql_string_warnings(&sp.value) {
            c.err(Pos::of(sp), &field, w);
        }
        Some(sp.value.clone())
    };
    let listening = query(&raw.value.listening, "listening");
    let at_risk = query(&raw.value.at_risk, "at_risk");
    let without_us = query(&raw.value.without_us, "without_us");
    if listening.is_none() {
        c.err(
            Pos::of(raw),
            "incidents.audience.listening",
            "is needed: the other figures are read beside it",
        );
    }
    AudienceConfig {
        every: c.positive_duration(
            raw.value.every.as_ref(),
            "incidents.audience.every",
            DEFAULT_EVERY,
        ),
        follow_for: c.duration(
            raw.value.follow_for.as_ref(),
            "incidents.audience.follow_for",
            DEFAULT_FOLLOW_FOR,
        ),
        listening: listening.unwrap_or_default(),
        at_risk,
        without_us,
    }
}

/// Config-specific checks on top of the shared collector.
trait ConfigChecks {
    fn url(&mut self, sp: &Sp<String>, field: &str) -> Option<url::Url>;
}

impl ConfigChecks for Collector<'_> {
    fn url(&mut self, sp: &Sp<String>, field: &str) -> Option<url::Url> {
        match url::Url::parse(&sp.value) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Some(u),
            Ok(u) => {
                self.err(
                    Pos::of(sp),
                    field,
                    format!(
                        "unsupported scheme {:?} in {:?}; expected http or https",
                        u.scheme(),
                        sp.value
                    ),
                );
                None
            }
            Err(e) => {
                self.err(
                    Pos::of(sp),
                    field,
                    format!(
                        "invalid URL {:?}: {e}; expected e.g. http://127.0.0.1:9100/metrics",
                        sp.value
                    ),
                );
                None
            }
        }
    }
}

impl Config {
    /// Parses and validates a config file, reporting every problem at once.
    pub fn load(file: &str, text: &str) -> Result<Config, Diagnostics> {
        let raw: RawConfig = from_yaml(file, text)?;
        let mut c = Collector::new(file);
        let defaults = Config::default();

        let mut scrape = Vec::new();
        for (i, sp) in raw.sources.scrape.iter().enumerate() {
            let r = &sp.value;
            let field = format!("sources.scrape[{i}]");
            if scrape.iter().any(|t: &ScrapeTarget| t.name == r.name.value) {
                c.err(
                    Pos::of(&r.name),
                    format!("{field}.name"),
                    format!("duplicate scrape target name {:?}", r.name.value),
                );
            }
            let interval = c.positive_duration(
                r.interval.as_ref(),
                &format!("{field}.interval"),
                PromDuration::from_secs(15),
            );
            // Unset, the timeout is 10s or the interval if shorter; set
            // explicitly, a timeout longer than the interval is a mistake.
            let timeout = c.positive_duration(
                r.timeout.as_ref(),
                &format!("{field}.timeout"),
                PromDuration::from_secs(10).min(interval),
            );
            if timeout > interval {
                c.err(Pos::of(sp), format!("{field}.timeout"), format!("timeout {timeout} is longer than the interval {interval}; it must be at most the interval"));
            }
            if let Some(url) = c.url(&r.url, &format!("{field}.url")) {
                scrape.push(ScrapeTarget {
                    name: r.name.value.clone(),
                    url,
                    interval,
                    timeout,
                    labels: r.labels.clone().into(),
                });
            }
        }

        let remote = match &raw.sources.prometheus {
            None => None,
            Some(sp) => {
                let r = &sp.value;
                if !raw.sources.scrape.is_empty() {
                    c.err(Pos::of(sp), "sources.prometheus", "give either `scrape` targets or a `prometheus` API to query, not both: rules read from one source");
                }
                let timeout = c.positive_duration(
                    r.timeout.as_ref(),
                    "sources.prometheus.timeout",
                    PromDuration::from_secs(10),
                );
                c.url(&r.url, "sources.prometheus.url")
                    .map(|url| RemoteSource {
                        url,
                        timeout,
                        retries: r.retries.unwrap_or(2),
                    })
            }
        };

        let mut secrets = BTreeMap::new();
        for (name, sp) in &raw.secrets {
            let field = format!("secrets.{name}");
            match (&sp.value.env, &sp.value.file) {
                (Some(e), None) => {
                    secrets.insert(name.clone(), SecretSource::Env(e.clone()));
                }
                (None, Some(f)) => {
                    secrets.insert(name.clone(), SecretSource::File(f.clone()));
                }
                _ => c.err(
                    Pos::of(sp),
                    field,
                    "give exactly one of `env: VAR` or `file: PATH`",
                ),
            }
        }

        let slack = raw
            .chat
            .slack
            .as_ref()
            .map(|sp| slack_config(&mut c, &sp.value, &secrets, raw.server.listen.is_some()));
        let listen = raw.server.listen.as_ref().and_then(|sp| {
            sp.value
                .parse::<std::net::SocketAddr>()
                .map_err(|_| {
                    c.err(
                        Pos::of(sp),
                        "server.listen",
                        format!(
                            "{:?} is not an address to listen on; expected IP:PORT, such as 0.0.0.0:9095 or 127.0.0.1:9095",
                            sp.value
                        ),
                    )
                })
                .ok()
        });

        if let Some(s) = &raw.server.token_secret {
            known_secret(&mut c, s, "server.token_secret", &secrets);
        }
        let max_body_bytes = match &raw.server.max_body_bytes {
            None => DEFAULT_MAX_BODY_BYTES,
            Some(sp) if sp.value < 1024 => {
                c.err(
                    Pos::of(sp),
                    "server.max_body_bytes",
                    format!("{} bytes is too small for any alert; give at least 1024 (default {DEFAULT_MAX_BODY_BYTES})", sp.value),
                );
                DEFAULT_MAX_BODY_BYTES
            }
            Some(sp) => usize::try_from(sp.value).unwrap_or(usize::MAX),
        };
        let resolve_timeout = c.duration(
            raw.server.resolve_timeout.as_ref(),
            "server.resolve_timeout",
            ServerConfig::default().resolve_timeout,
        );
        if resolve_timeout.is_zero()
            && let Some(sp) = &raw.server.resolve_timeout
        {
            c.err(
                Pos::of(sp),
                "server.resolve_timeout",
                "must be greater than 0s (Alertmanager's default is 5m)",
            );
        }

        let deadman = raw.server.deadman.as_ref().map(|sp| {
            c.positive_duration(Some(sp), "server.deadman", PromDuration::from_secs(300))
        });

        let console = {
            let rc = raw.server.console.as_ref();
            let d = ConsoleConfig::default();
            let sign_in = match rc.and_then(|r| r.sign_in.as_ref()) {
                None => d.sign_in,
                Some(sp) => match sp.value.as_str() {
                    "off" => SignIn::Off,
                    "tokens" => SignIn::Tokens,
                    "proxy" => SignIn::Proxy,
                    other => {
                        c.err(
                            Pos::of(sp),
                            "server.console.sign_in",
                            format!("{other:?} is not a way to sign in; give `off` (the default: the console only shows), `tokens` (per-person tokens from `firebreak console-token add`) or `proxy` (an authenticating proxy names the person, see server.console.proxy)"),
                        );
                        d.sign_in
                    }
                },
            };
            let session = c.positive_duration(
                rc.and_then(|r| r.session.as_ref()),
                "server.console.session",
                d.session,
            );
            let url =
                rc.and_then(|r| r.url.as_ref())
                    .and_then(|sp| match url::Url::parse(&sp.value) {
                        Ok(u) if matches!(u.scheme(), "http" | "https") => Some(u),
                        _ => {
                            c.err(
                                Pos::of(sp),
                                "server.console.url",
                                format!(
                                    "{:?} is not an http:// or https:// address people can open",
                                    sp.value
                                ),
                            );
                            None
                        }
                    });
            let proxy = rc.and_then(|r| r.proxy.as_ref()).and_then(|sp| {
                let p = &sp.value;
                let mut header = |h: &Sp<String>, field: &str| {
                    match header_name(&h.value) {
                        Some(n) => Some(n),
                        None => {
                            c.err(
                                Pos::of(h),
                                field,
                                format!("{:?} is not a header name", h.value),
                            );
                            None
                        }
                    }
                };
                let user_header = header(&p.user_header, "server.console.proxy.user_header");
                let name_header = p
                    .name_header
                    .as_ref()
                    .and_then(|h| header(h, "server.console.proxy.name_header"));
                let mut trusted = Vec::new();
                for t in &p.trusted {
                    match Cidr::parse(&t.value) {
                        Ok(block) => trusted.push(block),
                        Err(e) => c.err(Pos::of(t), "server.console.proxy.trusted", e),
                    }
                }
                // The map decides who someone is: each target must be a
                // chat user id `chat.roles` can name.
                for (from, to) in &p.users {
                    if !crate::roles::is_user_id(to) {
                        c.err(
                            Pos::of(sp),
                            "server.console.proxy.users",
                            format!(
                                "{:?} (for {:?}) is not a chat user id; map the proxy's id to the member id `chat.roles` names, like U024BE7LH",
                                crate::human::clip(to, 40),
                                crate::human::clip(from, 40)
                            ),
                        );
                    }
                }
                if p.trusted.is_empty() {
                    c.err(
                        Pos::of(sp),
                        "server.console.proxy.trusted",
                        "give the proxy's addresses (e.g. [127.0.0.1]): a header anyone can send names nobody",
                    );
                }
                Some(ProxySignIn {
                    user_header: user_header?,
                    name_header,
                    trusted,
                    users: p.users.clone(),
                })
            });
            match (sign_in, rc.and_then(|r| r.proxy.as_ref())) {
                (SignIn::Proxy, None) => c.err(
                    rc.and_then(|r| r.sign_in.as_ref()).and_then(Pos::of),
                    "server.console.proxy",
                    "sign_in: proxy needs server.console.proxy: {user_header: ..., trusted: [...]}",
                ),
                (SignIn::Off | SignIn::Tokens, Some(sp)) => c.err(
                    Pos::of(sp),
                    "server.console.proxy",
                    "is only read with sign_in: proxy",
                ),
                _ => {}
            }
            ConsoleConfig {
                sign_in,
                open_to_viewers: rc
                    .and_then(|r| r.open_to_viewers)
                    .unwrap_or(d.open_to_viewers),
                session,
                url,
                proxy,
            }
        };

        let mut targets = BTreeMap::new();
        for (name, sp) in &raw.targets {
            let r = &sp.value;
            let field = format!("targets.{name}");
            let timeout = c.positive_duration(
                r.timeout.as_ref(),
                &format!("{field}.timeout"),
                PromDuration::from_secs(10),
            );
            if let Some(s) = &r.bearer_token_secret {
                known_secret(&mut c, s, &format!("{field}.bearer_token_secret"), &secrets);
            }
            if let Some(url) = c.url(&r.url, &format!("{field}.url")) {
                targets.insert(
                    name.clone(),
                    Target {
                        name: name.clone(),
                        url,
                        timeout,
                        bearer_secret: r.bearer_token_secret.as_ref().map(|s| s.value.clone()),
                        idempotency_keys: r.idempotency_keys,
                    },
                );
            }
        }

        let evaluation_interval = c.duration(
            raw.rules.evaluation_interval.as_ref(),
            "rules.evaluation_interval",
            defaults.evaluation_interval,
        );
        if evaluation_interval.is_zero()
            && let Some(sp) = &raw.rules.evaluation_interval
        {
            c.err(
                Pos::of(sp),
                "rules.evaluation_interval",
                "must be greater than 0s",
            );
        }

        let store_lease = c.duration(raw.store.lease.as_ref(), "store.lease", DEFAULT_LEASE);
        if let Some(sp) = &raw.store.lease
            && store_lease.as_millis() < 1000
        {
            c.err(
                Pos::of(sp),
                "store.lease",
                "must be at least 1s: a leader renews it every third and must reach the store in that time",
            );
        }
        let store_url = match &raw.store.url {
            None => defaults.store_url.clone(),
            Some(sp) => {
                if !(sp.value.starts_with("sqlite:")
                    || sp.value.starts_with("postgres://")
                    || sp.value.starts_with("postgresql://"))
                {
                    c.err(Pos::of(sp), "store.url", format!("unsupported store {:?}; expected sqlite://PATH or postgres://USER@HOST/DB", sp.value));
                }
                sp.value.clone()
            }
        };

        let config = Config {
            scrape,
            remote,
            evaluation_interval,
            external_labels: raw.rules.external_labels.into(),
            alert_paths_defaulted: raw.rules.paths.is_none(),
            runbook_paths_defaulted: raw.runbooks.paths.is_none(),
            alert_paths: raw.rules.paths.unwrap_or(defaults.alert_paths),
            runbook_paths: raw.runbooks.paths.unwrap_or(defaults.runbook_paths),
            targets,
            secrets,
            chat: ChatConfig {
                channel: raw.chat.channel.unwrap_or(defaults.chat.channel),
                slack: slack.flatten(),
                roles: roles(&mut c, raw.chat.roles.as_ref()),
            },
            store_url,
            store_lease,
            automation_paused: raw.automation.paused.unwrap_or(false),
            incident_group_by: raw.incidents.group_by.unwrap_or(defaults.incident_group_by),
            audience: raw.incidents.audience.as_ref().map(|a| audience(&mut c, a)),
            server: ServerConfig {
                listen,
                token_secret: raw.server.token_secret.map(|s| s.value),
                max_body_bytes,
                resolve_timeout,
                deadman,
                console,
            },
        };
        c.out.into_result(config)
    }
}

impl Config {
    /// The config as read from a file in `dir`: every relative path it
    /// names (rule and runbook paths, a SQLite store, secret files) is
    /// taken from that directory, as Prometheus does, so the same file
    /// works whatever directory firebreak is started in.
    pub fn rebased(mut self, dir: &Path) -> Config {
        let join = |p: &str| -> String {
            if dir.as_os_str().is_empty() || Path::new(p).is_absolute() {
                p.to_owned()
            } else {
                dir.join(p).display().to_string()
            }
        };
        for p in self.alert_paths.iter_mut().chain(&mut self.runbook_paths) {
            *p = join(p);
        }
        for src in self.secrets.values_mut() {
            if let SecretSource::File(f) = src {
                *f = join(f);
            }
        }
        if let Some(file) = sqlite_file(&self.store_url) {
            let query = self
                .store_url
                .find('?')
                .map_or("", |i| &self.store_url[i..]);
            self.store_url = format!("sqlite://{}{query}", join(&file));
        }
        self
    }
}

/// The file of a `sqlite:` store URL (`sqlite://PATH`, `sqlite:PATH`,
/// either with `?options`); `None` for other stores and in-memory ones.
pub fn sqlite_file(url: &str) -> Option<String> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or("");
    (!path.is_empty() && !path.contains(":memory:")).then(|| path.to_owned())
}

/// Reports a reference to a secret that `secrets:` does not define.
fn known_secret(
    c: &mut Collector<'_>,
    name: &Sp<String>,
    field: &str,
    secrets: &BTreeMap<String, SecretSource>,
) -> bool {
    if secrets.contains_key(&name.value) {
        return true;
    }
    let known: Vec<&String> = secrets.keys().collect();
    let valid = if known.is_empty() {
        "no secrets are defined under `secrets:`".to_owned()
    } else {
        format!("defined secrets: {}", one_of(&known))
    };
    c.err(
        Pos::of(name),
        field,
        format!("unknown secret {:?}; {valid}", name.value),
    );
    false
}

fn slack_config(
    c: &mut Collector<'_>,
    r: &RawSlack,
    secrets: &BTreeMap<String, SecretSource>,
    listening: bool,
) -> Option<SlackConfig> {
    let token_ok = known_secret(
        c,
        &r.bot_token_secret,
        "chat.slack.bot_token_secret",
        secrets,
    );
    let signing_ok = r
        .signing_secret
        .as_ref()
        .is_none_or(|s| known_secret(c, s, "chat.slack.signing_secret", secrets));
    if let Some(sp) = &r.signing_secret
        && !listening
    {
        c.err(
            Pos::of(sp),
            "chat.slack.signing_secret",
            "is for requests Slack sends over HTTP, but nothing listens: set `server.listen` (for example 0.0.0.0:9095), or use Socket Mode with `chat.slack.app_token_secret` and drop the signing secret",
        );
    }
    let app_ok = r
        .app_token_secret
        .as_ref()
        .is_none_or(|s| known_secret(c, s, "chat.slack.app_token_secret", secrets));
    let timeout = c.positive_duration(
        r.timeout.as_ref(),
        "chat.slack.timeout",
        PromDuration::from_secs(10),
    );
    let api_url = match &r.api_url {
        None => Some(url::Url::parse(SLACK_API_URL).expect("static URL")),
        Some(sp) => c.url(sp, "chat.slack.api_url"),
    };
    let response_hosts = match &r.response_hosts {
        None => SLACK_RESPONSE_HOSTS.iter().map(|h| h.to_string()).collect(),
        Some(sp) => {
            if sp.value.is_empty() {
                c.err(
                    Pos::of(sp),
                    "chat.slack.response_hosts",
                    "is empty, so no answer could ever be posted after its acknowledgement; leave it out for Slack's own hosts",
                );
            }
            for h in sp.value.iter().filter(|h| !ResponseHosts::is_pattern(h)) {
                c.err(
                    Pos::of(sp),
                    "chat.slack.response_hosts",
                    format!(
                        "{h:?} is not a host name; give hosts such as hooks.slack.com or *.slack.com, without a scheme, port or path"
                    ),
                );
            }
            sp.value.clone()
        }
    };
    Some(SlackConfig {
        bot_token_secret: r.bot_token_secret.value.clone(),
        signing_secret: r.signing_secret.as_ref().map(|s| s.value.clone()),
        app_token_secret: r.app_token_secret.as_ref().map(|s| s.value.clone()),
        api_url: api_url?,
        timeout,
        response_hosts,
    })
    .filter(|_| token_ok && signing_ok && app_ok)
}

/// `chat.roles`. Left out, a role's grant is empty, except `viewer`,
/// which stays everyone: reading what the channel already shows needs no
/// gate, and whoever wants one lists the viewers.
fn roles(c: &mut Collector<'_>, raw: Option<&Sp<RawRoles>>) -> RoleMap {
    let mut map = RoleMap::default();
    let Some(raw) = raw else { return map };
    let r = &raw.value;
    for (role, grant) in [
        (Role::Commander, &r.commander),
        (Role::Responder, &r.responder),
        (Role::Viewer, &r.viewer),
    ] {
        let Some(sp) = grant else { continue };
        let g = &sp.value;
        let field = format!("chat.roles.{role}");
        if !g.everyone && g.users.is_empty() && g.groups.is_empty() {
            c.err(
                Pos::of(sp),
                field.clone(),
                "grants the role to nobody; give `users: [U...]`, `groups: [S...]` or `everyone: true`",
            );
        }
        // By id only: a display name can be set to anything by anyone, so
        // a name here would grant the role to whoever picks it.
        for u in g.users.iter().filter(|u| !crate::roles::is_user_id(u)) {
            c.err(
                Pos::of(sp),
                format!("{field}.users"),
                format!(
                    "{u:?} is not a Slack user id; roles go by member id (`U...`, in the person's Slack profile under ⋮ → Copy member ID), never by name, since anyone can change their name"
                ),
            );
        }
        for g in g.groups.iter().filter(|g| !crate::roles::is_group_id(g)) {
            c.err(
                Pos::of(sp),
                format!("{field}.groups"),
                format!(
                    "{g:?} is not a Slack user group id; give the group's id (`S...`), not its handle"
                ),
            );
        }
        let grant = Grant {
            users: g.users.clone(),
            groups: g.groups.clone(),
            everyone: g.everyone,
        };
        match role {
            Role::Commander => map.commander = grant,
            Role::Responder => map.responder = grant,
            Role::Viewer => map.viewer = grant,
        }
    }
    map
}

/// How often each open incident's audience is measured by default.
pub const DEFAULT_EVERY: PromDuration = PromDuration::from_secs(15);

/// How long an incident's audience is still measured after it resolved,
/// by default: what a mitigation saved (or cost) often shows later, when
/// the room that was left alone would have crashed.
pub const DEFAULT_FOLLOW_FOR: PromDuration = PromDuration::from_secs(30 * 60);

/// `incidents.audience`.
#[derive(Clone, Debug, PartialEq)]
pub struct AudienceConfig {
    pub every: PromDuration,
    /// Measured this long after the incident resolved, for the review.
    pub follow_for: PromDuration,
    /// Listening now (summed when it gives several series).
    pub listening: String,
    /// Listening in rooms in danger now.
    pub at_risk: Option<String>,
    /// Listening now had nobody acted, where the platform can say.
    pub without_us: Option<String>,
}

impl AudienceConfig {
    /// For the simulator (the demo, rehearsals, `run` against `sim`):
    /// the event's listeners, those in rooms past 90% of their capacity or
    /// down, and the simulator's untouched twin of the platform.
    pub fn for_simulator() -> AudienceConfig {
        AudienceConfig {
            every: DEFAULT_EVERY,
            follow_for: DEFAULT_FOLLOW_FOR,
            listening: r#"sum(live_event_listeners{event="{{ labels.event | promql }}"})"#.into(),
            at_risk: Some(
                r#"sum(
  (live_room_listeners and on(room, account) (live_room_utilisation > 0.9 or live_room_up == 0))
    and on(room, account) live_event_info{event="{{ labels.event | promql }}"}
)"#
                .into(),
            ),
            without_us: Some(
                r#"sum(live_event_counterfactual_listeners{event="{{ labels.event | promql }}"})"#
                    .into(),
            ),
        }
    }
}

/// Whether `src` is a template that renders PromQL: its Jinja must parse,
/// and where it has no template at all, so must its PromQL.
pub fn check_query(src: &str) -> Result<(), String> {
    crate::runbook::template::Templates::new()
        .check(src)
        .map_err(|e| format!("template: {}", e.message))?;
    if !src.contains("{{") && !src.contains("{%") {
        crate::promql::parse(src).map_err(|e| format!("invalid PromQL: {e}"))?;
    }
    Ok(())
}

/// The hosts Slack's `response_url`s are on, unless `chat.slack.
/// response_hosts` says otherwise.
pub const SLACK_RESPONSE_HOSTS: [&str; 2] = ["hooks.slack.com", "*.slack.com"];

/// Where a `response_url` may point: a request names it, and the bot
/// posts its answer there, so a URL anywhere else would have the bot send
/// what it says (and requests from inside its network) wherever the
/// request asked. Over `https` only, except to a loopback address, where a
/// local fake Slack listens in tests; no user name or password in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHosts {
    /// Host names, or `*.` and a domain for any host under it.
    patterns: Vec<String>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadResponseUrl {
    #[error("not a URL: {0}")]
    Unparsable(String),
    #[error("scheme {0:?}; answers go over https")]
    Scheme(String),
    #[error("it carries a user name or password")]
    Credentials,
    #[error("host {0:?} is not one of chat.slack.response_hosts ({1})")]
    Host(String, String),
}

impl Default for ResponseHosts {
    fn default() -> Self {
        ResponseHosts::new(SLACK_RESPONSE_HOSTS.iter().map(|h| h.to_string()))
    }
}

impl ResponseHosts {
    pub fn new(patterns: impl IntoIterator<Item = String>) -> ResponseHosts {
        ResponseHosts {
            patterns: patterns
                .into_iter()
                .map(|p| p.to_ascii_lowercase())
                .collect(),
        }
    }

    /// Whether `pattern` is one this takes: a host name or address, or
    /// `*.` and a domain; no scheme, port or path.
    pub fn is_pattern(pattern: &str) -> bool {
        let host = pattern.strip_prefix("*.").unwrap_or(pattern);
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            && !host.starts_with('.')
            && !host.ends_with('.')
    }

    /// The URL to post to, if `url` may be posted to.
    pub fn check(&self, url: &str) -> Result<url::Url, BadResponseUrl> {
        let u = url::Url::parse(url).map_err(|e| BadResponseUrl::Unparsable(e.to_string()))?;
        if !matches!(u.scheme(), "https" | "http") {
            return Err(BadResponseUrl::Scheme(u.scheme().to_owned()));
        }
        if !u.username().is_empty() || u.password().is_some() {
            return Err(BadResponseUrl::Credentials);
        }
        // The host as the URL parser reads it, not as the text looks:
        // `https://hooks.slack.com@evil.example/` is evil.example's.
        let Some(host) = u.host_str().map(str::to_ascii_lowercase) else {
            return Err(BadResponseUrl::Unparsable("no host".into()));
        };
        let loopback = host == "localhost"
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        match u.scheme() {
            "https" => {}
            "http" if loopback => {}
            other => return Err(BadResponseUrl::Scheme(other.to_owned())),
        }
        let allowed = self.patterns.iter().any(|p| match p.strip_prefix("*.") {
            Some(domain) => host
                .strip_suffix(domain)
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
            None => *p == host,
        });
        if !allowed {
            return Err(BadResponseUrl::Host(host, self.patterns.join(", ")));
        }
        Ok(u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::load("f.yaml", "{}").unwrap();
        assert_eq!(c.store_url, "sqlite://firebreak.db");
        assert_eq!(c.evaluation_interval, PromDuration::from_secs(60));
        assert_eq!(c.alert_paths, vec!["alerts"]);
    }

    /// Issue 22, item 5: relative paths are the config file's directory's,
    /// as in Prometheus; absolute ones and other stores stay as written.
    #[test]
    fn relative_paths_are_taken_from_the_config_files_directory() {
        let text = "\
rules: {paths: [alerts, /abs/rules]}
secrets:
  rel: {file: secrets/token}
  abs: {file: /run/token}
  env: {env: TOKEN}
store: {url: 'sqlite://state/fb.db?mode=rwc'}
";
        let c = Config::load("c.yaml", text)
            .unwrap()
            .rebased(Path::new("/etc/fb"));
        assert_eq!(c.alert_paths, ["/etc/fb/alerts", "/abs/rules"]);
        assert!(!c.alert_paths_defaulted);
        assert_eq!(c.runbook_paths, ["/etc/fb/runbooks"]);
        assert!(c.runbook_paths_defaulted);
        assert_eq!(
            c.secrets["rel"],
            SecretSource::File("/etc/fb/secrets/token".into())
        );
        assert_eq!(c.secrets["abs"], SecretSource::File("/run/token".into()));
        assert_eq!(c.secrets["env"], SecretSource::Env("TOKEN".into()));
        assert_eq!(c.store_url, "sqlite:///etc/fb/state/fb.db?mode=rwc");
        assert_eq!(
            sqlite_file(&c.store_url).as_deref(),
            Some("/etc/fb/state/fb.db")
        );
        for (url, rebased) in [
            ("sqlite:fb.db", "sqlite://conf/fb.db"),
            ("sqlite:///var/lib/fb.db", "sqlite:///var/lib/fb.db"),
            ("sqlite::memory:", "sqlite::memory:"),
            ("postgres://u@db/fb", "postgres://u@db/fb"),
        ] {
            let c = Config::load("c.yaml", &format!("store: {{url: '{url}'}}\n"))
                .unwrap()
                .rebased(Path::new("conf"));
            assert_eq!(c.store_url, rebased, "{url}");
        }
        // A config in the current directory (`firebreak.yaml`) keeps them.
        let c = Config::load("c.yaml", text).unwrap().rebased(Path::new(""));
        assert_eq!(c.alert_paths, ["alerts", "/abs/rules"]);
        assert_eq!(c.store_url, "sqlite://state/fb.db?mode=rwc");
    }

    #[test]
    fn small_config_loads() {
        let c = Config::load(
            "f.yaml",
            "sources:\n  scrape:\n    - name: sim\n      url: http://127.0.0.1:9100/metrics\n      interval: 5s\ntargets:\n  platform:\n    url: http://127.0.0.1:9100\n",
        )
        .unwrap();
        assert_eq!(c.scrape[0].interval, PromDuration::from_secs(5));
        assert_eq!(c.targets["platform"].url.as_str(), "http://127.0.0.1:9100/");
        assert!(
            !c.targets["platform"].idempotency_keys,
            "off unless declared"
        );
        let c = Config::load(
            "f.yaml",
            "targets:\n  platform:\n    url: http://127.0.0.1:9100\n    idempotency_keys: true\n",
        )
        .unwrap();
        assert!(c.targets["platform"].idempotency_keys);
        let e = Config::load(
            "f.yaml",
            "targets:\n  platform:\n    url: http://127.0.0.1:9100\n    idempotency_keys: maybe\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("f.yaml:4:"), "{e}");
    }

    /// Regression: `targets.X.timeout: 0s` passed validation, as did a
    /// zero scrape interval or timeout, and every call then failed at once.
    #[test]
    fn zero_timeouts_and_intervals_are_refused() {
        let text = "\
sources:
  scrape:
    - name: a
      url: http://127.0.0.1:1/metrics
      interval: 0s
      timeout: 0s
targets:
  sim:
    url: http://127.0.0.1:1
    timeout: 0s
";
        let errs = Config::load("cfg.yaml", text).unwrap_err();
        let lines: Vec<String> = errs.iter().map(ToString::to_string).collect();
        for want in [
            "cfg.yaml:5:17: sources.scrape[0].interval: must be greater than 0s",
            "cfg.yaml:6:16: sources.scrape[0].timeout: must be greater than 0s",
            "cfg.yaml:10:14: targets.sim.timeout: must be greater than 0s",
        ] {
            assert!(lines.iter().any(|l| l == want), "{want} not in {lines:#?}");
        }
        let e = Config::load(
            "c.yaml",
            "sources:\n  prometheus:\n    url: http://127.0.0.1:9090\n    timeout: 0s\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("sources.prometheus.timeout: must be greater than 0s"),
            "{e}"
        );
    }

    #[test]
    fn every_error_is_reported_with_location() {
        let text = "\
sources:
  scrape:
    - name: a
      url: ftp://x
      interval: 5q
targets:
  sim:
    url: http://127.0.0.1:1
    bearer_token_secret: nope
store:
  url: mysql://x
";
        let errs = Config::load("cfg.yaml", text).unwrap_err();
        let lines: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(errs.len(), 4, "{lines:#?}");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("cfg.yaml:4:12: sources.scrape[0].url: unsupported scheme")),
            "{lines:#?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l
                    .starts_with("cfg.yaml:5:17: sources.scrape[0].interval: invalid duration")),
            "{lines:#?}"
        );
        assert!(
            lines.iter().any(|l| l.starts_with(
                "cfg.yaml:9:26: targets.sim.bearer_token_secret: unknown secret \"nope\""
            )),
            "{lines:#?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("cfg.yaml:11:8: store.url: unsupported store")),
            "{lines:#?}"
        );
    }

    #[test]
    fn a_remote_prometheus_source_loads_and_excludes_scraping() {
        let c = Config::load(
            "c.yaml",
            "sources:\n  prometheus:\n    url: http://127.0.0.1:9090\n    timeout: 5s\n",
        )
        .unwrap();
        let r = c.remote.unwrap();
        assert_eq!(r.url.as_str(), "http://127.0.0.1:9090/");
        assert_eq!((r.timeout, r.retries), (PromDuration::from_secs(5), 2));
        let both = "sources:\n  scrape:\n    - {name: a, url: 'http://x/metrics'}\n  prometheus:\n    url: http://y\n";
        let errs = Config::load("c.yaml", both).unwrap_err();
        assert!(
            errs.to_string()
                .contains("c.yaml:5:5: sources.prometheus: give either"),
            "{errs}"
        );
    }

    #[test]
    fn unknown_field_is_rejected_with_location() {
        let errs = Config::load("c.yaml", "automation:\n  pasued: true\n").unwrap_err();
        let d = &errs.0[0];
        assert_eq!(d.pos.map(|p| p.line), Some(2), "{d}");
        assert!(d.message.contains("pasued"), "{d}");
    }

    #[test]
    fn slack_config_loads_with_defaults_and_checks_its_secrets() {
        let text = "secrets:\n  slack_bot: {env: SLACK_BOT_TOKEN}\n  slack_signing: {file: /run/signing}\nchat:\n  channel: '#live'\n  slack:\n    bot_token_secret: slack_bot\n    signing_secret: slack_signing\nserver:\n  listen: 0.0.0.0:9095\n";
        let c = Config::load("c.yaml", text).unwrap();
        assert_eq!(c.server.listen, Some("0.0.0.0:9095".parse().unwrap()));
        let s = c.chat.slack.unwrap();
        assert_eq!(s.bot_token_secret, "slack_bot");
        assert_eq!(s.signing_secret.as_deref(), Some("slack_signing"));
        assert_eq!(s.api_url.as_str(), "https://slack.com/api/");
        assert_eq!(s.timeout, PromDuration::from_secs(10));
        assert_eq!(s.response_hosts, ["hooks.slack.com", "*.slack.com"]);
        assert!(Config::load("c.yaml", "{}").unwrap().chat.slack.is_none());
        let local = text.replace(
            "    signing_secret: slack_signing\n",
            "    signing_secret: slack_signing\n    response_hosts: [127.0.0.1]\n",
        );
        let s = Config::load("c.yaml", &local).unwrap().chat.slack.unwrap();
        assert_eq!(s.response_hosts, ["127.0.0.1"]);
        let bad = local.replace("[127.0.0.1]", "['https://evil.example/x']");
        let e = Config::load("c.yaml", &bad).unwrap_err().to_string();
        assert!(
            e.contains("chat.slack.response_hosts: \"https://evil.example/x\" is not a host name"),
            "{e}"
        );

        let text = "\
secrets:
  other: {env: X}
  more: {env: Y}
chat:
  slack:
    bot_token_secret: slack_bot
    signing_secret: nope
    api_url: ftp://example
    timeout: 0s
    tokn: x
server:
  listen: 127.0.0.1:0
";
        let errs = Config::load("c.yaml", text).unwrap_err().to_string();
        assert!(errs.contains("tokn"), "{errs}");
        let text = text.replace("    tokn: x\n", "");
        let errs = Config::load("c.yaml", &text).unwrap_err();
        let lines: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(lines.len(), 4, "{lines:#?}");
        for want in [
            "c.yaml:6:23: chat.slack.bot_token_secret: unknown secret \"slack_bot\"; defined secrets: ",
            "c.yaml:7:21: chat.slack.signing_secret: unknown secret \"nope\"",
            "c.yaml:8:14: chat.slack.api_url: unsupported scheme",
            "c.yaml:9:14: chat.slack.timeout: must be greater than 0s",
        ] {
            assert!(
                lines.iter().any(|l| l.starts_with(want)),
                "{want}\n{lines:#?}"
            );
        }
        assert!(
            lines[0].contains("more") && lines[0].contains("other"),
            "{lines:#?}"
        );
    }

    #[test]
    fn the_console_is_read_only_unless_sign_in_is_asked_for() {
        let c = Config::load("c.yaml", "server: {listen: '127.0.0.1:9095'}\n").unwrap();
        assert_eq!(c.server.console, ConsoleConfig::default());
        assert_eq!(c.server.console.sign_in, SignIn::Off);
        let c = Config::load(
            "c.yaml",
            "server:\n  console: {sign_in: tokens, open_to_viewers: true, session: 30m}\n",
        )
        .unwrap();
        assert_eq!(
            c.server.console,
            ConsoleConfig {
                sign_in: SignIn::Tokens,
                open_to_viewers: true,
                session: PromDuration::from_secs(1800),
                url: None,
                proxy: None,
            }
        );
        let lines: Vec<String> = Config::load(
            "c.yaml",
            "server:\n  console: {sign_in: password, session: 0s, url: 'ftp://x'}\n",
        )
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(lines.len(), 3, "{lines:#?}");
        assert!(
            lines[2]
                .contains("server.console.url: \"ftp://x\" is not an http:// or https:// address"),
            "{lines:#?}"
        );
        assert!(
            lines[0].starts_with(
                "c.yaml:2:22: server.console.sign_in: \"password\" is not a way to sign in"
            ),
            "{lines:#?}"
        );
        assert!(
            lines[1].contains("server.console.session: must be greater than 0s"),
            "{lines:#?}"
        );
        assert!(Config::load("c.yaml", "server:\n  console: {signin: tokens}\n").is_err());
    }

    #[test]
    fn proxy_sign_in_names_its_header_and_who_may_set_it() {
        let c = Config::load(
            "c.yaml",
            "server:\n  console:\n    sign_in: proxy\n    proxy: {user_header: X-Auth-Request-User, trusted: [127.0.0.1, 10.0.0.0/8]}\n",
        )
        .unwrap();
        let p = c.server.console.proxy.unwrap();
        assert_eq!(p.user_header, "x-auth-request-user");
        assert_eq!(
            p.trusted,
            [
                Cidr::parse("127.0.0.1/32").unwrap(),
                Cidr::parse("10.0.0.0/8").unwrap()
            ]
        );
        let errors = |yaml: &str| -> Vec<String> {
            Config::load("c.yaml", yaml)
                .unwrap_err()
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        let e = errors("server:\n  console: {sign_in: proxy}\n");
        assert!(
            e[0].contains("sign_in: proxy needs server.console.proxy"),
            "{e:#?}"
        );
        let e = errors(
            "server:\n  console:\n    sign_in: tokens\n    proxy: {user_header: X-User, trusted: [127.0.0.1]}\n",
        );
        assert!(e[0].contains("is only read with sign_in: proxy"), "{e:#?}");
        let e = errors(
            "server:\n  console:\n    sign_in: proxy\n    proxy: {user_header: 'bad header', trusted: [10.0.0.0/33, nowhere]}\n",
        );
        assert_eq!(e.len(), 3, "{e:#?}");
        assert!(
            e[0].contains("\"bad header\" is not a header name"),
            "{e:#?}"
        );
        assert!(e[1].contains("the bits after / go from 0 to 32"), "{e:#?}");
        assert!(e[2].contains("\"nowhere\" is not an address"), "{e:#?}");
        let e = errors(
            "server:\n  console:\n    sign_in: proxy\n    proxy: {user_header: X-User, trusted: []}\n",
        );
        assert!(e[0].contains("give the proxy's addresses"), "{e:#?}");
        let e = errors(
            "server:\n  console:\n    sign_in: proxy\n    proxy: {user_header: X-User, trusted: [127.0.0.1], users: {ana@example.com: ana}}\n",
        );
        assert_eq!(e.len(), 1, "{e:#?}");
        assert!(
            e[0].starts_with("c.yaml:4:")
                && e[0].contains("\"ana\" (for \"ana@example.com\") is not a chat user id"),
            "{e:#?}"
        );
    }

    #[test]
    fn address_blocks_hold_what_they_say() {
        let b = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(b.contains("10.1.255.3".parse().unwrap()));
        assert!(!b.contains("10.2.0.1".parse().unwrap()));
        assert!(b.contains("::ffff:10.1.0.9".parse().unwrap()));
        assert!(!b.contains("::1".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(
            Cidr::parse("fd00::/8")
                .unwrap()
                .contains("fd12::1".parse().unwrap())
        );
        assert!(!Cidr::parse("::1").unwrap().contains("::2".parse().unwrap()));
    }

    #[test]
    fn server_fields_default_and_are_checked_together() {
        let c = Config::load("c.yaml", "server: {listen: '127.0.0.1:9095'}\n").unwrap();
        assert_eq!(c.server.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert_eq!(c.server.resolve_timeout, PromDuration::from_secs(300));
        assert_eq!(c.server.token_secret, None);
        let text = "secrets:\n  t: {env: T}\nserver:\n  token_secret: tok\n  max_body_bytes: 10\n  resolve_timeout: 0s\n";
        let lines: Vec<String> = Config::load("c.yaml", text)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(lines.len(), 3, "{lines:#?}");
        for want in [
            "c.yaml:4:17: server.token_secret: unknown secret \"tok\"",
            "c.yaml:5:19: server.max_body_bytes: 10 bytes is too small",
            "c.yaml:6:20: server.resolve_timeout: must be greater than 0s",
        ] {
            assert!(
                lines.iter().any(|l| l.starts_with(want)),
                "{want}\n{lines:#?}"
            );
        }
        let ok = Config::load(
            "c.yaml",
            "secrets:\n  t: {env: T}\nserver: {token_secret: t, max_body_bytes: 65536, resolve_timeout: 2m}\n",
        )
        .unwrap();
        assert_eq!(ok.server.token_secret.as_deref(), Some("t"));
        assert_eq!(ok.server.max_body_bytes, 65_536);
    }

    #[test]
    fn slack_inbound_needs_somewhere_to_arrive() {
        let base = "secrets:\n  bot: {env: B}\n  sign: {env: S}\n  app: {env: A}\nchat:\n  slack:\n    bot_token_secret: bot\n";
        let errs = Config::load("c.yaml", &format!("{base}    signing_secret: sign\n"))
            .unwrap_err()
            .to_string();
        assert!(
            errs.starts_with("c.yaml:8:21: chat.slack.signing_secret: is for requests Slack sends over HTTP, but nothing listens: set `server.listen`"),
            "{errs}"
        );
        let c = Config::load("c.yaml", &format!("{base}    app_token_secret: app\n")).unwrap();
        let s = c.chat.slack.unwrap();
        assert_eq!(s.app_token_secret.as_deref(), Some("app"));
        assert_eq!(c.server.listen, None);
        let errs = Config::load(
            "c.yaml",
            &format!("{base}    app_token_secret: ap\nserver:\n  listen: localhost\n"),
        )
        .unwrap_err();
        let lines: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(lines, [
            "c.yaml:8:23: chat.slack.app_token_secret: unknown secret \"ap\"; defined secrets: app, bot, sign".to_owned(),
            "c.yaml:10:11: server.listen: \"localhost\" is not an address to listen on; expected IP:PORT, such as 0.0.0.0:9095 or 127.0.0.1:9095".to_owned(),
        ]);
    }

    #[test]
    fn chat_roles_load_and_are_checked() {
        let c = Config::load(
            "c.yaml",
            "chat:\n  channel: '#live'\n  roles:\n    commander: {users: [U012ABC], groups: [S0ONCALL]}\n    responder: {groups: [S0SRE]}\n",
        )
        .unwrap();
        let r = &c.chat.roles;
        assert_eq!(r.resolve("U012ABC", &[]), Some(Role::Commander));
        assert_eq!(r.resolve("U9", &["S0SRE".into()]), Some(Role::Responder));
        assert_eq!(
            r.resolve("U9", &[]),
            Some(Role::Viewer),
            "viewer stays everyone"
        );
        assert_eq!(
            Config::load("c.yaml", "{}").unwrap().chat.roles,
            RoleMap::default()
        );

        let e = Config::load("c.yaml", "chat:\n  roles:\n    commander: {user: [U1]}\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c.yaml:3:"), "{e}");
        assert!(e.contains("user"), "{e}");
        let e = Config::load("c.yaml", "chat:\n  roles:\n    admin: {everyone: true}\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c.yaml:3:") && e.contains("admin"), "{e}");
        let e = Config::load("c.yaml", "chat:\n  roles:\n    responder: {users: []}\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("c.yaml:3:")
                && e.contains("chat.roles.responder: grants the role to nobody"),
            "{e}"
        );
    }

    /// A name in a grant would give the role to whoever renames
    /// themselves to it; config says who by id, and says so when not.
    #[test]
    fn roles_are_granted_by_id_not_by_name() {
        let e = Config::load(
            "c.yaml",
            "chat:\n  roles:\n    commander: {users: [U012ABC, ana], groups: [oncall]}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("chat.roles.commander.users: \"ana\" is not a Slack user id")
                && e.contains("never by name"),
            "{e}"
        );
        assert!(
            e.contains("chat.roles.commander.groups: \"oncall\" is not a Slack user group id"),
            "{e}"
        );
        assert!(!e.contains("U012ABC"), "an id is fine: {e}");
    }
}
