//! The reports: each a named, parameterized, read-only SQL query over the site database
//! (P9: every report shows its SQL). The compliance reports are here; distribution and
//! infrastructure reports join them as their data arrives.

use koshin_wire::ReportInfo;

pub struct Report {
    pub name: &'static str,
    pub title: &'static str,
    pub category: &'static str,
    pub parameters: &'static [&'static str],
    pub sql: &'static str,
}

impl Report {
    pub fn info(&self) -> ReportInfo {
        ReportInfo {
            name: self.name.into(),
            title: self.title.into(),
            category: self.category.into(),
            parameters: self.parameters.iter().map(|s| s.to_string()).collect(),
            sql: self.sql.trim().to_string(),
        }
    }
}

const COMPLIANCE: &str = "Software updates - compliance";

/// Every report, by name.
pub const REPORTS: &[Report] = &[
    Report {
        name: "updates-with-counts",
        title: "Updates with counts of applicable and installed computers",
        category: COMPLIANCE,
        parameters: &[],
        sql: r#"
SELECT u.id, u.title, u.product, u.classification,
       COALESCE(SUM(s.state = 1), 0) AS required,
       COALESCE(SUM(s.state = 3), 0) AS installed,
       COALESCE(SUM(s.state = 2), 0) AS not_required,
       (SELECT COUNT(*) FROM clients) - COUNT(s.client) AS unknown
FROM updates u
LEFT JOIN update_states s ON s.update_id = u.id
WHERE u.expired = 0
GROUP BY u.id
ORDER BY required DESC, u.title
"#,
    },
    Report {
        name: "compliance-by-product",
        title: "Compliance by product",
        category: COMPLIANCE,
        parameters: &[],
        sql: r#"
SELECT u.product,
       COUNT(DISTINCT u.id) AS updates,
       COALESCE(SUM(s.state = 1), 0) AS required,
       COALESCE(SUM(s.state = 3), 0) AS installed,
       COALESCE(SUM(s.state = 2), 0) AS not_required
FROM updates u
LEFT JOIN update_states s ON s.update_id = u.id
WHERE u.expired = 0
GROUP BY u.product
ORDER BY u.product
"#,
    },
    Report {
        name: "compliance-by-update",
        title: "Compliance by software update ID",
        category: COMPLIANCE,
        parameters: &["update"],
        sql: r#"
SELECT c.name AS computer, c.client_id,
       CASE s.state WHEN 1 THEN 'required' WHEN 2 THEN 'not_required' WHEN 3 THEN 'installed' ELSE 'unknown' END AS state,
       COALESCE(s.restart_pending, 0) AS restart_pending,
       s.time_ms AS state_time_ms
FROM clients c
LEFT JOIN update_states s ON s.client = c.id
     AND s.update_id = (SELECT id FROM updates WHERE id = :update OR article_id = :update LIMIT 1)
ORDER BY c.name
"#,
    },
    Report {
        name: "computers-for-update",
        title: "Computers to which a specific update applies",
        category: COMPLIANCE,
        parameters: &["update"],
        sql: r#"
SELECT c.name AS computer, c.client_id, c.os_release,
       CASE s.state WHEN 1 THEN 'required' WHEN 3 THEN 'installed' END AS state,
       s.restart_pending
FROM update_states s
JOIN clients c ON c.id = s.client
WHERE s.update_id = (SELECT id FROM updates WHERE id = :update OR article_id = :update LIMIT 1)
  AND s.state IN (1, 3)
ORDER BY s.state, c.name
"#,
    },
    Report {
        name: "updates-for-computer",
        title: "Updates for a specific computer",
        category: COMPLIANCE,
        parameters: &["computer"],
        sql: r#"
SELECT u.id, u.title, u.classification, u.product,
       CASE s.state WHEN 1 THEN 'required' WHEN 2 THEN 'not_required' WHEN 3 THEN 'installed' ELSE 'unknown' END AS state,
       COALESCE(s.restart_pending, 0) AS restart_pending
FROM updates u
LEFT JOIN update_states s ON s.update_id = u.id
     AND s.client = (SELECT id FROM clients WHERE name = :computer OR client_id = :computer LIMIT 1)
WHERE u.expired = 0 AND (s.state IS NULL OR s.state IN (1, 3))
ORDER BY COALESCE(s.state, 0) = 1 DESC, u.title
"#,
    },
];

pub fn find(name: &str) -> Option<&'static Report> {
    REPORTS.iter().find(|r| r.name == name)
}
