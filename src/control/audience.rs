//! The link to the audience sampler: asks it to measure each open
//! incident on its tick, and puts what it measured on the incident's
//! card and in the store.

use super::*;

/// The audience sampler's two queues and the control loop's tick for it.
pub(super) struct AudienceLink {
    pub(super) requests: mpsc::Sender<crate::audience::Request>,
    pub(super) samples: Option<mpsc::Receiver<crate::audience::Sample>>,
    pub(super) every: Millis,
    pub(super) next_at: Millis,
    pub(super) follow_for: Millis,
    /// Resolved incidents still measured for their review, until when,
    /// with their labels.
    pub(super) following: HashMap<String, (Millis, BTreeMap<String, String>)>,
    /// Where the next tick starts in the sorted list of incidents.
    pub(super) turn: usize,
}

impl Control {
    /// Asks for the audience of every open incident. A full queue drops
    /// the rest: the sampler is behind, and the next tick asks again.
    pub(super) fn on_audience_tick(&mut self) {
        let Some(link) = self.audience.as_mut() else {
            return;
        };
        let now = self.clock.now();
        link.next_at = (link.next_at + link.every).max(now + 1);
        link.following
            .retain(|i, (until, _)| *until > now && !self.cards.contains_key(i));
        // Open incidents first, each list in a stable order; where the
        // queue cannot take them all, the next tick starts after the last
        // one asked for, so none is left out tick after tick.
        let mut wanted: Vec<(bool, &String, &BTreeMap<String, String>)> = Vec::new();
        let none = BTreeMap::new();
        for i in self.cards.keys() {
            wanted.push((false, i, self.incident_labels.get(i).unwrap_or(&none)));
        }
        for (i, (_, labels)) in &link.following {
            wanted.push((true, i, labels));
        }
        wanted.sort();
        let n = wanted.len();
        for k in 0..n {
            let (_, incident, labels) = wanted[(link.turn + k) % n];
            let req = crate::audience::Request {
                incident: incident.clone(),
                labels: labels.clone(),
            };
            if link.requests.try_send(req).is_err() {
                tracing::debug!("audience sampler busy; asking again next time");
                link.turn = (link.turn + k) % n;
                return;
            }
        }
    }

    /// Puts a measurement on its incident's card (posted again only when
    /// what it says changed) and in the store for the review.
    pub(super) async fn on_audience(&mut self, s: crate::audience::Sample) {
        let followed = self
            .audience
            .as_ref()
            .is_some_and(|a| a.following.contains_key(&s.incident));
        if let Some(card) = self.cards.get_mut(&s.incident) {
            let before = card.audience.as_ref().map(card::Audience::line);
            let a = card::Audience::measured(
                card.audience.as_ref(),
                s.listening,
                s.at_risk,
                s.without_us,
                s.at,
            );
            let changed = before.as_deref() != Some(a.line().as_str());
            card.audience = Some(a);
            if changed {
                self.dirty_cards.insert(s.incident.clone());
            }
        } else if !followed {
            return;
        }
        if let Err(e) = self
            .store
            .record_audience(&s.incident, s.at, s.listening, s.at_risk, s.without_us)
            .await
        {
            tracing::error!(error = %e, "cannot record the audience");
        }
    }
}
