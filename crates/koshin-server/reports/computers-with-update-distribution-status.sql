-- title: All computers with a distribution status for a specific update
-- category: Software updates - distribution status
-- optional: collection
-- Every computer targeted by a deployment that holds the update (not removed from it), with
-- its state of that deployment: not_received, received, waiting, waiting_for_window,
-- content_unavailable, downloading, installing, succeeded, failed, restart_pending.
-- :collection (a collection id or name) lists only its members.
SELECT s.computer, s.client_id, s.deployment_id, s.deployment, s.state AS status,
       s.time AS status_time, s.detail
FROM v_deployment_status s
JOIN v_deployment_updates du ON du.deployment_id = s.deployment_id AND du.removed_ms IS NULL
WHERE (du.update_id = :update OR du.title = :update
       OR du.update_id IN (SELECT update_id FROM v_updates WHERE article_id = :update))
  AND (:collection IS NULL
       OR s.client_key IN (SELECT client_key FROM v_collection_members
                           WHERE collection_id = :collection COLLATE NOCASE
                              OR collection = :collection COLLATE NOCASE))
ORDER BY s.deployment, s.computer
