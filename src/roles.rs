//! Roles: what a person may do with the bot. Ordered, so a higher role can
//! do everything a lower one can: a viewer reads, a responder acts on
//! alerts and runs (ack, silence, run, abort), a commander also approves
//! gated steps and pauses automation. Who holds which role comes from
//! config at the edge (chat, CLI); the core only compares roles.
//!
//! [`RoleMap`] is that config, resolved: a chat user id and the ids of
//! the user groups they belong to give their role. Pure: the edge looks up
//! the groups (a Slack API call) and asks here.

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

/// Who holds one role: named users, members of user groups, or everyone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grant {
    /// Chat user ids (Slack `U...`).
    pub users: Vec<String>,
    /// Chat user group ids (Slack `S...`).
    pub groups: Vec<String>,
    pub everyone: bool,
}

impl Grant {
    fn holds(&self, user: &str, groups: &[String]) -> bool {
        self.everyone
            || self.users.iter().any(|u| u == user)
            || self.groups.iter().any(|g| groups.contains(g))
    }
}

/// Which users and groups hold which role (`chat.roles` in the config).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleMap {
    pub commander: Grant,
    pub responder: Grant,
    pub viewer: Grant,
}

impl Default for RoleMap {
    /// With no `chat.roles` in the config, everyone may read and nobody in
    /// chat may act: a bot that can move live events must be given its
    /// commanders on purpose. The local console is a commander regardless
    /// (see [`CONSOLE_USER`]).
    fn default() -> Self {
        RoleMap {
            commander: Grant::default(),
            responder: Grant::default(),
            viewer: Grant {
                everyone: true,
                ..Grant::default()
            },
        }
    }
}

/// The person at the terminal of `firebreak run` or `firebreak demo`. They
/// started the process and own its store, so they are a commander.
pub const CONSOLE_USER: &str = "console";

impl RoleMap {
    /// The highest role `user` holds directly or through one of `groups`;
    /// `None` when they hold none (not even viewer).
    pub fn resolve(&self, user: &str, groups: &[String]) -> Option<Role> {
        [
            (Role::Commander, &self.commander),
            (Role::Responder, &self.responder),
            (Role::Viewer, &self.viewer),
        ]
        .into_iter()
        .find(|(_, g)| g.holds(user, groups))
        .map(|(r, _)| r)
    }

    pub fn grant(&self, role: Role) -> &Grant {
        match role {
            Role::Commander => &self.commander,
            Role::Responder => &self.responder,
            Role::Viewer => &self.viewer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_highest_matching_role_wins() {
        let m = RoleMap {
            commander: Grant {
                users: strs(&["U1"]),
                groups: strs(&["SONCALL"]),
                everyone: false,
            },
            responder: Grant {
                groups: strs(&["SSRE"]),
                ..Grant::default()
            },
            viewer: Grant {
                everyone: true,
                ..Grant::default()
            },
        };
        assert_eq!(m.resolve("U1", &[]), Some(Role::Commander));
        assert_eq!(m.resolve("U2", &strs(&["SSRE"])), Some(Role::Responder));
        // In both groups: the higher role.
        assert_eq!(
            m.resolve("U2", &strs(&["SSRE", "SONCALL"])),
            Some(Role::Commander)
        );
        assert_eq!(m.resolve("U3", &strs(&["SOTHER"])), Some(Role::Viewer));
        let closed = RoleMap {
            viewer: Grant::default(),
            ..m
        };
        assert_eq!(closed.resolve("U3", &[]), None);
    }

    #[test]
    fn by_default_everyone_reads_and_nobody_acts() {
        let m = RoleMap::default();
        assert_eq!(m.resolve("U9", &strs(&["S1"])), Some(Role::Viewer));
        assert_eq!(m.grant(Role::Commander), &Grant::default());
    }

    #[test]
    fn roles_are_ordered_and_round_trip() {
        assert!(Role::Commander > Role::Responder && Role::Responder > Role::Viewer);
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("admin"), None);
    }
}
