//! The site hierarchy (S9): a child joins its parent with a join token; after every
//! successful sync a site sends each child a sync notification (`<CODE>.SYN`, file
//! replication); a child's sync replicates its parent's catalog (database replication: the
//! whole catalog, verified by the plan against what the child holds, applied in one
//! transaction with the parent's content version, so an interrupted replication simply runs
//! again) and then notifies its own children. A notification that cannot be delivered stays
//! pending on the link and is sent again at the next wake-up.

use std::time::Duration;

use koshin_store::{ReplicaUpdate, Store};
use koshin_wire::{JoinRequest, JoinResponse, SiteMessage};
use serde::Deserialize;

use crate::site::Site;

fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(600))
}

/// The HTTP client for linked site `code` at `url`: over `https://` it trusts that site's
/// CA only and presents this site's link certificate ([`crate::links::client`]).
fn http(site: &Site, code: &str, url: &str) -> anyhow::Result<reqwest::Client> {
    crate::links::client(site.pki.dir(), code, url, builder())
}

async fn answer<T: serde::de::DeserializeOwned>(
    r: Result<reqwest::Response, reqwest::Error>,
    what: &str,
) -> anyhow::Result<T> {
    let resp = r.map_err(|e| {
        // reqwest's message leaves out the cause (refused, reset, timed out): add it.
        let mut text = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            text.push_str(&format!(": {c}"));
            cause = c.source();
        }
        anyhow::anyhow!("{what}: {text}")
    })?;
    let status = resp.status();
    if !status.is_success() {
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        anyhow::bail!(
            "{what}: HTTP {status}: {}",
            body["error"].as_str().unwrap_or("no reason given")
        );
    }
    Ok(resp.json().await?)
}

/// What a join over `https://` needs from the joining site: its PKI (its CA certificate
/// goes to the parent, the link certificate is stored under it) and the parent's CA
/// certificate (PEM), to verify the parent at this first contact.
pub struct JoinTls<'a> {
    pub pki: &'a crate::pki::SitePki,
    pub parent_ca: Option<&'a str>,
}

/// Joins the parent at `parent_url` with a join token: the link is stored on both sides,
/// each with the token it presents to the other. Over `https://` the child also sends a
/// certificate request and its CA certificate, and keeps the link certificate the parent's
/// CA signs and the parent's CA under `DATA/pki/links/<PARENT>/`. Returns the parent's code.
pub async fn join_parent(
    store: &dyn Store,
    tls: &JoinTls<'_>,
    code: &str,
    secondary: bool,
    parent_url: &str,
    join_token: &str,
    own_url: &str,
) -> anyhow::Result<String> {
    let parent_to_child = format!("ksl_{}", hex::encode(rand::random::<[u8; 32]>()));
    let https = crate::links::is_https(parent_url);
    if https && tls.parent_ca.is_none() {
        anyhow::bail!(
            "{parent_url} is an https:// site: give its CA certificate (--parent-ca FILE, the parent's DATA/pki/ca.crt) to verify it"
        );
    }
    let key_and_csr = if https {
        Some(crate::links::key_and_csr(code)?)
    } else {
        None
    };
    let req = JoinRequest {
        code: code.to_string(),
        kind: if secondary { "secondary" } else { "primary" }.into(),
        url: own_url.to_string(),
        join_token: join_token.to_string(),
        parent_to_child_token: parent_to_child.clone(),
        csr: key_and_csr.as_ref().map(|(_, csr)| csr.clone()),
        site_ca_certificate: https.then(|| tls.pki.ca_certificate_pem().to_string()),
    };
    let base = parent_url.trim_end_matches('/');
    let client = crate::links::with_tls(builder(), base, tls.parent_ca, None)?.build()?;
    let resp: JoinResponse = answer(
        client
            .post(format!("{base}/api/v1/sites/join"))
            .json(&req)
            .send()
            .await,
        "joining the parent site",
    )
    .await?;
    crate::config::validate_site_code(&resp.parent_code)
        .map_err(|e| anyhow::anyhow!("the parent answered an invalid site code: {e}"))?;
    if let (Some((key, _)), Some(parent_ca)) = (&key_and_csr, tls.parent_ca) {
        // The CA the answer carries came over a channel verified with the one given.
        let ca = resp.ca_certificate.as_deref().unwrap_or(parent_ca);
        let certificate = resp.client_certificate.as_deref().map(|c| (key, c));
        if certificate.is_none() {
            tracing::warn!(parent = %resp.parent_code, "the parent issued no link certificate: the link is authenticated by its token only");
        }
        crate::links::save_parent_link(tls.pki.dir(), &resp.parent_code, ca, certificate)?;
    }
    store.set_parent(
        &resp.parent_code,
        base,
        &resp.child_to_parent_token,
        &crate::init::hash_token(&parent_to_child),
        jiff::Timestamp::now().as_millisecond(),
    )?;
    Ok(resp.parent_code)
}

/// What a parent answers a child's replication.
#[derive(Deserialize)]
pub struct ParentCatalog {
    pub site: String,
    pub source_id: String,
    pub content_version: i64,
    #[serde(default)]
    pub content_token: String,
    pub updates: Vec<ReplicaUpdate>,
}

/// The parent link (code, url, token).
pub fn parent(site: &Site) -> anyhow::Result<(String, String, String)> {
    let link = site
        .store
        .site_links()?
        .into_iter()
        .find(|l| l.relation == "parent")
        .ok_or_else(|| {
            anyhow::anyhow!(
                "this site has a parent in its configuration ({}) but has not joined it: koshin site init --parent URL --join-token T",
                site.config.site.parent
            )
        })?;
    let token = site
        .store
        .link_token(&link.code)?
        .ok_or_else(|| anyhow::anyhow!("no token for the parent {}", link.code))?;
    Ok((link.code, link.url, token))
}

/// Fetches the parent's catalog.
pub async fn fetch_parent_catalog(site: &Site) -> anyhow::Result<ParentCatalog> {
    let (code, url, token) = parent(site)?;
    let r = answer(
        http(site, &code, &url)?
            .get(format!("{url}/api/v1/sites/catalog"))
            .bearer_auth(&token)
            .send()
            .await,
        &format!("replicating from the parent {code}"),
    )
    .await;
    record_link(
        site,
        &code,
        r.as_ref().err().map(|e| e.to_string()).as_deref(),
    );
    r
}

/// Records a contact with a linked site (reached when `error` is None); when that changes
/// the link's state, says so in a status message (4800 down, 4801 up) and in `replmgr.log`.
pub fn record_link(site: &Site, code: &str, error: Option<&str>) {
    use koshin_domain::status::{LINK_DOWN, LINK_UP, REPLICATION_MANAGER, Severity};
    let now = jiff::Timestamp::now().as_millisecond();
    let _ = site.store.link_contact(code, now, error);
    if let Ok(true) = site.store.set_link_down(code, error.is_some()) {
        let (id, severity, istr) = match error {
            Some(e) => (
                LINK_DOWN,
                Severity::Warning,
                vec![code.to_string(), e.to_string()],
            ),
            None => (LINK_UP, Severity::Informational, vec![code.to_string()]),
        };
        site.status.report(
            &site.repl_log,
            REPLICATION_MANAGER,
            id,
            severity,
            istr,
            Default::default(),
        );
    }
}

/// Tells the parent where this site is (at its start).
pub async fn hello(site: &Site, own_url: &str) -> anyhow::Result<()> {
    let (code, url, token) = parent(site)?;
    let _: serde_json::Value = answer(
        http(site, &code, &url)?
            .post(format!("{url}/api/v1/sites/hello"))
            .bearer_auth(&token)
            .json(&SiteMessage {
                from: site.config.site.code.clone(),
                url: Some(own_url.to_string()),
            })
            .send()
            .await,
        &format!("saying hello to the parent {code}"),
    )
    .await?;
    Ok(())
}

/// Sends a sync notification to every child whose notification is pending (all of them
/// with `all`); returns (delivered, still pending).
pub async fn notify_children(site: &Site, all: bool) -> (Vec<String>, Vec<String>) {
    let mut delivered = Vec::new();
    let mut pending = Vec::new();
    let Ok(links) = site.store.site_links() else {
        return (delivered, pending);
    };
    for l in links.into_iter().filter(|l| l.relation == "child") {
        if !all && !l.notify_pending {
            continue;
        }
        let _ = site.store.set_notify_pending(&l.code, true);
        let Ok(Some(token)) = site.store.link_token(&l.code) else {
            pending.push(l.code);
            continue;
        };
        let client = match http(site, &l.code, &l.url) {
            Ok(c) => c,
            Err(e) => {
                record_link(site, &l.code, Some(&format!("{e:#}")));
                pending.push(l.code);
                continue;
            }
        };
        let r: anyhow::Result<serde_json::Value> = answer(
            client
                .post(format!(
                    "{}/api/v1/sites/notify",
                    l.url.trim_end_matches('/')
                ))
                .bearer_auth(&token)
                .json(&SiteMessage {
                    from: site.config.site.code.clone(),
                    url: None,
                })
                .send()
                .await,
            &format!("notifying child site {}", l.code),
        )
        .await;
        match r {
            Ok(_) => {
                let _ = site.store.set_notify_pending(&l.code, false);
                record_link(site, &l.code, None);
                delivered.push(l.code);
            }
            Err(e) => {
                record_link(site, &l.code, Some(&e.to_string()));
                pending.push(l.code);
            }
        }
    }
    (delivered, pending)
}

/// Sends what is queued for the parent (at most 500 items: client batches, deployment
/// states, status messages); returns how many went.
pub async fn forward_once(site: &Site) -> anyhow::Result<usize> {
    let store = site.store.clone();
    let queued = tokio::task::spawn_blocking(move || store.upward_batches(500)).await??;
    if queued.is_empty() {
        return Ok(0);
    }
    let (code, url, token) = parent(site)?;
    let mut ids = Vec::with_capacity(queued.len());
    let mut body = Vec::with_capacity(queued.len());
    for row in queued {
        ids.push(row.id);
        match upward_item(&row) {
            Ok(item) => body.push(item),
            // A queue row that does not read cannot be sent, ever: it is named and leaves
            // the queue, so it does not hold up the rows behind it. The data it was made
            // from stays in this site's own tables.
            Err(e) => site.repl_log.line(format!(
                "Queued item {} ({}) for the parent {code} does not read and is dropped from the queue: {e}",
                row.id, row.kind
            )),
        }
    }
    if body.is_empty() {
        let store = site.store.clone();
        tokio::task::spawn_blocking(move || store.upward_done(&ids)).await??;
        return Ok(0);
    }
    let r: anyhow::Result<serde_json::Value> = answer(
        http(site, &code, &url)?
            .post(format!("{url}/api/v1/sites/client-batches"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await,
        &format!("sending client data to the parent {code}"),
    )
    .await;
    record_link(
        site,
        &code,
        r.as_ref().err().map(|e| e.to_string()).as_deref(),
    );
    let answer = r?;
    for refused in answer["refused"].as_array().into_iter().flatten() {
        tracing::warn!(parent = %code, refused = %refused, "the parent refused an item; it stays stored here");
        site.repl_log.line(format!(
            "The parent {code} refused {}: {}. It stays stored here.",
            refused["item"].as_str().unwrap_or("an item"),
            refused["reason"].as_str().unwrap_or("no reason given")
        ));
    }
    let n = ids.len();
    let store = site.store.clone();
    tokio::task::spawn_blocking(move || store.upward_done(&ids)).await??;
    Ok(n)
}

/// A queued row as the item the parent takes.
fn upward_item(row: &koshin_store::UpwardRow) -> anyhow::Result<koshin_wire::UpwardItem> {
    let payload: serde_json::Value = serde_json::from_str(&row.payload_json)?;
    let mut item = koshin_wire::UpwardItem {
        kind: row.kind.clone(),
        client: serde_json::from_str(&row.client_json)?,
        batch: None,
        deployment_status: None,
        status: None,
    };
    match row.kind.as_str() {
        "states" => item.batch = Some(serde_json::from_value(payload)?),
        "deployment-status" => item.deployment_status = Some(serde_json::from_value(payload)?),
        _ => item.status = Some(payload),
    }
    Ok(item)
}

/// Replicates the parent's global data (collections, deployments) changed since the last
/// change applied here; an answer that does not add up is rolled back and everything asked
/// for again. Returns the changes applied.
pub async fn pull_global(site: &Site) -> anyhow::Result<koshin_store::global::GlobalApplied> {
    let (code, url, token) = parent(site)?;
    let since = site
        .store
        .site_links()?
        .into_iter()
        .find(|l| l.code == code)
        .map(|l| l.global_seq)
        .unwrap_or(0);
    let client = http(site, &code, &url)?;
    let fetch = |since: i64| {
        let (url, token, code) = (url.clone(), token.clone(), code.clone());
        let client = client.clone();
        async move {
            let r: anyhow::Result<koshin_wire::GlobalData> = answer(
                client
                    .get(format!("{url}/api/v1/sites/global?since={since}"))
                    .bearer_auth(&token)
                    .send()
                    .await,
                &format!("replicating global data from the parent {code}"),
            )
            .await;
            r
        }
    };
    let r = fetch(since).await;
    record_link(
        site,
        &code,
        r.as_ref().err().map(|e| e.to_string()).as_deref(),
    );
    let data = r?;
    if data.upto == since && !data.full {
        return Ok(Default::default());
    }
    let apply = |data: koshin_wire::GlobalData| {
        let store = site.store.clone();
        let code = code.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let now = jiff::Timestamp::now().as_millisecond();
                store
                    .apply_global(&code, &data, now)
                    .map(|a| (a, data.upto))
            })
            .await
        }
    };
    let (applied, upto) = match apply(data).await? {
        Ok(done) => done,
        Err(e @ (koshin_store::StoreError::Corrupt(_) | koshin_store::StoreError::Conflict(_))) => {
            site.repl_log.line(format!(
                "Global data from {code} not applied: {e}. Replicating all of it again"
            ));
            let data = fetch(0).await?;
            apply(data).await??
        }
        Err(e) => return Err(e.into()),
    };
    if applied != Default::default() {
        site.status.report(
            &site.repl_log,
            koshin_domain::status::REPLICATION_MANAGER,
            koshin_domain::status::GLOBAL_REPLICATED,
            koshin_domain::status::Severity::Informational,
            vec![
                code.clone(),
                upto.to_string(),
                applied.collections.to_string(),
                applied.deployments.to_string(),
                applied.deleted.to_string(),
            ],
            Default::default(),
        );
        if applied.distributions > 0 {
            site.content.wake.notify_one();
        }
    }
    Ok(applied)
}

/// How often a child asks its parent for global data changes (and at every sync).
const GLOBAL_EVERY: Duration = Duration::from_secs(15);

/// Forwards client data to the parent until `stop`: at once while there is more, every two
/// seconds when the queue is empty, backing off to a minute while the parent is away; and
/// replicates the parent's global data every 15 seconds.
pub async fn forward(site: std::sync::Arc<Site>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut failures = 0u32;
    let mut last_global = std::time::Instant::now() - GLOBAL_EVERY;
    loop {
        if *stop.borrow() {
            return;
        }
        if last_global.elapsed() >= GLOBAL_EVERY {
            last_global = std::time::Instant::now();
            if let Err(e) = pull_global(&site).await {
                tracing::warn!(error = %e, "global data from the parent waits");
            }
        }
        let wait = match forward_once(&site).await {
            Ok(n) if n > 0 => {
                failures = 0;
                continue;
            }
            Ok(_) => {
                failures = 0;
                Duration::from_secs(2)
            }
            Err(e) => {
                failures += 1;
                if failures == 1 {
                    tracing::warn!(error = %e, "client data stays queued for the parent");
                }
                Duration::from_secs((2u64 << failures.min(5)).min(60))
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Applies a parent's (or, at a replica update point, its site's) catalog: the same plan as
/// a full sync against what is held here, in one transaction, taking the source's content
/// version and token.
pub async fn replicate(
    store: std::sync::Arc<dyn Store>,
    catalog: ParentCatalog,
) -> anyhow::Result<(koshin_store::ApplyOutcome, koshin_domain::catalog::SyncPlan)> {
    use koshin_domain::catalog::{self, UpdateCandidate, UpdateId};
    use std::collections::HashSet;
    let present: HashSet<UpdateId> = catalog.updates.iter().map(|u| u.update.id).collect();
    let revisions: Vec<(String, u32)> = catalog
        .updates
        .iter()
        .filter(|u| u.revision > 0 && !u.expired)
        .map(|u| (u.update.id.to_string(), u.revision))
        .collect();
    let candidates: Vec<UpdateCandidate> = catalog
        .updates
        .into_iter()
        .filter(|u| !u.expired)
        .map(|u| u.update)
        .collect();
    let commit = koshin_store::SyncCommit {
        now_ms: jiff::Timestamp::now().as_millisecond(),
        indices: Vec::new(),
        fingerprint: format!("{} version {}", catalog.site, catalog.content_version),
        content_version: Some(catalog.content_version),
        content_token: (!catalog.content_token.is_empty()).then_some(catalog.content_token),
        revisions,
    };
    tokio::task::spawn_blocking(move || {
        let stored = store.stored_updates()?;
        let plan = catalog::plan_sync(koshin_domain::SyncKind::Full, &stored, candidates, &present);
        let outcome = store.apply_sync(&plan, &commit, &mut |_, _| {})?;
        Ok((outcome, plan))
    })
    .await?
}
