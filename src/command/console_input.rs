//! Commands typed at the terminal of `firebreak run` and `firebreak demo`:
//! each line runs as the console user (a commander) through the same
//! [`super::handle`] as chat, and the reply prints through the console's
//! chat rendering.
//!
//! stdin is read on a thread of its own, not tokio's: a read from a
//! terminal cannot be cancelled, and on tokio's blocking pool it would
//! hold the runtime's shutdown until someone pressed enter.

use std::io::BufRead;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Actor, Ctx, Visibility, handle};
use crate::chat::console::Console;
use crate::chat::{ChatMessage, Kind};

/// Lines typed ahead of the bot: beyond this the reading thread waits,
/// which is what a terminal does anyway.
const QUEUE: usize = 16;

/// Whether to read commands from stdin: when told to, or when stdin is a
/// terminal. Piped or `/dev/null` stdin (CI) is left alone unless told.
pub fn wanted(forced: bool) -> bool {
    forced || std::io::IsTerminal::is_terminal(&std::io::stdin())
}

/// Lines from stdin until it ends; the queue closes at end of input.
pub fn stdin_lines() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(QUEUE);
    let spawned = std::thread::Builder::new()
        .name("console-input".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.blocking_send(line).is_err() {
                    break;
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot read commands from the terminal");
    }
    rx
}

/// Runs each line as `actor` and prints the reply, until the lines end or
/// shutdown. Replies for the asker only print as `(to you)`; the rest
/// under the channel's name, as chat would show them.
pub async fn run(
    ctx: Arc<Ctx>,
    actor: Actor,
    mut lines: mpsc::Receiver<String>,
    console: Arc<Console>,
    channel: String,
    shutdown: CancellationToken,
) {
    loop {
        let line = tokio::select! {
            _ = shutdown.cancelled() => break,
            l = lines.recv() => match l {
                Some(l) => l,
                None => break,
            },
        };
        if line.trim().is_empty() {
            continue;
        }
        let reply = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = handle(&ctx, &actor, &line) => r,
        };
        let msg = ChatMessage {
            channel: match reply.visibility {
                Visibility::Channel => channel.clone(),
                Visibility::Ephemeral => "(to you)".into(),
            },
            incident: None,
            kind: Kind::Note,
            text: reply.text,
            at: ctx.clock.now(),
            slot: None,
            card: None,
            reply_to: None,
            image: None,
            checklist: None,
        };
        if let Err(e) = console.print(&msg) {
            tracing::error!(error = %e, "cannot print a command's reply");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use chrono::FixedOffset;

    use crate::chat::console::testing::Buf;

    #[tokio::test]
    async fn typed_lines_print_their_replies_until_input_ends() {
        let (ctx, _rx) = ctx().await;
        let buf = Buf::default();
        let console = Arc::new(Console::new(
            Box::new(buf.clone()),
            FixedOffset::east_opt(0).unwrap(),
            "UTC",
        ));
        let (tx, lines) = mpsc::channel(4);
        tx.send("checklist".into()).await.unwrap();
        tx.send("".into()).await.unwrap();
        tx.send("stauts".into()).await.unwrap();
        drop(tx);
        run(
            Arc::new(ctx),
            actor(crate::roles::Role::Commander),
            lines,
            console,
            "#live".into(),
            CancellationToken::new(),
        )
        .await;
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            out,
            "22:03:05 UTC (to you) 💬 no checklists are loaded (`kind: checklist` files under the runbook paths)\n22:03:05 UTC (to you) 💬 unknown command `stauts` (did you mean `status`?); `help` lists them\n"
        );
    }
}
