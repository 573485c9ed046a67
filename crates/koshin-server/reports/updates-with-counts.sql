-- title: Updates with counts of applicable and installed computers
-- category: Software updates - compliance
-- Per update (P8): how many computers require it, have it installed, do not need it, and
-- have not told the site (Unknown). Current the moment a state message is stored.
SELECT update_id AS id, title, product, classification, article_id,
       required, installed, not_required, unknown, restart_pending
FROM v_update_compliance
WHERE expired = 0
ORDER BY required DESC, installed DESC, title
