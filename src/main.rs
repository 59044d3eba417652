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
    },
    /// Run the bot: scrape, evaluate rules, run runbooks, post to chat.
    /// Without --config it watches a local `firebreak sim` on 127.0.0.1:9100.
    Run {
        /// Config file (YAML); see the README for every field.
        #[arg(long, short)]
        config: Option<PathBuf>,
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
}

fn main() -> ExitCode {
    firebreak::net::install_crypto_provider();
    let cli = Cli::parse();
    let default_level = match cli.command {
        // The demo's output is the chat; keep logs to what needs a human.
        Cmd::Demo { .. } | Cmd::Validate { .. } | Cmd::Test(_) => "warn",
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

async fn dispatch(cmd: Cmd) -> anyhow::Result<ExitCode> {
    match cmd {
        Cmd::Demo { speed, seed } => {
            anyhow::ensure!(
                speed > 0.0 && speed.is_finite(),
                "--speed must be a positive number, got {speed}"
            );
            let shutdown = CancellationToken::new();
            cancel_on_signal(shutdown.clone());
            let opts = firebreak::demo::DemoOptions { speed, seed };
            firebreak::demo::run(opts, Box::new(std::io::stdout()), shutdown).await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run { config } => {
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
            let store = firebreak::store::Store::open(&loaded.config.store_url).await?;
            let clock = firebreak::clock::Clock::system();
            let chat = std::sync::Arc::new(firebreak::chat::console::Console::stdout(
                chrono::FixedOffset::east_opt(0).expect("zero offset"),
                "UTC",
            ));
            let shutdown = CancellationToken::new();
            cancel_on_signal(shutdown.clone());
            tracing::info!(
                rules = loaded.rule_groups.len(),
                runbooks = loaded.runbooks.len(),
                scrape_targets = loaded.config.scrape.len(),
                "firebreak running"
            );
            let daemon =
                firebreak::daemon::Daemon::start(loaded, store.clone(), clock, chat, shutdown)
                    .await?;
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
        Cmd::Test(TestCmd::Rules { files }) => Ok(test_rules(&files)),
    }
}

/// `firebreak test rules`: promtool's report layout, one block per file.
fn test_rules(files: &[PathBuf]) -> ExitCode {
    use firebreak::rules::unittest;
    let mut failed = false;
    for f in files {
        println!("Unit Testing:  {}", f.display());
        let (tf, groups, warnings) = match unittest::load(f) {
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
