//! The shutdown signal shared by the long-running commands (`serve`, `stream`,
//! `demo`): Ctrl-C, or SIGTERM — what Kubernetes and docker send before they
//! kill a container, so finishing in-flight work on it is what makes a rolling
//! update lose nothing.

/// Completes on Ctrl-C or SIGTERM, whichever comes first.
pub async fn signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!(signal = "SIGINT", "shutting down: finishing the work in flight"),
        () = terminate => tracing::info!(signal = "SIGTERM", "shutting down: finishing the work in flight"),
    }
}
