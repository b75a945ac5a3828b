//! An axum app served in the background on a bound listener: what every sandbox server
//! starts with, and how it stops (gracefully, at most five seconds; at once when dropped).

use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long [`Background::stop`] lets open connections finish.
const GRACE: Duration = Duration::from_secs(5);

/// A served app; dropping it stops it at once.
pub(crate) struct Background {
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Background {
    /// Serves `app` on `listener` until stopped; `name` says whose failure a log line is.
    pub(crate) fn serve(
        listener: tokio::net::TcpListener,
        app: axum::Router,
        name: &'static str,
    ) -> Background {
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(error) = served {
                tracing::warn!(%error, "{name} failed");
            }
        });
        Background {
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    /// Stops accepting, lets open connections finish (at most five seconds) and returns.
    pub(crate) async fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(GRACE, task).await.is_err() {
                abort.abort();
            }
        }
    }

    /// Stops at once: open connections are dropped.
    pub(crate) fn abort(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.abort();
    }
}
