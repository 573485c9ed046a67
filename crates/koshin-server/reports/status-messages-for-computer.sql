-- title: Status messages for a specific computer in the last N days
-- category: Software updates - infrastructure status
-- Every status message a computer (site system or client) reported in the last :days days.
SELECT time, message_id, severity, component, site, insertion_strings
FROM v_status_messages
WHERE system = :computer COLLATE NOCASE
  AND time_ms >= (unixepoch('now') - CAST(:days AS REAL) * 86400) * 1000
ORDER BY time_ms DESC, record_id DESC
