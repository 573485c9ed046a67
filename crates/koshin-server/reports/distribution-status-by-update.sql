-- title: Distribution status by update ID
-- category: Software updates - distribution status
-- optional: collection
-- For each deployment that holds the update: how many targeted computers are in each state.
-- :collection (a collection id or name) counts only its members.
SELECT du.update_id, du.title, s.deployment_id, s.deployment, s.state AS status,
       COUNT(*) AS computers
FROM v_deployment_updates du
JOIN v_deployment_status s ON s.deployment_id = du.deployment_id
WHERE du.removed_ms IS NULL
  AND (du.update_id = :update OR du.title = :update
       OR du.update_id IN (SELECT update_id FROM v_updates WHERE article_id = :update))
  AND (:collection IS NULL
       OR s.client_key IN (SELECT client_key FROM v_collection_members
                           WHERE collection_id = :collection COLLATE NOCASE
                              OR collection = :collection COLLATE NOCASE))
GROUP BY du.update_id, s.deployment_id, s.state
ORDER BY s.deployment, s.state
