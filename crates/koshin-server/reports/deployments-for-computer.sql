-- title: Deployments for a specific computer
-- category: Software updates - distribution status
-- Every deployment that targets one computer (by name or client ID), with the computer's
-- state of it, the error of a failure, and when the state was reported.
SELECT s.deployment_id, s.deployment, d.update_group, d.collection, d.enabled,
       d.available, d.deadline, s.state, s.detail, s.time, s.generation,
       strftime('%Y-%m-%dT%H:%M:%SZ', s.last_success_ms / 1000, 'unixepoch') AS last_success
FROM v_deployment_status s
JOIN v_deployments d ON d.deployment_id = s.deployment_id
WHERE s.client_key = (SELECT client_key FROM v_clients
                      WHERE computer = :computer COLLATE NOCASE OR client_id = :computer
                      LIMIT 1)
ORDER BY d.created_ms DESC
