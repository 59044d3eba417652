//! What the bot cannot see, as the control loop says it: each loss and
//! each recovery the watcher reports is said once in the channel, and
//! every open incident's card carries what is lost until it is back, so
//! the card of a live event never looks calm because the bot went blind.

use crate::chat::Kind;
use crate::chat::card::Blind;
use crate::sight::Change;

use super::Control;

impl Control {
    /// Takes what the watcher reports it cannot see (and sees again).
    pub fn with_sight(mut self, rx: tokio::sync::mpsc::Receiver<Change>) -> Self {
        self.sight_rx = Some(rx);
        self
    }

    pub(super) async fn on_sight(&mut self, change: Change) {
        match &change {
            Change::Lost { sense, lost } => {
                self.blind.insert(sense.clone(), lost.clone());
            }
            Change::Back { sense, .. } => {
                self.blind.remove(sense);
            }
        }
        self.say(None, Kind::Note, change.say(crate::chat::blocks::utc))
            .await;
        let lines = self.blind_lines();
        let open: Vec<String> = self
            .cards
            .iter()
            .filter(|(_, c)| c.blind != lines)
            .map(|(i, _)| i.clone())
            .collect();
        for incident in open {
            self.card(&incident).blind = lines.clone();
        }
    }

    /// What a card shows of what is lost now.
    pub(super) fn blind_lines(&self) -> Vec<Blind> {
        self.blind
            .iter()
            .map(|(sense, lost)| Blind {
                what: sense.to_string(),
                since: lost.since,
                why: crate::human::clip(&lost.why, 200),
            })
            .collect()
    }
}
