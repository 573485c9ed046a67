-- title: Computers that returned an update error for a deployment
-- category: Software updates - infrastructure status
-- completed-by: deployments
-- Its data arrives with deployments: until then it runs and returns no rows, with the columns it
-- will have.
SELECT NULL AS computer, NULL AS client_id, NULL AS update_id, NULL AS error_code, NULL AS error, NULL AS time
WHERE 0 AND :deployment IS NOT NULL
