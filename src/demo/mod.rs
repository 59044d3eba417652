//! `firebreak demo`: the 2023-05-24 launch, replayed.
//!
//! The simulator and the daemon run in one process on one scaled clock
//! (60x by default), on embedded defaults: no config file and no network
//! beyond loopback. The daemon is the same code `firebreak run` runs; only
//! its clock, its chat (the terminal) and its store (a file it names at
//! the end, so `firebreak timeline` can read it again) differ. Through
//! the quiet stretches it says where the replay stands. At the end the
//! demo reads the incident timeline back from the store and compares the
//! outcome with 2023's.

pub mod play;
pub mod progress;

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{FixedOffset, TimeZone};
use tokio_util::sync::CancellationToken;

use crate::chat::console::Console;
use crate::clock::{Clock, Millis};
use crate::config::Config;
use crate::daemon::Daemon;
use crate::duration::PromDuration;
use crate::incident::Review;
use crate::sim::{Scenario, Sim, SimOptions, StateSnapshot};
use crate::store::Store;
use crate::timeline::{Kind, TimelineEntry};

#[derive(Clone, Debug)]
pub struct DemoOptions {
    pub speed: f64,
    pub seed: u64,
    /// Read chat commands from stdin while the replay runs (see
    /// [`crate::command::console_input`]).
    pub console_input: bool,
    /// The SQLite file the replay's store is kept in, for `firebreak
    /// timeline --store` afterwards: new, or empty (one that holds
    /// anything is refused, so no other timeline mixes in). `None`: a
    /// temporary file, gone at the end (rehearsals).
    pub store: Option<PathBuf>,
    /// After this long (real time) with nothing printed, a line says where
    /// the replay stands ([`progress::line`]); `None`: never.
    pub quiet_after: Option<Duration>,
}

/// How long the demo stays silent before saying where it stands: long
/// enough not to interrupt the chat, short enough that nobody wonders
/// whether it hung.
pub const QUIET_AFTER: Duration = Duration::from_secs(8);

/// What the replay measured.
#[derive(Clone, Debug)]
pub struct DemoReport {
    /// Each incident as `firebreak timeline` reads it.
    pub incidents: Vec<Review>,
    pub sim: StateSnapshot,
    /// First alert firing, after the scheduled start.
    pub time_to_detect_ms: Option<Millis>,
    /// The review's `mitigated` (the end of the first runbook run after
    /// detection to succeed; the earliest of the incidents'), after the
    /// scheduled start, and that runbook: the same moment the review
    /// prints, from the start the outcome table counts from.
    pub time_to_mitigate_ms: Option<Millis>,
    pub mitigated_by: Option<String>,
    /// The event moved to a room on another account, after the scheduled
    /// start: 2023's fix.
    pub time_to_move_ms: Option<Millis>,
    /// The host's feedback muted, after the scheduled start.
    pub time_to_mute_ms: Option<Millis>,
    /// Where the store was kept, when it was.
    pub store: Option<PathBuf>,
}

impl DemoReport {
    /// Listeners at the end as a share of the peak.
    pub fn kept_ratio(&self) -> f64 {
        let e = &self.sim.event;
        if e.peak_listeners == 0 {
            0.0
        } else {
            e.listeners as f64 / e.peak_listeners as f64
        }
    }
}

/// US Eastern daylight time, the scenario's zone.
fn eastern() -> FixedOffset {
    FixedOffset::west_opt(4 * 3600).expect("static offset")
}

fn hms(at: Millis) -> String {
    eastern()
        .timestamp_millis_opt(at)
        .single()
        .map_or_else(|| "?".into(), |t| t.format("%H:%M:%S").to_string())
}

fn minutes(ms: Millis) -> String {
    let s = ms.max(0) / 1000;
    format!("{}m{:02}s", s / 60, s % 60)
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A writer shared between the console chat and the demo's own output,
/// which knows when it was last written to.
#[derive(Clone)]
struct Shared(Arc<Mutex<(Box<dyn Write + Send>, Instant)>>);

impl Shared {
    fn new(out: Box<dyn Write + Send>) -> Shared {
        Shared(Arc::new(Mutex::new((out, Instant::now()))))
    }

    fn lock(&self) -> std::io::Result<std::sync::MutexGuard<'_, (Box<dyn Write + Send>, Instant)>> {
        self.0.lock().map_err(|_| std::io::Error::other("poisoned"))
    }

    /// How long nothing has been printed.
    fn quiet_for(&self) -> Duration {
        self.lock().map_or(Duration::ZERO, |g| g.1.elapsed())
    }
}

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut g = self.lock()?;
        g.1 = Instant::now();
        g.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.lock()?.0.flush()
    }
}

/// Where the replay's store lives: a file kept for `firebreak timeline`,
/// or a temporary one.
struct StoreAt {
    url: String,
    kept: Option<PathBuf>,
    _temp: Option<tempfile::TempDir>,
}

impl StoreAt {
    fn new(keep: Option<&std::path::Path>) -> anyhow::Result<StoreAt> {
        let Some(path) = keep else {
            let dir =
                tempfile::tempdir().context("creating a temporary directory for the store")?;
            return Ok(StoreAt {
                url: format!(
                    "sqlite://{}",
                    dir.path().join("firebreak-demo.db").display()
                ),
                kept: None,
                _temp: Some(dir),
            });
        };
        // Only the replay's own timeline: a store with anything in it
        // would mix another night into the figures, and is someone's.
        if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
            anyhow::bail!(
                "{} already exists; the demo keeps its store in a new file (remove it, or give another --store)",
                path.display()
            );
        }
        Ok(StoreAt {
            url: format!("sqlite://{}", path.display()),
            kept: Some(path.to_owned()),
            _temp: None,
        })
    }
}

/// A new file for the demo's store in the system's temporary directory,
/// named so that no other demo takes it: `firebreak-demo-XXXXXX.db`.
pub fn new_store_file() -> anyhow::Result<PathBuf> {
    let f = tempfile::Builder::new()
        .prefix("firebreak-demo-")
        .suffix(".db")
        .tempfile()
        .context("creating a file for the demo's store")?;
    let (_, path) = f.keep().context("keeping the file for the demo's store")?;
    Ok(path)
}

/// Replays the embedded scenario, 2023-05-24.
pub async fn run(
    opts: DemoOptions,
    out: Box<dyn Write + Send>,
    shutdown: CancellationToken,
) -> anyhow::Result<DemoReport> {
    run_scenario(Scenario::builtin(), opts, out, shutdown).await
}

/// Replays `scenario` with the embedded rules and runbooks: what the bot
/// does on a night whose accounts, rooms and people have other names.
pub async fn run_scenario(
    scenario: Scenario,
    opts: DemoOptions,
    out: Box<dyn Write + Send>,
    shutdown: CancellationToken,
) -> anyhow::Result<DemoReport> {
    // Before anything starts: a store that is not the demo's to take
    // ends it here.
    let store_at = StoreAt::new(opts.store.as_deref())?;
    let store_url = store_at.url.clone();
    let mut out = Shared::new(out);
    let clock = Clock::scaled(scenario.start, opts.speed);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the simulator to loopback")?;
    let addr = listener.local_addr()?;
    let sim = Sim::new(
        SimOptions {
            scenario: scenario.clone(),
            seed: opts.seed,
        },
        clock.clone(),
    );
    let sim_stop = CancellationToken::new();
    let sim_task = tokio::spawn(sim.clone().serve(listener, sim_stop.clone()));

    let store = Store::open(&store_url).await?;

    let loaded = crate::load::load_embedded(replay_config(&addr.to_string(), store_url))
        .map_err(|d| anyhow::anyhow!("embedded rules or runbooks are invalid:\n{d}"))?;

    writeln!(
        out,
        "firebreak demo: replaying {:?} at {}x (seed {})",
        scenario.name, opts.speed, opts.seed
    )?;
    writeln!(
        out,
        "  replay {} to {} ET, event scheduled {} ET; simulator on http://{addr}; {} built-in rule group(s), {} built-in runbook(s) (a demo reads no config file)",
        hms(scenario.start),
        hms(scenario.end),
        hms(scenario.scheduled_start),
        loaded.rule_groups.len(),
        loaded.runbooks.len()
    )?;
    writeln!(
        out,
        "  in 2023 there was no plan: the fix took about {} minutes and lost about half the audience.",
        scenario.reference.mitigation_minutes
    )?;
    if opts.console_input {
        writeln!(
            out,
            "  type chat commands here as the console commander: `help` lists them, e.g. `status`, `pause`, `timeline`."
        )?;
    }
    if let Some(p) = &store_at.kept {
        writeln!(
            out,
            "  the store (kept for `firebreak timeline`): {}",
            p.display()
        )?;
    }
    let channel = loaded.config.chat.channel.clone();
    let ahead = progress::milestones(&loaded.checklists, scenario.scheduled_start, scenario.end);
    writeln!(out, "\n--- chat: {channel} ---")?;

    let chat = Arc::new(Console::new(Box::new(out.clone()), eastern(), "ET"));
    let daemon_stop = shutdown.child_token();
    let daemon = Daemon::start(
        loaded,
        store.clone(),
        clock.clone(),
        chat.clone(),
        daemon_stop.clone(),
    )
    .await?;
    let input = opts.console_input.then(|| {
        let ctx = Arc::new(crate::command::Ctx {
            offset: eastern(),
            zone: "ET".into(),
            ..(*daemon.ctx).clone()
        });
        tokio::spawn(crate::command::console_input::run(
            ctx,
            crate::command::Actor::console(),
            crate::command::console_input::stdin_lines(),
            chat,
            channel,
            daemon_stop.clone(),
        ))
    });
    let progress = opts.quiet_after.map(|every| {
        tokio::spawn(say_where_it_stands(
            out.clone(),
            every,
            clock.clone(),
            sim.clone(),
            daemon.ctx.clone(),
            ahead,
            daemon_stop.clone(),
        ))
    });
    tokio::select! {
        _ = clock.sleep_until(scenario.end) => {}
        _ = shutdown.cancelled() => {}
    }
    daemon_stop.cancel();
    if let Some(p) = progress
        && let Err(e) = p.await
    {
        tracing::error!(error = %e, "progress task failed");
    }
    if let Some(input) = input
        && let Err(e) = input.await
    {
        tracing::error!(error = %e, "console input task failed");
    }
    daemon.wait().await?;
    let snapshot = sim.snapshot();
    sim_stop.cancel();
    match sim_task.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "simulator stopped with an error"),
        Err(e) => tracing::error!(error = %e, "simulator task failed"),
    }

    let mut incidents = Vec::new();
    for id in store.incidents().await? {
        let tl = store.timeline(&id).await?;
        let audience = store.audience(&id).await?;
        incidents.push(Review::new(&id, tl).with_audience(&audience));
    }
    store.close().await;

    let start = snapshot.scheduled_start;
    let first = |pred: &dyn Fn(&TimelineEntry) -> bool| {
        incidents
            .iter()
            .flat_map(|r| r.entries.iter())
            .filter(|e| pred(e))
            .map(|e| e.at)
            .min()
    };
    let mitigated = incidents.iter().filter_map(|r| r.mitigated.clone()).min();
    let report = DemoReport {
        time_to_detect_ms: first(&|e| e.kind == Kind::AlertFiring && e.at >= start)
            .map(|t| t - start),
        time_to_mitigate_ms: mitigated.as_ref().map(|m| m.0 - start),
        mitigated_by: mitigated.map(|m| m.1),
        time_to_move_ms: snapshot.event.moves.first().map(|m| m.at - start),
        time_to_mute_ms: first(&|e| {
            e.kind == Kind::Step && e.about.step.as_deref() == Some("mute")
        })
        .map(|t| t - start),
        incidents,
        sim: snapshot,
        store: store_at.kept.clone(),
    };
    print_summary(&mut out, &report)?;
    Ok(report)
}

/// Prints where the replay stands whenever nothing has been printed for
/// `every`, until `stop`.
async fn say_where_it_stands(
    mut out: Shared,
    every: Duration,
    clock: Clock,
    sim: Sim,
    ctx: Arc<crate::command::Ctx>,
    ahead: Vec<progress::Milestone>,
    stop: CancellationToken,
) {
    let tick = every.min(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(tick) => {}
        }
        if out.quiet_for() < every {
            continue;
        }
        let Ok(status) = ctx.status().await else {
            return;
        };
        let standing = progress::Standing {
            now: clock.now(),
            listening: sim.snapshot().event.listeners,
            firing: status.firing.len(),
            running: status.running.len(),
            waiting: status.waiting.len(),
        };
        let line = progress::line(&standing, &ahead, &|at| format!("{} ET", hms(at)));
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            return;
        }
    }
}

/// The command that prints `incident`'s review again from the kept store.
pub fn timeline_command(incident: &str, store: &std::path::Path) -> String {
    format!("firebreak timeline {incident} --store {}", store.display())
}

fn print_summary(out: &mut impl Write, r: &DemoReport) -> std::io::Result<()> {
    for review in &r.incidents {
        match &r.store {
            Some(p) => writeln!(
                out,
                "\n--- timeline: `{}` (it prints times in UTC) ---",
                timeline_command(&review.incident, p)
            )?,
            None => writeln!(out, "\n--- timeline of {} ---", review.incident)?,
        }
        write!(out, "{}", review.text(&|at| format!("{} ET", hms(at))))?;
    }
    let e = &r.sim.event;
    let reference = &r.sim.reference;
    let start = r.sim.scheduled_start;
    // Each figure with the clock time it ends at, so it can be found in
    // the review above.
    let or_none = |v: Option<Millis>| {
        v.map_or_else(
            || "never".to_owned(),
            |ms| format!("{} ({} ET)", minutes(ms), hms(start + ms)),
        )
    };
    let ref_kept = if reference.listeners_before > 0 {
        reference.listeners_after as f64 / reference.listeners_before as f64
    } else {
        0.0
    };
    writeln!(
        out,
        "\n--- outcome (times from the scheduled start, {} ET) ---",
        hms(r.sim.scheduled_start)
    )?;
    let mut row =
        |label: &str, ours: &str, theirs: &str| writeln!(out, "{label:<22} {ours:<34} {theirs}");
    row("", "firebreak", "2023-05-24")?;
    row(
        "time to detect",
        &or_none(r.time_to_detect_ms),
        "no alert; staff saw it live",
    )?;
    row(
        "time to mitigate",
        &or_none(r.time_to_mitigate_ms),
        &format!(
            "about {} minutes (the move, the only fix)",
            reference.mitigation_minutes
        ),
    )?;
    row(
        "event moved",
        &or_none(r.time_to_move_ms),
        &format!("about {} minutes", reference.mitigation_minutes),
    )?;
    row(
        "host feedback muted",
        &or_none(r.time_to_mute_ms),
        "never; 20 minutes of screeching",
    )?;
    row(
        "listeners kept",
        &format!(
            "{:.0}% ({} of peak {})",
            r.kept_ratio() * 100.0,
            thousands(e.listeners),
            thousands(e.peak_listeners)
        ),
        &format!(
            "{:.0}% ({} of {})",
            ref_kept * 100.0,
            thousands(reference.listeners_after),
            thousands(reference.listeners_before)
        ),
    )?;
    row(
        "room crashed",
        if e.crashed { "yes" } else { "no" },
        "yes, about 18:25",
    )?;
    writeln!(
        out,
        "{:<22} {} now in room {} on {}; {} lost (gave up {}, crash {}, move {})",
        "event",
        e.title,
        e.room,
        e.account,
        thousands(e.lost.total),
        thousands(e.lost.gave_up),
        thousands(e.lost.crash),
        thousands(e.lost.moved)
    )?;
    if let Some(rb) = &r.mitigated_by {
        writeln!(
            out,
            "time to mitigate is the review's `mitigated`: the first runbook run after detection to succeed ({rb}) ended then; the review counts it from when the alert's condition began, this table from the scheduled start."
        )?;
    }
    if let Some(p) = &r.store {
        writeln!(
            out,
            "\nThe store is kept in {}: `{}` prints the review again (`--markdown` for the report).",
            p.display(),
            timeline_command(
                r.incidents
                    .first()
                    .map_or("INCIDENT", |i| i.incident.as_str()),
                p
            )
        )?;
    }
    out.flush()
}

/// The config a replay runs on: the embedded defaults, pointed at the
/// simulator at `sim_addr`, scraping often enough for a replay where
/// minutes matter. The alert-to-action benchmark uses it too, so it
/// measures what the demo runs.
pub fn replay_config(sim_addr: &str, store_url: String) -> Config {
    let mut config = Config::for_simulator(sim_addr);
    config.store_url = store_url;
    config.evaluation_interval = PromDuration::from_secs(15);
    for t in &mut config.scrape {
        t.interval = PromDuration::from_secs(5);
        t.timeout = PromDuration::from_secs(5);
    }
    config
}
