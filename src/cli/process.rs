//! The process around the verbs: logging, signals (SIGINT and SIGTERM stop,
//! SIGHUP reloads) and a closed stdout.

use tokio_util::sync::CancellationToken;

use crate::LogFormat;

/// `firebreak validate | head` must end quietly when `head` has read
/// enough, as Unix tools do, not panic in `println!`: Rust ignores
/// SIGPIPE, so a write to the closed pipe fails and printing panics. The
/// commands that print and end get the default back, and the write ends
/// them. The servers (`run`, `sim`) keep it ignored: a client that hangs
/// up must never take them down.
pub(crate) fn quiet_on_broken_pipe() {
    // SAFETY: called first thing in main, before any other thread exists;
    // SIG_DFL is a valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

pub(crate) fn init_logging(format: LogFormat, default_level: &str) {
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
pub(crate) fn cancel_on_signal(token: CancellationToken) {
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
pub(crate) fn reload_on_sighup(
    trigger: Option<firebreak::reload::Trigger>,
    shutdown: CancellationToken,
) {
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
