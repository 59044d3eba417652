//! `firebreak rehearse`: scenario files played through the demo's loop,
//! judged, one row each.

use std::path::PathBuf;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use super::process::cancel_on_signal;

/// `firebreak rehearse`: every file loaded first (a broken one stops the
/// set before anything is played), then played `jobs` at a time; rows in
/// the order the files were given.
pub(crate) async fn rehearse(
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
