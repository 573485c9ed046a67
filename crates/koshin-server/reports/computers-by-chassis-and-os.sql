-- title: Computers by chassis and operating system
-- category: Inventory
-- optional: collection
-- P1: how many computers of each chassis (server, desktop, portable, virtual, unknown) run
-- each operating system, from their inventory: os.pretty_name, else os.id and os.release.
-- A computer that has sent no inventory counts as unknown. :collection (a collection id or
-- name) counts only its members.
WITH inv AS (
    SELECT v.client_key, COALESCE(v.chassis, 'unknown') AS chassis,
           (SELECT MIN(value) FROM v_inventory i
            WHERE i.client_key = v.client_key AND i.property = 'os.pretty_name') AS pretty_name,
           (SELECT MIN(value) FROM v_inventory i
            WHERE i.client_key = v.client_key AND i.property = 'os.id') AS os_id,
           (SELECT MIN(value) FROM v_inventory i
            WHERE i.client_key = v.client_key AND i.property = 'os.release') AS os_release
    FROM v_clients v
    WHERE :collection IS NULL
       OR v.client_key IN (SELECT client_key FROM v_collection_members
                           WHERE collection_id = :collection COLLATE NOCASE
                              OR collection = :collection COLLATE NOCASE)
)
SELECT chassis,
       COALESCE(pretty_name, trim(os_id || ' ' || COALESCE(os_release, '')), 'unknown') AS os,
       COUNT(*) AS computers
FROM inv
GROUP BY 1, 2
ORDER BY chassis, os
