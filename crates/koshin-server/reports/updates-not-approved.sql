-- title: Updates not yet authorized
-- category: Software updates - compliance
-- completed-by: deployments
-- Updates some computer requires and no deployment authorizes yet. Until deployments
-- exist, no update is authorized, so this lists every required update.
SELECT update_id AS id, title, product, classification, article_id, required, unknown
FROM v_update_compliance
WHERE expired = 0 AND required > 0
ORDER BY required DESC, title
