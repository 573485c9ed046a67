-- title: Failed distributions summary
-- category: Software updates - distribution status
-- completed-by: deployments
-- Its data arrives with deployments: until then it runs and returns no rows, with the columns it
-- will have.
SELECT NULL AS deployment, NULL AS update_id, NULL AS title, NULL AS failed, NULL AS last_error
WHERE 0
