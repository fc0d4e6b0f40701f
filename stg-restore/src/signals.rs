//! SIGINT, SIGTERM and SIGHUP as a cancellation the restore checks: instead of dying with a
//! half-made incoming database, stg-restore stops loading, kills psql, drops the incoming
//! database and exits 3, naming the signal.
//!
//! Installed right after the staging guard, before stdin is read. Once the swap has begun
//! it runs to its end (a few catalog updates): a signal then is reported, not obeyed
//! half-way. Not for `verify` and `list`, which change nothing and may die as they like.

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// A cancellation fed by signals.
#[derive(Clone)]
pub struct Cancel {
    rx: watch::Receiver<Option<&'static str>>,
}

impl Cancel {
    /// Installs the handlers (needs a Tokio runtime).
    pub fn install() -> anyhow::Result<Cancel> {
        let (tx, rx) = watch::channel(None);
        for (kind, name) in [
            (SignalKind::interrupt(), "SIGINT"),
            (SignalKind::terminate(), "SIGTERM"),
            (SignalKind::hangup(), "SIGHUP"),
        ] {
            let mut stream = signal(kind)?;
            let tx = tx.clone();
            tokio::spawn(async move {
                if stream.recv().await.is_some() {
                    let _ = tx.send(Some(name));
                }
            });
        }
        Ok(Cancel { rx })
    }

    /// The signal received, if any.
    pub fn fired(&self) -> Option<&'static str> {
        *self.rx.borrow()
    }

    /// Waits for a signal; returns its name.
    pub async fn wait(&self) -> &'static str {
        let mut rx = self.rx.clone();
        loop {
            if let Some(name) = *rx.borrow_and_update() {
                return name;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Runs `fut` unless a signal comes first.
    pub async fn run<T>(
        &self,
        fut: impl std::future::Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        tokio::select! {
            result = fut => result,
            name = self.wait() => Err(interrupted(name)),
        }
    }
}

/// The error of an interrupted restore.
pub fn interrupted(name: &str) -> anyhow::Error {
    stg_core::Error::runtime(format!("interrupted by {name}")).into()
}
