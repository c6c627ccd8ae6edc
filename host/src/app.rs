//! Startup: build the daemon from a [`Config`], bind its port, and run it until told to stop.
//!
//! `App::build` is separate from `App::run` so tests and benchmarks can start the real daemon on
//! port 0 and learn the bound address.

use std::sync::Arc;

use crate::drivers::PluginHost;
use anyhow::Context;
use rand::RngCore;
use tokio::net::TcpListener;

use crate::api::state::AppState;
use crate::config::Config;
use crate::domain::Secret;
use crate::images::Images;
use crate::provision::{WorkflowCore, lease_ttl_ms};
use crate::store::Store;

pub struct App {
    listener: TcpListener,
    /// Plain HTTP, netboot files only (`api::boot_router`).
    boot_listener: TcpListener,
    /// None: the API is plain HTTP (`[tls] enabled = false`).
    tls: Option<crate::tls::ServerTls>,
    state: AppState,
}

impl App {
    pub async fn build(config: Config) -> anyhow::Result<App> {
        if config.metrics.enabled {
            crate::metrics::handle();
        }
        std::fs::create_dir_all(&config.data_dir).with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
        restrict_permissions(&config.data_dir);
        let operator_token = match &config.token {
            Some(token) => token.clone(),
            None => generated_token(&config)?,
        };
        let database = config.database.clone();
        let key_path = config.secrets_key_path();
        let session = config.cluster.name.as_deref().map_or_else(|| "metalhost".to_owned(), |name| format!("metalhost {name}"));
        let store = tokio::task::spawn_blocking(move || Store::open(&database, &key_path, &session))
            .await
            .context("database open task failed")?
            .with_context(|| format!("cannot open database {}", config.database))?;

        // The netboot plugin's granted dirs must exist before plugins load.
        for dir in [config.hosts_dir(), config.scripts_dir()] {
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let plugins = PluginHost::with_exec_policy(&config.data_dir.join("plugin-cache"), &config.exec).context("cannot start the plugin runtime")?;
        for status in plugins.load(&config.plugins).await {
            match &status.error {
                None => tracing::info!(plugin = %status.name, kind = ?status.kind, version = %status.version, "plugin loaded"),
                Some(reason) => tracing::warn!(plugin = %status.name, %reason, "plugin not loaded"),
            }
        }

        let listener = TcpListener::bind(config.listen).await.with_context(|| format!("cannot listen on {}", config.listen))?;
        let bound = listener.local_addr().context("bound address")?;
        let boot_listener = TcpListener::bind(config.boot_listen)
            .await
            .with_context(|| format!("cannot listen on {} for netboot (boot_listen)", config.boot_listen))?;
        let boot_bound = boot_listener.local_addr().context("bound address")?;
        let tls = if config.tls.enabled {
            let names = crate::tls::certificate_names(&config, bound, &hostname());
            Some(crate::tls::server(&config, &names).context("cannot set up TLS for the API")?)
        } else {
            tracing::warn!("[tls] enabled = false: the API, agent tokens and images travel in clear");
            None
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let public_url: Arc<str> = config.public_url.clone().unwrap_or_else(|| format!("{scheme}://{bound}")).into();
        let boot_url: Arc<str> = config.boot_url.clone().unwrap_or_else(|| format!("http://{boot_bound}")).into();
        let peer_ca = match &tls {
            Some(tls) => Some(std::fs::read(&tls.ca_file).with_context(|| format!("cannot read {}", tls.ca_file.display()))?),
            None => None,
        };
        let reload = Arc::new(tokio::sync::Notify::new());
        let hook = reload.clone();
        plugins.set_netboot_reload(Arc::new(move || {
            hook.notify_one();
            Ok(())
        }));
        let member = Arc::new(crate::store::cluster::Member {
            name: config.cluster.name.clone().unwrap_or_else(|| format!("{}:{}", hostname(), bound.port())).into(),
            url: public_url.to_string(),
            started_at: crate::domain::now_ms(),
        });
        let operator_token = Arc::new(operator_token);
        let images = Images::new(&config.data_dir, store.clone(), member.clone(), lease_ttl_ms(&config), operator_token.clone(), peer_ca);
        let core = WorkflowCore {
            public_url,
            boot_url,
            ca_fingerprint: tls.as_ref().map(|t| t.ca_fingerprint.as_str().into()),
            task_events: Arc::new(tokio::sync::Notify::new()),
            runners: Arc::default(),
            netboot_reload: reload,
            consoles: Arc::default(),
            recorders: Arc::default(),
            member,
            images: Arc::new(images),
            store,
            plugins: Arc::new(plugins),
            config: Arc::new(config),
        };
        let state = AppState { core, operator_token, ui_sessions: Arc::default() };
        Ok(App { listener, boot_listener, tls, state })
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests and returns.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let App { listener, boot_listener, tls, state } = self;
        // Built first: an operation without a declared policy stops the daemon before it serves.
        let router = crate::api::router(state.clone()).context("the API's access policies")?;
        let core = &state.core;
        crate::provision::revalidate_enrolled(core).await;
        // The first heartbeat (which resumes this daemon's nodes) comes at once from the loop.
        let background = crate::pool::spawn_background(core.clone());
        let dnsmasq = if core.config.netboot.dnsmasq {
            Some(crate::netboot::supervise(&core.config, &core.boot_url, core.netboot_reload.clone()).context("cannot start dnsmasq")?)
        } else {
            None
        };
        let metrics = match core.config.metrics.listen.filter(|_| core.config.metrics.enabled) {
            Some(at) => {
                let open = TcpListener::bind(at).await.with_context(|| format!("cannot listen on {at} for metrics"))?;
                tracing::info!(addr = %open.local_addr()?, "metrics are served");
                let app = crate::api::metrics::open_app(core.clone());
                Some(tokio::spawn(async move { axum::serve(open, app).await }))
            }
            None => None,
        };
        // One shutdown signal for both listeners.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let until_stopped = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            }
        };
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(true);
        });
        let boot_app = crate::api::boot_router(state.clone());
        let boot = tokio::spawn(axum::serve(boot_listener, boot_app).with_graceful_shutdown(until_stopped()).into_future());
        let addr = listener.local_addr()?;
        if let Some(tls) = &tls {
            tracing::info!(ca = %tls.ca_file.display(), fingerprint = %tls.ca_fingerprint, "TLS: clients trust this CA");
        }
        tracing::info!(%addr, url = %core.public_url, boot = %core.boot_url, "metalhost is serving");
        let result = match tls {
            Some(tls) => {
                use axum::serve::ListenerExt;
                // HSTS: a browser that once reached the web view over TLS never falls back to plain HTTP.
                let router = router.layer(tower_http::set_header::SetResponseHeaderLayer::if_not_present(
                    axum::http::header::STRICT_TRANSPORT_SECURITY,
                    axum::http::HeaderValue::from_static("max-age=31536000"),
                ));
                // tap_io: axum knows a connection's peer address through it for any listener.
                let listener = crate::tls::TlsListener::new(listener, tls.config)?.tap_io(|_| {});
                axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>())
                    .with_graceful_shutdown(until_stopped())
                    .await
            }
            None => {
                axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>())
                    .with_graceful_shutdown(until_stopped())
                    .await
            }
        };
        boot.abort();
        background.abort();
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        if let Some(dnsmasq) = dnsmasq {
            // Dropping the task drops the child, which kill_on_drop stops.
            dnsmasq.abort();
            let _ = dnsmasq.await;
        }
        tracing::info!("metalhost stopped");
        result.context("server failed")
    }
}

/// This machine's name, for the default daemon name.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "metalhost".to_owned())
}

/// Without a configured token the daemon makes one and keeps it in the data dir (mode 0600),
/// so a fresh install is never open to anyone who can reach the port.
fn generated_token(config: &Config) -> anyhow::Result<Secret> {
    let path = config.data_dir.join("operator-token");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return Ok(Secret::new(existing.trim()));
    }
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    write_private(&path, &token).with_context(|| format!("cannot write {}", path.display()))?;
    tracing::warn!(file = %path.display(), "no operator token configured: generated one into this file");
    Ok(Secret::new(token))
}

fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(contents.as_bytes())
}

fn restrict_permissions(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    // The database holds BMC and switch passwords.
    if let Err(e) = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
        tracing::warn!(dir = %dir.display(), "cannot restrict data dir permissions: {e}");
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot listen for SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
    }
}
