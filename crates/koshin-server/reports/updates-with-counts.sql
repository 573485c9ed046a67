-- title: Updates with counts of applicable and installed computers
-- category: Software updates - compliance
-- optional: search, product, classification, required_only
-- Per update (P8): how many computers require it, have it installed, do not need it, and
-- have not told the site (Unknown). Current the moment a state message is stored.
-- :search keeps updates whose title or article contains it (any case); :product and
-- :classification keep one of each; :required_only (any value) keeps the updates some
-- computer requires.
SELECT update_id AS id, title, product, classification, article_id,
       required, installed, not_required, unknown, restart_pending
FROM v_update_compliance
WHERE expired = 0
  AND (:search IS NULL OR instr(lower(title), lower(:search)) > 0
       OR instr(lower(article_id), lower(:search)) > 0)
  AND (:product IS NULL OR product = :product)
  AND (:classification IS NULL OR classification = :classification)
  AND (:required_only IS NULL OR required > 0)
ORDER BY required DESC, installed DESC, title
