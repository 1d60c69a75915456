//! A bound on how many operations of one kind run at once, with a bounded
//! wait for a turn: work that holds connections for long (closes, journal
//! proofs) queues here rather than in the pool, where it would starve every
//! other request.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::StoreError;

#[derive(Clone, Debug)]
pub(crate) struct Slots(Arc<Semaphore>);

impl Slots {
    pub(crate) fn new(capacity: usize) -> Self {
        Self(Arc::new(Semaphore::new(capacity)))
    }

    /// A turn, held until the permit is dropped; `Unavailable` after `wait`.
    pub(crate) async fn acquire(&self, wait: Duration) -> Result<OwnedSemaphorePermit, StoreError> {
        match tokio::time::timeout(wait, Arc::clone(&self.0).acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_closed)) => Err(StoreError::Unavailable("the store is shutting down".into())),
            Err(_elapsed) => Err(StoreError::Unavailable(
                "too many operations of this kind are in flight; retry later".into(),
            )),
        }
    }
}
