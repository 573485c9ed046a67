-- title: Computers in one state for a software update
-- category: Software updates - compliance
-- optional: collection
-- The computers in one state (required, installed, not_required or unknown) for one update
-- (by update ID or article ID), by name. Made for paging: read in name order, a page stops
-- as soon as it is full (count=0), where compliance-by-update sorts every computer first.
SELECT computer, client_id, state, restart_pending,
       strftime('%Y-%m-%dT%H:%M:%SZ', state_time_ms / 1000, 'unixepoch') AS state_time
FROM v_compliance v
WHERE update_key = (SELECT update_key FROM v_updates
                    WHERE update_id = :update OR article_id = :update
                    ORDER BY expired, revised_ms DESC LIMIT 1)
  AND state = :state
  AND (:collection IS NULL
       OR v.client_key IN (SELECT client_key FROM v_collection_members
                           WHERE collection_id = :collection COLLATE NOCASE
                              OR collection = :collection COLLATE NOCASE))
ORDER BY computer, client_id
