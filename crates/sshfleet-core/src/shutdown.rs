//! A cloneable stop signal: the first Ctrl-C asks the engine to stop dispatching new work.

use tokio::sync::watch;

/// Sender side: trigger once, every [`Shutdown`] clone sees it.
#[derive(Clone, Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// Receiver side, handed to engines and servers.
#[derive(Clone, Debug)]
pub struct Shutdown(watch::Receiver<bool>);

/// A connected trigger/receiver pair.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }
}

impl Default for Shutdown {
    fn default() -> Shutdown {
        Shutdown::never()
    }
}

impl Shutdown {
    /// A receiver that never fires, for callers without a stop signal. Its sender is gone,
    /// which [`Shutdown::wait`] reads as "nothing will ever stop us".
    pub fn never() -> Shutdown {
        let (_, rx) = watch::channel(false);
        Shutdown(rx)
    }

    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the trigger fires (immediately if it already has).
    pub async fn wait(&mut self) {
        while !*self.0.borrow_and_update() {
            if self.0.changed().await.is_err() {
                // Trigger dropped without firing: nothing will ever stop us.
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Whether `wait` resolves within a minute of (paused) time.
    async fn fires(mut stop: Shutdown) -> bool {
        tokio::time::timeout(Duration::from_secs(60), stop.wait())
            .await
            .is_ok()
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_never_and_a_dropped_trigger_never_fire() {
        let never = Shutdown::never();
        assert!(!never.is_triggered());
        assert!(!fires(never).await);
        let (trigger, stop) = channel();
        drop(trigger);
        assert!(!fires(stop).await);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_trigger_reaches_every_clone_even_late_ones() {
        let (trigger, stop) = channel();
        let early = stop.clone();
        trigger.trigger();
        let late = stop.clone();
        assert!(late.is_triggered());
        assert!(fires(early).await);
        assert!(fires(late).await);
        assert!(fires(stop).await);
    }
}
