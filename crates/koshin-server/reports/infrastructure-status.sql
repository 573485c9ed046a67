-- title: Software update infrastructure status
-- category: Software updates - infrastructure status
-- The sync manager's last sync and result, and the clients' scan health: one row per item.
SELECT 'last sync' AS item,
       COALESCE((SELECT kind || ' sync ' || state || ' at ' || started || COALESCE(': ' || error, '')
                 FROM v_sync_runs ORDER BY run_id DESC LIMIT 1), 'never synchronized') AS value
UNION ALL
SELECT 'last successful sync',
       COALESCE((SELECT started FROM v_sync_runs WHERE state = 'succeeded' ORDER BY run_id DESC LIMIT 1), 'never')
UNION ALL
SELECT 'catalog content version',
       CAST((SELECT MAX(content_version) FROM update_sources) AS TEXT)
UNION ALL
SELECT 'sync errors (6703) in the last 7 days',
       CAST((SELECT COUNT(*) FROM v_status_messages WHERE message_id = 6703
             AND time_ms >= (unixepoch('now') - 7 * 86400) * 1000) AS TEXT)
UNION ALL
SELECT 'clients', CAST((SELECT COUNT(*) FROM v_clients) AS TEXT)
UNION ALL
SELECT 'clients never scanned',
       CAST((SELECT COUNT(*) FROM v_clients WHERE last_scan_ms IS NULL) AS TEXT)
UNION ALL
SELECT 'clients whose last scan failed',
       CAST((SELECT COUNT(*) FROM v_clients WHERE last_scan_result LIKE 'failed%') AS TEXT)
UNION ALL
SELECT 'clients not scanned in 7 days',
       CAST((SELECT COUNT(*) FROM v_clients
             WHERE last_scan_ms < (unixepoch('now') - 7 * 86400) * 1000) AS TEXT)
