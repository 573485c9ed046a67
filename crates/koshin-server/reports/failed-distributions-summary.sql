-- title: Failed distributions summary
-- category: Software updates - distribution status
-- Per deployment with failures: how many computers failed, and the most recent error.
SELECT s.deployment_id, s.deployment, COUNT(*) AS failed,
       (SELECT x.detail FROM v_deployment_status x
        WHERE x.deployment_id = s.deployment_id AND x.state = 'failed'
        ORDER BY x.time_ms DESC LIMIT 1) AS last_error
FROM v_deployment_status s
WHERE s.state = 'failed'
GROUP BY s.deployment_id
ORDER BY failed DESC, s.deployment
