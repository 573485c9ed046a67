//! Scanning with no site (seeds 002–003, I1–I4): against an offline scan catalog file the
//! top-level site signed (`koshin catalog offline`), verified with the site's archive key —
//! given once with `--key`, then trusted from `STATE/catalog-keys/` — and the results
//! written to a file that `koshin import scan-results` brings into a site. The messages
//! stay queued too: an enrolled agent that reaches its site sends the same batches, which the
//! site takes once.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use koshin_apt::verify::Keyring;
use koshin_domain::scan::ScanTrigger;
use koshin_wire::{
    OFFLINE_CATALOG_FORMAT, OFFLINE_CATALOG_MAGIC, OfflineCatalog, OfflineClient,
    OfflineScanResults, SCAN_RESULTS_FORMAT, ScanOutput,
};

use crate::db::AgentDb;

const WHAT: &str = "koshin offline scan catalog";

fn keys_dir(state: &Path) -> PathBuf {
    state.join("catalog-keys")
}

/// The keys offline catalogs are verified with: `extra` (a key given now), the site's
/// archive key from the machine policy held (an enrolled agent), and those trusted.
fn keyring(state: &Path, extra: Option<&str>) -> anyhow::Result<Keyring> {
    let mut keys: Vec<(String, String)> = Vec::new();
    if let Some(k) = extra {
        keys.push(("the key given".into(), k.to_string()));
    }
    if state.join("agent.db").exists()
        && let Ok(db) = AgentDb::open(state)
        && let Some(policy) = db.get("policy")?
        && let Ok(p) = serde_json::from_str::<koshin_wire::MachinePolicy>(&policy)
        && let Some(k) = p.archive_key
    {
        keys.push(("the site's archive key (machine policy)".into(), k));
    }
    keys.extend(koshin_apt::signed::trusted_keys(&keys_dir(state))?);
    if keys.is_empty() {
        anyhow::bail!(
            "no key to verify the offline catalog with: give the site's public archive key (its DATA/pki/archive-key.pub.asc) with --key"
        );
    }
    Ok(Keyring::from_armored(&keys)?)
}

/// Verifies and reads an offline catalog file; a key given with it is trusted from then on
/// once a catalog it signed verifies.
pub fn read_catalog(
    state: &Path,
    bytes: &[u8],
    key: Option<&str>,
) -> anyhow::Result<OfflineCatalog> {
    let keyring = keyring(state, key)?;
    let (fields, json) = koshin_apt::signed::verify(
        OFFLINE_CATALOG_MAGIC,
        WHAT,
        bytes,
        &keyring,
        "give the site's public archive key (its DATA/pki/archive-key.pub.asc) with --key",
    )
    .map_err(|e| anyhow!("offline catalog refused: {e}"))?;
    let doc: OfflineCatalog = serde_json::from_slice(&json)
        .map_err(|e| anyhow!("offline catalog refused: damaged: {e}"))?;
    let field = |k: &str| fields.get(k).map(String::as_str).unwrap_or_default();
    if doc.format != OFFLINE_CATALOG_FORMAT
        || doc.site != field("Site")
        || doc.catalog.content_version.to_string() != field("Content-Version")
        || doc.catalog.updates.len().to_string() != field("Updates")
    {
        anyhow::bail!(
            "offline catalog refused: damaged: the header does not agree with the signed catalog"
        );
    }
    if let Some(k) = key {
        let one = Keyring::from_armored(&[("the key given".into(), k.to_string())])?;
        if let [(fingerprint, _)] = one.key_summaries().as_slice() {
            let dir = keys_dir(state);
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            std::fs::write(dir.join(format!("{fingerprint}.asc")), k)
                .with_context(|| format!("cannot keep the key in {}", dir.display()))?;
        }
    }
    Ok(doc)
}

/// Who this machine is, for the results: its enrolled identity, or a client id kept for its
/// offline scans, with what its inventory says of it.
fn client(db: &AgentDb, root: &Path) -> anyhow::Result<OfflineClient> {
    let inv = crate::inventory::collect(root);
    let prop = |k: &str| {
        inv.properties
            .get(k)
            .and_then(|v| v.first())
            .cloned()
            .unwrap_or_default()
    };
    let (client_id, name) = match db.identity() {
        Ok(id) => (id.client_id, id.name),
        Err(_) => {
            let id = match db.get("offline_client_id")? {
                Some(id) => id,
                None => {
                    let id = uuid::Uuid::new_v4().to_string();
                    db.set("offline_client_id", &id)?;
                    id
                }
            };
            (id, prop("name"))
        }
    };
    Ok(OfflineClient {
        client_id,
        name,
        os: prop("os.name"),
        os_release: prop("os.release"),
        architecture: prop("architecture"),
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
    })
}

/// Scans the machine under `root` against the offline catalog in `file` and writes the
/// results to `results`; returns the scan's output and the results.
pub async fn scan(
    state: &Path,
    root: &Path,
    file: &Path,
    key: Option<&str>,
    results: &Path,
    detail: crate::scan::Detail,
) -> anyhow::Result<(ScanOutput, OfflineScanResults)> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let doc = read_catalog(state, &bytes, key)?;
    let mut db = AgentDb::open(state)?;
    crate::scan::apply_catalog(&mut db, &doc.catalog, crate::now_ms())?;
    let out = crate::scan::scan_detail(&mut db, None, root, ScanTrigger::Offline, detail).await?;
    let who = client(&db, root)?;
    let batches = crate::send::pending_batches(&mut db, &who.client_id)?;
    let r = OfflineScanResults {
        format: SCAN_RESULTS_FORMAT.into(),
        client: who,
        catalog_site: doc.site,
        content_version: doc.catalog.content_version,
        batches,
    };
    let tmp = results.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&r)?)
        .and_then(|()| std::fs::rename(&tmp, results))
        .with_context(|| format!("cannot write {}", results.display()))?;
    Ok((out, r))
}

/// The most an offline catalog may be (the full Debian catalog makes about 20 MB).
const MAX_CATALOG: u64 = 1 << 30;

/// The scan tool (I2, I4): scans the machine under `root` against the offline catalog inside
/// the site's `koshin-scan-catalog` Debian package at `deb` (fetched from a distribution
/// point), verified like any offline catalog. The state messages queue as for any scan.
pub async fn scan_with_package(
    db: &mut AgentDb,
    state: &Path,
    root: &Path,
    deb: &Path,
) -> anyhow::Result<(OfflineCatalog, ScanOutput)> {
    let d = deb.to_path_buf();
    let bytes = tokio::task::spawn_blocking(move || {
        koshin_apt::debfile::read_data_file(&d, koshin_wire::OFFLINE_CATALOG_DEB_PATH, MAX_CATALOG)
    })
    .await?
    .map_err(|e| anyhow!("offline catalog refused: {e}"))?;
    let doc = read_catalog(state, &bytes, None)?;
    crate::scan::apply_catalog(db, &doc.catalog, crate::now_ms())?;
    let out = crate::scan::scan(db, None, root, ScanTrigger::Offline).await?;
    Ok((doc, out))
}

/// Where the sync host keeps the newest offline catalog it fetched.
pub fn kept_catalog(state: &Path) -> PathBuf {
    state.join("offline").join("scan-catalog.ksc")
}

/// The sync host's refresh (I1): fetches the offline catalog from the site, verifies it,
/// and keeps it as [`kept_catalog`] (written whole, then renamed). Returns its content
/// version.
pub async fn refresh(state: &Path, mp: &crate::mp::Mp) -> anyhow::Result<i64> {
    let bytes = mp
        .offline_catalog()
        .await
        .map_err(|e| anyhow!("cannot fetch the offline catalog: {e}"))?;
    let doc = read_catalog(state, &bytes, None)?;
    let path = kept_catalog(state);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = path.with_extension("ksc.tmp");
    std::fs::write(&tmp, &bytes)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(doc.catalog.content_version)
}
