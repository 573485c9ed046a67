-- title: Distribution status by update ID
-- category: Software updates - distribution status
-- completed-by: deployments
-- Its data arrives with deployments: until then it runs and returns no rows, with the columns it
-- will have.
SELECT NULL AS deployment, NULL AS status, NULL AS computers
WHERE 0 AND :update IS NOT NULL
