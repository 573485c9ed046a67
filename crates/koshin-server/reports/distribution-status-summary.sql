-- title: Distribution status summary
-- category: Software updates - distribution status
-- completed-by: deployments
-- Its data arrives with deployments: until then it runs and returns no rows, with the columns it
-- will have.
SELECT NULL AS deployment, NULL AS targeted, NULL AS install_verified, NULL AS in_progress, NULL AS no_status, NULL AS failed
WHERE 0
