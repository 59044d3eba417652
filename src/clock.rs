//! Time for the whole process: real, or scaled for replays.
//!
//! Model code never reads a clock; it takes `now` (milliseconds since the
//! Unix epoch) as an argument. The tasks at the edges ask a [`Clock`]. In
//! `firebreak run` that is the wall clock; in `firebreak demo` the simulator
//! and the bot share one scaled clock, so a `for: 1m` in a rule means one
//! simulated minute and a 40-minute event replays in under a minute.
//! `firebreak test runbooks` uses a manual clock: it moves only when the
//! test driver advances it, so a `wait: 10m` takes no real time at all.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

pub use crate::duration::Millis;

#[derive(Clone, Debug)]
pub struct Clock(Arc<Inner>);

#[derive(Debug)]
enum Inner {
    System,
    /// `now = origin + (elapsed real time) * speed`. Built on tokio's clock
    /// so tests with paused time drive it deterministically.
    Scaled {
        origin: Millis,
        started: tokio::time::Instant,
        speed: f64,
    },
    /// Stands still until [`Clock::advance_to`]; sleepers wait for that.
    Manual(Mutex<Manual>),
}

#[derive(Debug, Default)]
struct Manual {
    now: Millis,
    next_id: u64,
    /// Pending sleeps by (wake time, id).
    sleepers: BTreeMap<(Millis, u64), oneshot::Sender<()>>,
}

/// Takes a manual sleep off the list however it ends, so a sleep that
/// lost a `select!` does not hold the driver's attention.
struct Sleeper<'a> {
    clock: &'a Mutex<Manual>,
    key: (Millis, u64),
}

impl Drop for Sleeper<'_> {
    fn drop(&mut self) {
        lock(self.clock).sleepers.remove(&self.key);
    }
}

fn lock(m: &Mutex<Manual>) -> std::sync::MutexGuard<'_, Manual> {
    // Only plain inserts and removes happen under the lock.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Clock {
    pub fn system() -> Self {
        Clock(Arc::new(Inner::System))
    }

    /// A clock that starts at `origin` and runs `speed` times faster than
    /// real time. Must be created inside a tokio runtime.
    pub fn scaled(origin: Millis, speed: f64) -> Self {
        assert!(
            speed > 0.0 && speed.is_finite(),
            "clock speed must be positive"
        );
        Clock(Arc::new(Inner::Scaled {
            origin,
            started: tokio::time::Instant::now(),
            speed,
        }))
    }

    /// A clock that reads `origin` until [`Clock::advance_to`] moves it.
    /// Real time does not move it: timeouts (see [`Clock::real`]) stay in
    /// real time, while sleeps on this clock wait for the driver.
    pub fn manual(origin: Millis) -> Self {
        Clock(Arc::new(Inner::Manual(Mutex::new(Manual {
            now: origin,
            ..Manual::default()
        }))))
    }

    /// For a manual clock: when the earliest pending sleep ends.
    pub fn next_wake(&self) -> Option<Millis> {
        match &*self.0 {
            Inner::Manual(m) => lock(m).sleepers.keys().next().map(|k| k.0),
            _ => None,
        }
    }

    /// For a manual clock: moves to `at` (never back) and wakes every
    /// sleep that ends by then. No effect on other clocks.
    pub fn advance_to(&self, at: Millis) {
        if let Inner::Manual(m) = &*self.0 {
            let mut m = lock(m);
            m.now = m.now.max(at);
            let first_later = (m.now + 1, 0);
            let later = m.sleepers.split_off(&first_later);
            for (_, tx) in std::mem::replace(&mut m.sleepers, later) {
                let _ = tx.send(());
            }
        }
    }

    pub fn now(&self) -> Millis {
        match &*self.0 {
            Inner::Manual(m) => lock(m).now,
            Inner::System => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as Millis),
            Inner::Scaled {
                origin,
                started,
                speed,
            } => {
                let real = started.elapsed().as_secs_f64();
                origin + (real * speed * 1000.0) as Millis
            }
        }
    }

    pub fn speed(&self) -> f64 {
        match &*self.0 {
            Inner::System | Inner::Manual(_) => 1.0,
            Inner::Scaled { speed, .. } => *speed,
        }
    }

    /// The real time that `d` of this clock's time takes.
    pub fn real(&self, d: Duration) -> Duration {
        d.div_f64(self.speed())
    }

    /// Sleeps for `d` of this clock's time.
    pub async fn sleep(&self, d: Duration) {
        let Inner::Manual(m) = &*self.0 else {
            tokio::time::sleep(self.real(d)).await;
            return;
        };
        if d.is_zero() {
            return;
        }
        let (rx, _guard) = {
            let mut g = lock(m);
            let key = (g.now + d.as_millis() as Millis, g.next_id);
            g.next_id += 1;
            let (tx, rx) = oneshot::channel();
            g.sleepers.insert(key, tx);
            (rx, Sleeper { clock: m, key })
        };
        let _ = rx.await;
    }

    /// Sleeps until this clock reads `at` (returns at once if it is past).
    pub async fn sleep_until(&self, at: Millis) {
        let now = self.now();
        if at > now {
            self.sleep(Duration::from_millis((at - now) as u64)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn scaled_clock_runs_fast() {
        let c = Clock::scaled(1_000_000, 60.0);
        assert_eq!(c.now(), 1_000_000);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(c.now(), 1_060_000);
        c.sleep(Duration::from_secs(120)).await; // two real seconds
        assert_eq!(c.now(), 1_180_000);
        c.sleep_until(1_240_000).await;
        assert_eq!(c.now(), 1_240_000);
    }

    #[tokio::test]
    async fn manual_clock_moves_only_when_advanced() {
        let c = Clock::manual(1_000);
        assert_eq!(c.next_wake(), None);
        let c2 = c.clone();
        let sleeper = tokio::spawn(async move {
            c2.sleep(Duration::from_secs(60)).await;
            c2.now()
        });
        while c.next_wake().is_none() {
            tokio::task::yield_now().await;
        }
        assert_eq!(c.next_wake(), Some(61_000));
        c.advance_to(30_000);
        assert_eq!(c.now(), 30_000);
        assert_eq!(c.next_wake(), Some(61_000), "not due yet");
        c.advance_to(61_000);
        assert_eq!(sleeper.await.unwrap(), 61_000);
        assert_eq!(c.next_wake(), None);
        // A sleep that is dropped leaves the list.
        let c3 = c.clone();
        let _ = tokio::time::timeout(Duration::from_millis(5), async move {
            c3.sleep(Duration::from_secs(5)).await
        })
        .await;
        assert_eq!(c.next_wake(), None);
        c.advance_to(0);
        assert_eq!(c.now(), 61_000, "never back");
    }
}
