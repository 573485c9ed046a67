-- title: Updates not yet authorized
-- category: Software updates - compliance
-- Updates some computer requires that no enabled deployment authorizes (an update removed
-- from a deployment is no longer authorized by it).
SELECT c.update_id AS id, c.title, c.product, c.classification, c.article_id, c.required, c.unknown
FROM v_update_compliance c
WHERE c.expired = 0 AND c.required > 0
  AND NOT EXISTS (
      SELECT 1 FROM v_deployment_updates du
      JOIN v_deployments d ON d.deployment_id = du.deployment_id
      WHERE du.update_id = c.update_id AND du.removed_ms IS NULL AND d.enabled = 1)
ORDER BY c.required DESC, c.title
