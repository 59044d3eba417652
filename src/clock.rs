//! Time for the whole process: real, or scaled for replays.
//!
//! Model code never reads a clock; it takes `now` (milliseconds since the
//! Unix epoch) as an argument. The tasks at the edges ask a [`Clock`]. In
//! `firebreak run` that is the wall clock; in `firebreak demo` the simulator
//! and the bot share one scaled clock, so a `for: 1m` in a rule means one
//! simulated minute and a 40-minute event replays in under a minute.

use std::sync::Arc;
use std::time::Duration;

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

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

    pub fn now(&self) -> Millis {
        match &*self.0 {
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
            Inner::System => 1.0,
            Inner::Scaled { speed, .. } => *speed,
        }
    }

    /// The real time that `d` of this clock's time takes.
    pub fn real(&self, d: Duration) -> Duration {
        d.div_f64(self.speed())
    }

    /// Sleeps for `d` of this clock's time.
    pub async fn sleep(&self, d: Duration) {
        tokio::time::sleep(self.real(d)).await;
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
}
