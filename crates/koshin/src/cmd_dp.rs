//! `koshin dp serve` (a remote distribution point) and `koshin sup serve` (a replica update
//! point). On first start each registers at the site with the administrator's token the CLI
//! holds, giving the site a fresh push token and keeping only its SHA-256 (`DATA/dp.json` or
//! `DATA/sup.json`, 0600); then it serves.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use koshin_wire::{DpOut, DpRegister};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::client::Api;

/// What a registration needs: the name, the address, the push token (kept only hashed).
struct Registration {
    name: String,
    url: String,
    push_token: String,
}

/// Binds `listen` and reads the identity in `data/file`, or registers (with what
/// `register` does with the name, address and push token) and writes it, 0600.
async fn start<T: Serialize + DeserializeOwned>(
    data: &Path,
    file: &str,
    listen: &str,
    name: Option<String>,
    url: Option<String>,
    register: impl AsyncFnOnce(Registration) -> anyhow::Result<T>,
) -> anyhow::Result<(tokio::net::TcpListener, SocketAddr, T)> {
    std::fs::create_dir_all(data).with_context(|| format!("cannot create {}", data.display()))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let path = data.join(file);
    if path.exists() {
        let text = std::fs::read_to_string(&path)?;
        let identity = serde_json::from_str::<T>(&text)
            .with_context(|| format!("{} is unreadable", path.display()))?;
        return Ok((listener, addr, identity));
    }
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
    let identity = register(Registration {
        name: name.unwrap_or_else(koshin_server::config::hostname),
        url,
        push_token: format!("ksp_{}", hex::encode(rand::random::<[u8; 32]>())),
    })
    .await?;
    koshin_server::init::write_private(&path, &serde_json::to_string_pretty(&identity)?)?;
    Ok((listener, addr, identity))
}

async fn run(listener: tokio::net::TcpListener, app: axum::Router) -> anyhow::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

pub async fn serve(
    api: &Api,
    data: &Path,
    listen: &str,
    name: Option<String>,
    url: Option<String>,
) -> anyhow::Result<()> {
    use koshin_server::content::remote::{DpIdentity, DpState, IDENTITY_FILE, router};
    let (listener, addr, identity) = start(
        data,
        IDENTITY_FILE,
        listen,
        name,
        url,
        async |r: Registration| {
            let d: DpOut = api
                .post(
                    "/api/v1/dps/register",
                    &DpRegister {
                        name: r.name,
                        url: r.url.clone(),
                        push_token: r.push_token.clone(),
                    },
                    "register the distribution point",
                )
                .await?;
            Ok(DpIdentity {
                site: api.base().to_string(),
                name: d.name,
                url: r.url,
                push_token_sha256: koshin_server::init::hash_token(&r.push_token),
            })
        },
    )
    .await?;
    let state = DpState::open(data, identity.clone())?;
    println!(
        "Distribution point {} of site {}: {} served on {} (listening on {addr})",
        identity.name,
        identity.site,
        data.join("repo").display(),
        identity.url
    );
    run(listener, router(state)).await
}

pub async fn sup_serve(
    api: &Api,
    data: &Path,
    listen: &str,
    name: Option<String>,
    url: Option<String>,
) -> anyhow::Result<()> {
    use koshin_server::sup::{IDENTITY_FILE, SupIdentity, SupState, router};
    let (listener, addr, identity) = start(
        data,
        IDENTITY_FILE,
        listen,
        name,
        url,
        async |r: Registration| {
            let answer: serde_json::Value = api
                .post(
                    "/api/v1/sups/register",
                    &serde_json::json!({"name": r.name, "url": r.url, "push_token": r.push_token}),
                    "register the update point",
                )
                .await?;
            Ok(SupIdentity {
                site: api.base().to_string(),
                site_code: answer["site_code"].as_str().unwrap_or_default().to_string(),
                name: r.name,
                url: r.url,
                pull_token: answer["pull_token"]
                    .as_str()
                    .ok_or_else(|| anyhow::anyhow!("the site gave no token"))?
                    .to_string(),
                push_token_sha256: koshin_server::init::hash_token(&r.push_token),
            })
        },
    )
    .await?;
    let state = SupState::open(data, identity.clone())?;
    println!(
        "Update point {} (replica) of site {} served on {} (listening on {addr})",
        identity.name, identity.site, identity.url
    );
    run(listener, router(state)).await
}

/// `koshin sup serve --internet`: registers at the site on first start as internet-facing
/// (the site issues its server certificate from the site CA unless `tls` names files of
/// its own), then serves HTTPS only and polls the site every `poll`.
#[allow(clippy::too_many_arguments)]
pub async fn isup_serve(
    api: &Api,
    data: &Path,
    listen: &str,
    name: Option<String>,
    url: Option<String>,
    hostnames: Vec<String>,
    tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    poll: std::time::Duration,
) -> anyhow::Result<()> {
    use koshin_server::http::export::InternetSupRegistered;
    use koshin_server::isup::{
        CERT_FILE, IDENTITY_FILE, InternetSup, InternetSupIdentity, KEY_FILE, serve,
    };
    std::fs::create_dir_all(data).with_context(|| format!("cannot create {}", data.display()))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let identity = if data.join(IDENTITY_FILE).exists() {
        InternetSup::identity(data)?
    } else {
        let url = url.unwrap_or_else(|| {
            let host = if addr.ip().is_unspecified() {
                koshin_server::config::hostname()
            } else {
                addr.ip().to_string()
            };
            format!("https://{host}:{}", addr.port())
        });
        if !url.starts_with("https://") {
            anyhow::bail!("an internet-facing update point serves only HTTPS: --url https://…");
        }
        let name = name.unwrap_or_else(koshin_server::config::hostname);
        let r: InternetSupRegistered = api
            .post(
                "/api/v1/sups/register-internet",
                &serde_json::json!({
                    "name": name, "url": url, "names": hostnames,
                    "certificate": tls.is_none(),
                }),
                "register the internet-facing update point",
            )
            .await?;
        std::fs::create_dir_all(data.join("tls"))?;
        // A key left by a registration that failed half-way is replaced.
        let _ = std::fs::remove_file(data.join(KEY_FILE));
        match (&tls, r.certificate, r.private_key) {
            (Some((cert, key)), _, _) => {
                std::fs::copy(cert, data.join(CERT_FILE))
                    .with_context(|| format!("cannot copy {}", cert.display()))?;
                let pem = std::fs::read_to_string(key)
                    .with_context(|| format!("cannot read {}", key.display()))?;
                koshin_server::init::write_private(&data.join(KEY_FILE), &pem)?;
            }
            (None, Some(cert), Some(key)) => {
                std::fs::write(data.join(CERT_FILE), cert)?;
                koshin_server::init::write_private(&data.join(KEY_FILE), &key)?;
            }
            _ => anyhow::bail!("the site issued no server certificate"),
        }
        let identity = InternetSupIdentity {
            site: api.base().to_string(),
            site_code: r.site_code,
            name,
            url,
            pull_token: r.pull_token,
            archive_key: r.archive_key,
            ca_certificate: r.ca_certificate,
        };
        koshin_server::init::write_private(
            &data.join(IDENTITY_FILE),
            &serde_json::to_string_pretty(&identity)?,
        )?;
        identity
    };
    let state = InternetSup::open(data, identity.clone())?;
    println!(
        "Update point {} (internet-facing) of site {} served on {} (HTTPS only, listening on {addr}; polls the site every {}s)",
        identity.name,
        identity.site,
        identity.url,
        poll.as_secs()
    );
    serve(state, listener, poll, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
