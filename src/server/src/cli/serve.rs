//! `portcullis serve`: both listeners, maintenance, and a graceful stop.

use std::net::SocketAddr;
use std::path::Path;

use crate::app::App;
use crate::config::Config;

use super::CliResult;

pub(super) async fn serve(config_path: &Path) -> CliResult {
    let config = Config::load(config_path)?;
    let app = std::sync::Arc::new(App::from_config(&config).await?);
    app.spawn_maintenance(config.maintenance_interval);
    let bind = |address: SocketAddr| async move {
        tokio::net::TcpListener::bind(address)
            .await
            .map_err(|e| format!("cannot listen on {address}: {e}"))
    };
    let (public, ingress) = (
        bind(config.listen).await?,
        bind(config.ingress_listen).await?,
    );
    tracing::info!(
        listen = %config.listen,
        ingress_listen = %config.ingress_listen,
        ingress_tls = match &config.ingress_tls {
            None => "off",
            Some(tls) if tls.client_auth => "mutual",
            Some(_) => "on",
        },
        "portcullis companion serving"
    );
    let limits = crate::serve::Limits {
        header_read_timeout: config.header_read_timeout,
        max_connections: config.max_connections,
    };
    // One signal stops both listeners.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let stopped = || {
        let mut stopping = stopping.clone();
        async move {
            let _ = stopping.wait_for(|s| *s).await;
        }
    };
    tokio::join!(
        crate::serve::serve(public, app.router(), limits, None, stopped()),
        crate::serve::serve(
            ingress,
            app.ingress_router(),
            limits,
            config.ingress_tls.as_ref().map(|t| t.server.clone()),
            stopped(),
        ),
    );
    tracing::info!("portcullis companion stopped");
    Ok(())
}

pub(super) async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => return interrupt.await.unwrap_or(()),
        };
    tokio::select! {
        _ = interrupt => {}
        _ = terminate.recv() => {}
    }
}
