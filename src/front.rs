//! What one replica shows the world: the routes its HTTP listener serves
//! right now, and whether it leads.
//!
//! A replica keeps one listener for its whole life. While it follows, the
//! listener serves the follower's routes (health, `/metrics`, reads from
//! the store, pushed alerts forwarded through the store); when it takes
//! the lease, the leader's daemon puts its own routes in their place, and
//! a demotion puts the follower's back. Requests already being served
//! finish on the routes they started on.

use std::sync::{Arc, Mutex, RwLock};

use axum::Router;
use axum::extract::Request;
use axum::response::Response;

/// The routes a listener serves, swapped as the replica's role changes.
#[derive(Clone, Default)]
pub struct Front {
    routes: Arc<RwLock<Router>>,
    pub status: Arc<Status>,
}

impl Front {
    pub fn new(status: Arc<Status>) -> Front {
        Front {
            routes: Arc::default(),
            status,
        }
    }

    /// Serves `routes` from the next request on.
    pub fn set(&self, routes: Router) {
        *self.routes.write().unwrap_or_else(|e| e.into_inner()) = routes;
    }

    /// The one router the listener serves: each request goes to the
    /// routes in place when it arrives.
    pub fn router(&self) -> Router {
        let routes = self.routes.clone();
        Router::new().fallback(move |req: Request| {
            let current = routes.read().unwrap_or_else(|e| e.into_inner()).clone();
            async move {
                use tower::ServiceExt;
                let r: Response = match current.oneshot(req).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                };
                r
            }
        })
    }
}

/// Who this replica is and what it knows of the lease, for `/-/ready`
/// and `/metrics`.
#[derive(Debug, Default)]
pub struct Status {
    /// This replica's name in the lease (`FIREBREAK_REPLICA_NAME`, or
    /// host and process id).
    pub me: String,
    role: Mutex<Role>,
}

/// A replica's role as last seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Role {
    /// It has not read the lease yet.
    #[default]
    Starting,
    Leading {
        epoch: i64,
    },
    /// Another replica leads (`None`: nobody holds the lease right now).
    Following {
        leader: Option<(String, i64)>,
    },
    /// The store does not answer: it cannot know who leads, and does not
    /// act.
    Blind {
        why: String,
    },
}

impl Status {
    pub fn new(me: impl Into<String>) -> Status {
        Status {
            me: me.into(),
            role: Mutex::new(Role::Starting),
        }
    }

    pub fn role(&self) -> Role {
        self.role.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records the role and keeps `firebreak_leader` and
    /// `firebreak_lease_epoch` in step with it.
    pub fn set(&self, role: Role) {
        let m = crate::metrics::get();
        m.leader
            .with(&[])
            .set(f64::from(u8::from(matches!(role, Role::Leading { .. }))));
        match &role {
            Role::Leading { epoch }
            | Role::Following {
                leader: Some((_, epoch)),
            } => m.lease_epoch.with(&[]).set(*epoch as f64),
            _ => {}
        }
        *self.role.lock().unwrap_or_else(|e| e.into_inner()) = role;
    }

    /// One line for `/-/ready` and logs.
    pub fn describe(&self) -> String {
        match self.role() {
            Role::Starting => format!("replica {} is starting", self.me),
            Role::Leading { epoch } => {
                format!("replica {} leads (lease epoch {epoch})", self.me)
            }
            Role::Following {
                leader: Some((who, epoch)),
            } => format!(
                "replica {} follows; {who} leads (lease epoch {epoch})",
                self.me
            ),
            Role::Following { leader: None } => format!(
                "replica {} follows; no replica holds the lease right now (one takes it within a lease)",
                self.me
            ),
            Role::Blind { why } => format!(
                "replica {} cannot reach the store, so it cannot know who leads and does not act: {why}",
                self.me
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(router: Router, path: &str) -> String {
        use tower::ServiceExt;
        let res = router
            .oneshot(Request::get(path).body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 16)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn the_listener_serves_whichever_routes_are_in_place() {
        let front = Front::new(Arc::new(Status::new("r1")));
        let router = front.router();
        front.set(Router::new().route("/who", axum::routing::get(|| async { "follower" })));
        assert_eq!(get(router.clone(), "/who").await, "follower");
        front.set(Router::new().route("/who", axum::routing::get(|| async { "leader" })));
        assert_eq!(get(router, "/who").await, "leader");
    }

    #[test]
    fn the_status_says_who_leads() {
        let s = Status::new("r1");
        s.set(Role::Following {
            leader: Some(("r2".into(), 7)),
        });
        assert_eq!(s.describe(), "replica r1 follows; r2 leads (lease epoch 7)");
        s.set(Role::Leading { epoch: 8 });
        assert!(s.describe().contains("r1 leads (lease epoch 8)"));
    }
}
