//! `sonde serve`: the daemon, from a config file or as the demo. Binds the
//! listener (refusing a non-loopback address without tokens, which the
//! config check enforces), serves until SIGINT/SIGTERM, reloads on SIGHUP.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use super::{LogFormat, exit};
use crate::daemon::{self, ConfigSource, Daemon};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The config file (YAML, or TOML when it ends in .toml); see deploy/sonde.example.yaml.
    #[arg(
        long,
        short = 'c',
        value_name = "FILE",
        required_unless_present = "demo"
    )]
    config: Option<PathBuf>,
    /// Every built-in probe each minute against the bundled sample cluster.
    #[arg(long, conflicts_with = "config")]
    demo: bool,
    /// The demo's listen address.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:8080",
        requires = "demo"
    )]
    listen: SocketAddr,
    /// The demo's folder (the sample cluster and the SQLite file).
    #[arg(long, value_name = "DIR", requires = "demo")]
    data_dir: Option<PathBuf>,
    /// Check the config (and load every probe), then exit.
    #[arg(long)]
    check: bool,
    /// Log lines as text or JSON (one object per line, with the run's span).
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

pub async fn serve(args: ServeArgs) -> Result<u8> {
    let source = if args.demo {
        let dir = args
            .data_dir
            .clone()
            .unwrap_or_else(daemon::demo::default_data_dir);
        let config = daemon::demo::config(&dir, args.listen)?;
        ConfigSource::Fixed(Box::new(config), dir)
    } else {
        ConfigSource::File(
            args.config
                .clone()
                .expect("clap requires --config without --demo"),
        )
    };
    if args.check {
        let runtime = crate::runtime::ProbeRuntime::new(Default::default())?;
        let checked = match &source {
            ConfigSource::File(p) => daemon::config::Checked::load(p)?,
            ConfigSource::Fixed(c, base) => {
                c.as_ref()
                    .clone()
                    .validate("the demo config", base, &|v| std::env::var(v).ok())?
            }
        };
        daemon::probes::load(&runtime, &checked.probes)
            .await
            .map_err(|p| anyhow::anyhow!("{}", p.join("; ")))?;
        println!("config ok: {} probes", checked.probes.len());
        return Ok(exit::OK);
    }
    let d = Daemon::start(source).await?;
    let loaded = d.loaded();
    let listen = loaded.checked.config.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let bound = listener.local_addr()?;
    // Files checked at load; read again here (they may have changed since).
    let tls = match &loaded.checked.config.tls {
        Some(t) => Some(std::sync::Arc::new(daemon::tls::CertFiles::open(
            &t.cert_file,
            &t.key_file,
        )?)),
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(
        url = %format!("{scheme}://{bound}/"),
        store = %d.store().path().display(),
        cluster = %loaded.source,
        probes = d.probes().len(),
        "sonde is serving"
    );
    eprintln!(
        "sonde: serving {scheme}://{bound}/ (store {})",
        d.store().path().display()
    );
    drop(loaded);
    tokio::spawn(daemon::reload_on_sighup(d.clone()));
    let app = daemon::api::router(d.clone());
    match tls {
        Some(files) => {
            daemon::tls::serve(
                listener,
                daemon::tls::acceptor(files),
                app,
                shutdown_signal(),
            )
            .await
            .context("serving HTTPS")?;
        }
        None => axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("serving HTTP")?,
    }
    tracing::info!("shutting down: waiting for runs in flight");
    d.shutdown(Duration::from_secs(30)).await;
    Ok(exit::OK)
}

pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(e) => {
            tracing::warn!("cannot listen for SIGTERM ({e}); stop with Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
