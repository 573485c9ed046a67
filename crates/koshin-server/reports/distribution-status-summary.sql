-- title: Distribution status summary
-- category: Software updates - distribution status
-- optional: collection
-- Per deployment: the computers it targets and how many have installed it (or had nothing
-- to install), are on their way, have not reported, or failed. :collection (a collection id
-- or name) counts only its members, and lists only the deployments that target one of them.
SELECT d.deployment_id, d.deployment, d.collection, d.enabled,
       COUNT(s.client_key) AS targeted,
       SUM(s.state = 'succeeded') AS install_verified,
       SUM(s.state IN ('received', 'waiting', 'waiting_for_window', 'content_unavailable',
                       'downloading', 'installing', 'restart_pending')) AS in_progress,
       SUM(s.state = 'not_received') AS no_status,
       SUM(s.state = 'failed') AS failed
FROM v_deployments d
LEFT JOIN v_deployment_status s ON s.deployment_id = d.deployment_id
    AND (:collection IS NULL
         OR s.client_key IN (SELECT client_key FROM v_collection_members
                             WHERE collection_id = :collection COLLATE NOCASE
                                OR collection = :collection COLLATE NOCASE))
GROUP BY d.deployment_id
HAVING :collection IS NULL OR COUNT(s.client_key) > 0
ORDER BY d.deployment
