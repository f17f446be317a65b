//! Namespace listings shared by the objects of a resync wave, so that a drift check costs one
//! Kestra request per Kestra namespace (per directory for namespace files) instead of one per
//! object.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use crate::engine::Target;
use crate::instances::InstanceId;
use crate::kestra::KestraError;

/// How long one listing answers for the objects of its namespace.
pub(crate) const LISTING_TTL: Duration = Duration::from_secs(2);

/// Instance, tenant, Kestra namespace, and the directory for namespace files (empty otherwise).
type ListingKey = (InstanceId, Option<String>, String, String);
/// The last listing of one namespace; locked while it is refreshed, so concurrent reconciles of
/// one namespace make one request.
type Slot<T> = Arc<tokio::sync::Mutex<Option<Listing<T>>>>;

/// Per (instance, tenant, Kestra namespace, directory), the rows of the last listing keyed by object name.
pub struct NamespaceListings<T> {
    slots: Mutex<HashMap<ListingKey, Slot<T>>>,
    /// Set for namespace files: the listing is of the target's parent directory.
    by_directory: bool,
}

/// The directory holding a namespace file path (`/a/b.txt` is in `/a`, `/b.txt` in `/`), and
/// the file's name in it.
pub fn split_path(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(0) | None => ("/", path.trim_start_matches('/')),
        Some(i) => (&path[..i], &path[i + 1..]),
    }
}

impl<T> Default for NamespaceListings<T> {
    fn default() -> Self {
        Self {
            slots: Mutex::default(),
            by_directory: false,
        }
    }
}

/// One namespace's listing and the instant it was taken.
pub struct Listing<T> {
    pub taken: Instant,
    pub rows: Arc<HashMap<String, T>>,
}

impl<T> Clone for Listing<T> {
    fn clone(&self) -> Self {
        Self {
            taken: self.taken,
            rows: self.rows.clone(),
        }
    }
}

impl<T> NamespaceListings<T> {
    /// Listings of the directory holding each target (for namespace files).
    pub fn by_directory() -> Self {
        Self {
            slots: Mutex::default(),
            by_directory: true,
        }
    }

    fn key(&self, target: &Target) -> ListingKey {
        let directory = if self.by_directory {
            split_path(&target.name).0.to_string()
        } else {
            String::new()
        };
        (
            target.instance.clone(),
            target.tenant.clone(),
            target.namespace.clone(),
            directory,
        )
    }

    /// The listing of `target`'s namespace, fetched with `fetch` unless a fresh one is cached.
    pub async fn get<F, Fut>(&self, target: &Target, fetch: F) -> Result<Listing<T>, KestraError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<(String, T)>, KestraError>>,
    {
        self.get_if(target, |taken| taken.elapsed() < LISTING_TTL, fetch)
            .await
    }

    /// A listing taken after `than`: the cached one if it is, else a new one. Concurrent
    /// callers that saw the same stale listing make one request between them.
    pub async fn get_newer<F, Fut>(
        &self,
        target: &Target,
        than: Instant,
        fetch: F,
    ) -> Result<Listing<T>, KestraError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<(String, T)>, KestraError>>,
    {
        self.get_if(target, |taken| taken > than, fetch).await
    }

    async fn get_if<F, Fut>(
        &self,
        target: &Target,
        usable: impl FnOnce(Instant) -> bool,
        fetch: F,
    ) -> Result<Listing<T>, KestraError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<(String, T)>, KestraError>>,
    {
        let slot = {
            let mut slots = self.slots.lock();
            slots.entry(self.key(target)).or_default().clone()
        };
        let mut cached = slot.lock().await;
        if let Some(listing) = cached.as_ref()
            && usable(listing.taken)
        {
            return Ok(listing.clone());
        }
        let taken = Instant::now();
        let rows = Arc::new(fetch().await?.into_iter().collect::<HashMap<_, _>>());
        let listing = Listing { taken, rows };
        *cached = Some(listing.clone());
        Ok(listing)
    }
}

/// A listing this Kestra does not offer (an unexpected status such as 404, or another shape) is
/// no listing: the caller reads objects one by one. Any other failure (Kestra unavailable,
/// credentials refused) is the reconcile's error, as a read would have been.
pub fn if_offered<T>(listing: Result<T, KestraError>) -> Result<Option<T>, KestraError> {
    match listing {
        Ok(listing) => Ok(Some(listing)),
        Err(KestraError::Unexpected { .. } | KestraError::Decode(_) | KestraError::Json(_)) => {
            Ok(None)
        }
        Err(other) => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn target(namespace: &str) -> Target {
        Target {
            instance: crate::instances::InstanceId::Default,
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
            assert_eq!(listing.rows.get("x"), Some(&3));
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        listings.get(&target("b"), fetch).await.unwrap();
        assert_eq!(
            fetches.load(Ordering::SeqCst),
            2,
            "another namespace has its own listing"
        );
    }

    #[test]
    fn file_paths_split_into_directory_and_name() {
        assert_eq!(split_path("/a.txt"), ("/", "a.txt"));
        assert_eq!(split_path("/dir/sub/a.txt"), ("/dir/sub", "a.txt"));
    }

    #[tokio::test]
    async fn file_listings_are_per_directory() {
        let listings = NamespaceListings::<i64>::by_directory();
        let fetches = AtomicUsize::new(0);
        let fetch = || async {
            fetches.fetch_add(1, Ordering::SeqCst);
            Ok(vec![])
        };
        let file = |name: &str| Target {
            instance: crate::instances::InstanceId::Default,
            tenant: Some("main".into()),
            namespace: "a".into(),
            name: name.into(),
        };
        listings.get(&file("/d/x.txt"), fetch).await.unwrap();
        listings.get(&file("/d/y.txt"), fetch).await.unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        listings.get(&file("/e/x.txt"), fetch).await.unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_newer_listing_is_fetched_once_for_everyone_who_saw_the_old_one() {
        let listings = NamespaceListings::<i64>::default();
        let fetches = AtomicUsize::new(0);
        let fetch = || async {
            fetches.fetch_add(1, Ordering::SeqCst);
            Ok(vec![("x".to_string(), 3)])
        };
        let old = listings.get(&target("a"), fetch).await.unwrap();
        let newer = listings
            .get_newer(&target("a"), old.taken, fetch)
            .await
            .unwrap();
        assert!(newer.taken > old.taken);
        let again = listings
            .get_newer(&target("a"), old.taken, fetch)
            .await
            .unwrap();
        assert_eq!(again.taken, newer.taken);
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn only_a_listing_kestra_lacks_is_skipped() {
        let missing = KestraError::Unexpected {
            status: 404,
            message: "no such route".into(),
        };
        assert!(matches!(if_offered::<()>(Err(missing)), Ok(None)));
        assert!(matches!(
            if_offered::<()>(Err(KestraError::Decode("shape".into()))),
            Ok(None)
        ));
        let down = KestraError::Unavailable {
            what: crate::kestra::Unavailability::Timeout,
            message: "no answer".into(),
        };
        assert!(if_offered::<()>(Err(down)).is_err());
        assert!(matches!(if_offered(Ok(1)), Ok(Some(1))));
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
        assert_eq!(listing.rows.get("x"), Some(&1));
    }
}
