//! Roles: what a person may do with the bot. Ordered, so a higher role can
//! do everything a lower one can: a viewer reads, a responder acts on
//! alerts and runs (ack, silence, run, abort), a commander also approves
//! gated steps and pauses automation. Who holds which role comes from
//! config at the edge (chat, CLI); the core only compares roles.
//!
//! [`RoleMap`] is that config, resolved: a chat user id and the ids of
//! the user groups they belong to give their role. Pure: the edge looks up
//! the groups (a Slack API call) and asks here.
//!
//! Identity is the chat user id, never a name: anyone can set their
//! display name to anything, including someone else's id. [`Who`] carries
//! both, so that what decides (the id) and what people read (the name)
//! cannot be mixed up, and records show them together.

use serde::{Deserialize, Serialize};

/// Who is in which user group, as the chat platform says: the edge that
/// asks it implements this (Slack's Web API, cached), and those that
/// resolve roles outside chat (the web console) ask through it.
pub trait GroupLookup: Send + Sync {
    /// The groups, among those roles name, that chat user `user` is in.
    fn groups_of<'a>(
        &'a self,
        user: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<String>> + Send + 'a>>;
}

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

/// A person as a command arrived from them: `id` decides everything (roles,
/// approval lists, sign-offs); `name` is only shown beside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Who {
    /// The chat user id (Slack `U...`), or [`CONSOLE_USER`].
    pub id: String,
    /// What they call themselves; may be anything, including another
    /// person's id.
    pub name: String,
}

impl Who {
    pub fn new(id: impl Into<String>, name: impl Into<String>) -> Who {
        Who {
            id: id.into(),
            name: name.into(),
        }
    }

    /// How records and chat name them: `ana (U024BE7LH)`, or the id alone
    /// when there is no other name. The id is always there, so a name
    /// chosen to look like someone else cannot pass for them.
    pub fn label(&self) -> String {
        if self.name.is_empty() || self.name == self.id {
            self.id.clone()
        } else {
            format!("{} ({})", self.name, self.id)
        }
    }
}

impl std::fmt::Display for Who {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label())
    }
}

/// Whether `s` has the shape of a Slack user id: `U` (or `W`, on
/// Enterprise Grid) and upper-case letters and digits. Config that grants
/// something to a person says so by id; a display name there would match
/// nobody, or whoever renamed themselves to it.
pub fn is_user_id(s: &str) -> bool {
    is_slack_id(s, &['U', 'W'])
}

/// Whether `s` has the shape of a Slack user group id (`S...`).
pub fn is_group_id(s: &str) -> bool {
    is_slack_id(s, &['S'])
}

fn is_slack_id(s: &str, first: &[char]) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| first.contains(&c))
        && s.len() >= 2
        && s.len() <= 32
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
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
    fn a_label_always_carries_the_id() {
        assert_eq!(Who::new("U024BE7LH", "ana").label(), "ana (U024BE7LH)");
        assert_eq!(Who::new("U024BE7LH", "U024BE7LH").label(), "U024BE7LH");
        assert_eq!(Who::new("U024BE7LH", "").to_string(), "U024BE7LH");
        // Someone named after another person's id still shows as themselves.
        assert_eq!(
            Who::new("U0VIEWER01", "U024BE7LH").label(),
            "U024BE7LH (U0VIEWER01)"
        );
    }

    #[test]
    fn ids_have_slacks_shape_and_names_do_not() {
        for id in ["U024BE7LH", "W0123ABCD", "U0COMMAND1"] {
            assert!(is_user_id(id), "{id}");
        }
        for not in [
            "ana",
            "u024be7lh",
            "U",
            "U-lead",
            "S0ONCALL",
            "U024 BE7",
            "",
        ] {
            assert!(!is_user_id(not), "{not}");
        }
        assert!(is_group_id("S0ONCALL"));
        assert!(!is_group_id("oncall") && !is_group_id("U024BE7LH"));
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
