-- title: All computers with a distribution status for a specific update
-- category: Software updates - distribution status
-- completed-by: deployments
-- Its data arrives with deployments: until then it runs and returns no rows, with the columns it
-- will have.
SELECT NULL AS computer, NULL AS client_id, NULL AS deployment, NULL AS status, NULL AS status_time
WHERE 0 AND :update IS NOT NULL
