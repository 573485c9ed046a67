//! A site opened from its data folder: configuration, database, logs, and the handles the
//! HTTP layer and the components share.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use koshin_store::{SqliteStore, Store};

use crate::config::SiteConfig;
use crate::init::{CONFIG_FILE, DATABASE_FILE, layout};
use crate::log::ComponentLog;
use crate::pki::SitePki;
use crate::status::StatusReporter;
use crate::sync::SyncHandle;

pub struct Site {
    pub data: PathBuf,
    pub config: SiteConfig,
    pub store: Arc<dyn Store>,
    pub status: StatusReporter,
    pub sync: SyncHandle,
    pub sync_log: Arc<ComponentLog>,
    /// The replication manager's log (`replmgr.log`): links, global data, data sent up.
    pub repl_log: Arc<ComponentLog>,
    /// The collection evaluator's log (`colleval.log`): membership evaluations.
    pub coll_log: Arc<ComponentLog>,
    /// The site's certificate authority and certificate (`DATA/pki/`).
    pub pki: SitePki,
    /// The content library, the site's own distribution point, the archive key.
    pub content: crate::content::Content,
}

impl Site {
    /// Opens the site in `data`: its configuration, database and logs, and its PKI — created
    /// on the first start of a site made before TLS (an existing CA is never replaced) and
    /// the site certificate re-issued when it is missing, stale or near expiry.
    pub fn open(data: &Path) -> anyhow::Result<Arc<Site>> {
        let config_path = data.join(CONFIG_FILE);
        if !config_path.exists() {
            anyhow::bail!(
                "{} has no site ({} is missing): run `koshin site init --code CODE --data {}` first",
                data.display(),
                CONFIG_FILE,
                data.display()
            );
        }
        let config = SiteConfig::load(&config_path)?;
        for dir in layout(data) {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let pki = SitePki::ensure(data, &config)?;
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&data.join(DATABASE_FILE))?);
        let status = StatusReporter::new(store.clone(), &config.site.code, &config.system_name());
        let content = crate::content::Content::open(data, &config.site.code)?;
        store.ensure_local_dp(
            &config.system_name(),
            &format!("{}/dp", config.public_url().trim_end_matches('/')),
            jiff::Timestamp::now().as_millisecond(),
        )?;
        let sync_log = Arc::new(ComponentLog::open(
            &data.join("logs"),
            "wsyncmgr.log",
            koshin_domain::status::SYNC_MANAGER,
        ));
        let repl_log = Arc::new(ComponentLog::open(
            &data.join("logs"),
            "replmgr.log",
            koshin_domain::status::REPLICATION_MANAGER,
        ));
        let coll_log = Arc::new(ComponentLog::open(
            &data.join("logs"),
            "colleval.log",
            koshin_domain::status::COLLECTION_EVALUATOR,
        ));
        Ok(Arc::new(Site {
            data: data.to_path_buf(),
            config,
            store,
            status,
            sync: SyncHandle::default(),
            sync_log,
            repl_log,
            coll_log,
            pki,
            content,
        }))
    }

    pub fn sync_inbox(&self) -> PathBuf {
        self.data.join("inboxes").join("wsyncmgr.box")
    }

    pub fn local_publisher_dir(&self) -> PathBuf {
        self.data.join(&self.config.upstream.local_publisher_dir)
    }
}
