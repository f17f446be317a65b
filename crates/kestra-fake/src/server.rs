//! The listener and the connections. The accept loop is hand-written (hyper, one task per
//! connection) because the downtime hooks need what `axum::serve` does not offer: closing the
//! listener and rebinding the same port, and dropping every open connection at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::app::{self, Shared};
use crate::config::FakeConfig;
use crate::persist;
use crate::store::Store;

/// How long open connections get to finish their requests at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// Orders to the open connections and the accept loop, shared with the hooks.
#[derive(Clone)]
pub struct ConnControl {
    /// Bumped to let connections finish their current request, then close.
    graceful: Arc<watch::Sender<u64>>,
    /// Bumped to drop connections at once, answered or not.
    kill: Arc<watch::Sender<u64>>,
    refuse: mpsc::UnboundedSender<Duration>,
}

impl ConnControl {
    fn new() -> (Self, mpsc::UnboundedReceiver<Duration>) {
        let (refuse, refuse_rx) = mpsc::unbounded_channel();
        let control = Self {
            graceful: Arc::new(watch::channel(0).0),
            kill: Arc::new(watch::channel(0).0),
            refuse,
        };
        (control, refuse_rx)
    }

    /// Closes the listener for `window`, then listens on the same port again.
    pub fn refuse_for(&self, window: Duration) {
        // Fails only once the accept loop has stopped, when there is nothing to refuse.
        let _ = self.refuse.send(window);
    }

    pub fn close_gracefully(&self) {
        self.graceful.send_modify(|n| *n += 1);
    }

    pub fn drop_all(&self) {
        self.kill.send_modify(|n| *n += 1);
    }
}

/// A running double. Dropping it stops the server too, without waiting.
pub struct RunningFake {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl RunningFake {
    /// The root URL, like `http://127.0.0.1:PORT`, without `/api/v1`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets open requests finish (up to a few seconds), then returns.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.shutdown.send_replace(true);
        if let Some(task) = self.task.take() {
            task.await.context("the server task failed")?;
        }
        Ok(())
    }
}

impl Drop for RunningFake {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

/// Starts a double with `config` and returns once it listens.
pub async fn spawn(config: FakeConfig) -> anyhow::Result<RunningFake> {
    let store = match &config.state_file {
        Some(path) => persist::load(path)?,
        None => Store::default(),
    };
    let listener = bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let (control, refuse_rx) = ConnControl::new();
    let router = app::router(Arc::new(Shared::new(config, store, control.clone())));
    let (shutdown, shutdown_rx) = watch::channel(false);
    let task = tokio::spawn(accept_loop(
        listener,
        addr,
        router,
        control,
        refuse_rx,
        shutdown_rx,
    ));
    tracing::info!(%addr, "kestra-fake listening");
    Ok(RunningFake {
        addr,
        shutdown,
        task: Some(task),
    })
}

async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // Rebinding the same port right after a refuse window must not wait for TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

async fn accept_loop(
    listener: TcpListener,
    addr: SocketAddr,
    router: Router,
    control: ConnControl,
    mut refuse_rx: mpsc::UnboundedReceiver<Duration>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut listener = Some(listener);
    let mut refuse_until = Instant::now();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = stop_requested(&mut shutdown) => break,
            Some(window) = refuse_rx.recv() => {
                refuse_until = refuse_until.max(Instant::now() + window);
                if listener.take().is_some() {
                    tracing::info!(?window, "down: refusing connections");
                    // Open connections finish the request in flight (the hook's own answer),
                    // then close, so clients must reconnect and are refused.
                    control.close_gracefully();
                }
            }
            accepted = accept(listener.as_ref()) => match accepted {
                Ok(stream) => {
                    connections.spawn(serve(stream, router.clone(), control.clone()));
                }
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = tokio::time::sleep_until(refuse_until), if listener.is_none() => {
                match bind(addr).await {
                    Ok(rebound) => {
                        tracing::info!(%addr, "down window over: listening again");
                        listener = Some(rebound);
                    }
                    Err(error) => {
                        tracing::warn!(%error, %addr, "cannot listen again yet, retrying");
                        refuse_until = Instant::now() + Duration::from_millis(100);
                    }
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    control.close_gracefully();
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("connections still open at shutdown: dropping them");
        control.drop_all();
        connections.shutdown().await;
    }
    tracing::info!("kestra-fake stopped");
}

/// Resolves once a stop is asked for (or the handle is gone). Its own function so the watch
/// guard is released before the select's handlers run.
async fn stop_requested(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Accepts on the listener, or waits forever while there is none (during a refuse window).
async fn accept(listener: Option<&TcpListener>) -> std::io::Result<TcpStream> {
    match listener {
        Some(listener) => listener.accept().await.map(|(stream, _)| stream),
        None => std::future::pending().await,
    }
}

async fn serve(stream: TcpStream, router: Router, control: ConnControl) {
    // Subscribing marks the current orders as seen: only later ones concern this connection.
    let mut graceful = control.graceful.subscribe();
    let mut kill = control.kill.subscribe();
    let _ = stream.set_nodelay(true);
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(router));
    tokio::pin!(connection);
    let mut closing = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            _ = graceful.changed(), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            _ = kill.changed() => return,
        }
    }
}
