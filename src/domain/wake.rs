//! Waking lanes: one signal per destination, so a commit that adds rows for one destination
//! wakes only its lane (in this process, or, through PostgreSQL's NOTIFY, in every instance).

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Notify;

/// The wake-up signal of every configured destination. Cloning is cheap.
#[derive(Debug, Clone, Default)]
pub struct Wakers(Arc<HashMap<Arc<str>, Arc<Notify>>>);

impl Wakers {
    pub fn new<'a>(destinations: impl IntoIterator<Item = &'a Arc<str>>) -> Self {
        Self(Arc::new(
            destinations
                .into_iter()
                .map(|name| (Arc::clone(name), Arc::new(Notify::new())))
                .collect(),
        ))
    }

    /// Wakes the lane of `destination`, if this process has one. A lane that is busy finds the
    /// wake-up waiting when it next looks.
    pub fn wake(&self, destination: &str) {
        if let Some(notify) = self.0.get(destination) {
            notify.notify_one();
        }
    }

    /// Wakes every lane.
    pub fn wake_all(&self) {
        for notify in self.0.values() {
            notify.notify_one();
        }
    }

    /// Wakes the lanes an announcement names (comma separated; empty means all).
    pub fn wake_named(&self, names: &str) {
        if names.is_empty() {
            self.wake_all();
        } else {
            names.split(',').for_each(|name| self.wake(name));
        }
    }

    /// The signal `destination`'s lane waits on.
    pub fn signal(&self, destination: &str) -> Arc<Notify> {
        self.0
            .get(destination)
            .map_or_else(|| Arc::new(Notify::new()), Arc::clone)
    }
}
