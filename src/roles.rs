//! Roles: what a person may do with the bot. Ordered, so a higher role can
//! do everything a lower one can: a viewer reads, a responder acts on
//! alerts and runs (ack, silence, run, abort), a commander also approves
//! gated steps and pauses automation. Who holds which role comes from
//! config at the edge (chat, CLI); the core only compares roles.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Responder,
    Commander,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Responder, Role::Commander];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Responder => "responder",
            Role::Commander => "commander",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_round_trip() {
        assert!(Role::Commander > Role::Responder && Role::Responder > Role::Viewer);
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("admin"), None);
    }
}
