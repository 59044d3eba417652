//! The daemon: everything `firebreak run` runs, wired in the one-way flow.
//!
//! ```text
//! scrape tasks ─(64)─▶ watcher ─(1024)─▶ control ─▶ executor runs ─▶ outbox ─▶ chat
//! HTTP API, pushed ─(256)─┘
//!                                        ▲  ▲  ├─(8, lossy)─▶ charts ─▶ outbox
//!                                        │  │  ├─(16, lossy)─▶ audience ─(16, lossy)─▶ control (cards, store)
//!                                        │  │  └─(16, busy reply)─▶ checklists ─▶ outbox, store
//!                                        │  └── executor: (256) run ends,
//!                                        │      (256, lossy) run progress for cards
//!                      commands ──(64)───┘
//!                         ▲
//!   console lines (16); Slack over HTTP (server.listen) or Socket Mode, 64 in flight;
//!   the HTTP API's reads ask control (`GET /api/v1/alerts`) or the store
//!
//! reload (SIGHUP, files changed; 1 waiting, more join it):
//!   runbooks ─▶ control (answers when in place), then
//!   rules ─(1)─▶ watcher, checklists ─▶ checklists runner
//! ```
//! Numbers are queue bounds; a full queue makes its sender wait (no
//! sample, alert or run end is dropped; a push waits 8s, then is told 503
//! to send again), and chat goes through the durable outbox, which has no
//! in-memory queue to fill.
//!
//! Two handles let steps reach back against the flow: `query` and `wait
//! until` steps ask the watcher through its query queue (64; with a remote
//! source they ask the remote API instead), and `silence` steps send
//! commands into the control queue like people do. Neither the watcher nor
//! the control loop ever waits on a run, so this cannot deadlock.
//!
//! `firebreak demo` runs exactly this, on a scaled clock against the
//! simulator.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::chat::{ChatAdapter, Outbox};
use crate::clock::Clock;
use crate::config::Config;
use crate::control::{Command, Control};
use crate::dispatch::{Dispatcher, Pause};
use crate::executor::Executor;
use crate::executor::actions::ActionEnv;
use crate::load::Loaded;
use crate::rules::RuleEngine;
use crate::store::Store;
use crate::tsdb::SeriesStore;
use crate::watcher::Watcher;

/// How long shutdown waits for chat to flush before leaving the rest in
/// the outbox for the next start.
const CHAT_FLUSH: Duration = Duration::from_secs(5);

/// The chat `firebreak run` posts to: Slack when `chat.slack` is
/// configured, else the console (times in UTC).
///
/// With Slack, the token is checked once with `auth.test`. A token Slack
/// refuses stops the start: nothing would ever be delivered, and the fix is
/// a person's. Slack being unreachable does not: the outbox keeps every
/// message and delivers once Slack answers, and a bot that will not start
/// during a Slack outage would also stop mitigating.
pub async fn chat_adapter(config: &Config) -> anyhow::Result<Arc<dyn ChatAdapter>> {
    use crate::chat::ChatError;
    use crate::chat::slack::Slack;
    let Some(cfg) = &config.chat.slack else {
        return Ok(Arc::new(crate::chat::console::Console::stdout(
            chrono::FixedOffset::east_opt(0).expect("zero offset"),
            "UTC",
        )));
    };
    let slack = Slack::from_config(cfg, &config.secrets)?;
    match slack.auth_test().await {
        Ok(who) => tracing::info!(
            team = %who.team, user = %who.user, api = %cfg.api_url,
            "connected to Slack"
        ),
        Err(ChatError::Rejected(reason) | ChatError::Refused(reason)) => anyhow::bail!(
            "Slack refused the bot token from secret {:?} ({reason}); check the token and that the app is installed to the workspace",
            cfg.bot_token_secret
        ),
        Err(ChatError::Retry { reason, .. }) => tracing::warn!(
            error = %reason,
            "cannot reach Slack to check the bot token; starting anyway, messages wait in the outbox until Slack answers"
        ),
    }
    Ok(Arc::new(slack))
}

/// Starts what people reach the bot through: the HTTP routes (with
/// Slack's request URLs when a signing secret is set), served at
/// `server.listen` or, on a replica, put in place on its listener
/// (`front`), and Socket Mode when an app token is. Returns the bound
/// address.
/// The Slack user groups `chat.roles` grants roles to, for the web
/// console (chat commands ask through their own): `None` without Slack or
/// without group grants.
fn console_groups(config: &Config) -> anyhow::Result<Option<Arc<dyn crate::roles::GroupLookup>>> {
    let Some(cfg) = &config.chat.slack else {
        return Ok(None);
    };
    let slack = crate::chat::slack::Slack::from_config(cfg, &config.secrets)
        .context("chat.slack, for the console's user groups")?;
    Ok(
        crate::inbound::slack::Groups::for_roles(Arc::new(slack), &config.chat.roles)
            .map(|g| Arc::new(g) as Arc<dyn crate::roles::GroupLookup>),
    )
}

async fn inbound(
    config: &Config,
    ctx: &Arc<crate::command::Ctx>,
    outbox: &Outbox,
    api: Arc<crate::api::Api>,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
    front: Option<&crate::front::Front>,
) -> anyhow::Result<Option<std::net::SocketAddr>> {
    use crate::chat::slack::Slack;
    use crate::inbound::slack::{Groups, Inbound, ResponseHosts};
    let secret = |name: &str, field: &str| -> anyhow::Result<String> {
        crate::secrets::secret_named(&config.secrets, name)
            .map_err(|e| anyhow::anyhow!("{field}: {e}"))
    };
    let mut slack_routes = axum::Router::new();
    let mut slack_inbound = None;
    if let Some(cfg) = &config.chat.slack
        && (cfg.signing_secret.is_some() || cfg.app_token_secret.is_some())
    {
        let slack = Arc::new(Slack::from_config(cfg, &config.secrets)?);
        let signing = match &cfg.signing_secret {
            Some(name) => Some(secret(name, "chat.slack.signing_secret")?.into_bytes()),
            None => None,
        };
        let inbound = Arc::new(
            Inbound::new(
                ctx.clone(),
                config.chat.roles.clone(),
                Groups::for_roles(slack.clone(), &config.chat.roles),
                crate::net::client_without_redirects()?,
                outbox.clone(),
                signing.clone(),
                shutdown.clone(),
            )
            .with_response_hosts(ResponseHosts::new(cfg.response_hosts.clone())),
        );
        if signing.is_some() {
            slack_routes = crate::inbound::slack::routes(inbound.clone());
            if front.is_some() {
                // A replica's followers take Slack's requests too.
                tracker.spawn(crate::inbound::slack::take_forwarded(
                    inbound.clone(),
                    shutdown.clone(),
                ));
            }
        }
        if let Some(name) = &cfg.app_token_secret {
            let token = secret(name, "chat.slack.app_token_secret")?;
            tracker.spawn(crate::inbound::socket::run(
                inbound.clone(),
                slack,
                token,
                shutdown.clone(),
            ));
        }
        slack_inbound = Some(inbound);
    }
    let app = crate::api::routes_with(api, slack_routes);
    let addr = match config.server.listen {
        Some(_) if let Some(front) = front => {
            front.set(app);
            None
        }
        Some(addr) => {
            let listener = crate::server::bind(addr).await?;
            let bound = listener.local_addr().ok();
            tracker.spawn(crate::server::serve(listener, app, shutdown.clone()));
            bound
        }
        None => None,
    };
    if let Some(inbound) = slack_inbound {
        // Answers still being worked on end with the rest; they are cut
        // short by the same token.
        let tasks = inbound.tasks().clone();
        let stop = shutdown.clone();
        tracker.spawn(async move {
            stop.cancelled().await;
            tasks.close();
            tasks.wait().await;
        });
    }
    Ok(addr)
}

pub struct Daemon {
    pub commands: mpsc::Sender<Command>,
    /// Where `server.listen` ended up listening (the port, when it was 0).
    pub http_addr: Option<std::net::SocketAddr>,
    /// What chat commands run against (see [`crate::command::handle`]);
    /// times show in UTC unless the edge changes `offset` and `zone`.
    pub ctx: Arc<crate::command::Ctx>,
    /// Asks for a reload of rules, runbooks and checklists (SIGHUP);
    /// `None` when they are the embedded defaults.
    pub reload: Option<crate::reload::Trigger>,
    done: tokio::task::JoinHandle<()>,
}

impl Daemon {
    /// Restores saved alert state, then starts every task. They stop when `shutdown` is cancelled; then
    /// [`Daemon::wait`] returns once runs have stopped and chat is flushed.
    pub async fn start(
        loaded: Loaded,
        store: Store,
        clock: Clock,
        chat: Arc<dyn ChatAdapter>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Daemon> {
        crate::metrics::get().leader.with(&[]).set(1.0);
        Daemon::start_with(loaded, store, clock, chat, shutdown, None).await
    }

    /// [`Daemon::start`] for a replica that has just taken the lease:
    /// `store` is fenced by it, the HTTP routes go on the replica's
    /// listener (`front`), and pushes its followers kept are taken.
    pub async fn lead(
        loaded: Loaded,
        store: Store,
        clock: Clock,
        chat: Arc<dyn ChatAdapter>,
        shutdown: CancellationToken,
        front: &crate::front::Front,
    ) -> anyhow::Result<Daemon> {
        Daemon::start_with(loaded, store, clock, chat, shutdown, Some(front)).await
    }

    async fn start_with(
        loaded: Loaded,
        store: Store,
        clock: Clock,
        chat: Arc<dyn ChatAdapter>,
        shutdown: CancellationToken,
        front: Option<&crate::front::Front>,
    ) -> anyhow::Result<Daemon> {
        let http = crate::net::client()?;
        // What starts is loaded: a reload is measured against it.
        crate::reload::loaded_now(clock.now());
        let config = loaded.config;
        // What the bot cannot see: written by the watcher (sources, rules,
        // pushes) and the outbox (chat), read by `/-/ready` and `/metrics`.
        let board = crate::sight::Board::new();
        let outbox = Outbox::new(store.clone())
            .with_board(board.clone())
            .with_console(config.server.console.url.as_ref().map(|u| u.to_string()));
        let tracker = TaskTracker::new();

        let (scrape_tx, scrape_rx) = mpsc::channel(64);
        let (alert_tx, alert_rx) = mpsc::channel(1024);
        let (finished_tx, finished_rx) = mpsc::channel(256);
        let (command_tx, command_rx) = mpsc::channel(64);

        for target in &config.scrape {
            tracker.spawn(crate::source::scrape::run(
                target.clone(),
                http.clone(),
                clock.clone(),
                scrape_tx.clone(),
                shutdown.clone(),
            ));
        }
        drop(scrape_tx);

        let retention = crate::watcher::retention_for(&loaded.rule_groups);
        let chart_exprs = Arc::new(crate::chat::charts::exprs(&loaded.rule_groups));
        let engine = RuleEngine::new(
            loaded.rule_groups,
            config.external_labels.clone(),
            clock.now(),
        );
        let remote = config
            .remote
            .as_ref()
            .map(|r| crate::source::remote::RemoteApi {
                base: r.url.clone(),
                http: http.clone(),
                timeout: r.timeout.to_std(),
                retries: r.retries,
            });
        let (queries, query_rx) = crate::watcher::queries(remote.clone(), clock.clone());
        let (pushed_tx, pushed) =
            crate::watcher::Pushed::new(config.server.resolve_timeout.as_millis() as i64);
        // One reloaded version at a time; the reloader waits for room.
        let (rules_tx, rules_rx) = mpsc::channel(1);
        // Losses and recoveries, for the control loop to say; rare, so a
        // small queue, and the watcher waits when it is full.
        let (sight_tx, sight_rx) = mpsc::channel(16);
        // The newest list only: a reader wants what is pending now.
        let (pending_tx, pending_rx) = tokio::sync::watch::channel(Arc::default());
        let mut watcher = Watcher {
            engine,
            series: SeriesStore::new(retention),
            state: Some(store.clone()),
            remote,
            pushed: Some(pushed),
            reloads: loaded.disk.is_some().then_some(rules_rx),
            sight: Some(crate::watcher::Sighting::new(
                board.clone(),
                sight_tx,
                config
                    .server
                    .deadman
                    .map(|d| d.as_millis() as crate::clock::Millis),
                clock.now(),
            )),
            pending: Some(pending_tx),
        };
        let restored_firing = watcher.restore(&store, clock.now()).await;
        tracker.spawn(watcher.run(
            scrape_rx,
            query_rx,
            alert_tx,
            clock.clone(),
            shutdown.clone(),
        ));

        let targets_http = crate::net::target_client()?;
        let instruments = crate::preflight::Instruments {
            queries: Some(queries.clone()),
            http: targets_http.clone(),
            config: Arc::new(config.clone()),
            runbooks: loaded.runbooks.clone(),
            runbook_tests: Arc::new(loaded.runbook_tests),
            clock: clock.clone(),
        };
        let env = ActionEnv {
            http: targets_http,
            targets: config.targets.clone(),
            secrets: config.secrets.clone(),
            outbox: outbox.clone(),
            clock: clock.clone(),
            channel: config.chat.channel.clone(),
            queries: Some(queries.clone()),
            silencer: Some(std::sync::Arc::new(command_tx.clone())),
        };
        // Progress reports are dropped when full (see RunProgress): they
        // only keep cards current.
        let (progress_tx, progress_rx) = mpsc::channel(256);
        let executor = Executor::new(env, store.clone(), shutdown.clone(), finished_tx)
            .with_progress(progress_tx);
        // The config's pause, else the one a person left in force (before
        // a restart, or on the replica that led before this one).
        let paused = match config.automation_paused {
            true => Some(Pause {
                by: "config".into(),
                reason: "automation.paused is true".into(),
                since: clock.now(),
            }),
            false => match store.pause().await {
                Ok(p) => p.map(|(by, reason, since)| {
                    tracing::warn!(%by, %reason, "automation stays paused, as it was left");
                    Pause { by, reason, since }
                }),
                Err(e) => {
                    // Not knowing, the safer guess is that a person paused it.
                    tracing::error!(error = %e, "cannot read whether automation was paused; starting paused");
                    Some(Pause {
                        by: "firebreak".into(),
                        reason: format!(
                            "the store did not say whether automation was paused ({e}); resume when checked"
                        ),
                        since: clock.now(),
                    })
                }
            },
        };
        let ctx = Arc::new(crate::command::Ctx {
            control: command_tx.clone(),
            runbooks: loaded.runbooks.clone().into(),
            checklists: loaded.checklists.clone().into(),
            targets: config
                .targets
                .iter()
                .map(|(k, t)| (k.clone(), t.url.to_string()))
                .collect(),
            store: store.clone(),
            clock: clock.clone(),
            offset: chrono::FixedOffset::east_opt(0).expect("zero offset"),
            zone: "UTC".into(),
        });
        let mut dispatcher = Dispatcher::new(loaded.runbooks, paused);
        // Cooldowns, budgets and streaks of tries again count runs of
        // earlier processes too. Not knowing which runs changed nothing
        // counts them all: fewer tries again, never more.
        let changed_nothing = store.runs_changed_nothing().await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read which runs changed nothing; counting them all");
            Default::default()
        });
        match store.runs().await {
            Ok(runs) => dispatcher.restore(runs.iter().map(|r| {
                (
                    r.runbook.as_str(),
                    r.concurrency_key.as_str(),
                    r.started_at,
                    changed_nothing.contains(&r.id),
                )
            })),
            Err(e) => tracing::error!(error = %e, "cannot read earlier runs; budgets start empty"),
        }
        match store.effect_times().await {
            Ok(times) => {
                for (runbook, ms) in times {
                    dispatcher.took_effect(&runbook, ms);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read how long runbooks took; durations start unmeasured")
            }
        }
        for r in executor.resume(dispatcher.runbooks()).await {
            dispatcher.resumed(&r.runbook.name, &r.concurrency_key, &r.run_id);
        }
        let control = Control::new(
            dispatcher,
            executor.clone(),
            store.clone(),
            outbox.clone(),
            clock.clone(),
            config.chat.channel.clone(),
            config.incident_group_by.clone(),
        )
        .with_progress(progress_rx)
        .with_sight(sight_rx)
        .with_pending(pending_rx);
        let audience = config.audience.clone().map(|a| {
            let (req_tx, req_rx) = crate::audience::queue();
            let (sample_tx, sample_rx) = mpsc::channel(crate::audience::QUEUE);
            let (every, follow_for) = (a.every, a.follow_for);
            let sampler = crate::audience::Sampler {
                config: a,
                queries: queries.clone(),
                clock: clock.clone(),
                samples: sample_tx,
                outbox: outbox.clone(),
                channel: config.chat.channel.clone(),
            };
            tracker.spawn(sampler.run(req_rx, shutdown.clone()));
            (req_tx, sample_rx, every, follow_for)
        });
        let (chart_tx, chart_rx) = crate::chat::charts::queue();
        let charts = crate::chat::charts::Charts {
            exprs: chart_exprs,
            queries,
            outbox: outbox.clone(),
            clock: clock.clone(),
            window: if config.remote.is_some() {
                crate::chat::charts::WINDOW_MS
            } else {
                retention
            },
            offset: ctx.offset,
            zone: ctx.zone.clone(),
        };
        tracker.spawn(charts.run(chart_rx, shutdown.clone()));
        let (checklist_tx, checklist_rx) = crate::preflight::task::queue();
        let (ahead_tx, ahead) = crate::preflight::task::ahead();
        let checklists = crate::preflight::task::Task {
            lists: loaded.checklists.clone(),
            inst: instruments,
            outbox: outbox.clone(),
            store: store.clone(),
            channel: config.chat.channel.clone(),
            ahead: ahead_tx,
        };
        tracker.spawn(checklists.run(checklist_rx, shutdown.clone()));
        let reload = loaded.disk.map(|running| {
            let (trigger, triggers) = crate::reload::trigger();
            let reloader = crate::reload::Reloader {
                config: config.clone(),
                owners: crate::reload::Owners {
                    rules: rules_tx,
                    control: command_tx.clone(),
                    checklists: checklist_tx.clone(),
                    ctx: ctx.clone(),
                },
                outbox: outbox.clone(),
                clock: clock.clone(),
                poll: Some(crate::reload::POLL),
                running,
            };
            tracker.spawn(reloader.run(triggers, shutdown.clone()));
            trigger
        });
        let mut control = control.with_charts(chart_tx).with_checklists(checklist_tx);
        if let Some((requests, samples, every, follow_for)) = audience {
            control = control.with_audience(requests, samples, every, follow_for);
        }
        control.restore_silences().await;
        control.dispatch_restored(restored_firing).await;
        control.restore_acks().await;
        tracker.spawn(control.run(alert_rx, finished_rx, command_rx, shutdown.clone()));

        if front.is_some() {
            tracker.spawn(crate::api::take_forwarded(
                store.clone(),
                pushed_tx.clone(),
                shutdown.clone(),
            ));
        }
        let api = Arc::new(crate::api::Api {
            pushed: pushed_tx,
            control: command_tx.clone(),
            store: store.clone(),
            clock: clock.clone(),
            token: match &config.server.token_secret {
                Some(name) => Some(
                    crate::secrets::secret_named(&config.secrets, name)
                        .map_err(|e| anyhow::anyhow!("server.token_secret: {e}"))?,
                ),
                None => None,
            },
            max_body_bytes: config.server.max_body_bytes,
            shutdown: shutdown.clone(),
            push_wait: crate::api::PUSH_WAIT,
            replica: front.map(|f| f.status.clone()),
            sight: board,
            console: crate::api::console::Settings::new(
                &config.server.console,
                config.chat.roles.clone(),
                Some(ctx.clone()),
            )
            .with_groups(console_groups(&config)?)
            .with_ahead(ahead),
        });
        let http_addr = inbound(&config, &ctx, &outbox, api, &tracker, &shutdown, front).await?;
        tracker.close();

        // Chat has its own stop signal: it keeps delivering while the rest
        // winds down, then flushes.
        let chat_stop = CancellationToken::new();
        let delivery = tokio::spawn(outbox.deliver(chat, clock, chat_stop.clone(), CHAT_FLUSH));

        let done = tokio::spawn(async move {
            shutdown.cancelled().await;
            tracker.wait().await;
            executor.drain().await;
            chat_stop.cancel();
            if let Err(e) = delivery.await {
                tracing::error!(error = %e, "chat delivery task failed");
            }
        });
        Ok(Daemon {
            commands: command_tx,
            http_addr,
            ctx,
            reload,
            done,
        })
    }

    /// Waits until shutdown has completed.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.done.await.context("daemon shutdown task failed")
    }
}
