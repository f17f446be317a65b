//! Namespace listings shared by the objects of a resync wave, so that a drift check costs one
//! Kestra request per Kestra namespace instead of one per object.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::engine::Target;
use crate::kestra::KestraError;

/// How long one listing answers for the objects of its namespace.
pub(crate) const LISTING_TTL: Duration = Duration::from_secs(2);

type ListingKey = (Option<String>, String);
/// The last listing of one namespace and when it was taken; locked while it is refreshed, so
/// concurrent reconciles of one namespace make one request.
type Slot<T> = Arc<tokio::sync::Mutex<Option<(Instant, Arc<HashMap<String, T>>)>>>;

/// Per (tenant, Kestra namespace), the rows of the last listing keyed by object name.
pub struct NamespaceListings<T> {
    slots: Mutex<HashMap<ListingKey, Slot<T>>>,
}

impl<T> Default for NamespaceListings<T> {
    fn default() -> Self {
        Self {
            slots: Mutex::default(),
        }
    }
}

impl<T> NamespaceListings<T> {
    /// The listing of `target`'s namespace, fetched with `fetch` unless a fresh one is cached.
    pub async fn get<F, Fut>(
        &self,
        target: &Target,
        fetch: F,
    ) -> Result<Arc<HashMap<String, T>>, KestraError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<(String, T)>, KestraError>>,
    {
        self.get_within(target, LISTING_TTL, fetch).await
    }

    /// The listing of `target`'s namespace, fetched unless one younger than `max_age` is cached.
    pub async fn get_within<F, Fut>(
        &self,
        target: &Target,
        max_age: Duration,
        fetch: F,
    ) -> Result<Arc<HashMap<String, T>>, KestraError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<(String, T)>, KestraError>>,
    {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots
                .entry((target.tenant.clone(), target.namespace.clone()))
                .or_default()
                .clone()
        };
        let mut cached = slot.lock().await;
        if let Some((at, listing)) = cached.as_ref()
            && at.elapsed() < max_age
        {
            return Ok(listing.clone());
        }
        let listing = Arc::new(fetch().await?.into_iter().collect::<HashMap<_, _>>());
        *cached = Some((Instant::now(), listing.clone()));
        Ok(listing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn target(namespace: &str) -> Target {
        Target {
            tenant: Some("main".into()),
            namespace: namespace.into(),
            name: "x".into(),
        }
    }

    #[tokio::test]
    async fn one_fetch_per_namespace_while_fresh() {
        let listings = NamespaceListings::<i64>::default();
        let fetches = AtomicUsize::new(0);
        let fetch = || async {
            fetches.fetch_add(1, Ordering::SeqCst);
            Ok(vec![("x".to_string(), 3)])
        };
        for _ in 0..5 {
            let listing = listings.get(&target("a"), fetch).await.unwrap();
            assert_eq!(listing.get("x"), Some(&3));
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        listings.get(&target("b"), fetch).await.unwrap();
        assert_eq!(
            fetches.load(Ordering::SeqCst),
            2,
            "another namespace has its own listing"
        );
    }

    #[tokio::test]
    async fn a_failed_fetch_is_not_cached() {
        let listings = NamespaceListings::<i64>::default();
        let failed = listings
            .get(&target("a"), || async {
                Err(KestraError::Decode("boom".into()))
            })
            .await;
        assert!(failed.is_err());
        let listing = listings
            .get(&target("a"), || async { Ok(vec![("x".to_string(), 1)]) })
            .await
            .unwrap();
        assert_eq!(listing.get("x"), Some(&1));
    }
}
