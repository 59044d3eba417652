//! The `firebreak` command line: parse arguments, set up logging and the
//! runtime, and hand over to the library. Errors from here are for people:
//! one line of what went wrong, with its cause chain.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "firebreak",
    version,
    about = "Site-reliability runbook and incident automation bot for live events.",
    long_about = "firebreak watches metrics, evaluates Prometheus alert rules, runs declarative runbooks that mitigate (move an event to a secondary room, cap listeners, mute a speaker), and posts every step to chat.\n\nStart with `firebreak demo`: it replays the 2023-05-24 launch against the built-in simulator."
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Replay the 2023-05-24 launch: the simulator and the bot in one
    /// process, chat on the terminal, the timeline and figures at the end.
    Demo {
        /// How many times faster than real time the replay runs.
        #[arg(long, default_value_t = 60.0)]
        speed: f64,
        /// Seed for the simulator's randomness; same seed, same replay.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Read chat commands from stdin even when it is not a terminal
        /// (from a terminal they are always read).
        #[arg(long)]
        console_commands: bool,
    },
    /// Rehearse the bot against scenario files: each is played on a scaled
    /// clock through the same path as `demo`, and once with no bot, then
    /// judged against its `expect:` block. One row per scenario; exit 1 on
    /// any FAIL.
    Rehearse {
        /// Scenario files (YAML, as `firebreak sim --scenario` reads).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// How many times faster than real time each rehearsal runs.
        #[arg(long, default_value_t = 60.0)]
        speed: f64,
        /// Seed for the simulator's randomness.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Rehearsals played at once.
        #[arg(long, default_value_t = 2)]
        jobs: usize,
    },
    /// Run the bot: scrape, evaluate rules, run runbooks, post to chat.
    /// Without --config it watches a local `firebreak sim` on 127.0.0.1:9100.
    Run {
        /// Config file (YAML); see the README for every field.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Follow the clock of a simulator started with `--speed` (its
        /// base URL, e.g. http://127.0.0.1:9100) instead of the wall
        /// clock, to rehearse against it: rules' `for`, waits and
        /// cooldowns then run at its speed.
        #[arg(long, value_name = "URL")]
        clock_from: Option<reqwest::Url>,
        /// Read chat commands from stdin even when it is not a terminal
        /// (from a terminal they are always read).
        #[arg(long)]
        console_commands: bool,
    },
    /// Run the live audio platform simulator: /metrics and the admin API.
    Sim {
        /// Address to listen on.
        #[arg(long, default_value = firebreak::config::DEFAULT_SIM_ADDR)]
        listen: SocketAddr,
        /// Scenario file (YAML); default: the built-in 2023-05-24 launch.
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// How many times faster than real time the scenario runs.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Start the clock this long after the event's scheduled start
        /// (`25s`, `10m`, or `-5m` for before it) instead of at the
        /// scenario's beginning; the time in between is simulated at once.
        #[arg(long, allow_hyphen_values = true, value_parser = parse_offset)]
        from: Option<i64>,
    },
    /// Check config, alert rules and runbooks; print every error with its
    /// file:line:col. Exit 1 on any error.
    Validate {
        /// Files or directories (default: the config's alerts and runbooks
        /// paths).
        paths: Vec<PathBuf>,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Show what a run of a runbook would do, step by step, with its
    /// templates rendered. Touches nothing: no HTTP call, no chat message,
    /// no store write.
    Plan {
        /// A runbook name among the loaded ones (the built-in runbooks
        /// without --config), or the path of a runbook file.
        runbook: String,
        /// Inputs, as NAME=VALUE; they win over the alert and defaults.
        inputs: Vec<String>,
        /// An alert that starts the run, JSON or YAML:
        /// `{labels: {alertname: X, ...}, annotations: {...}, value: N}`.
        #[arg(long)]
        alert: Option<PathBuf>,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Run a pre-event checklist now and say GO or NO-GO, with the
    /// evidence. Exit 0 for GO, 1 for NO-GO, 2 when it cannot run at all.
    Check {
        /// A checklist name among the loaded ones (the built-in
        /// launch-readiness without --config).
        checklist: String,
        /// Event parameters as KEY=VALUE, replacing the checklist's
        /// (expected_audience=250000).
        params: Vec<String>,
        /// Print the result as JSON on stdout (progress stays on stderr).
        #[arg(long)]
        json: bool,
        /// Ask for sign-offs on stdin even when it is not a terminal (on
        /// a terminal it always asks).
        #[arg(long)]
        ask: bool,
        /// Do not record the run in the store and the event's timeline.
        #[arg(long)]
        no_store: bool,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Print an incident's timeline from the store, with when it began,
    /// was detected, mitigated and resolved; without INCIDENT, list the
    /// incidents.
    Timeline {
        /// The incident (the `event` label of its alerts, by default).
        incident: Option<String>,
        /// Print the post-incident report in Markdown instead: the
        /// figures, what fired, what was done and by whom, the timeline.
        #[arg(long)]
        markdown: bool,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Run unit tests; exit 0 when all pass, 1 when any fails or a file
    /// is invalid.
    #[command(subcommand)]
    Test(TestCmd),
}

#[derive(Subcommand)]
enum TestCmd {
    /// Unit-test alert and recording rules with promtool-format test
    /// files (`promtool test rules`, Prometheus 2.42).
    Rules {
        /// Test files; their `rule_files` are relative to each file.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run runbook tests (`kind: runbook_test` files) with the real
    /// executor against stub targets, on a clock that does not sleep.
    Runbooks {
        /// Test files or directories (default: the config's runbook
        /// paths, searched recursively).
        paths: Vec<PathBuf>,
        /// Config whose targets the stubs stand in for (default: the
        /// built-in simulator config, with one target `sim`).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    firebreak::net::install_crypto_provider();
    let cli = Cli::parse();
    if !matches!(cli.command, Cmd::Run { .. } | Cmd::Sim { .. }) {
        quiet_on_broken_pipe();
    }
    let default_level = match cli.command {
        // The demo's output is the chat; keep logs to what needs a human.
        Cmd::Demo { .. }
        | Cmd::Rehearse { .. }
        | Cmd::Validate { .. }
        | Cmd::Test(_)
        | Cmd::Plan { .. }
        | Cmd::Check { .. }
        | Cmd::Timeline { .. } => "warn",
        _ => "info",
    };
    init_logging(cli.log_format, default_level);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `firebreak rehearse`: every file loaded first (a broken one stops the
/// set before anything is played), then played `jobs` at a time; rows in
/// the order the files were given.
async fn rehearse(
    files: Vec<PathBuf>,
    speed: f64,
    seed: u64,
    jobs: usize,
) -> anyhow::Result<ExitCode> {
    use firebreak::demo::play;
    use firebreak::rehearse::TABLE_HEADER;
    use futures_util::StreamExt;
    anyhow::ensure!(
        speed > 0.0 && speed.is_finite(),
        "--speed must be a positive number, got {speed}"
    );
    let mut scenarios = Vec::new();
    for f in &files {
        let label = f.file_stem().map_or_else(
            || f.display().to_string(),
            |s| s.to_string_lossy().into_owned(),
        );
        scenarios.push((label, play::load(f)?));
    }
    let shutdown = CancellationToken::new();
    cancel_on_signal(shutdown.clone());
    let opts = play::PlayOptions { speed, seed };
    let rows: Vec<anyhow::Result<firebreak::rehearse::Row>> = futures_util::stream::iter(
        scenarios
            .into_iter()
            .map(|(label, sc)| play::play_owned(label, sc, opts, shutdown.clone())),
    )
    .buffered(jobs.max(1))
    .collect()
    .await;
    println!("{TABLE_HEADER}");
    let mut failed = 0;
    for row in rows {
        let row = row?;
        println!("{row}");
        for why in row.verdict.failures() {
            println!("    {why}");
        }
        if row.verdict.wrong_actions > 0 {
            println!(
                "    {} action(s) nothing asked for",
                row.verdict.wrong_actions
            );
        }
        failed += usize::from(!row.verdict.pass());
    }
    println!("{} passed, {failed} failed", files.len() - failed);
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `firebreak validate | head` must end quietly when `head` has read
/// enough, as Unix tools do, not panic in `println!`: Rust ignores
/// SIGPIPE, so a write to the closed pipe fails and printing panics. The
/// commands that print and end get the default back, and the write ends
/// them. The servers (`run`, `sim`) keep it ignored: a client that hangs
/// up must never take them down.
fn quiet_on_broken_pipe() {
    // SAFETY: called first thing in main, before any other thread exists;
    // SIG_DFL is a valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// A signed Prometheus-style duration, in milliseconds: `25s`, `-5m`.
fn parse_offset(s: &str) -> Result<i64, String> {
    let (sign, rest) = match s.strip_prefix('-') {
        Some(r) => (-1, r),
        None => (1, s.strip_prefix('+').unwrap_or(s)),
    };
    let d = firebreak::duration::PromDuration::parse(rest).map_err(|e| e.to_string())?;
    Ok(sign * d.as_millis() as i64)
}

fn init_logging(format: LogFormat, default_level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("FIREBREAK_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Cancels `token` on SIGINT or SIGTERM.
fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot listen for SIGTERM");
                        let _ = ctrl_c.await;
                        token.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down");
        token.cancel();
    });
}

/// SIGHUP reloads rules, runbooks and checklists, as Prometheus does.
fn reload_on_sighup(trigger: Option<firebreak::reload::Trigger>, shutdown: CancellationToken) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGHUP; reloads happen when files change");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = hup.recv() => match &trigger {
                    Some(t) => {
                        tracing::info!("SIGHUP: reloading rules, runbooks and checklists");
                        t.reload("SIGHUP");
                    }
                    None => tracing::warn!("SIGHUP: nothing to reload"),
                },
            }
        }
    });
    #[cfg(not(unix))]
    let _ = (trigger, shutdown);
}

async fn dispatch(cmd: Cmd) -> anyhow::Result<ExitCode> {
    match cmd {
        Cmd::Rehearse {
            files,
            speed,
            seed,
            jobs,
        } => rehearse(files, speed, seed, jobs).await,
        Cmd::Demo {
            speed,
            seed,
            console_commands,
        } => {
            anyhow::ensure!(
                speed > 0.0 && speed.is_finite(),
                "--speed must be a positive number, got {speed}"
            );
            let shutdown = CancellationToken::new();
            cancel_on_signal(shutdown.clone());
            let opts = firebreak::demo::DemoOptions {
                speed,
                seed,
                console_input: firebreak::command::console_input::wanted(console_commands),
            };
            firebreak::demo::run(opts, Box::new(std::io::stdout()), shutdown).await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run {
            config,
            clock_from,
            console_commands,
        } => {
            let loaded = match firebreak::load::load_from_disk(config.as_deref()) {
                Ok(l) => l,
                Err(d) => {
                    eprintln!("{d}");
                    eprintln!(
                        "firebreak: not starting: {} error(s); fix them and run `firebreak validate` to check",
                        d.len()
                    );
                    return Ok(ExitCode::FAILURE);
                }
            };
            loaded.log_warnings("start");
            let store = firebreak::store::Store::open(&loaded.config.store_url).await?;
            let clock = match &clock_from {
                None => firebreak::clock::Clock::system(),
                Some(url) => {
                    let c = firebreak::net::follow_clock(url).await?;
                    tracing::info!(%url, speed = c.speed(), now = %firebreak::sim::model::rfc3339(c.now()), "following the simulator's clock");
                    c
                }
            };
            let chat = firebreak::daemon::chat_adapter(&loaded.config).await?;
            let shutdown = CancellationToken::new();
            cancel_on_signal(shutdown.clone());
            tracing::info!(
                rules = loaded.rule_groups.len(),
                runbooks = loaded.runbooks.len(),
                scrape_targets = loaded.config.scrape.len(),
                "firebreak running"
            );
            let channel = loaded.config.chat.channel.clone();
            let daemon = firebreak::daemon::Daemon::start(
                loaded,
                store.clone(),
                clock,
                chat.clone(),
                shutdown.clone(),
            )
            .await?;
            reload_on_sighup(daemon.reload.clone(), shutdown.clone());
            if firebreak::command::console_input::wanted(console_commands) {
                tokio::spawn(firebreak::command::console_input::run(
                    daemon.ctx.clone(),
                    firebreak::command::Actor::console(),
                    firebreak::command::console_input::stdin_lines(),
                    // Replies go to the terminal the command was typed on,
                    // whichever adapter the incident chat goes to.
                    std::sync::Arc::new(firebreak::chat::console::Console::stdout(
                        chrono::FixedOffset::east_opt(0).expect("zero offset"),
                        "UTC",
                    )),
                    channel,
                    shutdown,
                ));
            }
            daemon.wait().await?;
            store.close().await;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Sim {
            listen,
            scenario,
            speed,
            seed,
            from,
        } => {
            anyhow::ensure!(
                speed > 0.0 && speed.is_finite(),
                "--speed must be a positive number, got {speed}"
            );
            let scenario = match scenario {
                None => firebreak::sim::Scenario::builtin(),
                Some(p) => {
                    let text = std::fs::read_to_string(&p)
                        .with_context(|| format!("reading scenario {}", p.display()))?;
                    match firebreak::sim::Scenario::load(&p.display().to_string(), &text) {
                        Ok(s) => s,
                        Err(d) => {
                            eprintln!("{d}");
                            return Ok(ExitCode::FAILURE);
                        }
                    }
                }
            };
            let origin = match from {
                None => scenario.start,
                Some(offset) => {
                    let at = scenario.scheduled_start + offset;
                    anyhow::ensure!(
                        at >= scenario.start,
                        "--from reaches before the scenario begins ({}s before the scheduled start at most)",
                        (scenario.scheduled_start - scenario.start) / 1000
                    );
                    at
                }
            };
            let clock = firebreak::clock::Clock::scaled(origin, speed);
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("listening on {listen}"))?;
            let addr = listener.local_addr()?;
            eprintln!(
                "firebreak sim: scenario {:?} at {speed}x on http://{addr} (metrics at /metrics, admin API at /api/v1/state)",
                scenario.name
            );
            let shutdown = CancellationToken::new();
            cancel_on_signal(shutdown.clone());
            let sim =
                firebreak::sim::Sim::new(firebreak::sim::SimOptions { scenario, seed }, clock);
            sim.serve(listener, shutdown).await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Validate { paths, config } => {
            let report = firebreak::validate::validate(config.as_deref(), &paths);
            for d in report.diagnostics.iter() {
                eprintln!("{d}");
            }
            println!("{}", report.summary());
            Ok(if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Cmd::Check {
            checklist,
            params,
            json,
            ask,
            no_store,
            config,
        } => {
            let opts = CheckOpts {
                json,
                ask: ask || std::io::IsTerminal::is_terminal(&std::io::stdin()),
                store: !no_store,
            };
            match check(&checklist, &params, config.as_deref(), opts).await {
                Ok(code) => Ok(code),
                Err(e) => {
                    eprintln!("error: {e:#}");
                    Ok(ExitCode::from(2))
                }
            }
        }
        Cmd::Timeline {
            incident,
            markdown,
            config,
        } => timeline(incident.as_deref(), markdown, config.as_deref()).await,
        Cmd::Test(TestCmd::Rules { files }) => Ok(test_rules(&files)),
        Cmd::Test(TestCmd::Runbooks { paths, config }) => {
            test_runbooks(&paths, config.as_deref()).await
        }
        Cmd::Plan {
            runbook,
            inputs,
            alert,
            config,
        } => plan(&runbook, &inputs, alert.as_deref(), config.as_deref()),
    }
}

/// `firebreak timeline`: reads the store the config names.
async fn timeline(
    incident: Option<&str>,
    markdown: bool,
    config: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    use firebreak::incident::Review;
    let config = config_or_default(config)?;
    let store = firebreak::store::Store::open(&config.store_url)
        .await
        .with_context(|| format!("opening the store {}", config.store_url))?;
    let incidents = store.incidents().await?;
    let time = |at: firebreak::clock::Millis| {
        chrono::DateTime::from_timestamp_millis(at).map_or_else(
            || at.to_string(),
            |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        )
    };
    let Some(incident) = incident else {
        if incidents.is_empty() {
            println!("no incidents in {}", config.store_url);
        }
        for id in &incidents {
            let r = Review::new(id, store.timeline(id).await?);
            let first = r.entries.first().map_or(0, |e| e.at);
            println!("{id}\t{}\t{}", time(r.began.unwrap_or(first)), r.outcome());
        }
        store.close().await;
        return Ok(ExitCode::SUCCESS);
    };
    if !incidents.iter().any(|i| i == incident) {
        store.close().await;
        let known = if incidents.is_empty() {
            "there are none yet".to_owned()
        } else {
            format!("known: {}", incidents.join(", "))
        };
        eprintln!(
            "error: no incident {incident:?} in {}; {known}",
            config.store_url
        );
        return Ok(ExitCode::FAILURE);
    }
    let audience = store.audience(incident).await?;
    let review = Review::new(incident, store.timeline(incident).await?).with_audience(&audience);
    store.close().await;
    if markdown {
        print!("{}", review.markdown(&time));
    } else {
        print!("{}", review.text(&time));
    }
    Ok(ExitCode::SUCCESS)
}

/// The config for commands that only read: the file given, else the
/// built-in simulator config (one target, `sim`).
fn config_or_default(path: Option<&std::path::Path>) -> anyhow::Result<firebreak::config::Config> {
    use firebreak::config::{Config, DEFAULT_SIM_ADDR};
    let Some(p) = path else {
        return Ok(Config::for_simulator(DEFAULT_SIM_ADDR));
    };
    let name = p.display().to_string();
    let text = std::fs::read_to_string(p).with_context(|| format!("reading config {name}"))?;
    Config::load(&name, &text).map_err(|d| anyhow::anyhow!("{d}"))
}

/// What read-only commands work on: the config given and its files, else
/// the built-in rules, runbooks and checklist against a local simulator,
/// so they work on a fresh machine.
fn load_or_builtin(
    config: Option<&std::path::Path>,
) -> Result<firebreak::load::Loaded, firebreak::diag::Diagnostics> {
    match config {
        Some(p) => firebreak::load::load_from_disk(Some(p)),
        None => firebreak::load::load_embedded(firebreak::config::Config::for_simulator(
            firebreak::config::DEFAULT_SIM_ADDR,
        )),
    }
}

/// `firebreak plan`.
fn plan(
    runbook: &str,
    inputs: &[String],
    alert: Option<&std::path::Path>,
    config: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    use firebreak::runbook::plan::{AlertInput, build_plan, find_runbook};
    use std::collections::BTreeMap;
    let loaded = match load_or_builtin(config) {
        Ok(l) => l,
        Err(d) => {
            eprintln!("{d}");
            eprintln!("firebreak plan: {} error(s) in the loaded files", d.len());
            return Ok(ExitCode::FAILURE);
        }
    };
    let is_file = runbook.ends_with(".yaml")
        || runbook.ends_with(".yml")
        || std::path::Path::new(runbook).is_file();
    let from_file;
    let rb = if is_file {
        let text = std::fs::read_to_string(runbook)
            .with_context(|| format!("reading runbook {runbook}"))?;
        let env = firebreak::load::check_env(loaded.config.targets.keys().cloned());
        match firebreak::runbook::parse_runbook(runbook, &text, &env) {
            Ok(r) => {
                from_file = r;
                &from_file
            }
            Err(d) => {
                eprintln!("{d}");
                return Ok(ExitCode::FAILURE);
            }
        }
    } else {
        find_runbook(&loaded.runbooks, runbook)?
    };
    let mut given = BTreeMap::new();
    for kv in inputs {
        let Some((k, v)) = kv.split_once('=') else {
            anyhow::bail!(
                "input {kv:?} is not NAME=VALUE; runbook {} takes: {}",
                rb.name,
                rb.inputs
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        };
        given.insert(k.trim().to_owned(), serde_json::Value::String(v.to_owned()));
    }
    let alert = match alert {
        None => None,
        Some(p) => {
            let name = p.display().to_string();
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading alert {name}"))?;
            match firebreak::diag::from_yaml::<AlertInput>(&name, &text) {
                Ok(a) => Some(a),
                Err(d) => {
                    eprintln!(
                        "{d}; expected {{labels: {{alertname: ..., ...}}, annotations: {{...}}, value: N}}"
                    );
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
    };
    let targets = loaded
        .config
        .targets
        .iter()
        .map(|(k, t)| (k.clone(), t.url.to_string()))
        .collect();
    let now = firebreak::clock::Clock::system().now();
    let plan = build_plan(rb, alert.as_ref(), &given, &targets, now)
        .with_context(|| format!("cannot plan runbook {}", rb.name))?;
    print!("{plan}");
    Ok(ExitCode::SUCCESS)
}

struct CheckOpts {
    json: bool,
    ask: bool,
    store: bool,
}

/// `firebreak check`: measure every check at once with a progress line
/// on stderr, ask the person at the terminal for sign-offs once the rest
/// is known, then print the table (or JSON) and exit by the verdict.
async fn check(
    name: &str,
    params: &[String],
    config: Option<&std::path::Path>,
    opts: CheckOpts,
) -> anyhow::Result<ExitCode> {
    use firebreak::checklist::state::{Phase, RunState};
    use firebreak::checklist::{Verdict, event_params, report};
    use firebreak::preflight;
    use std::io::Write;

    let loaded = match load_or_builtin(config) {
        Ok(l) => l,
        Err(d) => {
            eprintln!("{d}");
            anyhow::bail!("{} error(s) in the loaded files", d.len());
        }
    };
    let list = preflight::find(&loaded.checklists, name).map_err(anyhow::Error::msg)?;
    let overrides = preflight::parse_overrides(params).map_err(anyhow::Error::msg)?;
    let event = event_params(list, &overrides).map_err(anyhow::Error::msg)?;
    let clock = firebreak::clock::Clock::system();
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let note = |s: String| eprintln!("  note: {s}");
    let exprs = preflight::exprs(list, &preflight::template_ctx(&event));
    let inst = preflight::instruments_for(&loaded, &exprs, &clock, &note).await?;
    let actor = firebreak::command::Actor::console();
    let mut state = RunState::new(
        &preflight::run_id(&list.name, clock.now(), 1),
        list,
        event,
        &firebreak::timeline::By::person(&actor.who()),
        clock.now(),
    );
    eprintln!("checking {} ({} checks) …", list.name, state.checks.len());
    preflight::measure_all(list, &mut state, &inst, |st, r| {
        let mut err = std::io::stderr().lock();
        if tty {
            let _ = write!(err, "\r\x1b[K");
        }
        let _ = writeln!(
            err,
            "  {:<7} {} ({}ms)",
            firebreak::checklist::state::mark(Some(&r.outcome)),
            r.name,
            r.took_ms
        );
        let running: Vec<&str> = st
            .checks
            .iter()
            .filter(|c| c.outcome.is_none())
            .map(|c| c.name.as_str())
            .collect();
        if tty && !running.is_empty() {
            let _ = write!(err, "  … {} running: {}", running.len(), running.join(", "));
        }
        let _ = err.flush();
    })
    .await;

    // People sign off once they can see what they are signing.
    if state.phase() == Phase::AwaitingSignOff {
        let waiting: Vec<(String, Vec<firebreak::roles::Role>)> = state
            .waiting_signoffs()
            .into_iter()
            .map(|(c, r)| (c.to_owned(), r))
            .collect();
        if opts.ask {
            eprint!("\n{}", report::table(&state));
            for (check, roles) in waiting {
                let needs: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
                eprint!(
                    "{check}: needs {}. Sign off as {} ({})? [y/N] ",
                    needs.join(" and "),
                    actor.name,
                    actor.role
                );
                let _ = std::io::stderr().flush();
                let line = tokio::task::spawn_blocking(|| {
                    let mut l = String::new();
                    std::io::stdin().read_line(&mut l).map(|_| l)
                })
                .await
                .context("reading the answer")??;
                if matches!(line.trim(), "y" | "Y" | "yes") {
                    match state.sign(&check, &actor.id, &actor.label(), actor.role, clock.now()) {
                        Ok(said) => eprintln!("  {said}"),
                        Err(e) => eprintln!("  not signed: {e}"),
                    }
                }
            }
        } else {
            eprintln!(
                "  note: {} waiting for sign-off; nobody to ask here (stdin is not a terminal): sign off in chat with `checklist {}`, or pass --ask",
                waiting
                    .iter()
                    .map(|(c, _)| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                list.name
            );
        }
    }
    state.close(clock.now());

    if opts.store {
        let store = firebreak::store::Store::open(&loaded.config.store_url).await?;
        store.save_checklist_run(&state, "").await?;
        store
            .append_timeline(&firebreak::timeline::TimelineEntry::new(
                firebreak::preflight::task::incident_of(&state),
                clock.now(),
                firebreak::timeline::Kind::Checklist,
                firebreak::timeline::By::person(&actor.who()),
                Default::default(),
                report::timeline_text(&state),
            ))
            .await?;
        store.close().await;
    }
    if opts.json {
        let out = serde_json::json!({
            "checklist": state.checklist,
            "run": state.id,
            "verdict": state.verdict(),
            "event": state.event,
            "started_at": state.started_at,
            "finished_at": state.finished_at,
            "checks": state
                .results()
                .into_iter()
                .zip(&state.checks)
                .map(|(r, c)| {
                    let mut v = serde_json::to_value(r).unwrap_or_default();
                    if let Some(fix) = c.fix_to_show() {
                        v["fix"] = serde_json::json!(fix);
                    }
                    v
                })
                .collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", report::table(&state));
    }
    Ok(match state.verdict() {
        Verdict::Go => ExitCode::SUCCESS,
        Verdict::NoGo => ExitCode::FAILURE,
    })
}

/// `firebreak test runbooks`: one block per file, a line per case.
async fn test_runbooks(
    paths: &[PathBuf],
    config: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    use firebreak::stub_runs;
    let config = config_or_default(config)?;
    let paths: Vec<PathBuf> = if paths.is_empty() {
        config.runbook_paths.iter().map(PathBuf::from).collect()
    } else {
        paths.to_vec()
    };
    let mut errs = firebreak::diag::Diagnostics::new();
    let files = stub_runs::find_test_files(&paths, &mut errs);
    for e in errs.iter() {
        eprintln!("{e}");
    }
    if files.is_empty() {
        eprintln!(
            "no runbook test files (`kind: runbook_test`) under {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Ok(ExitCode::FAILURE);
    }
    let (mut passed, mut failed) = (0, 0);
    let mut bad_files = !errs.is_empty();
    for (name, text) in &files {
        println!("Unit Testing:  {name}");
        let loaded = match stub_runs::load(name, text, &config) {
            Ok(l) => l,
            Err(d) => {
                println!("  FAILED: the file is invalid:");
                for e in d.iter() {
                    println!("    {e}");
                }
                println!();
                bad_files = true;
                continue;
            }
        };
        for r in stub_runs::run_file(&loaded, &config).await {
            if r.failures.is_empty() {
                passed += 1;
            } else {
                failed += 1;
            }
            print!("{r}");
        }
        println!();
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 && !bad_files {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `firebreak test rules`: promtool's report layout, one block per file.
fn test_rules(files: &[PathBuf]) -> ExitCode {
    use firebreak::rules::unittest;
    let mut failed = false;
    for f in files {
        println!("Unit Testing:  {}", f.display());
        let (tf, groups, warnings) = match firebreak::load::rule_test_file(f) {
            Ok(x) => x,
            Err(d) => {
                eprintln!("  FAILED:");
                for e in d.iter() {
                    eprintln!("    {e}");
                }
                println!();
                failed = true;
                continue;
            }
        };
        for w in warnings {
            eprintln!("  WARNING: {w}");
        }
        let reports = unittest::run_test_file(&tf, &groups);
        if reports.iter().all(|r| r.failures.is_empty()) {
            println!("  SUCCESS");
        } else {
            failed = true;
            eprintln!("  FAILED:");
            for r in reports.iter().filter(|r| !r.failures.is_empty()) {
                eprint!("{r}");
            }
        }
        println!();
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
