-- title: Computers that returned an update error for a deployment
-- category: Software updates - distribution status
-- :deployment is a deployment id (CS1D00001) or name.
SELECT s.computer, s.client_id, s.time AS error_time, s.detail AS error
FROM v_deployment_status s
WHERE (s.deployment_id = :deployment COLLATE NOCASE OR s.deployment = :deployment)
  AND s.state = 'failed'
ORDER BY s.computer
