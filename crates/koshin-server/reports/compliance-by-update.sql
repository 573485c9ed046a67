-- title: Compliance by software update ID
-- category: Software updates - compliance
-- optional: collection, state
-- Every computer's state for one update (by update ID or article ID), Unknown included.
-- :collection (a collection id or name) lists only its members; :state (required,
-- installed, not_required or unknown) only the computers in that state.
SELECT computer, client_id, state, restart_pending,
       strftime('%Y-%m-%dT%H:%M:%SZ', state_time_ms / 1000, 'unixepoch') AS state_time
FROM v_compliance v
WHERE update_key = (SELECT update_key FROM v_updates
                    WHERE update_id = :update OR article_id = :update
                    ORDER BY expired, revised_ms DESC LIMIT 1)
  AND (:collection IS NULL
       OR v.client_key IN (SELECT client_key FROM v_collection_members
                           WHERE collection_id = :collection COLLATE NOCASE
                              OR collection = :collection COLLATE NOCASE))
  AND (:state IS NULL OR state = :state)
ORDER BY CASE state WHEN 'required' THEN 0 WHEN 'unknown' THEN 1 WHEN 'installed' THEN 2 ELSE 3 END,
         computer
