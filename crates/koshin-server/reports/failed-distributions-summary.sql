-- title: Failed distributions summary
-- category: Software updates - distribution status
-- optional: collection
-- Per deployment with failures: how many computers failed, and the most recent error.
-- :collection (a collection id or name) counts only its members.
WITH failures AS (
    SELECT s.deployment_id, s.deployment, s.detail, s.time_ms
    FROM v_deployment_status s
    WHERE s.state = 'failed'
      AND (:collection IS NULL
           OR s.client_key IN (SELECT client_key FROM v_collection_members
                               WHERE collection_id = :collection COLLATE NOCASE
                                  OR collection = :collection COLLATE NOCASE))
)
SELECT f.deployment_id, f.deployment, COUNT(*) AS failed,
       (SELECT x.detail FROM failures x WHERE x.deployment_id = f.deployment_id
        ORDER BY x.time_ms DESC LIMIT 1) AS last_error
FROM failures f
GROUP BY f.deployment_id
ORDER BY failed DESC, f.deployment
