-- title: Computers to which a specific update applies
-- category: Software updates - compliance
-- optional: collection
-- The computers that require an update or have it installed (by update ID or article ID).
-- :collection (a collection id or name) lists only its members.
SELECT c.computer, c.client_id, c.os_release, s.state, s.restart_pending,
       strftime('%Y-%m-%dT%H:%M:%SZ', s.time_ms / 1000, 'unixepoch') AS state_time
FROM v_update_states s
JOIN v_clients c ON c.client_key = s.client_key
WHERE s.update_key = (SELECT update_key FROM v_updates
                      WHERE update_id = :update OR article_id = :update
                      ORDER BY expired, revised_ms DESC LIMIT 1)
  AND s.state IN ('required', 'installed')
  AND (:collection IS NULL
       OR s.client_key IN (SELECT client_key FROM v_collection_members
                           WHERE collection_id = :collection COLLATE NOCASE
                              OR collection = :collection COLLATE NOCASE))
ORDER BY s.state DESC, c.computer
