//! The documented views reports read (docs/reports.md). Views hold no data, so they are
//! dropped and created anew each time the site database opens: a koshin upgrade may change
//! a view without a migration, and a user's report reads the same names across versions.
//!
//! Names: `*_key` columns are the integer keys the state tables use, `*_ms` are
//! milliseconds since 1970 UTC, and the ISO-8601 text columns beside them are for people.

/// The view names, in the order they are created.
pub const VIEW_NAMES: &[&str] = &[
    "v_updates",
    "v_clients",
    "v_update_states",
    "v_update_compliance",
    "v_compliance",
    "v_status_messages",
    "v_scans",
    "v_sync_runs",
    "v_packages",
    "v_distribution_points",
    "v_package_targets",
    "v_deployments",
    "v_deployment_updates",
    "v_deployment_status",
    "v_inventory",
    "v_installed_packages",
    "v_collection_members",
];

pub const VIEWS: &str = r#"
CREATE VIEW v_updates AS
SELECT id AS update_id, ukey AS update_key, revision, title, product, classification, vendor,
       article_id, bulletin_id, severity, source, version, superseded_by, expired,
       strftime('%Y-%m-%dT%H:%M:%SZ', released_ms / 1000, 'unixepoch') AS released,
       strftime('%Y-%m-%dT%H:%M:%SZ', revised_ms / 1000, 'unixepoch') AS revised,
       released_ms, revised_ms, first_synced_ms, expired_ms,
       added_cv AS added_content_version, content_version
FROM updates;

CREATE VIEW v_clients AS
SELECT id AS client_key, client_id, name AS computer, os, os_release, architecture, site,
       agent_version, enrolled_ms, last_contact_ms, last_policy_ms, last_scan_ms,
       strftime('%Y-%m-%dT%H:%M:%SZ', last_scan_ms / 1000, 'unixepoch') AS last_scan,
       json_extract(last_scan_json, '$.result') AS last_scan_result,
       scanned_cv AS scanned_content_version,
       inventory_ms,
       strftime('%Y-%m-%dT%H:%M:%SZ', inventory_ms / 1000, 'unixepoch') AS last_inventory,
       (SELECT MIN(i.value) FROM inventory i
        WHERE i.client = clients.id AND i.property = 'chassis') AS chassis
FROM clients;

CREATE VIEW v_update_states AS
SELECT c.name AS computer, c.client_id, u.id AS update_id, u.title,
       s.client AS client_key, s.ukey AS update_key,
       CASE s.state WHEN 1 THEN 'required' WHEN 2 THEN 'not_required' WHEN 3 THEN 'installed' END AS state,
       s.restart_pending, s.revision, s.time_ms
FROM update_states s
JOIN clients c ON c.id = s.client
JOIN updates u ON u.ukey = s.ukey;

CREATE VIEW v_update_compliance AS
WITH total AS (SELECT COUNT(*) AS n FROM clients),
     cov AS (
        SELECT a.added_cv,
               (SELECT COALESCE(SUM(clients), 0) FROM client_coverage WHERE cv >= a.added_cv) AS covered
        FROM (SELECT DISTINCT added_cv FROM updates) a)
SELECT u.id AS update_id, u.ukey AS update_key, u.title, u.product, u.classification,
       u.article_id, u.bulletin_id, u.severity, u.expired, u.released_ms, u.revised_ms,
       COALESCE(s.required, 0) AS required,
       COALESCE(s.installed, 0) AS installed,
       MAX(0, cov.covered - COALESCE(s.required, 0) - COALESCE(s.installed, 0)) AS not_required,
       MAX(0, total.n - MAX(cov.covered, COALESCE(s.required, 0) + COALESCE(s.installed, 0))) AS unknown,
       COALESCE(s.restart_pending, 0) AS restart_pending,
       s.first_detected_ms
FROM updates u
JOIN cov ON cov.added_cv = u.added_cv
JOIN total
LEFT JOIN update_summary s ON s.ukey = u.ukey;

CREATE VIEW v_compliance AS
SELECT c.id AS client_key, c.name AS computer, c.client_id,
       u.ukey AS update_key, u.id AS update_id, u.title, u.product, u.classification,
       u.article_id, u.expired,
       CASE
           WHEN s.state = 1 THEN 'required'
           WHEN s.state = 3 THEN 'installed'
           WHEN s.state = 2 THEN 'not_required'
           WHEN c.scanned_cv >= u.added_cv THEN 'not_required'
           ELSE 'unknown'
       END AS state,
       COALESCE(s.restart_pending, 0) AS restart_pending,
       s.time_ms AS state_time_ms
FROM clients c
JOIN updates u
LEFT JOIN update_states s ON s.client = c.id AND s.ukey = u.ukey;

CREATE VIEW v_status_messages AS
SELECT id AS record_id, message_id, severity, level, source, component, system, site,
       process_id, thread_id, time_ms,
       strftime('%Y-%m-%dT%H:%M:%SZ', time_ms / 1000, 'unixepoch') AS time,
       insertion_strings, attributes
FROM status_messages;

CREATE VIEW v_scans AS
SELECT c.name AS computer, c.client_id, s.client AS client_key, s.scan_id, s.trigger, s.kind,
       s.online, s.started_ms,
       strftime('%Y-%m-%dT%H:%M:%SZ', s.started_ms / 1000, 'unixepoch') AS started,
       s.duration_ms, s.result, s.content_version, s.required, s.installed, s.not_required
FROM scans s JOIN clients c ON c.id = s.client;

CREATE VIEW v_sync_runs AS
SELECT id AS run_id, kind, trigger, state, started_ms, finished_ms,
       strftime('%Y-%m-%dT%H:%M:%SZ', started_ms / 1000, 'unixepoch') AS started,
       error, items, content_version, phase
FROM sync_runs;

CREATE VIEW v_packages AS
SELECT p.id AS package_key, p.package_id, p.name,
       CASE p.priority WHEN 1 THEN 'high' WHEN 2 THEN 'medium' ELSE 'low' END AS priority,
       p.source_version, p.created_ms, p.created_by,
       (SELECT COUNT(*) FROM package_files f WHERE f.package = p.id) AS files,
       (SELECT COALESCE(SUM(f.size), 0) FROM package_files f WHERE f.package = p.id) AS bytes
FROM content_packages p;

CREATE VIEW v_distribution_points AS
SELECT id AS dp_key, name AS distribution_point, url, local, protected, boundaries,
       registered_ms, registered_by, last_seen_ms, last_error
FROM distribution_points;

CREATE VIEW v_package_targets AS
SELECT p.package_id, p.name AS package, d.name AS distribution_point, d.local, t.state,
       t.source_version, t.queued_ms, t.started_ms, t.finished_ms, t.bytes_total, t.bytes_sent,
       t.attempts, t.retry_at_ms, t.error, t.via_group
FROM package_targets t
JOIN content_packages p ON p.id = t.package
JOIN distribution_points d ON d.id = t.dp;

CREATE VIEW v_deployments AS
SELECT d.id AS deployment_key, d.deployment_id, d.name AS deployment, d.update_group,
       k.name AS collection, k.collection_id, d.available, d.deadline, d.utc, d.enabled,
       d.generation, d.recurrence_days, d.created_ms, d.created_by
FROM deployments d JOIN collections k ON k.id = d.collection;

CREATE VIEW v_deployment_updates AS
SELECT d.deployment_id, d.name AS deployment, du.update_id, u.title, u.ukey AS update_key,
       du.removed_ms
FROM deployment_updates du
JOIN deployments d ON d.id = du.deployment
LEFT JOIN updates u ON u.id = du.update_id;

CREATE VIEW v_deployment_status AS
SELECT d.deployment_id, d.name AS deployment, c.id AS client_key, c.name AS computer,
       c.client_id, COALESCE(s.state, 'not_received') AS state, s.detail, s.time_ms,
       strftime('%Y-%m-%dT%H:%M:%SZ', s.time_ms / 1000, 'unixepoch') AS time,
       s.generation, s.last_success_ms
FROM deployments d
JOIN collections k ON k.id = d.collection
JOIN clients c ON c.approval = 'approved'
    AND (k.collection_id = 'SMS00001'
         OR EXISTS (SELECT 1 FROM collection_members m WHERE m.collection = k.id AND m.client = c.id))
LEFT JOIN deployment_status s ON s.client = c.id AND s.deployment = d.id;

CREATE VIEW v_inventory AS
SELECT c.name AS computer, c.client_id, c.id AS client_key, i.property, i.value,
       c.inventory_ms,
       strftime('%Y-%m-%dT%H:%M:%SZ', c.inventory_ms / 1000, 'unixepoch') AS inventoried
FROM inventory i JOIN clients c ON c.id = i.client;

CREATE VIEW v_installed_packages AS
SELECT c.name AS computer, c.client_id, c.id AS client_key,
       substr(p.package, 1, instr(p.package, ':') - 1) AS package,
       substr(p.package, instr(p.package, ':') + 1) AS architecture, p.version
FROM inventory_packages p JOIN clients c ON c.id = p.client;

CREATE VIEW v_collection_members AS
SELECT k.collection_id, k.name AS collection, c.id AS client_key, c.name AS computer, c.client_id
FROM collection_members m
JOIN collections k ON k.id = m.collection
JOIN clients c ON c.id = m.client
UNION ALL
SELECT k.collection_id, k.name, c.id, c.name, c.client_id
FROM collections k JOIN clients c
WHERE k.collection_id = 'SMS00001';
"#;
