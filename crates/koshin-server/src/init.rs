//! `koshin site init`: a site's data folder — `koshin.toml` with every default written out,
//! the database, `logs/`, `inboxes/`, `content/`, the local publisher folder, and
//! `admin.token`, a first Full Administrator token (mode 0600) that the CLI uses, and the
//! site's certificate authority and certificate in `pki/` ([`crate::pki`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use koshin_store::{AuthStore, SqliteStore};
use sha2::{Digest, Sha256};

use crate::config::{
    PolicySection, SiteConfig, SiteSection, SyncSection, TlsSection, UpstreamSection,
    validate_site_code,
};

pub const CONFIG_FILE: &str = "koshin.toml";
pub const DATABASE_FILE: &str = "site.db";
pub const TOKEN_FILE: &str = "admin.token";
pub const FULL_ADMINISTRATOR: &str = "Full Administrator";

#[derive(Clone, Debug)]
pub struct InitOptions {
    pub code: String,
    pub data: PathBuf,
    /// "system" or APT one-line entries; empty means ["system"].
    pub upstreams: Vec<String>,
    pub listen: Option<String>,
    pub parent: Option<String>,
    /// A secondary site under `parent` (rather than a primary).
    pub secondary: bool,
}

pub struct InitOutcome {
    pub data: PathBuf,
    pub config_path: PathBuf,
    pub token_path: PathBuf,
    /// `DATA/pki/ca.crt`: the certificate clients trust for HTTPS.
    pub ca_path: PathBuf,
}

/// The folders of a data folder, created by init and checked at start.
pub fn layout(data: &Path) -> Vec<PathBuf> {
    vec![
        data.join("logs"),
        data.join("inboxes").join("wsyncmgr.box"),
        data.join("content"),
        data.join("local-publisher"),
        data.join(crate::reports::REPORTS_DIR),
    ]
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

pub fn init_site(opts: &InitOptions) -> anyhow::Result<InitOutcome> {
    validate_site_code(&opts.code).map_err(anyhow::Error::msg)?;
    let config_path = opts.data.join(CONFIG_FILE);
    if config_path.exists() {
        bail!(
            "{} already exists: this folder already holds a site",
            config_path.display()
        );
    }
    std::fs::create_dir_all(&opts.data)
        .with_context(|| format!("cannot create {}", opts.data.display()))?;
    for dir in layout(&opts.data) {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut upstream = UpstreamSection::default();
    if !opts.upstreams.is_empty() {
        upstream.sources = opts.upstreams.clone();
    }
    let cfg = SiteConfig {
        site: SiteSection {
            code: opts.code.clone(),
            system: String::new(),
            listen: opts
                .listen
                .clone()
                .unwrap_or_else(|| "127.0.0.1:8530".into()),
            public_url: String::new(),
            parent: opts.parent.clone().unwrap_or_default(),
            secondary: opts.secondary,
        },
        upstream,
        sync: SyncSection::default(),
        policy: PolicySection::default(),
        tls: TlsSection::default(),
        content: Default::default(),
        collections: Default::default(),
    };
    cfg.validate().map_err(anyhow::Error::msg)?;
    let store = SqliteStore::open(&opts.data.join(DATABASE_FILE))?;
    store.initialize_site(
        &opts.code,
        &uuid::Uuid::new_v4().braced().to_string().to_uppercase(),
    )?;
    let token = {
        let bytes: [u8; 32] = rand::random();
        format!("ksn_{}", hex::encode(bytes))
    };
    let now = jiff::Timestamp::now().as_millisecond();
    store.add_token(
        "admin (site init)",
        &hash_token(&token),
        FULL_ADMINISTRATOR,
        now,
    )?;
    let token_path = opts.data.join(TOKEN_FILE);
    write_private(&token_path, &format!("{token}\n"))?;
    write_example_local_update(&opts.data.join("local-publisher"))?;
    let pki = crate::pki::SitePki::ensure(&opts.data, &cfg)?;
    // The config goes last: its presence marks a complete site folder.
    std::fs::write(&config_path, cfg.to_documented_toml())
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    Ok(InitOutcome {
        data: opts.data.clone(),
        config_path,
        token_path,
        ca_path: pki.ca_certificate_path(),
    })
}

pub fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn write_example_local_update(dir: &Path) -> anyhow::Result<()> {
    let text = r#"# An example local publisher definition (S12). Copy it to a name ending in .toml to
# publish it; updates are synced when the "Local publisher" product is selected.
# See docs/local-publisher.md.
[[update]]
title = "Contoso Agent 5.1 security fix"
vendor = "Contoso"
article_id = "KB-1001"
bulletin_id = "CSA-2026-001"
severity = "Critical"
classification = "Security Updates"
description = "Fixes a privilege escalation in the Contoso agent."
released = "2026-11-01"
install_command = "dpkg -i contoso-agent_5.1_amd64.deb"

[update.detection]
package = { name = "contoso-agent", version_below = "5.1" }

[[update.content]]
path = "contoso-agent_5.1_amd64.deb"
"#;
    let path = dir.join("example.toml.sample");
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
}
