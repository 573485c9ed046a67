-- title: Server owners and their missing approved updates
-- category: Software updates - compliance
-- P23: each server (inventory chassis = server), its last logged-on user (inventory
-- last_user), and every update it requires that an enabled deployment holds (approved),
-- to notify the owner. deployment names the enabled deployments that hold the update. An
-- update installed but waiting for a restart is still Required, with restart_pending = 1.
WITH approved AS (
    SELECT du.update_id, group_concat(d.deployment, ', ' ORDER BY d.deployment) AS deployments
    FROM v_deployment_updates du
    JOIN v_deployments d ON d.deployment_id = du.deployment_id
    WHERE du.removed_ms IS NULL AND d.enabled = 1
    GROUP BY du.update_id
)
SELECT c.computer,
       (SELECT MIN(i.value) FROM v_inventory i
        WHERE i.client_key = c.client_key AND i.property = 'last_user') AS last_logged_on_user,
       s.update_id, s.title, a.deployments AS deployment,
       c.client_id, u.article_id, s.restart_pending
FROM v_clients c
JOIN v_update_states s ON s.client_key = c.client_key
JOIN approved a ON a.update_id = s.update_id
JOIN v_updates u ON u.update_key = s.update_key
WHERE c.chassis = 'server' AND s.state = 'required' AND u.expired = 0
ORDER BY c.computer, s.title
