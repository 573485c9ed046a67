-- title: New updates in the last 7 days, not installed
-- category: Software updates - compliance
-- P7: updates released, revised or first detected on a computer in the last 7 days that
-- some computer still requires, or that no computer has installed and some have not
-- reported on yet. An APT archive dates a suite, not each package: an update's release
-- date is the date of the suite it was first seen in, so updates of the site's first
-- catalog (content version 1) count as new only by revision or by first detection.
SELECT c.article_id, c.bulletin_id, c.product, c.title,
       u.released, u.revised,
       strftime('%Y-%m-%dT%H:%M:%SZ', c.first_detected_ms / 1000, 'unixepoch') AS first_detected,
       c.required, c.installed, c.unknown, c.update_id AS id
FROM v_update_compliance c
JOIN v_updates u ON u.update_key = c.update_key
WHERE c.expired = 0
  AND ((u.added_content_version > 1
        AND c.released_ms >= (unixepoch('now') - 7 * 86400) * 1000)
       OR (c.revised_ms > c.released_ms
           AND c.revised_ms >= (unixepoch('now') - 7 * 86400) * 1000)
       OR c.first_detected_ms >= (unixepoch('now') - 7 * 86400) * 1000)
  AND (c.required > 0 OR (c.installed = 0 AND c.unknown > 0))
ORDER BY MAX(c.released_ms, c.revised_ms, COALESCE(c.first_detected_ms, 0)) DESC, c.title
