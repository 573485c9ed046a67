-- title: Server owners and their missing approved updates
-- category: Software updates - compliance
-- completed-by: inventory
-- Its data arrives with inventory: until then it runs and returns no rows, with the columns it
-- will have.
SELECT NULL AS computer, NULL AS last_logged_on_user, NULL AS update_id, NULL AS title, NULL AS deployment
WHERE 0
