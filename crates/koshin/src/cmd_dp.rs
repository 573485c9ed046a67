//! `koshin dp serve`: a remote distribution point. On first start it registers at the site
//! with the administrator's token the CLI holds, giving the site a fresh push token and
//! keeping only its SHA-256 (`DATA/dp.json`, 0600); then it serves what the site sends.

use std::path::Path;

use anyhow::Context;
use koshin_server::content::remote::{DpIdentity, DpState, IDENTITY_FILE, router};
use koshin_wire::{DpOut, DpRegister};

use crate::client::Api;

pub async fn serve(
    api: &Api,
    data: &Path,
    listen: &str,
    name: Option<String>,
    url: Option<String>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(data).with_context(|| format!("cannot create {}", data.display()))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let path = data.join(IDENTITY_FILE);
    let identity = if path.exists() {
        let text = std::fs::read_to_string(&path)?;
        serde_json::from_str::<DpIdentity>(&text)
            .with_context(|| format!("{} is unreadable", path.display()))?
    } else {
        let name = name.unwrap_or_else(koshin_server::config::hostname);
        let url = url.unwrap_or_else(|| {
            if addr.ip().is_unspecified() {
                format!(
                    "http://{}:{}",
                    koshin_server::config::hostname(),
                    addr.port()
                )
            } else {
                format!("http://{addr}")
            }
        });
        let push_token = format!("ksp_{}", hex::encode(rand::random::<[u8; 32]>()));
        let d: DpOut = api
            .post(
                "/api/v1/dps/register",
                &DpRegister {
                    name: name.clone(),
                    url: url.clone(),
                    push_token: push_token.clone(),
                },
                "register the distribution point",
            )
            .await?;
        let identity = DpIdentity {
            site: api.base().to_string(),
            name: d.name,
            url,
            push_token_sha256: koshin_server::init::hash_token(&push_token),
        };
        koshin_server::init::write_private(&path, &serde_json::to_string_pretty(&identity)?)?;
        identity
    };
    let state = DpState::open(data, identity.clone())?;
    println!(
        "Distribution point {} of site {}: {} served on {} (listening on {addr})",
        identity.name,
        identity.site,
        data.join("repo").display(),
        identity.url
    );
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
