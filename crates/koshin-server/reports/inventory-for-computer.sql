-- title: Inventory of a specific computer
-- category: Inventory
-- One computer's inventory (by name or client ID): every property and value it last sent,
-- custom classes included, and when it sent them. Installed packages are in
-- v_installed_packages.
SELECT property, value, inventoried
FROM v_inventory
WHERE client_key = (SELECT client_key FROM v_clients
                    WHERE computer = :computer COLLATE NOCASE OR client_id = :computer
                    LIMIT 1)
ORDER BY property, value
