//! Disconnected operation (seeds 002–003): the **offline scan catalog** — the site's client
//! catalog for its selected products, signed with its archive key
//! (`koshin_apt::signed`), which a client that cannot reach any site scans against — and
//! the import of the results such a scan wrote to a file.

use std::collections::BTreeMap;

use koshin_domain::status::{LEGACY_CATALOG_SYNC_DONE, SYNC_MANAGER, Severity};
use koshin_store::{ClientIdentity, NewClient};
use koshin_wire::{
    OFFLINE_CATALOG_FORMAT, OFFLINE_CATALOG_MAGIC, OfflineCatalog, OfflineCatalogOut,
    OfflineScanResults, SCAN_RESULTS_FORMAT, ScanResultsImported,
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
    let out = OfflineCatalogOut {
        site: doc.site.clone(),
        content_version: doc.catalog.content_version,
        updates: doc.catalog.updates.len() as u64,
        bytes: bytes.len() as u64,
        created: doc.created,
        signed_by: doc.signed_by.clone(),
    };
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
        "Offline scan catalog at content version {}: {} updates, {} bytes, in {}",
        out.content_version,
        out.updates,
        out.bytes,
        path.display()
    ));
    Ok((bytes, out))
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
