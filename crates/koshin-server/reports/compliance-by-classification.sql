-- title: Compliance by product and classification
-- category: Software updates - compliance
-- Per product and classification: its updates, and computer/update pairs by state, as the
-- console's dashboard charts them. compliant_pct is Installed out of the pairs that apply
-- (Required + Installed + Unknown); Unknown pairs are not compliant. Reads only
-- catalog-sized tables.
SELECT product, classification,
       COUNT(*) AS updates,
       SUM(required > 0) AS updates_required,
       SUM(required) AS required,
       SUM(installed) AS installed,
       SUM(not_required) AS not_required,
       SUM(unknown) AS unknown,
       CASE WHEN SUM(required) + SUM(installed) + SUM(unknown) = 0 THEN 100.0
            ELSE round(100.0 * SUM(installed) / (SUM(required) + SUM(installed) + SUM(unknown)), 1)
       END AS compliant_pct
FROM v_update_compliance
WHERE expired = 0
GROUP BY product, classification
ORDER BY product, classification
