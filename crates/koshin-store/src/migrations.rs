//! Versioned schema migrations, applied in order inside one transaction each; the schema
//! version is SQLite's `user_version`. Never edit a released migration: add the next one.

pub const MIGRATIONS: &[&str] = &[
    // 1: the site, status messages, the catalog, sync state, policy, administrators.
    r#"
CREATE TABLE site_kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE admin_tokens (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    revoked_ms INTEGER
);
CREATE TABLE status_messages (
    id INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL,
    severity TEXT NOT NULL CHECK (severity IN ('I','W','E')),
    level TEXT NOT NULL CHECK (level IN ('M','D')),
    source TEXT NOT NULL,
    component TEXT NOT NULL,
    system TEXT NOT NULL,
    site TEXT NOT NULL,
    process_id INTEGER NOT NULL,
    thread_id INTEGER NOT NULL,
    time_ms INTEGER NOT NULL,
    insertion_strings TEXT NOT NULL,
    attributes TEXT NOT NULL
);
CREATE INDEX status_messages_time ON status_messages(time_ms);
CREATE INDEX status_messages_component ON status_messages(component, time_ms);
CREATE INDEX status_messages_message ON status_messages(message_id, time_ms);
CREATE TABLE update_sources (
    id TEXT PRIMARY KEY,
    content_version INTEGER NOT NULL,
    updated_ms INTEGER
);
CREATE TABLE updates (
    id TEXT PRIMARY KEY,
    revision INTEGER NOT NULL,
    metadata_hash TEXT NOT NULL,
    product TEXT NOT NULL,
    classification TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    vendor TEXT NOT NULL,
    article_id TEXT NOT NULL,
    bulletin_id TEXT,
    severity TEXT,
    source TEXT NOT NULL,
    version TEXT NOT NULL,
    supersedence_group TEXT,
    released_ms INTEGER NOT NULL,
    revised_ms INTEGER NOT NULL,
    first_synced_ms INTEGER NOT NULL,
    superseded_by TEXT,
    expired INTEGER NOT NULL DEFAULT 0,
    expired_ms INTEGER,
    local_json TEXT,
    content_version INTEGER NOT NULL
);
CREATE INDEX updates_content_version ON updates(content_version);
CREATE INDEX updates_product ON updates(product, classification);
CREATE INDEX updates_article ON updates(article_id);
CREATE TABLE update_binaries (
    update_id TEXT NOT NULL,
    name TEXT NOT NULL,
    architecture TEXT NOT NULL,
    version TEXT NOT NULL,
    filename TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (update_id, name, architecture, version)
) WITHOUT ROWID;
CREATE INDEX update_binaries_name ON update_binaries(name, architecture);
CREATE TABLE sync_status (
    site TEXT PRIMARY KEY,
    sync_now TEXT,
    sync_now_ms INTEGER
);
CREATE TABLE sync_runs (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    trigger TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('running','succeeded','failed')),
    started_ms INTEGER NOT NULL,
    finished_ms INTEGER,
    error TEXT,
    items INTEGER,
    content_version INTEGER,
    phase TEXT,
    progress_done INTEGER NOT NULL DEFAULT 0,
    progress_total INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE synced_indices (
    source TEXT NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (source, path)
);
CREATE TABLE schedules (name TEXT PRIMARY KEY, at_ms INTEGER NOT NULL);
CREATE TABLE machine_policy (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
"#,
    // 2: clients, their state messages (current state per client and update, and history),
    // the batches already stored (so a batch sent twice is stored once), and scans.
    r#"
CREATE TABLE clients (
    id INTEGER PRIMARY KEY,
    client_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    os TEXT NOT NULL,
    os_release TEXT NOT NULL,
    architecture TEXT NOT NULL,
    site TEXT NOT NULL,
    agent_version TEXT NOT NULL,
    credential_sha256 TEXT NOT NULL UNIQUE,
    enrolled_ms INTEGER NOT NULL,
    last_contact_ms INTEGER,
    last_policy_ms INTEGER,
    last_scan_ms INTEGER,
    last_scan_json TEXT
);
CREATE INDEX clients_name ON clients(name);
CREATE TABLE update_states (
    client INTEGER NOT NULL,
    update_id TEXT NOT NULL,
    state INTEGER NOT NULL CHECK (state IN (1, 2, 3)),
    restart_pending INTEGER NOT NULL DEFAULT 0,
    revision INTEGER NOT NULL,
    time_ms INTEGER NOT NULL,
    PRIMARY KEY (client, update_id)
) WITHOUT ROWID;
CREATE INDEX update_states_update ON update_states(update_id, state);
CREATE TABLE state_history (
    id INTEGER PRIMARY KEY,
    client INTEGER NOT NULL,
    update_id TEXT NOT NULL,
    state INTEGER NOT NULL,
    restart_pending INTEGER NOT NULL,
    revision INTEGER NOT NULL,
    time_ms INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    batch_id TEXT NOT NULL,
    scan_id TEXT NOT NULL
);
CREATE INDEX state_history_client ON state_history(client, time_ms);
CREATE TABLE state_batches (
    client INTEGER NOT NULL,
    batch_id TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    messages INTEGER NOT NULL,
    PRIMARY KEY (client, batch_id)
) WITHOUT ROWID;
CREATE TABLE scans (
    client INTEGER NOT NULL,
    scan_id TEXT NOT NULL,
    trigger TEXT NOT NULL,
    kind TEXT NOT NULL,
    online INTEGER NOT NULL,
    started_ms INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    result TEXT NOT NULL,
    content_version INTEGER NOT NULL,
    required INTEGER NOT NULL,
    installed INTEGER NOT NULL,
    not_required INTEGER NOT NULL,
    PRIMARY KEY (client, scan_id)
) WITHOUT ROWID;
"#,
    // 3: a token per content version, so clients can tell this catalog from another one
    // that reached the same version (a site restored from a backup).
    r#"
CREATE TABLE content_versions (
    version INTEGER PRIMARY KEY,
    token TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
INSERT INTO content_versions(version, token, created_ms)
    SELECT content_version, lower(hex(randomblob(16))), 0 FROM update_sources WHERE content_version > 0;
"#,
];
