//! The `firebreak` command line: parse arguments, set up logging and the
//! runtime, and hand over to the library. Errors from here are for people:
//! one line of what went wrong, with its cause chain.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

mod cli;
use cli::*;

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

/// `-c`'s help, the same on every verb that reads a config.
const CONFIG_HELP: &str = "Config file (YAML; every field is in docs/config.md). Without it: $FIREBREAK_CONFIG, else ./firebreak.yaml, else the built-in setup against a local `firebreak sim`. Relative paths in it are taken from its directory.";

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Replay the 2023-05-24 launch: the simulator and the bot in one
    /// process, chat on the terminal, the timeline and figures at the end.
    /// It runs on the built-in rules, runbooks and setup, and reads no
    /// config file.
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
        /// Keep the replay's store in this SQLite file (new, or empty)
        /// instead of a new one in the temporary directory. Either way
        /// the demo names it at the end, with the `firebreak timeline`
        /// command that reads it.
        #[arg(long, value_name = "FILE")]
        store: Option<PathBuf>,
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
    /// Without a config file it watches a local `firebreak sim` on
    /// 127.0.0.1:9100.
    Run {
        #[arg(long, short, help = CONFIG_HELP)]
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
        #[arg(long, short, help = CONFIG_HELP)]
        config: Option<PathBuf>,
        /// Do not read the secrets the config names (a CI machine that has
        /// none); without it, each must resolve as it would at start.
        #[arg(long)]
        offline: bool,
        /// Print the report as JSON on stdout (the shape is in
        /// docs/json.md); nothing goes to stderr.
        #[arg(long)]
        json: bool,
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
        #[arg(long, short, help = CONFIG_HELP)]
        config: Option<PathBuf>,
        /// Print the plan as JSON on stdout (the shape is in docs/json.md).
        #[arg(long)]
        json: bool,
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
        #[arg(long, short, help = CONFIG_HELP)]
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
        /// Print JSON instead (the shapes are in docs/json.md): the list,
        /// or the incident's review with every timeline entry.
        #[arg(long, conflicts_with = "markdown")]
        json: bool,
        #[arg(long, short, help = CONFIG_HELP)]
        config: Option<PathBuf>,
        /// Read this store instead of the config's: a SQLite file (the
        /// one `firebreak demo` names at its end) or a store URL
        /// (`sqlite://...`, `postgres://...`).
        #[arg(long, value_name = "FILE|URL")]
        store: Option<String>,
    },
    /// Run unit tests; exit 0 when all pass, 1 when any fails or a file
    /// is invalid.
    #[command(subcommand)]
    Test(TestCmd),
    /// Write a starter config, alert rule and runbook, with their tests,
    /// into DIR (default: here): a bot against your own Prometheus that
    /// `firebreak validate` accepts. Never overwrites: when any of the
    /// files is there, it writes nothing and names them.
    Init {
        /// Directory to write into; created when it is not there.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Your Prometheus (or Thanos, Mimir, VictoriaMetrics) base URL
        /// [default: http://127.0.0.1:9090].
        #[arg(long, value_name = "URL")]
        prometheus: Option<reqwest::Url>,
        /// The admin API runbooks call, as the target `platform`
        /// [default: http://127.0.0.1:8080].
        #[arg(long, value_name = "URL")]
        platform: Option<reqwest::Url>,
    },
    /// Issue, list and revoke the tokens people sign in to the web console
    /// with (`server.console.sign_in: tokens`). The store keeps only a
    /// digest; a token is shown once, when issued.
    #[command(subcommand, name = "console-token")]
    ConsoleToken(ConsoleTokenCmd),
    /// Print a shell completion script on stdout: `firebreak completions
    /// bash > /etc/bash_completion.d/firebreak`.
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff) on stdout: `firebreak man | man -l -`.
    Man,
}

#[derive(Subcommand)]
enum ConsoleTokenCmd {
    /// Issue a token that signs in as USER, a chat user id (Slack's member
    /// id, U…); their role is the one `chat.roles` gives that id. The
    /// token is printed on stdout, once.
    Add {
        user: String,
        /// How the console and the timeline name them [default: USER].
        #[arg(long, default_value = "")]
        name: String,
        #[arg(long, short, help = CONFIG_HELP)]
        config: Option<PathBuf>,
    },
    /// List tokens: id, user, name, when issued, when revoked.
    List {
        #[arg(long, short, help = CONFIG_HELP)]
        config: Option<PathBuf>,
    },
    /// Revoke token ID (from `list`); its sessions are signed out at once.
    Revoke {
        id: String,
        #[arg(long, short, help = CONFIG_HELP)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum TestCmd {
    /// Unit-test alert and recording rules with promtool-format test
    /// files (`promtool test rules`, Prometheus 2.42).
    Rules {
        /// Test files; their `rule_files` are relative to each file.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print the results as JSON on stdout (the shape is in
        /// docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// Run runbook tests (`kind: runbook_test` files) with the real
    /// executor against stub targets, on a clock that does not sleep.
    Runbooks {
        /// Test files or directories (default: the config's runbook
        /// paths, searched recursively).
        paths: Vec<PathBuf>,
        /// Config whose targets the stubs stand in for. Without it:
        /// $FIREBREAK_CONFIG, else ./firebreak.yaml, else the built-in
        /// simulator config, with one target `platform`. Relative paths in it
        /// are taken from its directory.
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Print the results as JSON on stdout (the shape is in
        /// docs/json.md).
        #[arg(long)]
        json: bool,
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
        | Cmd::Timeline { .. }
        | Cmd::Init { .. }
        | Cmd::Completions { .. }
        | Cmd::Man => "warn",
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

/// A signed Prometheus-style duration, in milliseconds: `25s`, `-5m`.
fn parse_offset(s: &str) -> Result<i64, String> {
    let (sign, rest) = match s.strip_prefix('-') {
        Some(r) => (-1, r),
        None => (1, s.strip_prefix('+').unwrap_or(s)),
    };
    let d = firebreak::duration::PromDuration::parse(rest).map_err(|e| e.to_string())?;
    Ok(sign * d.as_millis() as i64)
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
            store,
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
                store: Some(match store {
                    Some(p) => p,
                    None => firebreak::demo::new_store_file()?,
                }),
                quiet_after: Some(firebreak::demo::QUIET_AFTER),
            };
            firebreak::demo::run(opts, Box::new(std::io::stdout()), shutdown).await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run {
            config,
            clock_from,
            console_commands,
        } => {
            let found = firebreak::load::ConfigSource::find(config.as_deref());
            tracing::info!("config: {found}");
            let config = found.path().map(PathBuf::from);
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
            for note in &loaded.notes {
                tracing::info!("{note}");
            }
            // Before the night, not during it: a secret that does not
            // resolve would fail the first mitigation that needs it.
            let missing: Vec<_> = firebreak::secrets::check(&loaded.config)
                .into_iter()
                .filter(|m| !m.used_by.is_empty())
                .collect();
            if !missing.is_empty() {
                for m in &missing {
                    eprintln!("{m}");
                }
                eprintln!(
                    "firebreak: not starting: {} secret(s) it needs do not resolve; `firebreak validate --config FILE` checks them",
                    missing.len()
                );
                return Ok(ExitCode::FAILURE);
            }
            // Held until the daemon has stopped, at the end of this arm.
            let _hold = firebreak::store::hold(&loaded.config.store_url)?;
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
            if loaded.config.store_url.starts_with("postgres") {
                if firebreak::command::console_input::wanted(console_commands) {
                    tracing::warn!(
                        "console commands are not read by a replica (it may not lead); use Slack or the HTTP API"
                    );
                }
                run_replica(config, loaded, store, clock, chat, shutdown).await?;
                return Ok(ExitCode::SUCCESS);
            }
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
        Cmd::Validate {
            paths,
            config,
            offline,
            json,
        } => {
            let found = firebreak::load::ConfigSource::find(config.as_deref());
            let report = firebreak::validate::validate(&found, &paths, offline);
            if json {
                println!("{}", serde_json::to_string_pretty(&report.json())?);
            } else {
                for d in report.diagnostics.iter() {
                    eprintln!("{d}");
                }
                println!("{}", report.summary());
            }
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
            json,
            config,
            store,
        } => {
            let format = if json {
                TimelineFormat::Json
            } else if markdown {
                TimelineFormat::Markdown
            } else {
                TimelineFormat::Text
            };
            timeline(
                incident.as_deref(),
                format,
                config.as_deref(),
                store.as_deref(),
            )
            .await
        }
        Cmd::Test(TestCmd::Rules { files, json }) => test_rules(&files, json),
        Cmd::Test(TestCmd::Runbooks {
            paths,
            config,
            json,
        }) => test_runbooks(&paths, config.as_deref(), json).await,
        Cmd::Plan {
            runbook,
            inputs,
            alert,
            config,
            json,
        } => plan(&runbook, &inputs, alert.as_deref(), config.as_deref(), json),
        Cmd::Init {
            dir,
            prometheus,
            platform,
        } => init(&dir, prometheus.as_ref(), platform.as_ref()),
        Cmd::ConsoleToken(c) => {
            use cli::ConsoleTokenAction as A;
            let (action, config) = match &c {
                ConsoleTokenCmd::Add { user, name, config } => (A::Add { user, name }, config),
                ConsoleTokenCmd::List { config } => (A::List, config),
                ConsoleTokenCmd::Revoke { id, config } => (A::Revoke { id }, config),
            };
            cli::console_token(action, config.as_deref()).await
        }
        Cmd::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "firebreak",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Man => {
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command())
                .render(&mut std::io::stdout())
                .context("writing the man page")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
