-- title: Package transfer progress per site
-- category: Software updates - distribution status
-- The seeds' query (P18), per site: the last transfer's % complete, from the sender's
-- 3531 (sending, with %) and 3533 (sent) messages for the package (attribute 400), and how
-- many of the distribution points the package is targeted at hold it. :package is a
-- package id (CS100001) or name.
WITH pkg AS (
    SELECT package_key, package_id FROM v_packages
    WHERE package_id = :package COLLATE NOCASE OR name = :package
),
progress AS (
    SELECT m.site, CAST(json_extract(m.insertion_strings, '$[3]') AS INTEGER) AS pct,
           m.time, m.message_id,
           ROW_NUMBER() OVER (PARTITION BY m.site ORDER BY m.record_id DESC) AS n
    FROM v_status_messages m
    WHERE m.message_id IN (3531, 3533)
      AND json_extract(m.attributes, '$."400"') = (SELECT package_id FROM pkg)
),
targets AS (
    SELECT (SELECT value FROM site_kv WHERE key = 'site_code') AS site,
           COUNT(*) AS dps_targeted,
           SUM(t.state = 'installed') AS dps_done
    FROM v_package_targets t
    WHERE t.package_id = (SELECT package_id FROM pkg)
)
SELECT t.site, (SELECT package_id FROM pkg) AS package_id,
       p.time AS last_transfer_time, p.message_id AS last_message_id,
       p.pct AS last_transfer_pct,
       t.dps_targeted, t.dps_done,
       CASE WHEN t.dps_targeted > 0 THEN 100 * t.dps_done / t.dps_targeted END AS dps_done_pct
FROM targets t
LEFT JOIN progress p ON p.site = t.site AND p.n = 1
WHERE t.dps_targeted > 0
ORDER BY t.site
