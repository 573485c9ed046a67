-- title: Clients whose inventory or scan is overdue
-- category: Software updates - infrastructure status
-- P3: one row per client and problem. Inventory: never sent, or none received within its
-- interval plus one day of grace; the interval is a day for servers (inventory chassis =
-- server) and a week for every other computer. Scan: never ran, failed, or not run within
-- the machine policy's scan interval plus one day of grace.
WITH c AS (
    SELECT v.*,
           CASE
               WHEN v.inventory_ms IS NULL THEN 'inventory never sent'
               WHEN v.inventory_ms < unixepoch('now') * 1000
                    - (CASE WHEN v.chassis = 'server' THEN 1 ELSE 7 END + 1) * 86400000
                   THEN 'inventory overdue'
           END AS inventory_problem,
           CASE
               WHEN v.last_scan_ms IS NULL THEN 'scan never ran'
               WHEN v.last_scan_result LIKE 'failed%' THEN 'scan failed'
               WHEN v.last_scan_ms < unixepoch('now') * 1000
                    - (COALESCE((SELECT json_extract(body, '$.scan_interval_minutes') FROM machine_policy), 10080)
                       + 1440) * 60000
                   THEN 'scan overdue'
           END AS scan_problem
    FROM v_clients v
),
problems AS (
    SELECT c.*, inventory_problem AS problem FROM c WHERE inventory_problem IS NOT NULL
    UNION ALL
    SELECT c.*, scan_problem AS problem FROM c WHERE scan_problem IS NOT NULL
)
SELECT computer, client_id,
       COALESCE(last_scan, 'never') AS last_scan,
       COALESCE(last_scan_result, '') AS last_scan_result,
       problem,
       COALESCE(last_inventory, 'never') AS last_inventory,
       COALESCE(chassis, 'unknown') AS chassis
FROM problems
ORDER BY problem, computer
