//! `firebreak check`: a pre-event checklist run now, GO or NO-GO, stored
//! unless asked not to.

use std::process::ExitCode;

use anyhow::Context;

use super::files::load_or_builtin;

pub(crate) struct CheckOpts {
    pub(crate) json: bool,
    pub(crate) ask: bool,
    pub(crate) store: bool,
}

/// `firebreak check`: measure every check at once with a progress line
/// on stderr, ask the person at the terminal for sign-offs once the rest
/// is known, then print the table (or JSON) and exit by the verdict.
pub(crate) async fn check(
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
    let list = preflight::find(&loaded.checklists, name)?;
    let overrides = preflight::parse_overrides(params).map_err(anyhow::Error::msg)?;
    let event = event_params(list, &overrides)?;
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
