//! The component status summary: per component, system and site, how many status messages of
//! each severity it reported since a time, and its last one — one aggregate query over
//! `status_messages` on a reader connection. Whether the counts make the component `OK`,
//! `Warning` or `Critical` is the domain's rule ([`ComponentHealth::from_counts`]).

use koshin_domain::component_status::ComponentHealth;
use koshin_domain::status::description;
use koshin_wire::ComponentStatus;
use rusqlite::params_from_iter;

use crate::sqlite::{SqliteStore, ts};
use crate::{Result, StoreError};

/// Counts per group, and the group's last message: the latest `time_ms`, the highest record
/// id among messages of that same time (the viewer's "newest" order) breaking a tie. The
/// `component` and `system` filters are appended (as `?2`, `?3`), like the viewer's.
const SUMMARY_SQL: &str = "
SELECT g.component, g.system, g.site, g.errors, g.warnings, g.informational,
       m.id, m.message_id, m.time_ms, m.insertion_strings
FROM (
    SELECT component, system, site,
           SUM(severity = 'E') AS errors,
           SUM(severity = 'W') AS warnings,
           SUM(severity = 'I') AS informational,
           MAX(time_ms) AS last_ms
    FROM status_messages
    WHERE time_ms >= ?1 AND (?2 IS NULL OR component = ?2 COLLATE NOCASE)
      AND (?3 IS NULL OR system = ?3 COLLATE NOCASE)
    GROUP BY component, system, site
) AS g
JOIN status_messages AS m ON m.id = (
    SELECT l.id FROM status_messages AS l
    WHERE l.component = g.component AND l.system = g.system AND l.site = g.site
      AND l.time_ms = g.last_ms
    ORDER BY l.id DESC LIMIT 1
)
ORDER BY g.component, g.site, g.system";

impl SqliteStore {
    /// The component status summary of messages at or after `since_ms` (Unix milliseconds),
    /// optionally of one component and/or one system (case-insensitive), ordered by
    /// component, site and system.
    pub fn status_summary(
        &self,
        since_ms: i64,
        component: Option<&str>,
        system: Option<&str>,
    ) -> Result<Vec<ComponentStatus>> {
        let args: [rusqlite::types::Value; 3] = [
            since_ms.into(),
            component.map(str::to_string).into(),
            system.map(str::to_string).into(),
        ];
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(SUMMARY_SQL)?;
        let rows = stmt.query_map(params_from_iter(args.iter()), |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, u32>(7)?,
                r.get::<_, i64>(8)?,
                r.get::<_, String>(9)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (
                component,
                system,
                site,
                errors,
                warnings,
                informational,
                record_id,
                message_id,
                time_ms,
                istr,
            ) = row?;
            let insertion_strings: Vec<String> = serde_json::from_str(&istr)
                .map_err(|e| StoreError::Corrupt(format!("status message {record_id}: {e}")))?;
            // SUM over at least one row of 0/1 values: never negative.
            let (errors, warnings, informational) = (
                errors.max(0) as u64,
                warnings.max(0) as u64,
                informational.max(0) as u64,
            );
            out.push(ComponentStatus {
                component,
                system,
                site,
                status: ComponentHealth::from_counts(errors, warnings, informational)
                    .as_str()
                    .to_string(),
                errors,
                warnings,
                informational,
                last_message_id: message_id,
                last_time: ts(time_ms),
                last_description: description(message_id, &insertion_strings),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use koshin_domain::status::{Level, Severity, StatusMessage};

    use super::*;
    use crate::traits::StatusStore;

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("site.db")).unwrap();
        s.initialize_site("CS1", "{SOURCE}").unwrap();
        (dir, s)
    }

    fn msg(
        component: &str,
        system: &str,
        id: u32,
        severity: Severity,
        time_ms: i64,
        istr: &[&str],
    ) -> StatusMessage {
        StatusMessage {
            message_id: id,
            severity,
            level: Level::Milestone,
            source: "koshin Server".into(),
            component: component.into(),
            system: system.into(),
            site: "CS1".into(),
            process_id: 1,
            thread_id: 1,
            time_ms,
            insertion_strings: istr.iter().map(|s| s.to_string()).collect(),
            attributes: BTreeMap::new(),
        }
    }

    /// Inserts `n` messages of one kind, at `time_ms` and on.
    fn insert(s: &SqliteStore, n: u32, m: StatusMessage) {
        for i in 0..n {
            let mut m = m.clone();
            m.time_ms += i64::from(i);
            s.insert_status(&m).unwrap();
        }
    }

    #[test]
    fn counts_judges_and_names_the_last_message_per_component_and_system() {
        let (_d, s) = store();
        const SYNC: &str = "SMS_WSUS_SYNC_MANAGER";
        const DIST: &str = "SMS_DISTRIBUTION_MANAGER";
        const POL: &str = "SMS_POLICY_PROVIDER";
        let t0 = 1_000_000;
        // Before the window: not counted, even though it is an error.
        insert(&s, 3, msg(SYNC, "a", 6703, Severity::Error, t0 - 10, &[]));
        // Sync manager on a: 4 informational and 1 error (Warning); the error is last.
        insert(
            &s,
            4,
            msg(SYNC, "a", 6701, Severity::Informational, t0, &[]),
        );
        insert(
            &s,
            1,
            msg(
                SYNC,
                "a",
                6703,
                Severity::Error,
                t0 + 100,
                &["boom", "http://x/"],
            ),
        );
        // Sync manager on b: informational only (OK).
        insert(
            &s,
            2,
            msg(SYNC, "b", 6702, Severity::Informational, t0 + 5, &[]),
        );
        // Distribution manager on a: 5 errors (Critical) and 9 warnings (OK on their own).
        insert(
            &s,
            5,
            msg(DIST, "a", 3532, Severity::Error, t0, &["P1", "CS2"]),
        );
        insert(
            &s,
            9,
            msg(DIST, "a", 2342, Severity::Warning, t0 + 10, &["P1", "DP1"]),
        );
        // Policy provider: 10 warnings (Warning).
        insert(&s, 10, msg(POL, "a", 5100, Severity::Warning, t0, &[]));

        let sum = s.status_summary(t0, None, None).unwrap();
        let keys: Vec<(&str, &str)> = sum
            .iter()
            .map(|c| (c.component.as_str(), c.system.as_str()))
            .collect();
        assert_eq!(
            keys,
            vec![(DIST, "a"), (POL, "a"), (SYNC, "a"), (SYNC, "b")]
        );

        let dist = &sum[0];
        assert_eq!((dist.errors, dist.warnings, dist.informational), (5, 9, 0));
        assert_eq!(dist.status, "Critical");
        assert_eq!(dist.last_message_id, 2342);
        assert_eq!(dist.last_time.as_millisecond(), t0 + 18);
        assert_eq!(
            dist.last_description,
            "Starting to distribute package P1 to distribution point DP1."
        );

        let pol = &sum[1];
        assert_eq!((pol.errors, pol.warnings, pol.informational), (0, 10, 0));
        assert_eq!(pol.status, "Warning");

        let sync_a = &sum[2];
        assert_eq!(
            (sync_a.errors, sync_a.warnings, sync_a.informational),
            (1, 0, 4)
        );
        assert_eq!(sync_a.status, "Warning");
        assert_eq!(sync_a.site, "CS1");
        assert_eq!(sync_a.last_message_id, 6703);
        assert_eq!(sync_a.last_time.as_millisecond(), t0 + 100);
        assert_eq!(
            sync_a.last_description,
            "Software update synchronization failed. Message: boom. Source: http://x/."
        );

        let sync_b = &sum[3];
        assert_eq!(
            (sync_b.errors, sync_b.warnings, sync_b.informational),
            (0, 0, 2)
        );
        assert_eq!(sync_b.status, "OK");
        assert_eq!(sync_b.last_message_id, 6702);

        // The earlier window counts the three old errors too: Warning stays Warning at 4.
        let all = s
            .status_summary(0, Some("sms_wsus_sync_manager"), Some("A"))
            .unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].errors, all[0].informational), (4, 4));
        assert_eq!(all[0].status, "Warning");

        // A window after every message: nothing.
        assert!(s.status_summary(t0 + 1000, None, None).unwrap().is_empty());
    }

    #[test]
    fn messages_at_the_same_time_end_with_the_last_recorded() {
        let (_d, s) = store();
        s.insert_status(&msg("C", "a", 6701, Severity::Informational, 5, &[]))
            .unwrap();
        s.insert_status(&msg("C", "a", 6702, Severity::Informational, 5, &[]))
            .unwrap();
        // Recorded later but reported earlier (a late arrival): not the last.
        s.insert_status(&msg("C", "a", 6704, Severity::Informational, 4, &[]))
            .unwrap();
        let sum = s.status_summary(0, None, None).unwrap();
        assert_eq!(sum.len(), 1);
        assert_eq!(sum[0].informational, 3);
        assert_eq!(sum[0].last_message_id, 6702);
        assert_eq!(
            sum[0].last_description,
            "Software update synchronization done."
        );
    }
}
