//! The agent's database: its identity, policy, the cached catalog (C6), the last state of
//! every update (to send only changes, C4), the queue of state messages, and scan records.

use std::path::Path;

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS catalog_updates (
    id TEXT PRIMARY KEY,
    revision INTEGER NOT NULL,
    title TEXT NOT NULL,
    product TEXT NOT NULL,
    classification TEXT NOT NULL,
    expired INTEGER NOT NULL,
    local_json TEXT,
    -- 1 once a state message for this update was queued.
    reported INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS catalog_binaries (
    update_id TEXT NOT NULL,
    name TEXT NOT NULL,
    architecture TEXT NOT NULL,
    version TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS catalog_binaries_update ON catalog_binaries(update_id);
CREATE INDEX IF NOT EXISTS catalog_binaries_name ON catalog_binaries(name);
CREATE TABLE IF NOT EXISTS last_states (
    update_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    restart_pending INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    update_id TEXT NOT NULL,
    revision INTEGER NOT NULL,
    state TEXT NOT NULL,
    restart_pending INTEGER NOT NULL,
    time_ms INTEGER NOT NULL,
    scan_id TEXT NOT NULL,
    batch_id TEXT
);
CREATE TABLE IF NOT EXISTS dead_letters (
    batch_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    messages INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS scans (
    scan_id TEXT PRIMARY KEY,
    started_ms INTEGER NOT NULL,
    json TEXT NOT NULL,
    batch_id TEXT,
    sent INTEGER NOT NULL DEFAULT 0
);
"#;

pub struct AgentDb {
    pub conn: Connection,
}

impl AgentDb {
    pub fn open(state_dir: &Path) -> anyhow::Result<AgentDb> {
        std::fs::create_dir_all(state_dir)
            .with_context(|| format!("cannot create {}", state_dir.display()))?;
        let path = state_dir.join("agent.db");
        let conn =
            Connection::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        // It holds the client's credential: readable by the agent's user only.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(state_dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("cannot restrict {}", state_dir.display()))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("cannot restrict {}", path.display()))?;
        }
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // A queued state message survives a crash of the agent and of the machine.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)?;
        // Agent databases made before `reported` existed: add it, and mark what was reported.
        let has_reported: bool = conn
            .prepare("SELECT 1 FROM pragma_table_info('catalog_updates') WHERE name = 'reported'")?
            .exists([])?;
        if !has_reported {
            conn.execute_batch(
                "ALTER TABLE catalog_updates ADD COLUMN reported INTEGER NOT NULL DEFAULT 0;
                 UPDATE catalog_updates SET reported = 1 WHERE id IN (SELECT update_id FROM last_states);
                 DELETE FROM last_states WHERE state = 'not_required' AND restart_pending = 0;",
            )?;
        }
        // A scan reads only local updates and updates not yet reported: keep both small to find.
        conn.execute_batch(
            "CREATE INDEX IF NOT EXISTS catalog_updates_local ON catalog_updates(id) WHERE local_json IS NOT NULL;
             CREATE INDEX IF NOT EXISTS catalog_updates_unreported ON catalog_updates(id) WHERE reported = 0;",
        )?;
        Ok(AgentDb { conn })
    }

    pub fn get(&self, key: &str) -> anyhow::Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT value FROM kv WHERE key=?1", params![key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    pub fn get_i64(&self, key: &str) -> anyhow::Result<Option<i64>> {
        Ok(self.get(key)?.and_then(|v| v.parse().ok()))
    }

    pub fn set(&self, key: &str, value: &str) -> anyhow::Result<()> {
        self.conn.execute(
            "INSERT INTO kv(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    pub fn set_i64(&self, key: &str, value: i64) -> anyhow::Result<()> {
        self.set(key, &value.to_string())
    }

    pub fn delete(&self, key: &str) -> anyhow::Result<()> {
        self.conn
            .execute("DELETE FROM kv WHERE key=?1", params![key])?;
        Ok(())
    }

    pub fn queue_length(&self) -> anyhow::Result<u64> {
        Ok(self
            .conn
            .query_row("SELECT COUNT(*) FROM queue", [], |r| r.get::<_, i64>(0))? as u64)
    }

    pub fn unsent_scans(&self) -> anyhow::Result<u64> {
        Ok(self
            .conn
            .query_row("SELECT COUNT(*) FROM scans WHERE sent = 0", [], |r| {
                r.get::<_, i64>(0)
            })? as u64)
    }

    /// The identity written at enrollment; an error says to enroll first.
    pub fn identity(&self) -> anyhow::Result<Identity> {
        let need = |k: &str| -> anyhow::Result<String> {
            self.get(k)?
                .ok_or_else(|| anyhow::anyhow!("this agent is not enrolled: run `koshin-agent enroll --site URL --token T` first"))
        };
        Ok(Identity {
            client_id: need("client_id")?,
            credential: need("credential")?,
            site_url: need("site_url")?,
            site_code: need("site_code")?,
            name: need("name")?,
            root: need("root")?,
            ca_certificate: self.get(CA_CERTIFICATE_KEY)?,
            client_identity: match (self.get(CLIENT_CERTIFICATE_KEY)?, self.get(CLIENT_KEY_KEY)?) {
                (Some(cert), Some(key)) => Some(format!("{cert}\n{key}")),
                _ => None,
            },
        })
    }
}

/// Who this agent is and where its site is.
#[derive(Clone)]
pub struct Identity {
    pub client_id: String,
    pub credential: String,
    pub site_url: String,
    pub site_code: String,
    pub name: String,
    pub root: String,
    /// The site CA certificate (PEM) stored at enrollment: the only root for an `https://`
    /// site.
    pub ca_certificate: Option<String>,
    /// The client certificate and its key (PEM, together) for mutual TLS.
    pub client_identity: Option<String>,
}

/// The kv key of the site CA certificate.
pub const CA_CERTIFICATE_KEY: &str = "ca_certificate";
/// The agent's TLS client key (PEM, PKCS#8), made at its first enrollment.
pub const CLIENT_KEY_KEY: &str = "client_key";
/// The client certificate the site CA signed for that key.
pub const CLIENT_CERTIFICATE_KEY: &str = "client_certificate";

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The credential never appears in logs.
        f.debug_struct("Identity")
            .field("client_id", &self.client_id)
            .field("site_url", &self.site_url)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
