//! The sandbox's clock: wall time, or a virtual time that runs `speed` times faster than
//! wall time from a starting point (`medic demo`, where half an hour of an incident passes
//! in half a minute). Every sandbox server and the world read time from one [`SimClock`],
//! and the Medic engine of the demo is given a clock with the same origin and speed.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy)]
pub struct SimClock {
    origin_ms: i64,
    origin: Instant,
    speed: u32,
}

impl SimClock {
    /// Wall time.
    pub fn system() -> SimClock {
        SimClock::starting_at(wall_ms(), Instant::now(), 1)
    }

    /// A clock that reads `origin_ms` at `origin` and then advances `speed` times faster
    /// than wall time (at least 1).
    ///
    /// It reads time as the Medic engine's scaled clock does (whole milliseconds of
    /// nanoseconds times speed, rounded down), so that an engine given the same origin and
    /// speed never reads an earlier time than the world after it: a query sent right
    /// after an action asks about a time no earlier than the action's effect.
    pub fn starting_at(origin_ms: i64, origin: Instant, speed: u32) -> SimClock {
        SimClock {
            origin_ms,
            origin,
            speed: speed.max(1),
        }
    }

    /// Milliseconds since the Unix epoch, in the clock's time.
    pub fn now_ms(&self) -> i64 {
        let elapsed = self
            .origin
            .elapsed()
            .as_nanos()
            .saturating_mul(u128::from(self.speed))
            / 1_000_000;
        self.origin_ms
            .saturating_add(i64::try_from(elapsed).unwrap_or(i64::MAX))
    }

    pub fn speed(&self) -> u32 {
        self.speed
    }

    /// The wall time that `virtual_time` of the clock's time takes.
    pub fn wall(&self, virtual_time: Duration) -> Duration {
        virtual_time / self.speed
    }

    /// Sleeps for `virtual_time` of the clock's time.
    pub async fn sleep(&self, virtual_time: Duration) {
        tokio::time::sleep(self.wall(virtual_time)).await;
    }
}

/// Wall time in milliseconds since the Unix epoch.
pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}
