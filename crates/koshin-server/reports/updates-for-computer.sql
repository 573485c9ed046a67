-- title: Updates for a specific computer
-- category: Software updates - compliance
-- One computer's updates (by name or client ID): Required, Installed, and Unknown (never
-- scanned, or newer than its last scan). Not required updates are left out. P6: release
-- date and the article of each.
SELECT v.update_id AS id, v.title, v.classification, v.product, v.state, v.restart_pending,
       u.article_id, u.released,
       strftime('%Y-%m-%dT%H:%M:%SZ', v.state_time_ms / 1000, 'unixepoch') AS state_time
FROM v_compliance v
JOIN v_updates u ON u.update_key = v.update_key
WHERE v.client_key = (SELECT client_key FROM v_clients
                      WHERE computer = :computer COLLATE NOCASE OR client_id = :computer
                      LIMIT 1)
  AND v.expired = 0
  AND v.state IN ('required', 'installed', 'unknown')
ORDER BY CASE v.state WHEN 'required' THEN 0 WHEN 'unknown' THEN 1 ELSE 2 END, v.title
