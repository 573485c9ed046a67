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
    // 4: compliance kept current and compact for summary reports at 150,000 clients.
    // - `updates.ukey`: a stable integer key (state rows at scale must not carry UUID text);
    //   `updates.added_cv`: the content version that (re)introduced the update.
    // - `clients.scanned_cv`: the catalog version of the client's last successful scan whose
    //   state messages have all arrived. A client covers an update when scanned_cv >= added_cv;
    //   a covered client without a state row for it is Not required; an uncovered one is
    //   Unknown (never reported, or the update is newer than its last scan).
    // - `update_states`: explicit states only (a client reports Required and Installed, and a
    //   change back to Not required), keyed by integers.
    // - `update_summary` and `client_coverage`: counters kept by triggers in the same
    //   transaction as the state change, so summary reports read ~catalog-sized tables and
    //   are current the moment a batch commits.
    r#"
ALTER TABLE updates ADD COLUMN ukey INTEGER;
ALTER TABLE updates ADD COLUMN added_cv INTEGER;
UPDATE updates SET ukey = rowid, added_cv = content_version;
CREATE UNIQUE INDEX updates_ukey ON updates(ukey);
CREATE INDEX updates_added ON updates(added_cv);
CREATE TRIGGER updates_keys AFTER INSERT ON updates
WHEN NEW.ukey IS NULL OR NEW.added_cv IS NULL
BEGIN
    UPDATE updates SET
        ukey = COALESCE(NEW.ukey, (SELECT COALESCE(MAX(ukey), 0) + 1 FROM updates)),
        added_cv = COALESCE(NEW.added_cv, NEW.content_version)
    WHERE rowid = NEW.rowid;
END;
CREATE TRIGGER updates_unexpired AFTER UPDATE OF expired ON updates
WHEN OLD.expired = 1 AND NEW.expired = 0
BEGIN
    UPDATE updates SET added_cv = NEW.content_version WHERE rowid = NEW.rowid;
END;

ALTER TABLE clients ADD COLUMN scanned_cv INTEGER;
UPDATE clients SET scanned_cv = (
    SELECT s.content_version FROM scans s
    WHERE s.client = clients.id AND s.result = 'succeeded'
    ORDER BY s.started_ms DESC LIMIT 1);
CREATE TABLE client_coverage (
    cv INTEGER PRIMARY KEY,
    clients INTEGER NOT NULL
);
INSERT INTO client_coverage(cv, clients)
    SELECT scanned_cv, COUNT(*) FROM clients WHERE scanned_cv IS NOT NULL GROUP BY scanned_cv;
CREATE TRIGGER clients_coverage_insert AFTER INSERT ON clients
WHEN NEW.scanned_cv IS NOT NULL
BEGIN
    INSERT INTO client_coverage(cv, clients) VALUES (NEW.scanned_cv, 1)
        ON CONFLICT(cv) DO UPDATE SET clients = clients + 1;
END;
CREATE TRIGGER clients_coverage_update AFTER UPDATE OF scanned_cv ON clients
WHEN OLD.scanned_cv IS NOT NEW.scanned_cv
BEGIN
    UPDATE client_coverage SET clients = clients - 1 WHERE cv = OLD.scanned_cv;
    DELETE FROM client_coverage WHERE cv = OLD.scanned_cv AND clients <= 0;
    INSERT INTO client_coverage(cv, clients) SELECT NEW.scanned_cv, 1 WHERE NEW.scanned_cv IS NOT NULL
        ON CONFLICT(cv) DO UPDATE SET clients = clients + 1;
END;
CREATE TRIGGER clients_coverage_delete AFTER DELETE ON clients
WHEN OLD.scanned_cv IS NOT NULL
BEGIN
    UPDATE client_coverage SET clients = clients - 1 WHERE cv = OLD.scanned_cv;
    DELETE FROM client_coverage WHERE cv = OLD.scanned_cv AND clients <= 0;
END;

CREATE TABLE update_states_v4 (
    client INTEGER NOT NULL,
    ukey INTEGER NOT NULL,
    state INTEGER NOT NULL CHECK (state IN (1, 2, 3)),
    restart_pending INTEGER NOT NULL DEFAULT 0,
    revision INTEGER NOT NULL,
    time_ms INTEGER NOT NULL,
    PRIMARY KEY (client, ukey)
) WITHOUT ROWID;
INSERT INTO update_states_v4(client, ukey, state, restart_pending, revision, time_ms)
    SELECT s.client, u.ukey, s.state, s.restart_pending, s.revision, s.time_ms
    FROM update_states s JOIN updates u ON u.id = s.update_id;
DROP TABLE update_states;
ALTER TABLE update_states_v4 RENAME TO update_states;
-- By update, without the state: a state change rewrites the row, not the index.
CREATE INDEX update_states_update ON update_states(ukey);

CREATE TABLE update_summary (
    ukey INTEGER PRIMARY KEY,
    required INTEGER NOT NULL DEFAULT 0,
    installed INTEGER NOT NULL DEFAULT 0,
    not_required INTEGER NOT NULL DEFAULT 0,
    restart_pending INTEGER NOT NULL DEFAULT 0,
    first_detected_ms INTEGER,
    last_change_ms INTEGER
);
INSERT INTO update_summary(ukey, required, installed, not_required, restart_pending, first_detected_ms, last_change_ms)
    SELECT ukey, SUM(state = 1), SUM(state = 3), SUM(state = 2), SUM(restart_pending <> 0),
           MIN(CASE WHEN state IN (1, 3) THEN time_ms END), MAX(time_ms)
    FROM update_states GROUP BY ukey;
CREATE TRIGGER update_states_insert AFTER INSERT ON update_states
BEGIN
    INSERT INTO update_summary(ukey, required, installed, not_required, restart_pending, first_detected_ms, last_change_ms)
    VALUES (NEW.ukey, NEW.state = 1, NEW.state = 3, NEW.state = 2, NEW.restart_pending <> 0,
            CASE WHEN NEW.state IN (1, 3) THEN NEW.time_ms END, NEW.time_ms)
    ON CONFLICT(ukey) DO UPDATE SET
        required = required + excluded.required,
        installed = installed + excluded.installed,
        not_required = not_required + excluded.not_required,
        restart_pending = restart_pending + excluded.restart_pending,
        first_detected_ms = CASE
            WHEN first_detected_ms IS NULL THEN excluded.first_detected_ms
            WHEN excluded.first_detected_ms IS NULL THEN first_detected_ms
            ELSE MIN(first_detected_ms, excluded.first_detected_ms) END,
        last_change_ms = MAX(COALESCE(last_change_ms, 0), excluded.last_change_ms);
END;
CREATE TRIGGER update_states_update AFTER UPDATE ON update_states
BEGIN
    UPDATE update_summary SET
        required = required - (OLD.state = 1) + (NEW.state = 1),
        installed = installed - (OLD.state = 3) + (NEW.state = 3),
        not_required = not_required - (OLD.state = 2) + (NEW.state = 2),
        restart_pending = restart_pending - (OLD.restart_pending <> 0) + (NEW.restart_pending <> 0),
        first_detected_ms = CASE
            WHEN NEW.state NOT IN (1, 3) THEN first_detected_ms
            WHEN first_detected_ms IS NULL THEN NEW.time_ms
            ELSE MIN(first_detected_ms, NEW.time_ms) END,
        last_change_ms = MAX(COALESCE(last_change_ms, 0), NEW.time_ms)
    WHERE ukey = NEW.ukey;
END;
CREATE TRIGGER update_states_delete AFTER DELETE ON update_states
BEGIN
    UPDATE update_summary SET
        required = required - (OLD.state = 1),
        installed = installed - (OLD.state = 3),
        not_required = not_required - (OLD.state = 2),
        restart_pending = restart_pending - (OLD.restart_pending <> 0)
    WHERE ukey = OLD.ukey;
END;
"#,
    // 5: trust. Administrators with roles and passwords (argon2), tokens that expire and
    // name their administrator, the audit log, enrollment tokens, and client approval.
    r#"
CREATE TABLE admins (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    role TEXT NOT NULL,
    password_hash TEXT,
    scopes TEXT NOT NULL DEFAULT '[]',
    created_ms INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    disabled_ms INTEGER
);
ALTER TABLE admin_tokens ADD COLUMN admin_id INTEGER;
ALTER TABLE admin_tokens ADD COLUMN expires_ms INTEGER;
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    time_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_time ON audit_log(time_ms);
CREATE TABLE enrollment_tokens (
    id INTEGER PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER,
    uses_left INTEGER,
    used INTEGER NOT NULL DEFAULT 0,
    revoked_ms INTEGER
);
ALTER TABLE clients ADD COLUMN approval TEXT NOT NULL DEFAULT 'approved'
    CHECK (approval IN ('pending', 'approved', 'revoked'));
ALTER TABLE clients ADD COLUMN approval_by TEXT;
ALTER TABLE clients ADD COLUMN approval_ms INTEGER;
"#,
    // 6: collections. The built-in All Systems (every client, no member rows) and
    // collections with direct members; an administrator's scopes name collection ids.
    r#"
CREATE TABLE collections (
    id INTEGER PRIMARY KEY,
    collection_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    comment TEXT NOT NULL DEFAULT '',
    built_in INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL,
    created_by TEXT NOT NULL
);
INSERT INTO collections(id, collection_id, name, comment, built_in, created_ms, created_by)
    VALUES (1, 'SMS00001', 'All Systems', 'every client of the site', 1, 0, 'koshin');
CREATE TABLE collection_members (
    collection INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    client INTEGER NOT NULL,
    added_ms INTEGER NOT NULL,
    added_by TEXT NOT NULL,
    PRIMARY KEY (collection, client)
) WITHOUT ROWID;
CREATE INDEX collection_members_client ON collection_members(client);
"#,
    // 7: content. The content library (files by SHA-256, with their control stanza), content
    // packages with priority, distribution points and groups, and per package and
    // distribution point the state of its distribution.
    r#"
CREATE TABLE content_files (
    sha256 TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    name TEXT NOT NULL,
    control TEXT NOT NULL,
    stored_ms INTEGER NOT NULL
);
CREATE TABLE content_packages (
    id INTEGER PRIMARY KEY,
    package_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    priority INTEGER NOT NULL CHECK (priority IN (1, 2, 3)),
    source_version INTEGER NOT NULL DEFAULT 1,
    created_ms INTEGER NOT NULL,
    created_by TEXT NOT NULL
);
CREATE TABLE package_files (
    package INTEGER NOT NULL REFERENCES content_packages(id) ON DELETE CASCADE,
    sha256 TEXT NOT NULL,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    filename TEXT NOT NULL,
    PRIMARY KEY (package, sha256)
) WITHOUT ROWID;
CREATE TABLE package_updates (
    package INTEGER NOT NULL REFERENCES content_packages(id) ON DELETE CASCADE,
    update_id TEXT NOT NULL,
    PRIMARY KEY (package, update_id)
) WITHOUT ROWID;
CREATE TABLE distribution_points (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    url TEXT NOT NULL,
    local INTEGER NOT NULL DEFAULT 0,
    protected INTEGER NOT NULL DEFAULT 0,
    boundaries TEXT NOT NULL DEFAULT '[]',
    push_token TEXT,
    sender TEXT NOT NULL DEFAULT '{}',
    registered_ms INTEGER NOT NULL,
    registered_by TEXT NOT NULL,
    last_seen_ms INTEGER,
    last_error TEXT
);
CREATE TABLE dp_groups (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    created_ms INTEGER NOT NULL,
    created_by TEXT NOT NULL
);
CREATE TABLE dp_group_members (
    grp INTEGER NOT NULL REFERENCES dp_groups(id) ON DELETE CASCADE,
    dp INTEGER NOT NULL REFERENCES distribution_points(id) ON DELETE CASCADE,
    PRIMARY KEY (grp, dp)
) WITHOUT ROWID;
CREATE TABLE package_targets (
    package INTEGER NOT NULL REFERENCES content_packages(id) ON DELETE CASCADE,
    dp INTEGER NOT NULL REFERENCES distribution_points(id) ON DELETE CASCADE,
    state TEXT NOT NULL CHECK (state IN ('waiting', 'distributing', 'installed', 'failed')),
    source_version INTEGER NOT NULL,
    queued_ms INTEGER NOT NULL,
    started_ms INTEGER,
    finished_ms INTEGER,
    bytes_total INTEGER NOT NULL DEFAULT 0,
    bytes_sent INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    retry_at_ms INTEGER,
    error TEXT,
    via_group TEXT,
    PRIMARY KEY (package, dp)
) WITHOUT ROWID;
"#,
    // 8: deployments. Update groups, deployments of a group's updates (snapshotted, each
    // removable) to a collection, maintenance windows per collection, and each client's
    // state of each deployment.
    r#"
CREATE TABLE update_groups (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    description TEXT NOT NULL DEFAULT '',
    created_ms INTEGER NOT NULL,
    created_by TEXT NOT NULL
);
CREATE TABLE update_group_members (
    grp INTEGER NOT NULL REFERENCES update_groups(id) ON DELETE CASCADE,
    update_id TEXT NOT NULL,
    PRIMARY KEY (grp, update_id)
) WITHOUT ROWID;
CREATE TABLE deployments (
    id INTEGER PRIMARY KEY,
    deployment_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    update_group TEXT NOT NULL,
    collection INTEGER NOT NULL REFERENCES collections(id),
    package INTEGER REFERENCES content_packages(id),
    available TEXT NOT NULL,
    deadline TEXT,
    utc INTEGER NOT NULL DEFAULT 0,
    allow_postpone INTEGER NOT NULL DEFAULT 1,
    notification TEXT NOT NULL DEFAULT '',
    suppress_servers INTEGER NOT NULL DEFAULT 0,
    suppress_workstations INTEGER NOT NULL DEFAULT 0,
    download_first INTEGER NOT NULL DEFAULT 1,
    recurrence_days INTEGER,
    enabled INTEGER NOT NULL DEFAULT 1,
    reenable_ms INTEGER,
    generation INTEGER NOT NULL DEFAULT 1,
    rollback_of INTEGER REFERENCES deployments(id),
    created_ms INTEGER NOT NULL,
    created_by TEXT NOT NULL
);
CREATE TABLE deployment_updates (
    deployment INTEGER NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    update_id TEXT NOT NULL,
    removed_ms INTEGER,
    PRIMARY KEY (deployment, update_id)
) WITHOUT ROWID;
CREATE TABLE maintenance_windows (
    id INTEGER PRIMARY KEY,
    collection INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    UNIQUE (collection, name)
);
CREATE TABLE deployment_status (
    client INTEGER NOT NULL,
    deployment INTEGER NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    generation INTEGER NOT NULL,
    state TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    time_ms INTEGER NOT NULL,
    last_success_ms INTEGER,
    PRIMARY KEY (client, deployment)
) WITHOUT ROWID;
CREATE INDEX deployment_status_deployment ON deployment_status(deployment, state);
"#,
    // 9: the site hierarchy. Links to the parent and to children, each with the token this
    // site presents there and the SHA-256 of the one presented here; join tokens.
    r#"
CREATE TABLE site_links (
    code TEXT PRIMARY KEY,
    relation TEXT NOT NULL CHECK (relation IN ('parent', 'child')),
    kind TEXT NOT NULL DEFAULT 'primary' CHECK (kind IN ('primary', 'secondary')),
    url TEXT NOT NULL,
    our_token TEXT NOT NULL,
    their_token_sha256 TEXT NOT NULL UNIQUE,
    joined_ms INTEGER NOT NULL,
    last_seen_ms INTEGER,
    last_error TEXT,
    notify_pending INTEGER NOT NULL DEFAULT 0,
    replicated_cv INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE site_join_tokens (
    id INTEGER PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_by TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    used_ms INTEGER,
    used_by TEXT
);
"#,
    // 10: client data flowing up the hierarchy. A child site queues every batch of state
    // messages it stores, in the same transaction, until its parent has acknowledged it.
    r#"
CREATE TABLE upward_queue (
    id INTEGER PRIMARY KEY,
    client_id TEXT NOT NULL,
    client_json TEXT NOT NULL,
    batch_json TEXT NOT NULL,
    queued_ms INTEGER NOT NULL
);
"#,
    // 11: update point replicas within a site (S8): each with the token the site presents
    // to it (to start its sync) and the SHA-256 of the one it presents (to read the catalog).
    r#"
CREATE TABLE update_points (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    url TEXT NOT NULL,
    push_token TEXT NOT NULL,
    pull_token_sha256 TEXT NOT NULL UNIQUE,
    registered_ms INTEGER NOT NULL,
    registered_by TEXT NOT NULL,
    last_sync_ms INTEGER,
    content_version INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
"#,
    // 12: global data down the hierarchy, and more client data up. Every change to a
    // collection (its members, its windows) or a deployment (its updates, its package) is
    // logged with a sequence number by triggers, in the change's own transaction, so a child
    // asks for what changed after the last number it applied. Replicated rows carry the
    // site they came from (`origin`); the sequence a child has applied is on its parent
    // link. A child site queues its status messages, and its clients' states of replicated
    // deployments, for the parent in the transaction that stores them; a status message
    // keeps its origin (`SITE:id`) so the parent stores it once.
    r#"
ALTER TABLE collections ADD COLUMN origin TEXT;
ALTER TABLE deployments ADD COLUMN origin TEXT;
ALTER TABLE content_packages ADD COLUMN origin TEXT;
ALTER TABLE maintenance_windows ADD COLUMN origin TEXT;
ALTER TABLE site_links ADD COLUMN global_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE site_links ADD COLUMN link_down INTEGER NOT NULL DEFAULT 0;
ALTER TABLE upward_queue ADD COLUMN kind TEXT NOT NULL DEFAULT 'states';
ALTER TABLE status_messages ADD COLUMN origin TEXT;
CREATE UNIQUE INDEX status_messages_origin ON status_messages(origin) WHERE origin IS NOT NULL;
CREATE TABLE global_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('collection', 'deployment')),
    object_id TEXT NOT NULL
);
CREATE INDEX global_changes_object ON global_changes(kind, object_id, seq);
CREATE TRIGGER global_collection_insert AFTER INSERT ON collections WHEN NEW.built_in = 0
BEGIN INSERT INTO global_changes(kind, object_id) VALUES ('collection', NEW.collection_id); END;
CREATE TRIGGER global_collection_update AFTER UPDATE ON collections
BEGIN INSERT INTO global_changes(kind, object_id) VALUES ('collection', NEW.collection_id); END;
CREATE TRIGGER global_collection_delete AFTER DELETE ON collections WHEN OLD.built_in = 0
BEGIN INSERT INTO global_changes(kind, object_id) VALUES ('collection', OLD.collection_id); END;
CREATE TRIGGER global_member_insert AFTER INSERT ON collection_members
BEGIN INSERT INTO global_changes(kind, object_id)
    SELECT 'collection', collection_id FROM collections WHERE id = NEW.collection; END;
CREATE TRIGGER global_member_delete AFTER DELETE ON collection_members
BEGIN INSERT INTO global_changes(kind, object_id)
    SELECT 'collection', collection_id FROM collections WHERE id = OLD.collection; END;
CREATE TRIGGER global_window_insert AFTER INSERT ON maintenance_windows
BEGIN INSERT INTO global_changes(kind, object_id)
    SELECT 'collection', collection_id FROM collections WHERE id = NEW.collection; END;
CREATE TRIGGER global_window_update AFTER UPDATE ON maintenance_windows
BEGIN INSERT INTO global_changes(kind, object_id)
    SELECT 'collection', collection_id FROM collections WHERE id = NEW.collection; END;
CREATE TRIGGER global_window_delete AFTER DELETE ON maintenance_windows
BEGIN INSERT INTO global_changes(kind, object_id)
    SELECT 'collection', collection_id FROM collections WHERE id = OLD.collection; END;
CREATE TRIGGER global_deployment_insert AFTER INSERT ON deployments
BEGIN INSERT INTO global_changes(kind, object_id) VALUES ('deployment', NEW.deployment_id); END;
CREATE TRIGGER global_deployment_update AFTER UPDATE ON deployments
BEGIN INSERT INTO global_changes(kind, object_id) VALUES ('deployment', NEW.deployment_id); END;
CREATE TRIGGER global_deployment_delete AFTER DELETE ON deployments
BEGIN INSERT INTO global_changes(kind, object_id) VALUES ('deployment', OLD.deployment_id); END;
CREATE TRIGGER global_deployment_update_insert AFTER INSERT ON deployment_updates
BEGIN INSERT INTO global_changes(kind, object_id)
    SELECT 'deployment', deployment_id FROM deployments WHERE id = NEW.deployment; END;
CREATE TRIGGER global_deployment_update_update AFTER UPDATE ON deployment_updates
BEGIN INSERT INTO global_changes(kind, object_id)
    SELECT 'deployment', deployment_id FROM deployments WHERE id = NEW.deployment; END;
CREATE TRIGGER global_package_update AFTER UPDATE ON content_packages
BEGIN INSERT INTO global_changes(kind, object_id)
    SELECT 'deployment', deployment_id FROM deployments WHERE package = NEW.id; END;
CREATE TRIGGER upward_status AFTER INSERT ON status_messages
WHEN EXISTS (SELECT 1 FROM site_links WHERE relation = 'parent')
BEGIN INSERT INTO upward_queue(kind, client_id, client_json, batch_json, queued_ms)
    VALUES ('status', '', 'null', json_object(
        'origin', COALESCE(NEW.origin, (SELECT value FROM site_kv WHERE key = 'site_code') || ':' || NEW.id),
        'message_id', NEW.message_id, 'severity', NEW.severity, 'level', NEW.level,
        'source', NEW.source, 'component', NEW.component, 'system', NEW.system, 'site', NEW.site,
        'process_id', NEW.process_id, 'thread_id', NEW.thread_id, 'time_ms', NEW.time_ms,
        'insertion_strings', json(NEW.insertion_strings), 'attributes', json(NEW.attributes)),
        NEW.time_ms); END;
CREATE TRIGGER upward_deployment_status_insert AFTER INSERT ON deployment_status
WHEN EXISTS (SELECT 1 FROM site_links WHERE relation = 'parent')
    AND EXISTS (SELECT 1 FROM deployments WHERE id = NEW.deployment AND origin IS NOT NULL)
BEGIN INSERT INTO upward_queue(kind, client_id, client_json, batch_json, queued_ms)
    SELECT 'deployment-status', c.client_id, json_object('client_id', c.client_id, 'name', c.name,
            'os', c.os, 'os_release', c.os_release, 'architecture', c.architecture, 'site', c.site,
            'agent_version', c.agent_version),
        json_object('deployment_id', d.deployment_id, 'generation', NEW.generation,
            'state', NEW.state, 'detail', NEW.detail, 'time_ms', NEW.time_ms),
        NEW.time_ms
    FROM clients c, deployments d WHERE c.id = NEW.client AND d.id = NEW.deployment; END;
CREATE TRIGGER upward_deployment_status_update AFTER UPDATE ON deployment_status
WHEN EXISTS (SELECT 1 FROM site_links WHERE relation = 'parent')
    AND EXISTS (SELECT 1 FROM deployments WHERE id = NEW.deployment AND origin IS NOT NULL)
BEGIN INSERT INTO upward_queue(kind, client_id, client_json, batch_json, queued_ms)
    SELECT 'deployment-status', c.client_id, json_object('client_id', c.client_id, 'name', c.name,
            'os', c.os, 'os_release', c.os_release, 'architecture', c.architecture, 'site', c.site,
            'agent_version', c.agent_version),
        json_object('deployment_id', d.deployment_id, 'generation', NEW.generation,
            'state', NEW.state, 'detail', NEW.detail, 'time_ms', NEW.time_ms),
        NEW.time_ms
    FROM clients c, deployments d WHERE c.id = NEW.client AND d.id = NEW.deployment; END;
-- What this site held before the log existed is global data too.
INSERT INTO global_changes(kind, object_id)
    SELECT 'collection', collection_id FROM collections ORDER BY id;
INSERT INTO global_changes(kind, object_id)
    SELECT 'deployment', deployment_id FROM deployments ORDER BY id;
"#,
    // 13: an update point
    // registered as internet-facing (S10) is listed in policy but not synced in the site's
    // sync; it polls the site itself.
    r#"
ALTER TABLE update_points ADD COLUMN internet INTEGER NOT NULL DEFAULT 0;
"#,
    // 14: inventory. Each client's properties (several values each) and installed packages,
    // and the hash of the inventory the site holds (a client sends changes against it).
    r#"
CREATE TABLE inventory (
    client INTEGER NOT NULL,
    property TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (client, property, value)
) WITHOUT ROWID;
CREATE INDEX inventory_property ON inventory(property, value);
CREATE TABLE inventory_packages (
    client INTEGER NOT NULL,
    package TEXT NOT NULL,
    version TEXT NOT NULL,
    PRIMARY KEY (client, package)
) WITHOUT ROWID;
CREATE INDEX inventory_packages_package ON inventory_packages(package);
ALTER TABLE clients ADD COLUMN inventory_ms INTEGER;
ALTER TABLE clients ADD COLUMN inventory_hash TEXT;
"#,
    // 15: query collections. A collection's rules (a query, a limiting collection, included
    // and excluded collections) with every saved version kept; direct members become part of
    // the definition, and collection_members holds the evaluated membership, with how each
    // member got there. A client whose inventory, update states or enrolment changed is marked
    // for the next incremental evaluation by triggers, in the change's own transaction (not
    // INSERT OR IGNORE: an outer statement's conflict clause would override a trigger's).
    r#"
ALTER TABLE collections ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE collections ADD COLUMN query TEXT;
ALTER TABLE collections ADD COLUMN limiting TEXT;
ALTER TABLE collections ADD COLUMN includes TEXT NOT NULL DEFAULT '[]';
ALTER TABLE collections ADD COLUMN excludes TEXT NOT NULL DEFAULT '[]';
CREATE TABLE collection_versions (
    collection INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    query TEXT,
    limiting TEXT,
    includes TEXT NOT NULL DEFAULT '[]',
    excludes TEXT NOT NULL DEFAULT '[]',
    saved_ms INTEGER NOT NULL,
    saved_by TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (collection, version)
) WITHOUT ROWID;
INSERT INTO collection_versions(collection, version, saved_ms, saved_by, note)
    SELECT id, 1, created_ms, created_by, 'created' FROM collections WHERE built_in = 0;
CREATE TABLE collection_direct (
    collection INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    client INTEGER NOT NULL,
    added_ms INTEGER NOT NULL,
    added_by TEXT NOT NULL,
    PRIMARY KEY (collection, client)
) WITHOUT ROWID;
INSERT INTO collection_direct(collection, client, added_ms, added_by)
    SELECT m.collection, m.client, m.added_ms, m.added_by FROM collection_members m
    JOIN collections k ON k.id = m.collection WHERE k.origin IS NULL;
ALTER TABLE collection_members ADD COLUMN via TEXT NOT NULL DEFAULT 'direct';
CREATE TABLE collection_evaluations (
    collection INTEGER PRIMARY KEY REFERENCES collections(id) ON DELETE CASCADE,
    evaluated_ms INTEGER NOT NULL,
    full_ms INTEGER NOT NULL,
    joined INTEGER NOT NULL DEFAULT 0,
    left_ INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE collection_dirty (client INTEGER PRIMARY KEY);
CREATE TRIGGER collection_dirty_enrolled AFTER INSERT ON clients
BEGIN INSERT INTO collection_dirty(client) SELECT NEW.id
    WHERE NOT EXISTS (SELECT 1 FROM collection_dirty WHERE client = NEW.id); END;
CREATE TRIGGER collection_dirty_inventory AFTER UPDATE OF inventory_hash ON clients
BEGIN INSERT INTO collection_dirty(client) SELECT NEW.id
    WHERE NOT EXISTS (SELECT 1 FROM collection_dirty WHERE client = NEW.id); END;
CREATE TRIGGER collection_dirty_state_insert AFTER INSERT ON update_states
BEGIN INSERT INTO collection_dirty(client) SELECT NEW.client
    WHERE NOT EXISTS (SELECT 1 FROM collection_dirty WHERE client = NEW.client); END;
CREATE TRIGGER collection_dirty_state_update AFTER UPDATE OF state ON update_states
WHEN OLD.state != NEW.state
BEGIN INSERT INTO collection_dirty(client) SELECT NEW.client
    WHERE NOT EXISTS (SELECT 1 FROM collection_dirty WHERE client = NEW.client); END;
CREATE TRIGGER collection_dirty_state_delete AFTER DELETE ON update_states
BEGIN INSERT INTO collection_dirty(client) SELECT OLD.client
    WHERE NOT EXISTS (SELECT 1 FROM collection_dirty WHERE client = OLD.client); END;
"#,
    // 16: custom inventory classes. Each property of a class and its source (the wire
    // InventorySource as JSON); machine policy carries them to clients.
    r#"
CREATE TABLE inventory_classes (
    class TEXT NOT NULL,
    property TEXT NOT NULL,
    source TEXT NOT NULL,
    changed_ms INTEGER NOT NULL,
    changed_by TEXT NOT NULL,
    PRIMARY KEY (class, property)
) WITHOUT ROWID;
"#,
    // 17: a deployment can ask its clients for an expedited inventory: sent right after the
    // scan that evaluates it, not at the next inventory cycle (I4).
    r#"
ALTER TABLE deployments ADD COLUMN expedited_inventory INTEGER NOT NULL DEFAULT 0;
"#,
    // 18: program deployments: the scan tool runs a program (offline-scan, or its expedited
    // form) with the offline scan catalog package as its content, instead of updates (I2).
    r#"
ALTER TABLE deployments ADD COLUMN program TEXT;
"#,
    // 19: the compliance trend: site-wide counts of computer/update pairs by state, sampled
    // on a schedule (trend.rs), for the console's chart of required updates over time.
    r#"
CREATE TABLE compliance_samples (
    time_ms INTEGER PRIMARY KEY,
    clients INTEGER NOT NULL,
    required INTEGER NOT NULL,
    installed INTEGER NOT NULL,
    not_required INTEGER NOT NULL,
    unknown INTEGER NOT NULL,
    updates_required INTEGER NOT NULL
);
"#,
    // 20: the triggers that mark clients for collection evaluation insert with
    // `ON CONFLICT DO NOTHING` instead of `SELECT ... WHERE NOT EXISTS` on the table they
    // insert into: SQLite copies such a self-reading SELECT into a temporary table first,
    // which opened and closed a temporary B-tree for every state row stored (a tenth of the
    // ingest path's time). Same rows, same transaction. `DO NOTHING` rather than
    // `INSERT OR IGNORE`, since an outer statement's conflict clause would override the
    // latter inside a trigger.
    r#"
DROP TRIGGER collection_dirty_enrolled;
DROP TRIGGER collection_dirty_inventory;
DROP TRIGGER collection_dirty_state_insert;
DROP TRIGGER collection_dirty_state_update;
DROP TRIGGER collection_dirty_state_delete;
CREATE TRIGGER collection_dirty_enrolled AFTER INSERT ON clients
BEGIN INSERT INTO collection_dirty(client) VALUES (NEW.id) ON CONFLICT(client) DO NOTHING; END;
CREATE TRIGGER collection_dirty_inventory AFTER UPDATE OF inventory_hash ON clients
BEGIN INSERT INTO collection_dirty(client) VALUES (NEW.id) ON CONFLICT(client) DO NOTHING; END;
CREATE TRIGGER collection_dirty_state_insert AFTER INSERT ON update_states
BEGIN INSERT INTO collection_dirty(client) VALUES (NEW.client) ON CONFLICT(client) DO NOTHING; END;
CREATE TRIGGER collection_dirty_state_update AFTER UPDATE OF state ON update_states
WHEN OLD.state != NEW.state
BEGIN INSERT INTO collection_dirty(client) VALUES (NEW.client) ON CONFLICT(client) DO NOTHING; END;
CREATE TRIGGER collection_dirty_state_delete AFTER DELETE ON update_states
BEGIN INSERT INTO collection_dirty(client) VALUES (OLD.client) ON CONFLICT(client) DO NOTHING; END;
"#,
    // 21: `update_states` rebuilt with its state check written as comparisons. SQLite
    // evaluates a CHECK `IN` list of three or more constants by building a temporary B-tree
    // of the list on every row written — another tenth of the ingest path's time. Same
    // columns, keys, index and triggers (those of 4 and 20); the rows are copied in key
    // order. A large site rewrites the table once at this upgrade (about a minute per 50
    // million state rows, and as much free disk as the table for the WAL meanwhile).
    r#"
CREATE TABLE update_states_v21 (
    client INTEGER NOT NULL,
    ukey INTEGER NOT NULL,
    state INTEGER NOT NULL CHECK (state = 1 OR state = 2 OR state = 3),
    restart_pending INTEGER NOT NULL DEFAULT 0,
    revision INTEGER NOT NULL,
    time_ms INTEGER NOT NULL,
    PRIMARY KEY (client, ukey)
) WITHOUT ROWID;
INSERT INTO update_states_v21(client, ukey, state, restart_pending, revision, time_ms)
    SELECT client, ukey, state, restart_pending, revision, time_ms FROM update_states
    ORDER BY client, ukey;
DROP TABLE update_states;
ALTER TABLE update_states_v21 RENAME TO update_states;
-- By update, without the state: a state change rewrites the row, not the index.
CREATE INDEX update_states_update ON update_states(ukey);
CREATE TRIGGER update_states_insert AFTER INSERT ON update_states
BEGIN
    INSERT INTO update_summary(ukey, required, installed, not_required, restart_pending, first_detected_ms, last_change_ms)
    VALUES (NEW.ukey, NEW.state = 1, NEW.state = 3, NEW.state = 2, NEW.restart_pending <> 0,
            CASE WHEN NEW.state IN (1, 3) THEN NEW.time_ms END, NEW.time_ms)
    ON CONFLICT(ukey) DO UPDATE SET
        required = required + excluded.required,
        installed = installed + excluded.installed,
        not_required = not_required + excluded.not_required,
        restart_pending = restart_pending + excluded.restart_pending,
        first_detected_ms = CASE
            WHEN first_detected_ms IS NULL THEN excluded.first_detected_ms
            WHEN excluded.first_detected_ms IS NULL THEN first_detected_ms
            ELSE MIN(first_detected_ms, excluded.first_detected_ms) END,
        last_change_ms = MAX(COALESCE(last_change_ms, 0), excluded.last_change_ms);
END;
CREATE TRIGGER update_states_update AFTER UPDATE ON update_states
BEGIN
    UPDATE update_summary SET
        required = required - (OLD.state = 1) + (NEW.state = 1),
        installed = installed - (OLD.state = 3) + (NEW.state = 3),
        not_required = not_required - (OLD.state = 2) + (NEW.state = 2),
        restart_pending = restart_pending - (OLD.restart_pending <> 0) + (NEW.restart_pending <> 0),
        first_detected_ms = CASE
            WHEN NEW.state NOT IN (1, 3) THEN first_detected_ms
            WHEN first_detected_ms IS NULL THEN NEW.time_ms
            ELSE MIN(first_detected_ms, NEW.time_ms) END,
        last_change_ms = MAX(COALESCE(last_change_ms, 0), NEW.time_ms)
    WHERE ukey = NEW.ukey;
END;
CREATE TRIGGER update_states_delete AFTER DELETE ON update_states
BEGIN
    UPDATE update_summary SET
        required = required - (OLD.state = 1),
        installed = installed - (OLD.state = 3),
        not_required = not_required - (OLD.state = 2),
        restart_pending = restart_pending - (OLD.restart_pending <> 0)
    WHERE ukey = OLD.ukey;
END;
CREATE TRIGGER collection_dirty_state_insert AFTER INSERT ON update_states
BEGIN INSERT INTO collection_dirty(client) VALUES (NEW.client) ON CONFLICT(client) DO NOTHING; END;
CREATE TRIGGER collection_dirty_state_update AFTER UPDATE OF state ON update_states
WHEN OLD.state != NEW.state
BEGIN INSERT INTO collection_dirty(client) VALUES (NEW.client) ON CONFLICT(client) DO NOTHING; END;
CREATE TRIGGER collection_dirty_state_delete AFTER DELETE ON update_states
BEGIN INSERT INTO collection_dirty(client) VALUES (OLD.client) ON CONFLICT(client) DO NOTHING; END;
"#,
    // 22: the sync writes each new update's `ukey` and `added_cv` itself. The trigger that
    // filled them in after the insert made every insert into `updates` a statement with a
    // trigger, which SQLite runs with a statement journal: each page the insert touched was
    // copied to a temporary file first, half of a full sync's database time.
    r#"
DROP TRIGGER updates_keys;
"#,
];
