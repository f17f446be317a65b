//! Polling until a condition holds.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::anyhow;

/// Calls `check` every `interval` until it returns `Ok`, and returns that value. An `Err`
/// means "not yet": say in it what was seen, e.g.
/// `anyhow::ensure!(ready, "Ready is {status:?}, want True")`. After `timeout`, fails with
/// the number of attempts and the last error. An attempt still running at the deadline is
/// abandoned (one more `interval` of grace).
///
/// ```no_run
/// # async fn demo(env: &testenv::TestEnv) -> anyhow::Result<()> {
/// use std::time::Duration;
/// let out = testenv::wait_until(Duration::from_secs(30), Duration::from_millis(200), || async {
///     let out = env.kubectl_ok(["get", "ns", "default", "-o", "name"])?;
///     anyhow::ensure!(!out.is_empty(), "no output yet");
///     Ok(out)
/// })
/// .await?;
/// # Ok(()) }
/// ```
pub async fn wait_until<T, F, Fut>(
    timeout: Duration,
    interval: Duration,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut attempts = 0u32;
    let mut last = anyhow!("no attempt finished");
    loop {
        attempts += 1;
        match tokio::time::timeout_at(deadline + interval, check()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => last = e,
            Err(_) => last = anyhow!("the attempt was still running at the deadline"),
        }
        if tokio::time::Instant::now() + interval > deadline {
            return Err(last.context(format!(
                "condition not met within {timeout:?} ({attempts} attempts over {:.1?}); last result",
                start.elapsed()
            )));
        }
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn returns_the_first_success() {
        let n = AtomicU32::new(0);
        let v = wait_until(Duration::from_secs(5), Duration::from_millis(1), || async {
            let i = n.fetch_add(1, Ordering::SeqCst);
            anyhow::ensure!(i >= 3, "only {i}");
            Ok(i)
        })
        .await
        .unwrap();
        assert_eq!(v, 3);
    }

    #[tokio::test]
    async fn reports_the_last_error() {
        let err = wait_until(
            Duration::from_millis(50),
            Duration::from_millis(10),
            || async { Err::<(), _>(anyhow!("Ready is False")) },
        )
        .await
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("condition not met within 50ms"), "{msg}");
        assert!(msg.contains("Ready is False"), "{msg}");
    }
}
