//! Watching the background tasks of `serve` (intake writer, lanes, listeners, checkpoints,
//! periodic jobs): each runs until shutdown; one that ends before, with an error or a panic, is
//! logged with its cause and turns `/readyz` to 503. A task marked critical (the intake writer)
//! also stops the service, so it exits non-zero and is restarted.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::task::{Id, JoinSet};
use tokio_util::sync::CancellationToken;

/// Whether every supervised task still runs; `/readyz` reads it.
#[derive(Debug, Clone, Default)]
pub struct TaskHealth(Arc<Mutex<Option<String>>>);

impl TaskHealth {
    /// The first failure, if any task failed.
    pub fn failure(&self) -> Option<String> {
        self.0.lock().expect("task health lock").clone()
    }

    fn fail(&self, failure: String) {
        let mut first = self.0.lock().expect("task health lock");
        if first.is_none() {
            *first = Some(failure);
        }
    }
}

/// How much a task matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Importance {
    /// Its end makes the instance unready.
    Normal,
    /// Its end also stops the service (non-zero exit): nothing could be stored without it.
    Critical,
}

/// The supervised tasks.
pub struct Supervisor {
    tasks: JoinSet<anyhow::Result<()>>,
    names: HashMap<Id, (String, Importance)>,
    health: TaskHealth,
    /// Set once shutdown began: tasks ending after it are expected to.
    stopping: CancellationToken,
}

/// A critical task ended: the service cannot go on.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CriticalFailure(pub String);

impl Supervisor {
    /// Tasks that end once `shutdown` fired are expected to.
    pub fn new(health: TaskHealth, shutdown: &CancellationToken) -> Self {
        Self {
            tasks: JoinSet::new(),
            names: HashMap::new(),
            health,
            stopping: shutdown.child_token(),
        }
    }

    /// Starts `task` under watch.
    pub fn spawn<F>(&mut self, name: impl Into<String>, importance: Importance, task: F)
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let handle = self.tasks.spawn(task);
        self.names.insert(handle.id(), (name.into(), importance));
    }

    /// Waits until a task fails, logging each that ends. Returns when a critical task ends
    /// (with its failure) or when every task has ended. Cancel-safe.
    pub async fn watch(&mut self) -> Result<(), CriticalFailure> {
        while let Some(joined) = self.tasks.join_next_with_id().await {
            let (id, result) = match joined {
                Ok((id, result)) => (id, result.err().map(|error| format!("{error:#}"))),
                Err(error) => {
                    let id = error.id();
                    let cause = if error.is_panic() {
                        format!(
                            "panicked: {}",
                            crate::delivery::panic_text(&*error.into_panic())
                        )
                    } else {
                        "was cancelled".to_owned()
                    };
                    (id, Some(cause))
                }
            };
            let (name, importance) = self
                .names
                .remove(&id)
                .unwrap_or_else(|| ("a task".to_owned(), Importance::Normal));
            if self.stopping.is_cancelled() {
                if let Some(cause) = result {
                    tracing::warn!(task = %name, cause = %cause, "task ended with an error during shutdown");
                }
                continue;
            }
            let failure = match result {
                Some(cause) => format!("{name} failed: {cause}"),
                None => format!("{name} stopped unexpectedly"),
            };
            tracing::error!(task = %name, "{failure}; this instance is no longer ready");
            self.health.fail(failure.clone());
            if importance == Importance::Critical {
                return Err(CriticalFailure(failure));
            }
        }
        Ok(())
    }

    /// From now on tasks are expected to end.
    pub fn begin_shutdown(&self) {
        self.stopping.cancel();
    }

    /// Waits for every task to end, until `deadline`; aborts what is left then.
    pub async fn join_all(&mut self, deadline: tokio::time::Instant) {
        self.begin_shutdown();
        while !self.tasks.is_empty() {
            match tokio::time::timeout_at(deadline, self.watch()).await {
                Ok(_) => {}
                Err(_) => {
                    let left: Vec<&str> =
                        self.names.values().map(|(name, _)| name.as_str()).collect();
                    tracing::warn!(tasks = ?left, "tasks still running at the end of the shutdown grace period; stopping them");
                    self.tasks.abort_all();
                    while self.tasks.join_next().await.is_some() {}
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_ends_early_makes_the_instance_unready() {
        let health = TaskHealth::default();
        let mut supervisor = Supervisor::new(health.clone(), &CancellationToken::new());
        supervisor.spawn("lane slack", Importance::Normal, async {
            anyhow::bail!("boom")
        });
        supervisor.spawn("never ends", Importance::Normal, std::future::pending());
        let failed = async {
            while health.failure().is_none() {
                tokio::task::yield_now().await;
            }
        };
        tokio::select! {
            _ = supervisor.watch() => panic!("a normal failure must not stop the watch"),
            () = failed => {}
        }
        assert_eq!(health.failure().as_deref(), Some("lane slack failed: boom"));
    }

    #[tokio::test]
    async fn a_panicking_critical_task_stops_the_service() {
        let health = TaskHealth::default();
        let mut supervisor = Supervisor::new(health.clone(), &CancellationToken::new());
        supervisor.spawn("intake writer", Importance::Critical, async {
            panic!("disk on fire");
        });
        let failure = supervisor.watch().await.unwrap_err();
        assert_eq!(failure.0, "intake writer failed: panicked: disk on fire");
        assert_eq!(health.failure(), Some(failure.0));
    }

    #[tokio::test]
    async fn tasks_ending_during_shutdown_are_expected() {
        let health = TaskHealth::default();
        let mut supervisor = Supervisor::new(health.clone(), &CancellationToken::new());
        supervisor.spawn("checkpoints", Importance::Critical, async { Ok(()) });
        supervisor
            .join_all(tokio::time::Instant::now() + std::time::Duration::from_secs(1))
            .await;
        assert_eq!(health.failure(), None);
    }
}
