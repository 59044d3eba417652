//! `firebreak timeline`: the incidents in the store, or one incident's
//! review (terminal or Markdown).

use std::process::ExitCode;

use anyhow::Context;

use super::files::config_or_default;

/// `firebreak timeline`: reads the store given, else the one the config
/// names.
pub(crate) async fn timeline(
    incident: Option<&str>,
    markdown: bool,
    config: Option<&std::path::Path>,
    store: Option<&str>,
) -> anyhow::Result<ExitCode> {
    use firebreak::incident::Review;
    let mut config = config_or_default(config)?;
    if let Some(s) = store {
        config.store_url = store_url(s)?;
    }
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

/// `--store`: a store URL as given, or a SQLite file, which must exist (a
/// mistyped path would otherwise open a new, empty store and say there
/// are no incidents).
fn store_url(s: &str) -> anyhow::Result<String> {
    if s.starts_with("sqlite:") || s.starts_with("postgres://") || s.starts_with("postgresql://") {
        return Ok(s.to_owned());
    }
    anyhow::ensure!(
        std::path::Path::new(s).is_file(),
        "no store at {s}: the file does not exist"
    );
    Ok(format!("sqlite://{s}"))
}
