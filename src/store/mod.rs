//! The durable record beside the flow: runs and steps, alerts, the incident
//! timeline, silences, the chat outbox, and the inbound requests already
//! seen (so a replayed one is refused after a restart, or by a replica).
//!
//! One code path for embedded SQLite (the default: one file, created on
//! first run) and PostgreSQL (the path for replicas), through sqlx's `Any`
//! driver. SQL here sticks to what both accept: TEXT, BIGINT and DOUBLE
//! PRECISION columns, `$N` placeholders, ids made by the bot rather than by
//! the database.

use serde::Serialize;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Row};

use crate::clock::Millis;
use crate::config::sqlite_file;
pub use crate::incident::AudienceRow;
use crate::run_state::{Going, Outcome, RunState, StepState};
pub use crate::timeline::TimelineEntry;
use crate::timeline::{About, By, Kind};

mod console;
mod control_state;
mod forwarded;
mod lease;
pub use console::{ConsoleSession, ConsoleToken};
pub use forwarded::ForwardedPush;
use lease::Written;
pub use lease::{Fence, Lease};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open store {url}")]
    Open {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("store query failed ({what}): {source}")]
    Query {
        what: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("stored {what} is corrupt: {detail}")]
    Corrupt { what: &'static str, detail: String },
    /// Written by a newer firebreak: this one could misread what it
    /// added, so it does not touch it.
    #[error(
        "the store is at schema version {found}, newer than this firebreak knows (up to {known}); run the newer firebreak, or give this one its own store"
    )]
    TooNew { found: i64, known: i64 },
    /// A SQLite store serves one `firebreak run`; another holds this one.
    #[error(
        "the store {path} is in use by another firebreak ({by}); a SQLite store serves one process: stop that one, or give this one its own store (replicas share a PostgreSQL store)"
    )]
    Held { path: String, by: String },
    /// This process's leader lease was taken over (or expired): the write
    /// was not made, and the process must stop acting.
    #[error(
        "not written ({what}): this replica ({holder}) no longer holds the leader lease it had at epoch {epoch}"
    )]
    Fenced {
        what: &'static str,
        holder: String,
        epoch: i64,
    },
    /// A run of this runbook and concurrency key has not ended; the
    /// database refuses a second (two leaders cannot both start it).
    #[error("run {id} not started: a run of {runbook} for {key:?} is still going")]
    RunActive {
        id: String,
        runbook: String,
        key: String,
    },
    /// A SQLite file is created on first run, but not its directory.
    #[error(
        "the store {path} cannot be created: its directory {dir} does not exist; create it, or set store.url to a file in a directory that does"
    )]
    NoDirectory { path: String, dir: String },
    #[error("cannot take the store's lock {path}")]
    Lock {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Keeps a SQLite store to this process while it lives (an exclusive lock
/// on `<file>.lock`, which the system releases when the process ends,
/// however it ends).
#[derive(Debug)]
pub struct Hold {
    _file: std::fs::File,
}

/// For `firebreak run` on a SQLite file: takes the store for this process,
/// or says which process has it. Two daemons on one SQLite file would
/// both act on every alert. Nothing to hold for PostgreSQL (replicas
/// coordinate there) or an in-memory store. Readers (`firebreak
/// timeline`, tests) do not hold.
pub fn hold(url: &str) -> Result<Option<Hold>> {
    use std::io::{Read, Seek, Write};
    let Some(path) = sqlite_file(url) else {
        return Ok(None);
    };
    directory_exists(&path)?;
    let lock = format!("{path}.lock");
    let io = |source| StoreError::Lock {
        path: lock.clone(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut by = String::new();
            let _ = file.read_to_string(&mut by);
            let by = by.trim();
            return Err(StoreError::Held {
                path,
                by: if by.is_empty() {
                    "it has not said which".to_owned()
                } else {
                    by.to_owned()
                },
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    write!(file, "pid {}, since {since}", std::process::id()).map_err(io)?;
    file.flush().map_err(io)?;
    Ok(Some(Hold { _file: file }))
}

/// Says, once and plainly, that a SQLite file's directory is missing,
/// before SQLite and the lock file each fail on it in their own words.
fn directory_exists(path: &str) -> Result<()> {
    let dir = std::path::Path::new(path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty());
    match dir {
        Some(d) if !d.is_dir() => Err(StoreError::NoDirectory {
            path: path.to_owned(),
            dir: d.display().to_string(),
        }),
        _ => Ok(()),
    }
}

type Result<T> = std::result::Result<T, StoreError>;

/// An error a query can end in, made a [`StoreError`] that says which
/// query it was.
trait Failure {
    fn into_store(self, what: &'static str) -> StoreError;
}

impl Failure for sqlx::Error {
    fn into_store(self, what: &'static str) -> StoreError {
        StoreError::Query { what, source: self }
    }
}

fn q<E: Failure>(what: &'static str) -> impl FnOnce(E) -> StoreError {
    move |e| e.into_store(what)
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// Runs a write as its store allows: straight to the pool, or for a
/// leader's (fenced) store in a transaction behind the fence check.
trait Write: Sized {
    fn fenced<'a>(
        self,
        store: &'a Store,
    ) -> impl Future<Output = std::result::Result<sqlx::any::AnyQueryResult, Written>> + Send + 'a
    where
        Self: 'a;
    fn fenced_row<'a>(
        self,
        store: &'a Store,
    ) -> impl Future<Output = std::result::Result<sqlx::any::AnyRow, Written>> + Send + 'a
    where
        Self: 'a;
}

impl<'q> Write for Query<'q> {
    async fn fenced<'a>(
        self,
        store: &'a Store,
    ) -> std::result::Result<sqlx::any::AnyQueryResult, Written>
    where
        Self: 'a,
    {
        let Some(fence) = &store.fence else {
            return Ok(self.execute(&store.pool).await?);
        };
        fence.refuse_if_lost()?;
        let mut tx = store.pool.begin().await?;
        store.check_fence(&mut tx, fence).await?;
        let r = self.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(r)
    }

    async fn fenced_row<'a>(
        self,
        store: &'a Store,
    ) -> std::result::Result<sqlx::any::AnyRow, Written>
    where
        Self: 'a,
    {
        let Some(fence) = &store.fence else {
            return Ok(self.fetch_one(&store.pool).await?);
        };
        fence.refuse_if_lost()?;
        let mut tx = store.pool.begin().await?;
        store.check_fence(&mut tx, fence).await?;
        let r = self.fetch_one(&mut *tx).await?;
        tx.commit().await?;
        Ok(r)
    }
}

/// Schema version 1: the tables of the releases before versioned schemas,
/// as they made them (each statement idempotent, so a store they wrote
/// takes it as a no-op). Plain DDL both databases accept. Never edited:
/// a change is a new migration in [`MIGRATIONS`].
const SCHEMA_1: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS runs (
        id TEXT PRIMARY KEY,
        runbook TEXT NOT NULL,
        incident TEXT NOT NULL,
        concurrency_key TEXT NOT NULL,
        state TEXT NOT NULL,
        trigger_json TEXT NOT NULL,
        started_at BIGINT NOT NULL,
        finished_at BIGINT,
        error TEXT
    )",
    "CREATE TABLE IF NOT EXISTS steps (
        run_id TEXT NOT NULL,
        step_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        state TEXT NOT NULL,
        attempts BIGINT NOT NULL,
        started_at BIGINT NOT NULL,
        finished_at BIGINT,
        output_json TEXT,
        error TEXT,
        PRIMARY KEY (run_id, step_id)
    )",
    "CREATE TABLE IF NOT EXISTS alerts (
        fingerprint TEXT PRIMARY KEY,
        alertname TEXT NOT NULL,
        labels_json TEXT NOT NULL,
        annotations_json TEXT NOT NULL,
        state TEXT NOT NULL,
        active_at BIGINT NOT NULL,
        fired_at BIGINT,
        resolved_at BIGINT,
        value DOUBLE PRECISION NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS timeline (
        incident TEXT NOT NULL,
        seq BIGINT NOT NULL,
        at BIGINT NOT NULL,
        kind TEXT NOT NULL,
        actor TEXT NOT NULL,
        text TEXT NOT NULL,
        PRIMARY KEY (incident, seq)
    )",
    "CREATE TABLE IF NOT EXISTS rule_state (
        id TEXT PRIMARY KEY,
        taken_at BIGINT NOT NULL,
        state_json TEXT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS outbox (
        seq BIGINT PRIMARY KEY,
        channel TEXT NOT NULL,
        payload_json TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        sent_at BIGINT,
        attempts BIGINT NOT NULL
    )",
    // Platform ids of delivered messages that later ones refer to: an
    // incident's thread head (`slot` = "") and named slots. `scope` is the
    // incident, or "" for the channel.
    "CREATE TABLE IF NOT EXISTS chat_refs (
        channel TEXT NOT NULL,
        scope TEXT NOT NULL,
        slot TEXT NOT NULL,
        platform_id TEXT NOT NULL,
        PRIMARY KEY (channel, scope, slot)
    )",
    // Messages the platform refused for good, set aside with the reason.
    "CREATE TABLE IF NOT EXISTS outbox_rejected (
        seq BIGINT PRIMARY KEY,
        at BIGINT NOT NULL,
        reason TEXT NOT NULL
    )",
    // Checklist runs: the run's whole state as JSON (checks, evidence,
    // sign-offs), and `slot` for scheduled ones ("T-10m@<event start ms>")
    // so a restart neither repeats nor forgets a scheduled run.
    "CREATE TABLE IF NOT EXISTS checklist_runs (
        id TEXT PRIMARY KEY,
        checklist TEXT NOT NULL,
        slot TEXT NOT NULL,
        started_at BIGINT NOT NULL,
        finished_at BIGINT,
        verdict TEXT,
        state_json TEXT NOT NULL
    )",
    // The sender asks for unsent messages in order many times a second;
    // without this it reads every message ever sent to find them.
    "CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (seq) WHERE sent_at IS NULL",
    // `timeline` in chat shows an incident's newest entries.
    "CREATE INDEX IF NOT EXISTS timeline_at ON timeline (incident, at, seq)",
    "CREATE TABLE IF NOT EXISTS silences (
        id TEXT PRIMARY KEY,
        matchers TEXT NOT NULL,
        starts_at BIGINT NOT NULL,
        ends_at BIGINT NOT NULL,
        created_by TEXT NOT NULL,
        comment TEXT NOT NULL
    )",
    // Inbound requests already taken (Slack's signatures and event ids),
    // until `forget_at`, when a copy would be refused anyway (its
    // timestamp too old) or can no longer arrive. The key is unique, so
    // two processes on one store cannot both take the same request.
    "CREATE TABLE IF NOT EXISTS seen_requests (
        key TEXT PRIMARY KEY,
        seen_at BIGINT NOT NULL,
        forget_at BIGINT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS seen_requests_forget ON seen_requests (forget_at)",
    // Runs that failed on a passing fault before changing anything: they
    // count for neither cooldown nor budget, and may be tried again, also
    // by the next process. A table of its own, so a store written before
    // it existed reads as "every run acted", the safe way round.
    "CREATE TABLE IF NOT EXISTS runs_changed_nothing (
        run_id TEXT PRIMARY KEY,
        at BIGINT NOT NULL
    )",
    // How long runs that succeeded took to take effect (ms from start to
    // the end of their steps), which dispatch weighs against an alert's
    // predicted breach.
    // Each open incident's audience as it was measured, for the review.
    "CREATE TABLE IF NOT EXISTS audience_samples (
        incident TEXT NOT NULL,
        at BIGINT NOT NULL,
        listening BIGINT,
        at_risk BIGINT,
        without_us BIGINT
    )",
    "CREATE INDEX IF NOT EXISTS audience_samples_at ON audience_samples (incident, at)",
    "CREATE TABLE IF NOT EXISTS run_effect_times (
        run_id TEXT PRIMARY KEY,
        runbook TEXT NOT NULL,
        ms BIGINT NOT NULL,
        at BIGINT NOT NULL
    )",
];

/// Schema version 2: timeline entries carry what they are about and who
/// did it by id, so nothing reads their text back.
const SCHEMA_2: &[&str] = &[
    "ALTER TABLE timeline ADD COLUMN alert TEXT",
    "ALTER TABLE timeline ADD COLUMN runbook TEXT",
    "ALTER TABLE timeline ADD COLUMN run_id TEXT",
    "ALTER TABLE timeline ADD COLUMN step TEXT",
    "ALTER TABLE timeline ADD COLUMN outcome TEXT",
    "ALTER TABLE timeline ADD COLUMN actor_kind TEXT",
    "ALTER TABLE timeline ADD COLUMN actor_id TEXT",
    "ALTER TABLE timeline ADD COLUMN actor_name TEXT",
];

/// The migrations, in order: a store at version N gets N+1 onwards, each
/// in its own transaction, recorded in `schema_migrations`.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        what: "the tables of the first releases",
        ddl: SCHEMA_1,
        then: None,
    },
    Migration {
        version: 2,
        what: "timeline entries carry their subject and actor as fields",
        ddl: SCHEMA_2,
        then: Some(Backfill::TimelineFields),
    },
    Migration {
        version: 3,
        what: "replicas: the leader lease, alerts forwarded to the leader, one active run per runbook and key, the pause and acks kept",
        ddl: SCHEMA_3,
        then: Some(Backfill::OneActiveRun),
    },
    Migration {
        version: 4,
        what: "the web console's sign-in tokens and sessions",
        ddl: SCHEMA_4,
        then: None,
    },
    Migration {
        version: 5,
        what: "runs and checklist runs read a page at a time, by runbook, incident or checklist; chat's cards and charts found by incident",
        ddl: SCHEMA_5,
        then: None,
    },
];

/// Schema version 5: indexes for lists read a page at a time (the console
/// and `GET /api/v1/runs`), so a page costs the same in a store of ten
/// runs or of a hundred thousand.
const SCHEMA_5: &[&str] = &[
    "CREATE INDEX runs_newest ON runs (started_at, id)",
    "CREATE INDEX runs_by_runbook ON runs (runbook, started_at)",
    "CREATE INDEX runs_by_incident ON runs (incident, started_at)",
    "CREATE INDEX checklist_runs_newest ON checklist_runs (started_at, id)",
    "CREATE INDEX checklist_runs_by_name ON checklist_runs (checklist, started_at)",
    // Which incident a chat message is about, and whether it is the
    // incident's card or a chart: the console shows both as chat does.
    // Messages queued before carry neither and are not shown.
    "ALTER TABLE outbox ADD COLUMN incident TEXT",
    "ALTER TABLE outbox ADD COLUMN shows TEXT",
    "CREATE INDEX outbox_shows ON outbox (incident, shows, seq) WHERE shows IS NOT NULL",
];

/// Schema version 4: who may sign in to the web console, and who has.
/// Digests only: a copy of the store signs nobody in.
const SCHEMA_4: &[&str] = &[
    "CREATE TABLE console_tokens (
        id TEXT PRIMARY KEY,
        digest TEXT NOT NULL UNIQUE,
        user_id TEXT NOT NULL,
        name TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        revoked_at BIGINT
    )",
    "CREATE TABLE console_sessions (
        digest TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        name TEXT NOT NULL,
        token_id TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL
    )",
    "CREATE INDEX console_sessions_token ON console_sessions (token_id)",
];

/// Schema version 3, for replicas on one PostgreSQL store.
const SCHEMA_3: &[&str] = &[
    "CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        epoch BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        taken_at BIGINT NOT NULL
    )",
    "CREATE TABLE forwarded (
        id TEXT PRIMARY KEY,
        received_at BIGINT NOT NULL,
        endpoint TEXT NOT NULL,
        body TEXT NOT NULL
    )",
    "CREATE INDEX forwarded_at ON forwarded (received_at, id)",
    "CREATE TABLE pauses (
        id TEXT PRIMARY KEY,
        by_label TEXT NOT NULL,
        reason TEXT NOT NULL,
        since BIGINT NOT NULL
    )",
    "CREATE TABLE acks (
        fingerprint TEXT PRIMARY KEY,
        by_label TEXT NOT NULL,
        at BIGINT NOT NULL
    )",
];

/// The newest schema this release knows.
pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].version;

struct Migration {
    version: i64,
    what: &'static str,
    ddl: &'static [&'static str],
    /// Data to rewrite once the DDL is in, in the same transaction.
    then: Option<Backfill>,
}

#[derive(Clone, Copy)]
enum Backfill {
    /// Rows written before schema 2 get their fields from their text and
    /// actor, read as those releases wrote them ([`crate::timeline::legacy`]).
    TimelineFields,
    /// Ends all but the newest of any runs left unfinished together for
    /// one runbook and key (only two processes on one store could have
    /// made them), then lets the database refuse such a pair from now on.
    OneActiveRun,
}

/// A checklist run's slot and state, from `SELECT slot, state_json`.
fn checklist_row(r: &sqlx::any::AnyRow) -> Result<(String, crate::checklist::state::RunState)> {
    let slot: String = r.try_get(0).map_err(q("read checklist run"))?;
    let json: String = r.try_get(1).map_err(q("read checklist run"))?;
    let run = serde_json::from_str(&json).map_err(|e| StoreError::Corrupt {
        what: "checklist run",
        detail: e.to_string(),
    })?;
    Ok((slot, run))
}

const TIMELINE_COLUMNS: &str = "incident, seq, at, kind, actor, text, alert, runbook, run_id, step, actor_kind, actor_id, actor_name";

fn timeline_entry(r: &sqlx::any::AnyRow) -> Result<TimelineEntry> {
    let e = |source| StoreError::Query {
        what: "read timeline",
        source,
    };
    let opt = |i: usize| -> Result<Option<String>> { r.try_get(i).map_err(e) };
    let kind = Kind::parse(&r.try_get::<String, _>(3).map_err(e)?);
    let actor: String = r.try_get(4).map_err(e)?;
    // A row without the actor's fields was written by a release before
    // schema 2 after this store was upgraded (one replica not yet
    // upgraded): its actor column is all there is.
    let by = match (opt(10)?, opt(11)?, opt(12)?) {
        (Some(k), Some(id), name) => By::from_parts(&k, &id, name.as_deref().unwrap_or(""))
            .ok_or_else(|| StoreError::Corrupt {
                what: "timeline actor",
                detail: format!("kind {k:?}, id {id:?}"),
            })?,
        _ => crate::timeline::legacy::by(&actor),
    };
    Ok(TimelineEntry {
        incident: r.try_get(0).map_err(e)?,
        seq: r.try_get(1).map_err(e)?,
        at: r.try_get(2).map_err(e)?,
        kind,
        by,
        about: About {
            alert: opt(6)?,
            runbook: opt(7)?,
            run: opt(8)?,
            step: opt(9)?,
        },
        text: r.try_get(5).map_err(e)?,
    })
}

/// A `runs` row whose first eight columns are in [`RunRecord`]'s order.
fn run_record(r: &sqlx::any::AnyRow) -> Result<RunRecord> {
    Ok(RunRecord {
        id: r.try_get(0).map_err(q("read run"))?,
        runbook: r.try_get(1).map_err(q("read run"))?,
        incident: r.try_get(2).map_err(q("read run"))?,
        concurrency_key: r.try_get(3).map_err(q("read run"))?,
        state: {
            let s: String = r.try_get(4).map_err(q("read run"))?;
            RunState::parse(&s).ok_or_else(|| StoreError::Corrupt {
                what: "run state",
                detail: format!("{s:?}"),
            })?
        },
        started_at: r.try_get(5).map_err(q("read run"))?,
        finished_at: r.try_get(6).map_err(q("read run"))?,
        error: r.try_get(7).map_err(q("read run"))?,
    })
}

/// A `steps` row whose first eight columns are in [`StepRecord`]'s order.
fn step_record(r: &sqlx::any::AnyRow) -> Result<StepRecord> {
    Ok(StepRecord {
        run_id: r.try_get(0).map_err(q("read step"))?,
        step_id: r.try_get(1).map_err(q("read step"))?,
        state: {
            let s: String = r.try_get(2).map_err(q("read step"))?;
            StepState::parse(&s).ok_or_else(|| StoreError::Corrupt {
                what: "step state",
                detail: format!("{s:?}"),
            })?
        },
        attempts: r.try_get(3).map_err(q("read step"))?,
        started_at: r.try_get(4).map_err(q("read step"))?,
        finished_at: r.try_get(5).map_err(q("read step"))?,
        output_json: r.try_get(6).map_err(q("read step"))?,
        error: r.try_get(7).map_err(q("read step"))?,
    })
}

/// How long PostgreSQL lets a transaction of ours sit idle (its client
/// frozen or cut off) before ending it, in ms. Our transactions send
/// their statements back to back; this only bounds how long a frozen
/// leader's write can hold off the next leader.
const IDLE_IN_TRANSACTION_MS: u64 = 1000;

/// Any number picked once: the PostgreSQL advisory lock that replicas
/// opening one store at once take in turn while they upgrade it.
const MIGRATION_LOCK: i64 = 0x6669_7265_6272_6b31;

/// Brings the store to [`SCHEMA_VERSION`], each migration in its own
/// transaction that first claims its version in `schema_migrations`.
/// Processes opening one store at once take turns: on PostgreSQL an
/// advisory lock (its `CREATE TABLE IF NOT EXISTS` is not safe against a
/// concurrent one), on SQLite the database's own write lock; the second
/// finds the work done.
async fn migrate(pool: &AnyPool, postgres: bool) -> Result<()> {
    let mut conn = pool.acquire().await.map_err(q("schema"))?;
    if postgres {
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *conn)
            .await
            .map_err(q("schema lock"))?;
    }
    let r = migrate_on(&mut conn).await;
    if postgres {
        // Closing the connection would release it too; it goes back to
        // the pool instead.
        if let Err(e) = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *conn)
            .await
        {
            conn.close_on_drop();
            tracing::warn!(error = %e, "cannot release the schema lock; closing its connection");
        }
    }
    r
}

async fn migrate_on(conn: &mut sqlx::AnyConnection) -> Result<()> {
    use sqlx::Connection;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version BIGINT PRIMARY KEY,
            applied_at BIGINT NOT NULL,
            what TEXT NOT NULL
        )",
    )
    .execute(&mut *conn)
    .await
    .map_err(q("schema"))?;
    let found = schema_version(&mut *conn).await?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > found) {
        let mut tx = conn.begin().await.map_err(q("schema"))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let claim = sqlx::query(
            "INSERT INTO schema_migrations (version, applied_at, what) VALUES ($1, $2, $3)",
        )
        .bind(m.version)
        .bind(now)
        .bind(m.what)
        .execute(&mut *tx)
        .await;
        match claim {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                tx.rollback().await.map_err(q("schema"))?;
                continue;
            }
            Err(e) => return Err(q("schema")(e)),
        }
        for ddl in m.ddl {
            sqlx::query(*ddl)
                .execute(&mut *tx)
                .await
                .map_err(q("schema"))?;
        }
        match m.then {
            None => {}
            Some(Backfill::TimelineFields) => backfill_timeline(&mut tx).await?,
            Some(Backfill::OneActiveRun) => one_active_run(&mut tx, now).await?,
        }
        tx.commit().await.map_err(q("schema"))?;
        tracing::info!(version = m.version, what = m.what, "store schema upgraded");
    }
    Ok(())
}

/// The newest migration recorded; 0 for a store that has none (new, or
/// written before schemas were versioned).
async fn schema_version(conn: &mut sqlx::AnyConnection) -> Result<i64> {
    let v: Option<i64> = sqlx::query("SELECT MAX(version) FROM schema_migrations")
        .fetch_one(conn)
        .await
        .map_err(q("schema version"))?
        .try_get(0)
        .map_err(q("schema version"))?;
    Ok(v.unwrap_or(0))
}

async fn one_active_run(tx: &mut sqlx::Transaction<'_, sqlx::Any>, now: Millis) -> Result<()> {
    let ended = sqlx::query(
        "UPDATE runs SET state = 'interrupted', finished_at = $1,
             error = 'ended by the store upgrade to schema 3: a newer run of this runbook and key was also unfinished'
         WHERE finished_at IS NULL AND EXISTS (
             SELECT 1 FROM runs AS newer
             WHERE newer.runbook = runs.runbook AND newer.concurrency_key = runs.concurrency_key
               AND newer.finished_at IS NULL
               AND (newer.started_at > runs.started_at
                    OR (newer.started_at = runs.started_at AND newer.id > runs.id)))",
    )
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(q("upgrade runs"))?;
    if ended.rows_affected() > 0 {
        tracing::warn!(
            runs = ended.rows_affected(),
            "the store had runs of one runbook and key unfinished together; all but the newest of each are ended as interrupted"
        );
    }
    sqlx::query(
        "CREATE UNIQUE INDEX runs_one_active ON runs (runbook, concurrency_key) WHERE finished_at IS NULL",
    )
    .execute(&mut **tx)
    .await
    .map_err(q("upgrade runs"))?;
    Ok(())
}

async fn backfill_timeline(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<()> {
    let rows = sqlx::query("SELECT incident, seq, kind, actor, text FROM timeline")
        .fetch_all(&mut **tx)
        .await
        .map_err(q("upgrade timeline"))?;
    for r in &rows {
        let get = |i| -> Result<String> { r.try_get(i).map_err(q("upgrade timeline")) };
        let seq: i64 = r.try_get(1).map_err(q("upgrade timeline"))?;
        let kind = Kind::parse(&get(2)?);
        let by = crate::timeline::legacy::by(&get(3)?);
        let about = crate::timeline::legacy::about(&kind, &get(4)?);
        let outcome = match kind {
            Kind::RunEnded(o) => Some(o.as_str()),
            _ => None,
        };
        sqlx::query(
            "UPDATE timeline SET alert = $1, runbook = $2, outcome = $3, actor_kind = $4, actor_id = $5, actor_name = $6
             WHERE incident = $7 AND seq = $8",
        )
        .bind(about.alert.as_deref())
        .bind(about.runbook.as_deref())
        .bind(outcome)
        .bind(by.kind())
        .bind(by.id())
        .bind(by.name())
        .bind(get(0)?)
        .bind(seq)
        .execute(&mut **tx)
        .await
        .map_err(q("upgrade timeline"))?;
    }
    Ok(())
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    /// Serialises appends that number their rows (timeline, outbox) within
    /// this process. Without it, concurrent appends on PostgreSQL pick the
    /// same next number and all but one fail; the retry below is left for
    /// the rare writer in another process.
    append: std::sync::Arc<tokio::sync::Mutex<()>>,
    postgres: bool,
    /// Set on a leader's store: every write is conditional on its lease.
    fence: Option<std::sync::Arc<Fence>>,
}

/// The outbox as a page needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutboxSummary {
    /// Messages not yet delivered.
    pub depth: i64,
    /// When the oldest of them was written.
    pub oldest: Option<Millis>,
    /// The newest message's number: it grows with everything the bot says
    /// (runs, steps, alerts, acks), so a change in it is a change people
    /// can see. 0 for an empty outbox.
    pub last_seq: i64,
}

/// An incident as lists show it, from its timeline's first and last
/// entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncidentSummary {
    pub incident: String,
    pub first: Millis,
    pub last: Millis,
    pub entries: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunRecord {
    pub id: String,
    pub runbook: String,
    pub incident: String,
    pub concurrency_key: String,
    pub state: RunState,
    pub started_at: Millis,
    pub finished_at: Option<Millis>,
    pub error: Option<String>,
}

/// What a queued chat message is, for those who look for it again by
/// incident (the console): nothing, an incident's card, or a chart.
#[derive(Clone, Copy, Debug, Default)]
pub struct OutboxTag<'a> {
    pub incident: Option<&'a str>,
    pub shows: Option<Shows>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shows {
    Card,
    Chart,
}

impl Shows {
    fn as_str(self) -> &'static str {
        match self {
            Shows::Card => "card",
            Shows::Chart => "chart",
        }
    }
}

/// Which runs a list shows: every field that is set must match.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunFilter {
    pub runbook: Option<String>,
    pub state: Option<RunState>,
    pub incident: Option<String>,
}

impl RunFilter {
    fn binds(&self) -> (Option<&str>, Option<&'static str>, Option<&str>) {
        (
            self.runbook.as_deref(),
            self.state.map(RunState::as_str),
            self.incident.as_deref(),
        )
    }
}

/// The WHERE clause of a [`RunFilter`], binding $1..$3; an unset field
/// matches every row. A macro so queries are whole literals.
macro_rules! run_filter {
    () => {
        "($1 IS NULL OR runbook = $1) AND ($2 IS NULL OR state = $2) AND ($3 IS NULL OR incident = $3)"
    };
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepRecord {
    pub run_id: String,
    pub step_id: String,
    pub state: StepState,
    pub attempts: i64,
    pub started_at: Millis,
    pub finished_at: Option<Millis>,
    pub output_json: Option<String>,
    pub error: Option<String>,
}

/// How a step ended, for [`Store::step_finished`].
#[derive(Clone, Copy, Debug)]
pub struct StepEnd<'a> {
    pub state: StepState,
    pub attempts: i64,
    pub at: Millis,
    pub output_json: Option<&'a str>,
    pub error: Option<&'a str>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OutboxRow {
    pub seq: i64,
    pub channel: String,
    pub payload_json: String,
    pub attempts: i64,
}

impl Store {
    /// Opens (creating if needed) the store at `url`: `sqlite://PATH`,
    /// `sqlite::memory:` or `postgres://...`.
    pub async fn open(url: &str) -> Result<Store> {
        install_default_drivers();
        if let Some(path) = sqlite_file(url) {
            directory_exists(&path)?;
        }
        let url_owned = url.to_owned();
        let connect_url =
            if url.starts_with("sqlite:") && !url.contains("mode=") && !url.contains(":memory:") {
                // Create the file on first run.
                format!("{url}{}mode=rwc", if url.contains('?') { "&" } else { "?" })
            } else {
                url.to_owned()
            };
        // An in-memory SQLite database exists per connection; one
        // connection keeps it whole.
        let max = if url.contains(":memory:") { 1 } else { 4 };
        let sqlite = url.starts_with("sqlite:");
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if !sqlite {
                        // A leader's write holds the lease row shared
                        // until it commits; a leader frozen (or cut off)
                        // mid-write would hold off a takeover for as long
                        // as its connection lives. The server ends such a
                        // transaction instead.
                        sqlx::query(sqlx::AssertSqlSafe(format!(
                            "SET idle_in_transaction_session_timeout = {IDLE_IN_TRANSACTION_MS}"
                        )))
                        .execute(&mut *conn)
                        .await?;
                    }
                    if sqlite {
                        // Per connection: WAL lets the outbox sender read
                        // while the executor writes, and writers wait for
                        // each other instead of failing at once.
                        for pragma in [
                            "PRAGMA journal_mode=WAL",
                            "PRAGMA synchronous=NORMAL",
                            "PRAGMA busy_timeout=10000",
                        ] {
                            sqlx::query(pragma).execute(&mut *conn).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect(&connect_url)
            .await
            .map_err(|source| StoreError::Open {
                url: url_owned.clone(),
                source,
            })?;
        let postgres = url.starts_with("postgres");
        migrate(&pool, postgres).await?;
        Ok(Store {
            pool,
            append: Default::default(),
            postgres,
            fence: None,
        })
    }

    // --- runs and steps -------------------------------------------------

    pub async fn insert_run(&self, r: &RunRecord, trigger_json: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO runs (id, runbook, incident, concurrency_key, state, trigger_json, started_at, finished_at, error)
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL)",
        )
        .bind(&r.id)
        .bind(&r.runbook)
        .bind(&r.incident)
        .bind(&r.concurrency_key)
        .bind(r.state.as_str())
        .bind(trigger_json)
        .bind(r.started_at)
        .fenced(self)
        .await
        .map_err(|e| {
            if e.is_unique_violation() {
                StoreError::RunActive {
                    id: r.id.clone(),
                    runbook: r.runbook.clone(),
                    key: r.concurrency_key.clone(),
                }
            } else {
                e.into_store("insert run")
            }
        })?;
        Ok(())
    }

    pub async fn finish_run(
        &self,
        id: &str,
        outcome: Outcome,
        at: Millis,
        error: Option<&str>,
    ) -> Result<()> {
        sqlx::query("UPDATE runs SET state = $1, finished_at = $2, error = $3 WHERE id = $4")
            .bind(outcome.as_str())
            .bind(at)
            .bind(error)
            .bind(id)
            .fenced(self)
            .await
            .map_err(q("finish run"))?;
        Ok(())
    }

    /// Records that run `id` failed on a passing fault having changed
    /// nothing.
    pub async fn mark_changed_nothing(&self, id: &str, at: Millis) -> Result<()> {
        sqlx::query(
            "INSERT INTO runs_changed_nothing (run_id, at) VALUES ($1, $2) ON CONFLICT (run_id) DO NOTHING",
        )
        .bind(id)
        .bind(at)
        .fenced(self)
        .await
        .map_err(q("mark run changed nothing"))?;
        Ok(())
    }

    /// The runs recorded by [`Store::mark_changed_nothing`].
    pub async fn runs_changed_nothing(&self) -> Result<std::collections::HashSet<String>> {
        let rows = sqlx::query("SELECT run_id FROM runs_changed_nothing")
            .fetch_all(&self.pool)
            .await
            .map_err(q("list runs that changed nothing"))?;
        rows.iter()
            .map(|r| r.try_get(0).map_err(q("read runs that changed nothing")))
            .collect()
    }

    /// Records one measurement of an incident's audience.
    pub async fn record_audience(
        &self,
        incident: &str,
        at: Millis,
        listening: Option<u64>,
        at_risk: Option<u64>,
        without_us: Option<u64>,
    ) -> Result<()> {
        let n = |v: Option<u64>| v.map(|v| v.min(i64::MAX as u64) as i64);
        sqlx::query(
            "INSERT INTO audience_samples (incident, at, listening, at_risk, without_us) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(incident)
        .bind(at)
        .bind(n(listening))
        .bind(n(at_risk))
        .bind(n(without_us))
        .fenced(self)
        .await
        .map_err(q("record audience"))?;
        Ok(())
    }

    /// An incident's audience measurements, oldest first.
    pub async fn audience(&self, incident: &str) -> Result<Vec<AudienceRow>> {
        let rows = sqlx::query(
            "SELECT at, listening, at_risk, without_us FROM audience_samples WHERE incident = $1 ORDER BY at",
        )
        .bind(incident)
        .fetch_all(&self.pool)
        .await
        .map_err(q("list audience"))?;
        let n = |v: Option<i64>| v.map(|v| v.max(0) as u64);
        rows.iter()
            .map(|r| {
                let get =
                    |i: usize| -> Result<Option<i64>> { r.try_get(i).map_err(q("read audience")) };
                Ok(AudienceRow {
                    at: r.try_get(0).map_err(q("read audience"))?,
                    listening: n(get(1)?),
                    at_risk: n(get(2)?),
                    without_us: n(get(3)?),
                })
            })
            .collect()
    }

    /// Records how long run `id` of `runbook` took to take effect.
    pub async fn record_effect_time(
        &self,
        id: &str,
        runbook: &str,
        ms: Millis,
        at: Millis,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO run_effect_times (run_id, runbook, ms, at) VALUES ($1, $2, $3, $4) ON CONFLICT (run_id) DO NOTHING",
        )
        .bind(id)
        .bind(runbook)
        .bind(ms)
        .bind(at)
        .fenced(self)
        .await
        .map_err(q("record effect time"))?;
        Ok(())
    }

    /// Every recorded (runbook, ms), oldest first.
    pub async fn effect_times(&self) -> Result<Vec<(String, Millis)>> {
        let rows = sqlx::query("SELECT runbook, ms FROM run_effect_times ORDER BY at, run_id")
            .fetch_all(&self.pool)
            .await
            .map_err(q("list effect times"))?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0).map_err(q("read effect time"))?,
                    r.try_get(1).map_err(q("read effect time"))?,
                ))
            })
            .collect()
    }

    /// A run's state while it goes on (`running`, `awaiting_approval`,
    /// `rolling_back`), for status and after a restart.
    pub async fn set_run_state(&self, id: &str, state: Going) -> Result<()> {
        sqlx::query("UPDATE runs SET state = $1 WHERE id = $2 AND finished_at IS NULL")
            .bind(state.as_str())
            .bind(id)
            .fenced(self)
            .await
            .map_err(q("set run state"))?;
        Ok(())
    }

    /// Every run's runbook and what started it (the JSON `insert_run`
    /// was given), oldest first; not the runs that changed nothing, which
    /// did not handle their alert.
    pub async fn run_triggers(&self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT runbook, trigger_json FROM runs
             WHERE id NOT IN (SELECT run_id FROM runs_changed_nothing)
             ORDER BY started_at, id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(q("list run triggers"))?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0).map_err(q("read run"))?,
                    r.try_get(1).map_err(q("read run"))?,
                ))
            })
            .collect()
    }

    pub async fn runs(&self) -> Result<Vec<RunRecord>> {
        let rows = sqlx::query("SELECT id, runbook, incident, concurrency_key, state, started_at, finished_at, error FROM runs ORDER BY started_at, id")
            .fetch_all(&self.pool)
            .await
            .map_err(q("list runs"))?;
        rows.iter().map(run_record).collect()
    }

    /// How many runs `filter` lets through.
    pub async fn run_count(&self, filter: &RunFilter) -> Result<i64> {
        let (runbook, state, incident) = filter.binds();
        let row = sqlx::query(concat!("SELECT COUNT(*) FROM runs WHERE ", run_filter!()))
            .bind(runbook)
            .bind(state)
            .bind(incident)
            .fetch_one(&self.pool)
            .await
            .map_err(q("count runs"))?;
        row.try_get(0).map_err(q("read run count"))
    }

    /// Runs `filter` lets through, newest first, `limit` of them after
    /// the first `skip`: one page of a list, read alone.
    pub async fn newest_runs(
        &self,
        filter: &RunFilter,
        skip: i64,
        limit: i64,
    ) -> Result<Vec<RunRecord>> {
        let (runbook, state, incident) = filter.binds();
        let rows = sqlx::query(concat!(
            "SELECT id, runbook, incident, concurrency_key, state, started_at, finished_at, error FROM runs WHERE ",
            run_filter!(),
            " ORDER BY started_at DESC, id DESC LIMIT $4 OFFSET $5"
        ))
        .bind(runbook)
        .bind(state)
        .bind(incident)
        .bind(limit)
        .bind(skip)
        .fetch_all(&self.pool)
        .await
        .map_err(q("list runs"))?;
        rows.iter().map(run_record).collect()
    }

    /// One run, by id.
    pub async fn run(&self, id: &str) -> Result<Option<RunRecord>> {
        let row = sqlx::query("SELECT id, runbook, incident, concurrency_key, state, started_at, finished_at, error FROM runs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(q("read run"))?;
        row.as_ref().map(run_record).transpose()
    }

    /// The runbooks that have runs, by name: what a list can be filtered
    /// by. At most `limit`.
    pub async fn run_runbooks(&self, limit: i64) -> Result<Vec<String>> {
        self.names(
            "SELECT DISTINCT runbook FROM runs ORDER BY runbook LIMIT $1",
            limit,
            "list runbooks run",
        )
        .await
    }

    /// The one text column `sql` selects, `limit` bound to $1.
    async fn names(
        &self,
        sql: &'static str,
        limit: i64,
        what: &'static str,
    ) -> Result<Vec<String>> {
        let rows = sqlx::query(sql)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(q(what))?;
        rows.iter().map(|r| r.try_get(0).map_err(q(what))).collect()
    }

    /// Records that a step is about to act. Written before the action so a
    /// crash leaves evidence of what may have happened.
    pub async fn step_started(
        &self,
        run_id: &str,
        step_id: &str,
        seq: i64,
        attempts: i64,
        at: Millis,
    ) -> Result<()> {
        self.step_entered(run_id, step_id, seq, StepState::Running, attempts, at)
            .await
    }

    /// Records that a step entered `state` (`running`, or
    /// `awaiting_approval` for a gate). One statement, so a crash leaves
    /// either the old row or the new one, never none.
    pub async fn step_entered(
        &self,
        run_id: &str,
        step_id: &str,
        seq: i64,
        state: StepState,
        attempts: i64,
        at: Millis,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO steps (run_id, step_id, seq, state, attempts, started_at, finished_at, output_json, error)
             VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL, NULL)
             ON CONFLICT (run_id, step_id) DO UPDATE SET seq = $3, state = $4, attempts = $5,
                 started_at = $6, finished_at = NULL, output_json = NULL, error = NULL",
        )
        .bind(run_id)
        .bind(step_id)
        .bind(seq)
        .bind(state.as_str())
        .bind(attempts)
        .bind(at)
        .fenced(self)
        .await
        .map_err(q("start step"))?;
        Ok(())
    }

    /// Runs that have not ended (the bot stopped or crashed during them),
    /// with what started them, oldest first.
    pub async fn unfinished_runs(&self) -> Result<Vec<(RunRecord, String)>> {
        let rows = sqlx::query("SELECT id, runbook, incident, concurrency_key, state, started_at, finished_at, error, trigger_json FROM runs WHERE finished_at IS NULL ORDER BY started_at, id")
            .fetch_all(&self.pool)
            .await
            .map_err(q("list unfinished runs"))?;
        rows.iter()
            .map(|r| Ok((run_record(r)?, r.try_get(8).map_err(q("read run"))?)))
            .collect()
    }

    pub async fn step_finished(
        &self,
        run_id: &str,
        step_id: &str,
        end: &StepEnd<'_>,
    ) -> Result<()> {
        sqlx::query("UPDATE steps SET state = $1, attempts = $2, finished_at = $3, output_json = $4, error = $5 WHERE run_id = $6 AND step_id = $7")
            .bind(end.state.as_str())
            .bind(end.attempts)
            .bind(end.at)
            .bind(end.output_json)
            .bind(end.error)
            .bind(run_id)
            .bind(step_id)
            .fenced(self)
            .await
            .map_err(q("finish step"))?;
        Ok(())
    }

    pub async fn steps(&self, run_id: &str) -> Result<Vec<StepRecord>> {
        let rows = sqlx::query("SELECT run_id, step_id, state, attempts, started_at, finished_at, output_json, error FROM steps WHERE run_id = $1 ORDER BY seq")
            .bind(run_id)
            .fetch_all(&self.pool)
            .await
            .map_err(q("list steps"))?;
        rows.iter().map(step_record).collect()
    }

    /// The newest step of each run not yet finished: where runs in
    /// progress are.
    pub async fn current_steps(&self) -> Result<Vec<StepRecord>> {
        let rows = sqlx::query(
            "SELECT s.run_id, s.step_id, s.state, s.attempts, s.started_at, s.finished_at, s.output_json, s.error
             FROM steps s JOIN runs r ON r.id = s.run_id
             WHERE r.finished_at IS NULL
               AND s.seq = (SELECT MAX(t.seq) FROM steps t WHERE t.run_id = s.run_id)
             ORDER BY s.run_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(q("list current steps"))?;
        rows.iter().map(step_record).collect()
    }

    // --- alerts ------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    pub async fn upsert_alert(
        &self,
        fingerprint: &str,
        alertname: &str,
        labels_json: &str,
        annotations_json: &str,
        state: &str,
        active_at: Millis,
        fired_at: Option<Millis>,
        resolved_at: Option<Millis>,
        value: f64,
    ) -> Result<()> {
        sqlx::query("DELETE FROM alerts WHERE fingerprint = $1")
            .bind(fingerprint)
            .fenced(self)
            .await
            .map_err(q("replace alert"))?;
        sqlx::query(
            "INSERT INTO alerts (fingerprint, alertname, labels_json, annotations_json, state, active_at, fired_at, resolved_at, value)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(fingerprint)
        .bind(alertname)
        .bind(labels_json)
        .bind(annotations_json)
        .bind(state)
        .bind(active_at)
        .bind(fired_at)
        .bind(resolved_at)
        // NaN is not storable everywhere; alerts with NaN values are rare
        // and the value is informational.
        .bind(if value.is_finite() { value } else { 0.0 })
        .fenced(self)
        .await
        .map_err(q("upsert alert"))?;
        Ok(())
    }

    // --- checklist runs ---------------------------------------------------

    /// Saves a checklist run as it stands (again as it changes; the last
    /// save wins).
    pub async fn save_checklist_run(
        &self,
        run: &crate::checklist::state::RunState,
        slot: &str,
    ) -> Result<()> {
        let json = serde_json::to_string(run).map_err(|e| StoreError::Corrupt {
            what: "checklist run",
            detail: e.to_string(),
        })?;
        let verdict = run.finished_at.map(|_| match run.verdict() {
            crate::checklist::Verdict::Go => "GO",
            crate::checklist::Verdict::NoGo => "NO-GO",
        });
        sqlx::query(
            "INSERT INTO checklist_runs (id, checklist, slot, started_at, finished_at, verdict, state_json)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (id) DO UPDATE SET finished_at = excluded.finished_at,
               verdict = excluded.verdict, state_json = excluded.state_json",
        )
        .bind(&run.id)
        .bind(&run.checklist)
        .bind(slot)
        .bind(run.started_at)
        .bind(run.finished_at)
        .bind(verdict)
        .bind(json)
        .fenced(self)
        .await
        .map_err(q("save checklist run"))?;
        Ok(())
    }

    /// How many runs of `checklist` (or of every checklist) the store
    /// holds.
    pub async fn checklist_run_count(&self, checklist: Option<&str>) -> Result<i64> {
        let row =
            sqlx::query("SELECT COUNT(*) FROM checklist_runs WHERE ($1 IS NULL OR checklist = $1)")
                .bind(checklist)
                .fetch_one(&self.pool)
                .await
                .map_err(q("count checklist runs"))?;
        row.try_get(0).map_err(q("read checklist run count"))
    }

    /// Runs of `checklist` (or of every checklist), newest first, `limit`
    /// of them after the first `skip`: one page of a list, read alone.
    pub async fn newest_checklist_runs(
        &self,
        checklist: Option<&str>,
        skip: i64,
        limit: i64,
    ) -> Result<Vec<(String, crate::checklist::state::RunState)>> {
        let rows = sqlx::query(
            "SELECT slot, state_json FROM checklist_runs WHERE ($3 IS NULL OR checklist = $3)
             ORDER BY started_at DESC, id DESC LIMIT $1 OFFSET $2",
        )
        .bind(limit)
        .bind(skip)
        .bind(checklist)
        .fetch_all(&self.pool)
        .await
        .map_err(q("read checklist runs"))?;
        rows.iter().map(checklist_row).collect()
    }

    /// The checklists that have runs, by name: what a list can be
    /// filtered by. At most `limit`.
    pub async fn checklist_names(&self, limit: i64) -> Result<Vec<String>> {
        self.names(
            "SELECT DISTINCT checklist FROM checklist_runs ORDER BY checklist LIMIT $1",
            limit,
            "list checklists run",
        )
        .await
    }

    /// Runs of one checklist, oldest first, with their slots.
    pub async fn checklist_runs(
        &self,
        checklist: &str,
    ) -> Result<Vec<(String, crate::checklist::state::RunState)>> {
        let rows = sqlx::query(
            "SELECT slot, state_json FROM checklist_runs WHERE checklist = $1 ORDER BY started_at, id",
        )
        .bind(checklist)
        .fetch_all(&self.pool)
        .await
        .map_err(q("read checklist runs"))?;
        rows.iter().map(checklist_row).collect()
    }

    // --- rule engine state ----------------------------------------------

    /// Saves the alert state (one row, replaced in one statement so a crash
    /// leaves either the old state or the new).
    pub async fn save_rule_state(&self, taken_at: Millis, state_json: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO rule_state (id, taken_at, state_json) VALUES ('engine', $1, $2)
             ON CONFLICT (id) DO UPDATE SET taken_at = excluded.taken_at, state_json = excluded.state_json",
        )
        .bind(taken_at)
        .bind(state_json)
        .fenced(self)
        .await
        .map_err(q("save rule state"))?;
        Ok(())
    }

    pub async fn load_rule_state(&self) -> Result<Option<(Millis, String)>> {
        let row = sqlx::query("SELECT taken_at, state_json FROM rule_state WHERE id = 'engine'")
            .fetch_optional(&self.pool)
            .await
            .map_err(q("load rule state"))?;
        row.map(|r| {
            Ok((
                r.try_get(0).map_err(q("read rule state"))?,
                r.try_get(1).map_err(q("read rule state"))?,
            ))
        })
        .transpose()
    }

    // --- timeline ------------------------------------------------------------

    /// Appends `e` to its incident's timeline, numbering it after the
    /// incident's last entry (`seq` orders entries that share a
    /// millisecond; `e.seq` is not read).
    pub async fn append_timeline(&self, e: &TimelineEntry) -> Result<()> {
        // One statement: a read followed by a write in one SQLite
        // transaction fails at once (SQLITE_BUSY) when another connection
        // writes in between, whatever the busy timeout. On PostgreSQL two
        // writers can still pick the same seq; the primary key refuses the
        // second and it tries again.
        let _serial = self.append.lock().await;
        let mut tries = 0;
        loop {
            let r = sqlx::query(
                "INSERT INTO timeline (incident, seq, at, kind, actor, text, alert, runbook, run_id, step, outcome, actor_kind, actor_id, actor_name)
                 SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 FROM timeline WHERE incident = $14",
            )
            .bind(&e.incident)
            .bind(e.at)
            .bind(e.kind.as_str())
            .bind(e.by.label())
            .bind(&e.text)
            .bind(e.about.alert.as_deref())
            .bind(e.about.runbook.as_deref())
            .bind(e.about.run.as_deref())
            .bind(e.about.step.as_deref())
            .bind(e.outcome().map(|o| o.as_str()))
            .bind(e.by.kind())
            .bind(e.by.id())
            .bind(e.by.name())
            .bind(&e.incident)
            .fenced(self)
            .await;
            match r {
                Ok(_) => return Ok(()),
                Err(e) if tries < 5 && e.is_unique_violation() => tries += 1,
                Err(e) => return Err(e.into_store("append timeline")),
            }
        }
    }

    /// Incidents newest first, `limit` after the first `skip`, each with
    /// when its timeline begins and ends and how long it is: a list page's
    /// worth, in one aggregate query and without reading any timeline.
    pub async fn incident_summaries(&self, skip: i64, limit: i64) -> Result<Vec<IncidentSummary>> {
        let rows = sqlx::query(
            "SELECT incident, MIN(at) AS first, MAX(at), COUNT(*) FROM timeline GROUP BY incident
             ORDER BY first DESC, incident DESC LIMIT $1 OFFSET $2",
        )
        .bind(limit)
        .bind(skip)
        .fetch_all(&self.pool)
        .await
        .map_err(q("list incidents"))?;
        rows.iter()
            .map(|r| {
                let e = || q("read incident");
                Ok(IncidentSummary {
                    incident: r.try_get(0).map_err(e())?,
                    first: r.try_get(1).map_err(e())?,
                    last: r.try_get(2).map_err(e())?,
                    entries: r.try_get(3).map_err(e())?,
                })
            })
            .collect()
    }

    /// How many incidents have a timeline.
    pub async fn incident_count(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(DISTINCT incident) FROM timeline")
            .fetch_one(&self.pool)
            .await
            .map_err(q("count incidents"))?;
        row.try_get(0).map_err(q("read incident count"))
    }

    pub async fn incidents(&self) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT incident, MIN(at) AS first FROM timeline GROUP BY incident ORDER BY first, incident")
            .fetch_all(&self.pool)
            .await
            .map_err(q("list incidents"))?;
        rows.iter()
            .map(|r| r.try_get(0).map_err(q("read incident")))
            .collect()
    }

    pub async fn timeline(&self, incident: &str) -> Result<Vec<TimelineEntry>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TIMELINE_COLUMNS} FROM timeline WHERE incident = $1 ORDER BY at, seq"
        )))
        .bind(incident)
        .fetch_all(&self.pool)
        .await
        .map_err(q("read timeline"))?;
        rows.iter().map(timeline_entry).collect()
    }

    /// An incident's newest `limit` entries, oldest first, and how many
    /// it has in all: what chat shows of a storm's timeline without
    /// reading all of it.
    pub async fn timeline_tail(
        &self,
        incident: &str,
        limit: i64,
    ) -> Result<(i64, Vec<TimelineEntry>)> {
        let total: i64 = sqlx::query("SELECT COUNT(*) FROM timeline WHERE incident = $1")
            .bind(incident)
            .fetch_one(&self.pool)
            .await
            .map_err(q("count timeline"))?
            .try_get(0)
            .map_err(q("count timeline"))?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TIMELINE_COLUMNS} FROM timeline WHERE incident = $1 ORDER BY at DESC, seq DESC LIMIT $2"
        )))
        .bind(incident)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(q("read timeline"))?;
        let mut entries = rows
            .iter()
            .map(timeline_entry)
            .collect::<Result<Vec<_>>>()?;
        entries.reverse();
        Ok((total, entries))
    }

    // --- outbox ----------------------------------------------------------------

    /// Writes a message before it is sent; returns its sequence number,
    /// which is also the delivery order.
    pub async fn enqueue_outbox(
        &self,
        channel: &str,
        payload_json: &str,
        at: Millis,
    ) -> Result<i64> {
        self.enqueue_outbox_tagged(channel, OutboxTag::default(), payload_json, at)
            .await
    }

    /// [`Store::enqueue_outbox`] for a message the console finds again:
    /// an incident's card or one of its charts.
    pub async fn enqueue_outbox_tagged(
        &self,
        channel: &str,
        tag: OutboxTag<'_>,
        payload_json: &str,
        at: Millis,
    ) -> Result<i64> {
        // One statement, for the reason given in `append_timeline`.
        let _serial = self.append.lock().await;
        let mut tries = 0;
        loop {
            let r = sqlx::query(
                "INSERT INTO outbox (seq, channel, payload_json, created_at, sent_at, attempts, incident, shows)
                 SELECT COALESCE(MAX(seq), 0) + 1, $1, $2, $3, NULL, 0, $4, $5 FROM outbox
                 RETURNING seq",
            )
            .bind(channel)
            .bind(payload_json)
            .bind(at)
            .bind(tag.incident)
            .bind(tag.shows.map(Shows::as_str))
            .fenced_row(self)
            .await;
            match r {
                Ok(row) => return row.try_get(0).map_err(q("outbox seq")),
                Err(e) if tries < 5 && e.is_unique_violation() => tries += 1,
                Err(e) => return Err(e.into_store("enqueue outbox")),
            }
        }
    }

    /// The newest card queued for `incident` (its JSON message), as chat
    /// was last told it.
    pub async fn newest_card(&self, incident: &str) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT payload_json FROM outbox WHERE incident = $1 AND shows = 'card' ORDER BY seq DESC LIMIT 1",
        )
        .bind(incident)
        .fetch_optional(&self.pool)
        .await
        .map_err(q("read the incident's card"))?;
        row.map(|r| r.try_get(0).map_err(q("read the incident's card")))
            .transpose()
    }

    /// The charts queued for `incident`, oldest first, at most `limit`:
    /// (outbox number, JSON message with the image).
    pub async fn charts(&self, incident: &str, limit: i64) -> Result<Vec<(i64, String)>> {
        let rows = sqlx::query(
            "SELECT seq, payload_json FROM outbox WHERE incident = $1 AND shows = 'chart' ORDER BY seq LIMIT $2",
        )
        .bind(incident)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(q("read the incident's charts"))?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0).map_err(q("read a chart"))?,
                    r.try_get(1).map_err(q("read a chart"))?,
                ))
            })
            .collect()
    }

    /// Chart `seq` of `incident` (its JSON message), if it is one.
    pub async fn chart(&self, incident: &str, seq: i64) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT payload_json FROM outbox WHERE seq = $1 AND incident = $2 AND shows = 'chart'",
        )
        .bind(seq)
        .bind(incident)
        .fetch_optional(&self.pool)
        .await
        .map_err(q("read a chart"))?;
        row.map(|r| r.try_get(0).map_err(q("read a chart")))
            .transpose()
    }

    /// How many messages wait to be delivered.
    pub async fn outbox_depth(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL")
            .fetch_one(&self.pool)
            .await
            .map_err(q("outbox depth"))?;
        row.try_get(0).map_err(q("read outbox depth"))
    }

    /// The outbox in one read, for a page: see [`OutboxSummary`].
    pub async fn outbox_summary(&self) -> Result<OutboxSummary> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL),
                    (SELECT MIN(created_at) FROM outbox WHERE sent_at IS NULL),
                    (SELECT COALESCE(MAX(seq), 0) FROM outbox)",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(q("outbox summary"))?;
        let e = || q("read outbox summary");
        Ok(OutboxSummary {
            depth: row.try_get(0).map_err(e())?,
            oldest: row.try_get(1).map_err(e())?,
            last_seq: row.try_get(2).map_err(e())?,
        })
    }

    /// When the oldest message still waiting to be delivered was written;
    /// `None` when none waits.
    pub async fn outbox_oldest(&self) -> Result<Option<Millis>> {
        let row = sqlx::query("SELECT MIN(created_at) FROM outbox WHERE sent_at IS NULL")
            .fetch_one(&self.pool)
            .await
            .map_err(q("outbox oldest"))?;
        row.try_get(0).map_err(q("read outbox oldest"))
    }

    /// Whether the database answers at all (`/-/ready`).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .fetch_one(&self.pool)
            .await
            .map(|_| ())
            .map_err(q("ping"))
    }

    /// Unsent messages in order, at most `limit`.
    pub async fn pending_outbox(&self, limit: i64) -> Result<Vec<OutboxRow>> {
        let rows = sqlx::query("SELECT seq, channel, payload_json, attempts FROM outbox WHERE sent_at IS NULL ORDER BY seq LIMIT $1")
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(q("pending outbox"))?;
        rows.iter()
            .map(|r| {
                Ok(OutboxRow {
                    seq: r.try_get(0).map_err(q("read outbox"))?,
                    channel: r.try_get(1).map_err(q("read outbox"))?,
                    payload_json: r.try_get(2).map_err(q("read outbox"))?,
                    attempts: r.try_get(3).map_err(q("read outbox"))?,
                })
            })
            .collect()
    }

    pub async fn mark_sent(&self, seq: i64, at: Millis) -> Result<()> {
        sqlx::query("UPDATE outbox SET sent_at = $1, attempts = attempts + 1 WHERE seq = $2")
            .bind(at)
            .bind(seq)
            .fenced(self)
            .await
            .map_err(q("mark sent"))?;
        Ok(())
    }

    /// Marks several messages sent at once (a coalesced delivery).
    pub async fn mark_sent_many(&self, seqs: &[i64], at: Millis) -> Result<()> {
        for chunk in seqs.chunks(500) {
            let list = chunk
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(",");
            // Only integers are spliced in.
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE outbox SET sent_at = $1, attempts = attempts + 1 WHERE seq IN ({list})"
            )))
            .bind(at)
            .fenced(self)
            .await
            .map_err(q("mark sent"))?;
        }
        Ok(())
    }

    /// Sets a message aside that the platform will never accept, keeping
    /// it and the reason.
    pub async fn mark_rejected(&self, seq: i64, at: Millis, reason: &str) -> Result<()> {
        self.mark_sent(seq, at).await?;
        sqlx::query(
            "INSERT INTO outbox_rejected (seq, at, reason) VALUES ($1, $2, $3)
             ON CONFLICT (seq) DO NOTHING",
        )
        .bind(seq)
        .bind(at)
        .bind(reason)
        .fenced(self)
        .await
        .map_err(q("mark rejected"))?;
        Ok(())
    }

    /// Forgets messages delivered before `before`, returning how many.
    /// Kept: the unsent, the rejected (set aside to be read), and the
    /// newest row, which numbers the next message.
    pub async fn prune_outbox(&self, before: Millis) -> Result<u64> {
        let _serial = self.append.lock().await;
        let r = sqlx::query(
            "DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < $1
               AND seq < (SELECT MAX(seq) FROM outbox)
               AND seq NOT IN (SELECT seq FROM outbox_rejected)",
        )
        .bind(before)
        .fenced(self)
        .await
        .map_err(q("prune outbox"))?;
        Ok(r.rows_affected())
    }

    /// Messages set aside as rejected: (seq, at, reason), oldest first.
    pub async fn rejected_outbox(&self) -> Result<Vec<(i64, Millis, String)>> {
        let rows = sqlx::query("SELECT seq, at, reason FROM outbox_rejected ORDER BY seq")
            .fetch_all(&self.pool)
            .await
            .map_err(q("rejected outbox"))?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0).map_err(q("read rejected"))?,
                    r.try_get(1).map_err(q("read rejected"))?,
                    r.try_get(2).map_err(q("read rejected"))?,
                ))
            })
            .collect()
    }

    pub async fn chat_ref(&self, channel: &str, scope: &str, slot: &str) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT platform_id FROM chat_refs WHERE channel = $1 AND scope = $2 AND slot = $3",
        )
        .bind(channel)
        .bind(scope)
        .bind(slot)
        .fetch_optional(&self.pool)
        .await
        .map_err(q("chat ref"))?;
        row.map(|r| r.try_get(0).map_err(q("read chat ref")))
            .transpose()
    }

    pub async fn put_chat_ref(
        &self,
        channel: &str,
        scope: &str,
        slot: &str,
        id: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO chat_refs (channel, scope, slot, platform_id) VALUES ($1, $2, $3, $4)
             ON CONFLICT (channel, scope, slot) DO UPDATE SET platform_id = excluded.platform_id",
        )
        .bind(channel)
        .bind(scope)
        .bind(slot)
        .bind(id)
        .fenced(self)
        .await
        .map_err(q("put chat ref"))?;
        Ok(())
    }

    pub async fn mark_attempt_failed(&self, seq: i64) -> Result<()> {
        sqlx::query("UPDATE outbox SET attempts = attempts + 1 WHERE seq = $1")
            .bind(seq)
            .fenced(self)
            .await
            .map_err(q("mark attempt"))?;
        Ok(())
    }

    // --- silences -------------------------------------------------------

    /// Saves a new silence; matchers are kept in Alertmanager syntax.
    pub async fn save_silence(&self, s: &crate::silence::Silence) -> Result<()> {
        sqlx::query(
            "INSERT INTO silences (id, matchers, starts_at, ends_at, created_by, comment)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&s.id)
        .bind(s.matchers_text())
        .bind(s.starts_at)
        .bind(s.ends_at)
        .bind(&s.created_by)
        .bind(&s.comment)
        .fenced(self)
        .await
        .map_err(q("save silence"))?;
        Ok(())
    }

    /// Records that a silence was expired at `at`; one that had not started
    /// yet now starts and ends then, as [`crate::silence::Silences::expire`] does.
    pub async fn expire_silence(&self, id: &str, at: Millis) -> Result<()> {
        sqlx::query(
            "UPDATE silences SET starts_at = CASE WHEN starts_at > $1 THEN $1 ELSE starts_at END, ends_at = $1 WHERE id = $2",
        )
            .bind(at)
            .bind(id)
            .fenced(self)
            .await
            .map_err(q("expire silence"))?;
        Ok(())
    }

    /// Every silence saved, expired ones too, oldest id first.
    pub async fn silences(&self) -> Result<Vec<crate::silence::Silence>> {
        let rows = sqlx::query(
            "SELECT id, matchers, starts_at, ends_at, created_by, comment FROM silences ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(q("list silences"))?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get(0).map_err(q("read silence"))?;
                let text: String = r.try_get(1).map_err(q("read silence"))?;
                let matchers =
                    crate::matchers::parse_matchers(&text).map_err(|e| StoreError::Corrupt {
                        what: "silence",
                        detail: format!("{id}: matchers {text:?}: {e}"),
                    })?;
                Ok(crate::silence::Silence {
                    id,
                    matchers,
                    starts_at: r.try_get(2).map_err(q("read silence"))?,
                    ends_at: r.try_get(3).map_err(q("read silence"))?,
                    created_by: r.try_get(4).map_err(q("read silence"))?,
                    comment: r.try_get(5).map_err(q("read silence"))?,
                })
            })
            .collect()
    }

    // --- inbound requests seen ------------------------------------------

    /// Records `key` as seen at `at` until `forget_at`. True the first time
    /// (or once an earlier sighting is past its `forget_at`); false when a
    /// sighting still stands, here or from another process on this store.
    /// One statement, so two takers of the same key cannot both win.
    pub async fn first_sighting(&self, key: &str, at: Millis, forget_at: Millis) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO seen_requests (key, seen_at, forget_at) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO UPDATE SET seen_at = excluded.seen_at, forget_at = excluded.forget_at
             WHERE seen_requests.forget_at <= excluded.seen_at",
        )
        .bind(key)
        .bind(at)
        .bind(forget_at)
        .fenced(self)
        .await
        .map_err(q("record a request seen"))?;
        Ok(r.rows_affected() == 1)
    }

    /// Forgets sightings whose `forget_at` is past, returning how many.
    pub async fn prune_seen(&self, now: Millis) -> Result<u64> {
        let r = sqlx::query("DELETE FROM seen_requests WHERE forget_at <= $1")
            .bind(now)
            .fenced(self)
            .await
            .map_err(q("prune requests seen"))?;
        Ok(r.rows_affected())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh, empty database on each backend under test: SQLite always;
    /// PostgreSQL when `FIREBREAK_TEST_POSTGRES_URL` names a server (an
    /// admin URL such as `postgres://postgres@127.0.0.1:5432/postgres`),
    /// which `.ci/run` provides.
    pub(super) struct TestDb {
        pub(super) url: String,
        _dir: Option<tempfile::TempDir>,
    }

    pub(super) async fn backends() -> Vec<TestDb> {
        let dir = tempfile::tempdir().unwrap();
        let mut out = vec![TestDb {
            url: format!("sqlite://{}", dir.path().join("fb.db").display()),
            _dir: Some(dir),
        }];
        if let Ok(admin) = std::env::var("FIREBREAK_TEST_POSTGRES_URL") {
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let name = format!(
                "fb_test_{}_{}",
                std::process::id(),
                N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            );
            install_default_drivers();
            let pool = AnyPoolOptions::new()
                .max_connections(1)
                .connect(&admin)
                .await
                .expect("connect to FIREBREAK_TEST_POSTGRES_URL");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
            let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
            out.push(TestDb {
                url: format!("{base}/{name}"),
                _dir: None,
            });
        }
        out
    }

    /// A bot's entry on `incident`'s timeline.
    fn note(incident: &str, at: Millis, text: &str) -> TimelineEntry {
        TimelineEntry::new(incident, at, Kind::Step, By::Bot, About::default(), text)
    }

    #[tokio::test]
    async fn incidents_are_summed_up_newest_first_a_page_at_a_time() {
        for db in backends().await {
            let s = Store::open(&db.url).await.unwrap();
            for (incident, at) in [("a", 10), ("b", 20), ("a", 30), ("c", 5)] {
                s.append_timeline(&note(incident, at, "x")).await.unwrap();
            }
            assert_eq!(s.incident_count().await.unwrap(), 3);
            let first = s.incident_summaries(0, 2).await.unwrap();
            assert_eq!(
                first,
                [
                    IncidentSummary {
                        incident: "b".into(),
                        first: 20,
                        last: 20,
                        entries: 1
                    },
                    IncidentSummary {
                        incident: "a".into(),
                        first: 10,
                        last: 30,
                        entries: 2
                    },
                ],
                "{}",
                db.url
            );
            let rest = s.incident_summaries(2, 2).await.unwrap();
            assert_eq!(rest.len(), 1);
            assert_eq!(rest[0].incident, "c");
            assert_eq!(
                s.outbox_summary().await.unwrap(),
                OutboxSummary {
                    depth: 0,
                    oldest: None,
                    last_seq: 0
                }
            );
            let first = s.enqueue_outbox("#c", "{}", 40).await.unwrap();
            let second = s.enqueue_outbox("#c", "{}", 50).await.unwrap();
            s.mark_sent(first, 60).await.unwrap();
            assert_eq!(
                s.outbox_summary().await.unwrap(),
                OutboxSummary {
                    depth: 1,
                    oldest: Some(50),
                    last_seq: second
                },
                "{}",
                db.url
            );
            assert_eq!(s.checklist_run_count(None).await.unwrap(), 0);
            assert!(
                s.newest_checklist_runs(None, 0, 50)
                    .await
                    .unwrap()
                    .is_empty()
            );
            s.close().await;
        }
    }

    #[tokio::test]
    async fn creates_file_on_first_run_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fb.db");
        let url = format!("sqlite://{}", path.display());
        let s = Store::open(&url).await.unwrap();
        s.append_timeline(&note("inc-1", 10, "fired"))
            .await
            .unwrap();
        s.close().await;
        assert!(path.exists());
        let s = Store::open(&url).await.unwrap();
        assert_eq!(s.timeline("inc-1").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn timeline_keeps_order_within_a_millisecond() {
        for db in backends().await {
            let s = Store::open(&db.url).await.unwrap();
            s.append_timeline(&note("i", 5, "first")).await.unwrap();
            s.append_timeline(&note("i", 5, "second")).await.unwrap();
            s.append_timeline(&note("i", 1, "earliest")).await.unwrap();
            let t: Vec<String> = s
                .timeline("i")
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.text)
                .collect();
            assert_eq!(t, ["earliest", "first", "second"]);
            assert_eq!(s.incidents().await.unwrap(), ["i"]);
            let (total, tail) = s.timeline_tail("i", 2).await.unwrap();
            assert_eq!(total, 3);
            let tail: Vec<String> = tail.into_iter().map(|e| e.text).collect();
            assert_eq!(tail, ["first", "second"], "the newest two, oldest first");
            let (total, tail) = s.timeline_tail("nope", 2).await.unwrap();
            assert_eq!((total, tail.len()), (0, 0));
        }
    }

    #[tokio::test]
    async fn pruning_forgets_old_delivered_messages_only() {
        for db in backends().await {
            let s = Store::open(&db.url).await.unwrap();
            let mut seqs = Vec::new();
            for n in 0..5 {
                seqs.push(
                    s.enqueue_outbox("#c", &format!("{{\"n\":{n}}}"), n)
                        .await
                        .unwrap(),
                );
            }
            // 0 and 1 delivered long ago, 2 rejected long ago, 3 pending,
            // 4 (the newest) delivered long ago.
            s.mark_sent_many(&[seqs[0], seqs[1], seqs[4]], 10)
                .await
                .unwrap();
            s.mark_rejected(seqs[2], 10, "channel_not_found")
                .await
                .unwrap();
            assert_eq!(s.prune_outbox(5).await.unwrap(), 0, "nothing that old");
            assert_eq!(s.prune_outbox(100).await.unwrap(), 2);
            assert_eq!(s.outbox_depth().await.unwrap(), 1);
            assert_eq!(s.pending_outbox(10).await.unwrap()[0].seq, seqs[3]);
            assert_eq!(s.rejected_outbox().await.unwrap().len(), 1);
            let next = s.enqueue_outbox("#c", "{}", 20).await.unwrap();
            assert!(next > seqs[4], "numbering goes on after a prune");
        }
    }

    #[tokio::test]
    async fn outbox_delivers_in_order_and_survives_reopen() {
        for db in backends().await {
            let url = db.url.clone();
            let s = Store::open(&url).await.unwrap();
            let a = s.enqueue_outbox("#c", "{\"n\":1}", 1).await.unwrap();
            let b = s.enqueue_outbox("#c", "{\"n\":2}", 2).await.unwrap();
            assert!(b > a);
            s.mark_attempt_failed(a).await.unwrap();
            s.close().await;
            let s = Store::open(&url).await.unwrap();
            let p = s.pending_outbox(10).await.unwrap();
            assert_eq!(p.iter().map(|r| r.seq).collect::<Vec<_>>(), [a, b]);
            assert_eq!(p[0].attempts, 1);
            s.mark_sent(a, 3).await.unwrap();
            assert_eq!(s.pending_outbox(10).await.unwrap().len(), 1);
            let c = s.enqueue_outbox("#c", "{\"n\":3}", 4).await.unwrap();
            s.mark_sent_many(&[b, c], 5).await.unwrap();
            assert!(s.pending_outbox(10).await.unwrap().is_empty());
            s.mark_rejected(c, 6, "channel_not_found").await.unwrap();
            assert_eq!(
                s.rejected_outbox().await.unwrap(),
                [(c, 6, "channel_not_found".to_owned())]
            );
            assert_eq!(s.chat_ref("#c", "inc", "").await.unwrap(), None);
            s.put_chat_ref("#c", "inc", "", "1.1").await.unwrap();
            s.put_chat_ref("#c", "inc", "", "1.2").await.unwrap();
            assert_eq!(
                s.chat_ref("#c", "inc", "").await.unwrap().as_deref(),
                Some("1.2")
            );
        }
    }

    #[tokio::test]
    async fn runs_and_steps_round_trip() {
        for db in backends().await {
            let s = Store::open(&db.url).await.unwrap();
            let run = RunRecord {
                id: "run-1".into(),
                runbook: "rb".into(),
                incident: "inc".into(),
                concurrency_key: "launch".into(),
                state: RunState::RUNNING,
                started_at: 100,
                finished_at: None,
                error: None,
            };
            s.insert_run(&run, "{}").await.unwrap();
            s.step_started("run-1", "b", 2, 1, 101).await.unwrap();
            s.step_started("run-1", "a", 1, 1, 100).await.unwrap();
            s.step_finished(
                "run-1",
                "a",
                &StepEnd {
                    state: StepState::Succeeded,
                    attempts: 1,
                    at: 102,
                    output_json: Some("{\"x\":1}"),
                    error: None,
                },
            )
            .await
            .unwrap();
            s.finish_run("run-1", Outcome::Failed, 110, Some("boom"))
                .await
                .unwrap();
            let runs = s.runs().await.unwrap();
            assert_eq!(runs[0].state, RunState::Ended(Outcome::Failed));
            assert_eq!(runs[0].error.as_deref(), Some("boom"));
            let steps = s.steps("run-1").await.unwrap();
            assert_eq!(
                steps.iter().map(|x| x.step_id.as_str()).collect::<Vec<_>>(),
                ["a", "b"]
            );
            assert_eq!(steps[0].output_json.as_deref(), Some("{\"x\":1}"));
            assert_eq!(steps[1].state, StepState::Running);
        }
    }

    // Regression: concurrent writers once failed with "database is
    // locked" because an append read MAX(seq) and then wrote in one
    // transaction.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_do_not_fail() {
        for db in backends().await {
            let s = Store::open(&db.url).await.unwrap();
            let mut tasks = Vec::new();
            for w in 0..8 {
                let s = s.clone();
                tasks.push(tokio::spawn(async move {
                    for i in 0..25 {
                        s.enqueue_outbox("#c", &format!("{{\"w\":{w},\"i\":{i}}}"), i)
                            .await
                            .unwrap();
                        s.append_timeline(&note("inc", i, "t")).await.unwrap();
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            let seqs: Vec<i64> = s
                .pending_outbox(1000)
                .await
                .unwrap()
                .iter()
                .map(|r| r.seq)
                .collect();
            assert_eq!(seqs, (1..=200).collect::<Vec<_>>());
            assert_eq!(s.timeline("inc").await.unwrap().len(), 200);
        }
    }

    #[tokio::test]
    async fn rule_state_is_replaced_and_survives_reopen() {
        for db in backends().await {
            let s = Store::open(&db.url).await.unwrap();
            assert_eq!(s.load_rule_state().await.unwrap(), None);
            s.save_rule_state(10, "{\"a\":1}").await.unwrap();
            s.save_rule_state(20, "{\"a\":2}").await.unwrap();
            s.close().await;
            let s = Store::open(&db.url).await.unwrap();
            assert_eq!(
                s.load_rule_state().await.unwrap(),
                Some((20, "{\"a\":2}".to_owned()))
            );
        }
    }

    #[tokio::test]
    async fn silences_survive_reopen_and_expiry_is_saved() {
        for db in backends().await {
            let s = Store::open(&db.url).await.unwrap();
            let sil = crate::silence::Silence {
                id: "s1".into(),
                matchers: crate::matchers::parse_matchers(r#"alertname="Full",room=~"main|b\"x""#)
                    .unwrap(),
                starts_at: 100,
                ends_at: 1_000,
                created_by: "alice".into(),
                comment: "planned move".into(),
            };
            s.save_silence(&sil).await.unwrap();
            assert!(s.save_silence(&sil).await.is_err(), "ids are unique");
            s.close().await;
            let s = Store::open(&db.url).await.unwrap();
            assert_eq!(s.silences().await.unwrap(), std::slice::from_ref(&sil));
            s.expire_silence("s1", 300).await.unwrap();
            let back = s.silences().await.unwrap();
            assert_eq!((back[0].starts_at, back[0].ends_at), (100, 300));
            s.expire_silence("s1", 50).await.unwrap();
            let back = s.silences().await.unwrap();
            assert_eq!((back[0].starts_at, back[0].ends_at), (50, 50));
            assert_eq!(back[0].matchers, sil.matchers);
        }
    }

    /// Where runs in progress are: the newest step of each unfinished
    /// run, none of a finished one.
    #[tokio::test]
    async fn the_current_step_of_each_run_in_progress() {
        use crate::run_state::{Going, Outcome};
        for db in backends().await {
            let s = Store::open(&db.url).await.unwrap();
            for (id, key) in [("going", "a"), ("done", "b"), ("fresh", "c")] {
                let r = RunRecord {
                    id: id.into(),
                    runbook: "move".into(),
                    incident: "launch".into(),
                    concurrency_key: key.into(),
                    state: RunState::Going(Going::Running),
                    started_at: 1,
                    finished_at: None,
                    error: None,
                };
                s.insert_run(&r, "{}").await.unwrap();
            }
            for (run, seq, step) in [
                ("going", 0, "look"),
                ("going", 1, "act"),
                ("done", 0, "only"),
            ] {
                s.step_started(run, step, seq, 1, 10 + seq).await.unwrap();
            }
            s.finish_run("done", Outcome::Succeeded, 20, None)
                .await
                .unwrap();
            let now: Vec<(String, String)> = s
                .current_steps()
                .await
                .unwrap()
                .into_iter()
                .map(|st| (st.run_id, st.step_id))
                .collect();
            assert_eq!(now, [("going".to_owned(), "act".to_owned())], "{}", db.url);
        }
    }

    /// An incident's newest card and its charts are found by incident,
    /// never another incident's, never an untagged message.
    #[tokio::test]
    async fn an_incidents_card_and_charts_are_found_by_incident() {
        for db in backends().await {
            let s = Store::open(&db.url).await.unwrap();
            let tag = |incident, shows| OutboxTag {
                incident: Some(incident),
                shows: Some(shows),
            };
            assert_eq!(s.newest_card("launch").await.unwrap(), None);
            s.enqueue_outbox_tagged("#c", tag("launch", Shows::Card), "card 1", 1)
                .await
                .unwrap();
            let chart = s
                .enqueue_outbox_tagged("#c", tag("launch", Shows::Chart), "chart", 2)
                .await
                .unwrap();
            s.enqueue_outbox_tagged("#c", tag("other", Shows::Card), "other card", 3)
                .await
                .unwrap();
            s.enqueue_outbox_tagged("#c", tag("launch", Shows::Card), "card 2", 4)
                .await
                .unwrap();
            s.enqueue_outbox("#c", "untagged", 5).await.unwrap();
            assert_eq!(
                s.newest_card("launch").await.unwrap().as_deref(),
                Some("card 2"),
                "{}",
                db.url
            );
            assert_eq!(
                s.newest_card("other").await.unwrap().as_deref(),
                Some("other card")
            );
            assert_eq!(
                s.charts("launch", 10).await.unwrap(),
                [(chart, "chart".to_owned())]
            );
            assert!(s.charts("other", 10).await.unwrap().is_empty());
            assert_eq!(
                s.chart("launch", chart).await.unwrap().as_deref(),
                Some("chart")
            );
            assert_eq!(
                s.chart("other", chart).await.unwrap(),
                None,
                "another incident's"
            );
            assert_eq!(
                s.chart("launch", chart + 1).await.unwrap(),
                None,
                "not a chart"
            );
        }
    }

    /// Lists read a page at a time: the filter and the page are the
    /// store's, so a page of a long history reads a page of rows.
    #[tokio::test]
    async fn runs_and_checklist_runs_are_read_a_filtered_page_at_a_time() {
        use crate::run_state::{Going, Outcome};
        let list = crate::checklist::parse_checklist(
            "x.yaml",
            "kind: checklist\nname: launch\nchecks:\n  - name: sign\n    signoff: {roles: [commander], deadline: 15m}\n",
            &crate::checklist::Env::default(),
        )
        .unwrap();
        for db in backends().await {
            let s = Store::open(&db.url).await.unwrap();
            for (n, (runbook, incident, state)) in [
                ("move", "a", RunState::Ended(Outcome::Succeeded)),
                ("mute", "a", RunState::Ended(Outcome::Failed)),
                ("move", "b", RunState::Going(Going::Running)),
                ("cap", "b", RunState::Ended(Outcome::Succeeded)),
                ("move", "b", RunState::Ended(Outcome::Succeeded)),
            ]
            .into_iter()
            .enumerate()
            {
                let r = RunRecord {
                    id: format!("r{n}"),
                    runbook: runbook.into(),
                    incident: incident.into(),
                    concurrency_key: format!("k{n}"),
                    state,
                    started_at: 100 * n as i64,
                    finished_at: None,
                    error: None,
                };
                s.insert_run(&r, "{}").await.unwrap();
            }
            let ids = |rs: Vec<RunRecord>| rs.into_iter().map(|r| r.id).collect::<Vec<_>>();
            let all = RunFilter::default();
            assert_eq!(s.run_count(&all).await.unwrap(), 5, "{}", db.url);
            assert_eq!(ids(s.newest_runs(&all, 0, 2).await.unwrap()), ["r4", "r3"]);
            assert_eq!(ids(s.newest_runs(&all, 4, 2).await.unwrap()), ["r0"]);
            let moves_in_b = RunFilter {
                runbook: Some("move".into()),
                incident: Some("b".into()),
                ..Default::default()
            };
            assert_eq!(s.run_count(&moves_in_b).await.unwrap(), 2);
            assert_eq!(
                ids(s.newest_runs(&moves_in_b, 0, 50).await.unwrap()),
                ["r4", "r2"]
            );
            let succeeded_moves = RunFilter {
                runbook: Some("move".into()),
                state: Some(RunState::Ended(Outcome::Succeeded)),
                ..Default::default()
            };
            assert_eq!(
                ids(s.newest_runs(&succeeded_moves, 0, 50).await.unwrap()),
                ["r4", "r0"]
            );
            let nothing = RunFilter {
                runbook: Some("move\' OR 1=1 --".into()),
                ..Default::default()
            };
            assert_eq!(s.run_count(&nothing).await.unwrap(), 0);
            assert_eq!(s.run("r3").await.unwrap().unwrap().runbook, "cap");
            assert_eq!(s.run("nope").await.unwrap(), None);
            assert_eq!(s.run_runbooks(10).await.unwrap(), ["cap", "move", "mute"]);
            assert_eq!(s.run_runbooks(1).await.unwrap(), ["cap"]);

            for (n, name) in ["launch", "other", "launch"].into_iter().enumerate() {
                let mut list = list.clone();
                list.name = name.into();
                let run = crate::checklist::state::RunState::new(
                    &format!("{name}-{n}"),
                    &list,
                    Default::default(),
                    &crate::timeline::By::Bot,
                    1_000 * n as i64,
                );
                s.save_checklist_run(&run, "").await.unwrap();
            }
            assert_eq!(s.checklist_run_count(None).await.unwrap(), 3);
            assert_eq!(s.checklist_run_count(Some("launch")).await.unwrap(), 2);
            assert_eq!(s.checklist_run_count(Some("nope")).await.unwrap(), 0);
            let launch: Vec<String> = s
                .newest_checklist_runs(Some("launch"), 0, 50)
                .await
                .unwrap()
                .into_iter()
                .map(|(_, r)| r.id)
                .collect();
            assert_eq!(launch, ["launch-2", "launch-0"]);
            assert_eq!(
                s.newest_checklist_runs(None, 1, 1).await.unwrap()[0].1.id,
                "other-1"
            );
            assert_eq!(s.checklist_names(10).await.unwrap(), ["launch", "other"]);
        }
    }

    #[tokio::test]
    async fn checklist_runs_are_saved_as_they_change_and_read_back_whole() {
        use crate::checklist::state::RunState;
        let list = crate::checklist::parse_checklist(
            "x.yaml",
            "kind: checklist\nname: launch\nchecks:\n  - name: sign\n    signoff: {roles: [commander], deadline: 15m}\n",
            &crate::checklist::Env::default(),
        )
        .unwrap();
        for db in backends().await {
            let s = Store::open(&db.url).await.unwrap();
            let mut run = RunState::new(
                "launch-1-a1",
                &list,
                Default::default(),
                &crate::timeline::By::Person(crate::roles::Who::new("U1", "alice")),
                1_000,
            );
            s.save_checklist_run(&run, "T-10m@5000").await.unwrap();
            run.sign("sign", "U1", "alice", crate::roles::Role::Commander, 2_000)
                .unwrap();
            assert!(run.settle(2_000));
            s.save_checklist_run(&run, "T-10m@5000").await.unwrap();
            s.close().await;
            let s = Store::open(&db.url).await.unwrap();
            let back = s.checklist_runs("launch").await.unwrap();
            assert_eq!(back, [("T-10m@5000".to_owned(), run.clone())]);
            assert!(s.checklist_runs("other").await.unwrap().is_empty());
            let verdict: Option<String> =
                sqlx::query("SELECT verdict FROM checklist_runs WHERE id = 'launch-1-a1'")
                    .fetch_one(&s.pool)
                    .await
                    .unwrap()
                    .try_get(0)
                    .unwrap();
            assert_eq!(verdict.as_deref(), Some("GO"));
        }
    }

    #[tokio::test]
    async fn a_request_is_seen_once_across_reopens_until_forgotten() {
        for db in backends().await {
            let s = Store::open(&db.url).await.unwrap();
            assert!(s.first_sighting("sig:a", 1_000, 5_000).await.unwrap());
            assert!(!s.first_sighting("sig:a", 2_000, 6_000).await.unwrap());
            assert!(s.first_sighting("sig:b", 2_000, 6_000).await.unwrap());
            s.close().await;
            // Another process on the same store (a restart, a replica).
            let s = Store::open(&db.url).await.unwrap();
            assert!(!s.first_sighting("sig:a", 3_000, 7_000).await.unwrap());
            // Past its time a key may be taken again, pruned or not.
            assert!(s.first_sighting("sig:a", 5_000, 9_000).await.unwrap());
            assert!(!s.first_sighting("sig:a", 5_500, 9_500).await.unwrap());
            assert_eq!(s.prune_seen(6_000).await.unwrap(), 1, "sig:b only");
            assert!(s.first_sighting("sig:b", 6_000, 10_000).await.unwrap());
            assert!(!s.first_sighting("sig:a", 6_000, 10_000).await.unwrap());
        }
    }

    #[tokio::test]
    async fn bad_url_is_a_clear_error() {
        let e = Store::open("sqlite:///nonexistent-dir-xyz/sub/fb.db")
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the store /nonexistent-dir-xyz/sub/fb.db cannot be created: its directory /nonexistent-dir-xyz/sub does not exist; create it, or set store.url to a file in a directory that does"
        );
        let held = hold("sqlite:///nonexistent-dir-xyz/sub/fb.db").unwrap_err();
        assert_eq!(
            held.to_string(),
            e.to_string(),
            "the daemon's first word on it"
        );
    }

    /// Writes the store the last release before versioned schemas left
    /// (`before-versions.sql`) at `url`, as it would have: straight SQL.
    async fn write_previous_release(url: &str) {
        install_default_drivers();
        let url = if url.starts_with("sqlite:") {
            format!("{url}?mode=rwc")
        } else {
            url.to_owned()
        };
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        for line in include_str!("before-versions.sql").lines() {
            if line.is_empty() || line.starts_with("--") {
                continue;
            }
            sqlx::query(sqlx::AssertSqlSafe(line.trim_end_matches(';').to_owned()))
                .execute(&pool)
                .await
                .unwrap_or_else(|e| panic!("{e}: {line}"));
        }
        pool.close().await;
    }

    async fn versions(s: &Store) -> Vec<i64> {
        sqlx::query("SELECT version FROM schema_migrations ORDER BY version")
            .fetch_all(&s.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get(0).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn a_store_the_previous_release_wrote_upgrades_and_reviews_the_same() {
        use crate::incident::Review;
        use crate::roles::Who;
        use crate::timeline::Outcome;
        for db in backends().await {
            write_previous_release(&db.url).await;
            let s = Store::open(&db.url).await.unwrap();
            let every: Vec<i64> = (1..=SCHEMA_VERSION).collect();
            assert_eq!(versions(&s).await, every, "{}", db.url);

            // The demo's launch, as the previous release recorded it.
            let r = Review::new("launch", s.timeline("launch").await.unwrap());
            let rules: Vec<&str> = r.alerts.iter().map(|a| a.rule.as_str()).collect();
            assert_eq!(
                rules,
                ["SpeakerFeedback", "ListenerCapacityBreachPredicted"]
            );
            assert!(
                r.alerts
                    .iter()
                    .all(|a| a.began.is_some() && a.resolved.is_some())
            );
            let runs: Vec<(&str, Option<Outcome>)> = r
                .runs
                .iter()
                .map(|x| (x.runbook.as_str(), x.outcome))
                .collect();
            assert_eq!(
                runs,
                [
                    ("mute-feedback-speaker", Some(Outcome::Succeeded)),
                    ("move-to-secondary-room", Some(Outcome::Succeeded)),
                ]
            );
            assert_eq!(
                r.mitigated.as_ref().map(|m| m.1.as_str()),
                Some("mute-feedback-speaker")
            );
            assert_eq!(r.time_to_detect(), Some(15_000));
            assert_eq!(r.first_response.as_ref().unwrap().kind, Kind::RunStarted);
            assert!(r.resolved.is_some());
            let checklists: Vec<By> = r
                .entries
                .iter()
                .filter(|e| e.kind == Kind::Checklist)
                .map(|e| e.by.clone())
                .collect();
            assert_eq!(
                checklists,
                [By::Schedule("T-1h".into()), By::Schedule("T-10m".into())]
            );

            // A person's entries: known by id from then on.
            let drill = s.timeline("drill").await.unwrap();
            let ana = By::Person(Who::new("U024BE7LH", "ana"));
            assert_eq!(drill[1].kind, Kind::Ack);
            assert_eq!(drill[1].by, ana);
            let r = Review::new("drill", drill);
            assert_eq!(r.runs[0].by, ana);
            assert_eq!(r.runs[0].outcome, Some(Outcome::Succeeded));
            assert_eq!(r.mitigated.as_ref().map(|m| m.0), Some(1_700_000_042_000));
            assert!(
                r.markdown(&|t| t.to_string())
                    .contains("Actions: 0 automatically, 3 by ana (U024BE7LH).")
            );

            // Everything else the previous release wrote reads back.
            assert_eq!(s.runs().await.unwrap().len(), 3);
            assert_eq!(s.unfinished_runs().await.unwrap().len(), 1);
            let run = &s.runs().await.unwrap()[0];
            assert!(!s.steps(&run.id).await.unwrap().is_empty());

            // New entries number on; opening again changes nothing.
            s.append_timeline(&note("drill", 1_700_000_100_000, "later"))
                .await
                .unwrap();
            s.close().await;
            let s = Store::open(&db.url).await.unwrap();
            assert_eq!(versions(&s).await, every);
            let drill = s.timeline("drill").await.unwrap();
            assert_eq!((drill.len(), drill[6].seq), (7, 7));
            s.close().await;
        }
    }

    #[tokio::test]
    async fn a_new_store_is_at_the_newest_version_and_a_newer_one_is_refused() {
        for db in backends().await {
            let s = Store::open(&db.url).await.unwrap();
            let all: Vec<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
            assert_eq!(versions(&s).await, all);
            sqlx::query(
                "INSERT INTO schema_migrations (version, applied_at, what) VALUES ($1, 0, 'from the future')",
            )
            .bind(SCHEMA_VERSION + 1)
            .execute(&s.pool)
            .await
            .unwrap();
            s.close().await;
            let e = Store::open(&db.url).await.unwrap_err();
            assert!(
                matches!(e, StoreError::TooNew { found, known } if found == SCHEMA_VERSION + 1 && known == SCHEMA_VERSION),
                "{e}"
            );
            assert!(
                e.to_string().contains("newer than this firebreak knows"),
                "{e}"
            );
        }
    }

    #[tokio::test]
    async fn replicas_opening_an_old_store_at_once_upgrade_it_once() {
        for db in backends().await {
            write_previous_release(&db.url).await;
            let opens: Vec<_> = (0..4)
                .map(|_| {
                    let url = db.url.clone();
                    tokio::spawn(async move { Store::open(&url).await })
                })
                .collect();
            let mut stores = Vec::new();
            for o in opens {
                stores.push(o.await.unwrap().unwrap());
            }
            let every: Vec<i64> = (1..=SCHEMA_VERSION).collect();
            assert_eq!(versions(&stores[0]).await, every);
            let t = stores[0].timeline("drill").await.unwrap();
            assert_eq!(t[1].by.id(), "U024BE7LH");
            for s in stores {
                s.close().await;
            }
        }
    }

    #[tokio::test]
    async fn every_field_of_an_entry_round_trips() {
        use crate::roles::Who;
        use crate::timeline::Outcome;
        for db in backends().await {
            let s = Store::open(&db.url).await.unwrap();
            let entries = [
                TimelineEntry::new(
                    "i",
                    1,
                    Kind::RunEnded(Outcome::RolledBack),
                    By::Person(Who::new("U1", "ana | \"x\"")),
                    About::run("move", "move-1")
                        .with_alert(Some("Full"))
                        .with_step("create"),
                    "t1",
                ),
                TimelineEntry::new(
                    "i",
                    2,
                    Kind::Checklist,
                    By::Schedule("T-1h".into()),
                    About::default(),
                    "t2",
                ),
                TimelineEntry::new(
                    "i",
                    3,
                    Kind::Other("from_a_newer_release".into()),
                    By::Bot,
                    About::alert("X"),
                    "t3",
                ),
            ];
            for e in &entries {
                s.append_timeline(e).await.unwrap();
            }
            let back = s.timeline("i").await.unwrap();
            for (n, (got, want)) in back.iter().zip(&entries).enumerate() {
                let want = TimelineEntry {
                    seq: n as i64 + 1,
                    ..want.clone()
                };
                assert_eq!(got, &want);
            }
            let outcome: Option<String> =
                sqlx::query("SELECT outcome FROM timeline WHERE incident = 'i' AND seq = 1")
                    .fetch_one(&s.pool)
                    .await
                    .unwrap()
                    .try_get(0)
                    .unwrap();
            assert_eq!(outcome.as_deref(), Some("rolled_back"));
        }
    }

    #[test]
    fn a_sqlite_store_is_held_by_one_process_and_says_which() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("fb.db").display());
        let first = hold(&url).unwrap().expect("a file store is held");
        // A second holder (another open of the lock, as another process
        // would make) is refused, and told who has it.
        let e = hold(&url).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, StoreError::Held { .. }), "{msg}");
        assert!(
            msg.contains(&format!(
                "in use by another firebreak (pid {}, since ",
                std::process::id()
            )),
            "{msg}"
        );
        drop(first);
        let _again = hold(&url).unwrap().expect("free once the holder is gone");
        for none in ["sqlite::memory:", "postgres://u@127.0.0.1/db"] {
            assert!(hold(none).unwrap().is_none(), "{none}");
        }
        assert_eq!(sqlite_file("sqlite:fb.db").as_deref(), Some("fb.db"));
    }
}
