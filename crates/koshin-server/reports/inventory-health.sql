-- title: Clients whose inventory or scan is overdue
-- category: Software updates - infrastructure status
-- completed-by: inventory
-- P3: clients whose scan tool failed, never ran, or has not run within its interval
-- (the machine policy's scan schedule, plus one day of grace). Inventory joins this
-- report when clients send inventory.
SELECT computer, client_id,
       COALESCE(last_scan, 'never') AS last_scan,
       COALESCE(last_scan_result, '') AS last_scan_result,
       CASE
           WHEN last_scan_ms IS NULL THEN 'scan never ran'
           WHEN last_scan_result LIKE 'failed%' THEN 'scan failed'
           ELSE 'scan overdue'
       END AS problem
FROM v_clients
WHERE last_scan_ms IS NULL
   OR last_scan_result LIKE 'failed%'
   OR last_scan_ms < (unixepoch('now') * 1000
        - (COALESCE((SELECT json_extract(body, '$.scan_interval_minutes') FROM machine_policy), 10080) + 1440) * 60000)
ORDER BY problem, computer
