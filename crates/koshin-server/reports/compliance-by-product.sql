-- title: Compliance by product
-- category: Software updates - compliance
-- Per product: its updates, and computer/update pairs by state. compliant_pct is Installed
-- out of the pairs that apply (Required + Installed); Unknown pairs are not compliant.
SELECT product,
       COUNT(*) AS updates,
       SUM(required > 0) AS updates_required,
       SUM(required) AS required,
       SUM(installed) AS installed,
       SUM(not_required) AS not_required,
       SUM(unknown) AS unknown,
       CASE WHEN SUM(required) + SUM(installed) + SUM(unknown) = 0 THEN 100.0
            ELSE ROUND(100.0 * SUM(installed) / (SUM(required) + SUM(installed) + SUM(unknown)), 1)
       END AS compliant_pct
FROM v_update_compliance
WHERE expired = 0
GROUP BY product
ORDER BY product
