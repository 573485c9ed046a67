-- title: Package transfer progress per site
-- category: Software updates - distribution status
-- completed-by: content
-- Its data arrives with content: until then it runs and returns no rows, with the columns it
-- will have.
SELECT NULL AS site, NULL AS last_transfer_pct, NULL AS dps_targeted, NULL AS dps_done, NULL AS dps_done_pct
WHERE 0 AND :package IS NOT NULL
