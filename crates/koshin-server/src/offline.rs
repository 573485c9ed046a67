//! Disconnected operation (seeds 002–003): the **offline scan catalog** — the site's client
//! catalog for its selected products, signed with its archive key
//! (`koshin_apt::signed`), which a client that cannot reach any site scans against — and
//! the import of the results such a scan wrote to a file.

use std::collections::BTreeMap;

use koshin_domain::status::{LEGACY_CATALOG_SYNC_DONE, SYNC_MANAGER, Severity};
use koshin_store::{ClientIdentity, NewClient};
use koshin_wire::{
    OFFLINE_CATALOG_DEB, OFFLINE_CATALOG_DEB_PATH, OFFLINE_CATALOG_FORMAT, OFFLINE_CATALOG_MAGIC,
    OFFLINE_CATALOG_PACKAGE, OfflineCatalog, OfflineCatalogOut, OfflineScanResults,
    SCAN_RESULTS_FORMAT, ScanResultsImported,
};
use sha2::Digest;

use crate::site::Site;

/// Where the site keeps the newest offline catalog it made.
pub const CATALOG_FILE: &str = "offline/scan-catalog.ksc";

/// Makes the offline scan catalog of the site's catalog now, keeps it as `CATALOG_FILE`
/// (written whole, then renamed into place) and reports 6710. Returns the file and what
/// it holds.
pub fn build(site: &Site) -> anyhow::Result<(Vec<u8>, OfflineCatalogOut)> {
    let catalog = site.store.client_catalog(0, "")?;
    let doc = OfflineCatalog {
        format: OFFLINE_CATALOG_FORMAT.into(),
        site: site.config.site.code.clone(),
        created: jiff::Timestamp::now(),
        signed_by: site.content.key.fingerprint(),
        products: site.config.sync.products.clone(),
        catalog,
    };
    let fields = [
        ("Site", doc.site.clone()),
        ("Content-Version", doc.catalog.content_version.to_string()),
        ("Updates", doc.catalog.updates.len().to_string()),
        ("Products", doc.products.join(", ")),
        ("Created", doc.created.to_string()),
    ];
    let bytes = koshin_apt::signed::write(OFFLINE_CATALOG_MAGIC, &fields, &doc, &site.content.key)?;
    let path = site.data.join(CATALOG_FILE);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    }
    let tmp = path.with_extension("ksc.tmp");
    std::fs::write(&tmp, &bytes)
        .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    let mut out = OfflineCatalogOut {
        site: doc.site.clone(),
        content_version: doc.catalog.content_version,
        updates: doc.catalog.updates.len() as u64,
        bytes: bytes.len() as u64,
        created: doc.created,
        signed_by: doc.signed_by.clone(),
        package_id: String::new(),
        deb_version: String::new(),
    };
    let (package, version) = package_catalog(site, &bytes, &out)?;
    out.package_id = package.id;
    out.deb_version = version;
    site.content.wake.notify_one();
    site.status.report(
        &site.sync_log,
        SYNC_MANAGER,
        LEGACY_CATALOG_SYNC_DONE,
        Severity::Informational,
        vec![],
        BTreeMap::from([
            (
                "content_version".to_string(),
                out.content_version.to_string(),
            ),
            ("updates".to_string(), out.updates.to_string()),
        ]),
    );
    site.sync_log.line(format!(
        "Offline scan catalog at content version {}: {} updates, {} bytes, in {}; content package {} ({} {})",
        out.content_version,
        out.updates,
        out.bytes,
        path.display(),
        out.package_id,
        OFFLINE_CATALOG_DEB,
        out.deb_version,
    ));
    Ok((bytes, out))
}

/// Wraps the catalog in a Debian package (`koshin-scan-catalog`, version
/// `<content version>.<seconds since 1970>`, the file at [`OFFLINE_CATALOG_DEB_PATH`]), puts it
/// into the content library and makes it the file of the site's "Offline Scan Catalog" content
/// package, which the distribution manager then sends to the distribution points (I1: the
/// file lands in a package source with a current timestamp and is distributed to DPs).
fn package_catalog(
    site: &Site,
    bytes: &[u8],
    out: &OfflineCatalogOut,
) -> anyhow::Result<(koshin_store::PackageRecord, String)> {
    let created_s = out.created.as_second();
    let version = format!("{}.{created_s}", out.content_version);
    let control = format!(
        "Package: {OFFLINE_CATALOG_DEB}\n\
         Version: {version}\n\
         Architecture: all\n\
         Maintainer: koshin site {site_code} <root@localhost>\n\
         Installed-Size: {kib}\n\
         Section: admin\n\
         Priority: optional\n\
         Description: koshin offline scan catalog of site {site_code}\n \
         Content version {cv}, {updates} updates, signed by {fpr}.\n \
         Scan with: koshin-agent scan --offline-catalog /{OFFLINE_CATALOG_DEB_PATH}",
        site_code = out.site,
        kib = bytes.len().div_ceil(1024),
        cv = out.content_version,
        updates = out.updates,
        fpr = out.signed_by,
    );
    let name = format!("{OFFLINE_CATALOG_DEB}_{version}_all.deb");
    let tmp_dir = site.data.join("offline");
    let built = tmp_dir.join(&name);
    koshin_apt::debfile::build(
        &built,
        &control,
        &[koshin_apt::debfile::DebEntry {
            path: OFFLINE_CATALOG_DEB_PATH,
            data: bytes,
            mode: 0o644,
        }],
        u64::try_from(created_s).unwrap_or(0),
    )?;
    let sha256 = crate::content::library::sha256_file(&built)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", built.display()))?;
    let size = std::fs::metadata(&built)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", built.display()))?
        .len();
    let dest = site.content.library_path(&sha256);
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::rename(&built, &dest)
        .map_err(|e| anyhow::anyhow!("cannot move the package into the library: {e}"))?;
    let file = koshin_store::LibraryFile {
        sha256,
        size: i64::try_from(size).unwrap_or(i64::MAX),
        name: name.clone(),
        control: control.clone(),
    };
    let pool = format!("pool/koshin/k/{OFFLINE_CATALOG_DEB}/{name}");
    let audit = koshin_store::AuditEntry::system(
        "package-offline-catalog",
        OFFLINE_CATALOG_PACKAGE,
        format!("packaged the offline scan catalog as {OFFLINE_CATALOG_DEB} {version}"),
    );
    let package = site.store.put_site_package(
        &site.config.site.code,
        OFFLINE_CATALOG_PACKAGE,
        &file,
        &pool,
        &audit,
    )?;
    Ok((package, version))
}

/// Stores the results of an offline scan: for the client they name, registered here
/// (without a credential: it cannot sign in until it enrols) when the site does not know
/// it, as one batch — idempotent by its batch id, like a batch the agent sends.
pub fn import_results(
    site: &Site,
    results: &OfflineScanResults,
) -> Result<ScanResultsImported, crate::http::AppError> {
    use crate::http::AppError;
    if results.format != SCAN_RESULTS_FORMAT {
        return Err(AppError::BadRequest(format!(
            "not offline scan results: the format is '{}'",
            results.format
        )));
    }
    let c = &results.client;
    if results.batches.iter().any(|b| b.client_id != c.client_id) {
        return Err(AppError::BadRequest(
            "damaged: the batch names another client than the results".into(),
        ));
    }
    if uuid::Uuid::parse_str(&c.client_id).is_err() {
        return Err(AppError::BadRequest(format!(
            "'{}' is not a client id",
            c.client_id
        )));
    }
    crate::http::error::check_name("computer", &c.name)?;
    let now = jiff::Timestamp::now().as_millisecond();
    let (client, registered): (ClientIdentity, bool) =
        match site.store.client_by_id(&c.client_id)? {
            Some(known) => (known, false),
            None => {
                // A credential no one holds: the client enrols for real to talk to the site.
                let unusable = hex::encode(sha2::Sha256::digest(uuid::Uuid::new_v4().as_bytes()));
                let new = NewClient {
                    client_id: c.client_id.clone(),
                    name: c.name.clone(),
                    os: c.os.clone(),
                    os_release: c.os_release.clone(),
                    architecture: c.architecture.clone(),
                    site: site.config.site.code.clone(),
                    agent_version: c.agent_version.clone(),
                };
                (
                    site.store.enroll_client(&new, &unusable, true, None, now)?,
                    true,
                )
            }
        };
    let (mut stored, mut duplicate, mut unknown) = (0, true, 0);
    for batch in &results.batches {
        let ack = site.store.ingest_states(&client, batch, now)?;
        stored += ack.stored;
        duplicate &= ack.duplicate;
        unknown += ack.unknown_updates.len() as u64;
    }
    Ok(ScanResultsImported {
        computer: client.name,
        client_id: client.client_id,
        registered,
        stored,
        duplicate: duplicate && !results.batches.is_empty(),
        unknown_updates: unknown,
    })
}

/// Where the designation is kept (`site_kv`).
const SYNC_HOST_KEY: &str = "offline_sync_host";
/// The documented refresh interval of the offline catalog (I1).
pub const DEFAULT_REFRESH_DAYS: u32 = 7;

/// The one computer of the hierarchy that refreshes the offline scan catalog (I1): the
/// top-level site itself, or a named client, which fetches it from the site.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SyncHost {
    /// `site` for the top-level site, else the client's name.
    pub host: String,
    /// The client's id when a client is the sync host.
    #[serde(default)]
    pub client_id: Option<String>,
    pub refresh_days: u32,
    pub set: jiff::Timestamp,
    pub set_by: String,
}

/// The sync host designated, if any.
pub fn sync_host(site: &Site) -> anyhow::Result<Option<SyncHost>> {
    match site.store.site_get(SYNC_HOST_KEY)? {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) => Ok(Some(serde_json::from_str(&v).map_err(|e| {
            anyhow::anyhow!("the stored offline catalog sync host is unreadable: {e}")
        })?)),
    }
}

/// Designates the sync host. Only the top-level site designates one, and only one: a
/// second is refused, naming the first.
pub fn set_sync_host(
    site: &Site,
    host: &str,
    refresh_days: u32,
    actor: &str,
) -> Result<SyncHost, crate::http::AppError> {
    use crate::http::AppError;
    if !site.config.site.parent.is_empty() {
        return Err(AppError::Conflict(
            "the offline catalog's sync host is designated at the top-level site of the hierarchy, not at a child site".into(),
        ));
    }
    if !(1..=365).contains(&refresh_days) {
        return Err(AppError::BadRequest(
            "the refresh interval is 1 to 365 days".into(),
        ));
    }
    let internal = |e: anyhow::Error| AppError::Internal(format!("{e:#}"));
    // A client by name or client id: (its name, its id).
    let client = if host == "site" {
        None
    } else {
        let known = site
            .store
            .get_client(host, &koshin_domain::Scope::All)?
            .ok_or_else(|| {
                AppError::NotFound(format!(
                    "no client '{host}' (koshin clients list); use 'site' for this site"
                ))
            })?;
        Some((known.summary.name, known.summary.client_id))
    };
    let client_id = client.as_ref().map(|(_, id)| id.clone());
    if let Some(have) = sync_host(site).map_err(internal)? {
        let same = have.host == host || (client_id.is_some() && have.client_id == client_id);
        if !same {
            return Err(AppError::Conflict(format!(
                "{} is the offline catalog's sync host already (set {} by {}); a hierarchy has one: remove it first (koshin catalog sync-host --remove)",
                if have.host == "site" {
                    format!("site {}", site.config.site.code)
                } else {
                    format!("client {}", have.host)
                },
                have.set,
                have.set_by
            )));
        }
    }
    let h = SyncHost {
        host: client.map_or_else(|| "site".to_string(), |(name, _)| name),
        client_id,
        refresh_days,
        set: jiff::Timestamp::now(),
        set_by: actor.to_string(),
    };
    let json = serde_json::to_string(&h).map_err(|e| AppError::Internal(e.to_string()))?;
    site.store.site_set(SYNC_HOST_KEY, &json)?;
    site.sync_log.line(format!(
        "The offline scan catalog's sync host is now {} (every {} days)",
        h.host, h.refresh_days
    ));
    Ok(h)
}

/// Removes the designation.
pub fn remove_sync_host(site: &Site) -> anyhow::Result<Option<SyncHost>> {
    let had = sync_host(site)?;
    site.store.site_set(SYNC_HOST_KEY, "")?;
    Ok(had)
}

/// The content version of the offline catalog the site keeps, from its header (read only up
/// to the header: the file may be tens of megabytes).
pub fn kept_version(site: &Site) -> Option<i64> {
    use std::io::Read;
    let mut head = Vec::with_capacity(4096);
    std::fs::File::open(site.data.join(CATALOG_FILE))
        .ok()?
        .take(4096)
        .read_to_end(&mut head)
        .ok()?;
    let text = String::from_utf8_lossy(&head);
    text.lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix("Content-Version:"))
        .and_then(|v| v.trim().parse().ok())
}

/// When the site last made the offline catalog (the kept file's time).
fn last_built(site: &Site) -> Option<std::time::SystemTime> {
    std::fs::metadata(site.data.join(CATALOG_FILE))
        .and_then(|m| m.modified())
        .ok()
}

/// The site as sync host: makes the catalog when the kept one is older than the refresh
/// interval (and at start when there is none), checking hourly, until `stop`.
pub async fn run(site: std::sync::Arc<Site>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        let due = match sync_host(&site) {
            Ok(Some(h)) if h.host == "site" => last_built(&site).is_none_or(|t| {
                t.elapsed()
                    .is_ok_and(|age| age.as_secs() >= u64::from(h.refresh_days) * 86_400)
            }),
            Ok(_) => false,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the offline catalog's sync host");
                false
            }
        };
        if due {
            let s = site.clone();
            match tokio::task::spawn_blocking(move || build(&s)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => site
                    .sync_log
                    .line(format!("Cannot make the offline scan catalog: {e:#}")),
                Err(e) => site
                    .sync_log
                    .line(format!("Cannot make the offline scan catalog: {e}")),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(3600)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
