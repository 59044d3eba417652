//! The silences the control loop owns: made and expired by people and
//! by `silence` steps, saved in the store before they count, and read
//! back at start.

use super::*;

/// Expired silences are forgotten in memory this long after they end (they
/// stay in the store).
const SILENCE_MEMORY_MS: Millis = 24 * 3600 * 1000;

impl Control {
    /// Loads the saved silences; call before [`Control::run`]. A store
    /// failure is logged and the bot starts with none, which can only make
    /// it page more, never less.
    pub async fn restore_silences(&mut self) {
        match self.store.silences().await {
            Ok(all) => {
                for s in all {
                    self.silences.restore(s);
                }
                self.silences.prune(self.clock.now() - SILENCE_MEMORY_MS);
                tracing::info!(
                    active = self.silences.active(self.clock.now()).count(),
                    "silences restored"
                );
            }
            Err(e) => tracing::error!(error = %e, "cannot load silences; starting with none"),
        }
    }

    pub(super) async fn add_silence(
        &mut self,
        matchers: Vec<Matcher>,
        duration_ms: Millis,
        by: SilenceBy,
        comment: String,
        key: Option<String>,
    ) -> Result<(String, Millis), SilenceRefused> {
        let now = self.clock.now();
        self.silences.prune(now - SILENCE_MEMORY_MS);
        let id = match &key {
            Some(k) => {
                let id = crate::silence::id_for_key(k);
                if let Some(s) = self.silences.get(&id) {
                    tracing::info!(%id, "silence already made for this step; not making another");
                    return Ok((id, s.ends_at));
                }
                id
            }
            None => self.silences.next_id(now),
        };
        let s = Silence {
            id,
            matchers,
            starts_at: now,
            ends_at: now.saturating_add(duration_ms),
            created_by: by.label(),
            comment,
        };
        s.validate()?;
        // Saved first: a silence that would vanish on restart is refused.
        self.store
            .save_silence(&s)
            .await
            .map_err(SilenceRefused::NotSaved)?;
        // The length asked for, as asked: not the time left when this
        // is written.
        let (id, ends_at, note) = (
            s.id.clone(),
            s.ends_at,
            format!(
                "silenced {} for {} by {} (id {}){}",
                s.matchers_text(),
                crate::duration::PromDuration::from_millis(duration_ms.max(0) as u64),
                s.created_by,
                s.id,
                if s.comment.is_empty() {
                    String::new()
                } else {
                    format!(": {}", s.comment)
                }
            ),
        );
        if let SilenceBy::Person(who) = &by {
            self.on_silenced_timelines(&s.matchers, now, tl::Kind::Silence, who, &note)
                .await;
        }
        self.silences.add(s)?;
        self.say(None, Kind::Note, note).await;
        Ok((id, ends_at))
    }

    pub(super) async fn expire_silence(
        &mut self,
        id: &str,
        by: &Who,
    ) -> Result<(), UnsilenceError> {
        let now = self.clock.now();
        let (text, matchers) = {
            let s = self.silences.expire(id, now)?;
            (
                format!(
                    "silence {id} ({}) ended by {} after {}",
                    s.matchers_text(),
                    by.label(),
                    crate::human::duration(now - s.starts_at)
                ),
                s.matchers.clone(),
            )
        };
        if let Err(e) = self.store.expire_silence(id, now).await {
            // In force until restart only; say so rather than pretend.
            tracing::error!(error = %e, silence = id, "cannot save silence expiry");
            return Err(UnsilenceError::NotSaved(e));
        }
        self.on_silenced_timelines(&matchers, now, tl::Kind::Unsilence, by, &text)
            .await;
        self.say(None, Kind::Note, text).await;
        Ok(())
    }

    /// Records what a person did to a silence on the timelines of the
    /// incidents it concerns: those of the firing alerts it matches, else
    /// the one people are acting in, else [`OUTSIDE_INCIDENTS`].
    async fn on_silenced_timelines(
        &self,
        matchers: &[Matcher],
        at: Millis,
        kind: tl::Kind,
        who: &Who,
        text: &str,
    ) {
        for incident in self.silenced_incidents(matchers) {
            self.timeline(
                &incident,
                at,
                kind.clone(),
                By::person(who),
                About::default(),
                text,
            )
            .await;
        }
    }

    fn silenced_incidents(&self, matchers: &[Matcher]) -> Vec<String> {
        let mut hit: Vec<String> = self
            .firing
            .values()
            .filter(|f| {
                matchers
                    .iter()
                    .all(|m| m.matches_value(f.labels.get(&m.name).map_or("", String::as_str)))
            })
            .map(|f| f.incident.clone())
            .collect();
        hit.sort();
        hit.dedup();
        if hit.is_empty() {
            hit.push(self.action_incident());
        }
        hit
    }
}
