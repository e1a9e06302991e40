//! Batching of the messages nodes send each other (assignments, status reports) and of the
//! raft writes they cause.
//!
//! A fixed wait before every send makes every change late, a lone restarted task included; no
//! wait at all turns a burst (twenty tasks starting) into a message, a raft write and an echo per
//! change. A [`Pacer`] sends the first change after a quiet spell at once and gathers the rest
//! of a burst into one message per window.

use std::time::Duration;

use tokio::time::Instant;

/// At most one message per window, and none held back after a quiet spell.
#[derive(Debug)]
pub struct Pacer {
    window: Duration,
    last: Option<Instant>,
}

impl Pacer {
    pub fn new(window: Duration) -> Self {
        Self { window, last: None }
    }

    /// When a message that is ready at `now` may go: `now` after a quiet spell, otherwise a
    /// window after the last one.
    pub fn send_at(&self, now: Instant) -> Instant {
        match self.last {
            Some(last) => now.max(last + self.window),
            None => now,
        }
    }

    /// Waits until the next message may go, letting work that is already runnable add to it
    /// even when it may go at once, and counts it as sent.
    pub async fn ready(&mut self) {
        let now = Instant::now();
        let at = self.send_at(now);
        if at > now {
            tokio::time::sleep_until(at).await;
        } else {
            tokio::task::yield_now().await;
        }
        self.last = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_message_goes_at_once_and_a_burst_waits_for_the_window() {
        let window = Duration::from_millis(50);
        let mut pacer = Pacer::new(window);
        let t0 = Instant::now();
        assert_eq!(pacer.send_at(t0), t0, "the first message goes at once");
        pacer.last = Some(t0);
        let soon = t0 + Duration::from_millis(10);
        assert_eq!(
            pacer.send_at(soon),
            t0 + window,
            "the next one within the window waits for it"
        );
        let later = t0 + Duration::from_millis(200);
        assert_eq!(pacer.send_at(later), later, "after a quiet spell it goes at once again");
    }
}
