//! The compliance trend: samples of the site-wide counts of computer/update pairs by state
//! (the sums of `v_update_compliance`, so each sample reads only catalog-sized tables),
//! taken by the server on a schedule and kept for [`KEEP_DAYS`] days. Reports show
//! compliance now; the samples show how it moved.

use rusqlite::{Connection, params};

use crate::Result;
use crate::sqlite::{SqliteStore, lock};
use crate::traits::{ComplianceSampleRecord, TrendStore};

/// How long samples are kept.
pub const KEEP_DAYS: i64 = 400;

const DAY_MS: i64 = 86_400_000;

fn current(conn: &Connection, now_ms: i64) -> Result<ComplianceSampleRecord> {
    let clients: i64 = conn.query_row("SELECT COUNT(*) FROM clients", [], |r| r.get(0))?;
    let (required, installed, not_required, unknown, updates_required) = conn.query_row(
        "SELECT COALESCE(SUM(required), 0), COALESCE(SUM(installed), 0),
                COALESCE(SUM(not_required), 0), COALESCE(SUM(unknown), 0),
                COALESCE(SUM(required > 0), 0)
         FROM v_update_compliance WHERE expired = 0",
        [],
        |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        },
    )?;
    Ok(ComplianceSampleRecord {
        time_ms: now_ms,
        clients,
        required,
        installed,
        not_required,
        unknown,
        updates_required,
    })
}

impl TrendStore for SqliteStore {
    fn current_compliance(&self, now_ms: i64) -> Result<ComplianceSampleRecord> {
        current(&self.reader(), now_ms)
    }

    fn sample_compliance(&self, now_ms: i64) -> Result<ComplianceSampleRecord> {
        let conn = lock(&self.writer);
        let s = current(&conn, now_ms)?;
        conn.execute(
            "INSERT OR REPLACE INTO compliance_samples(time_ms, clients, required, installed, not_required, unknown, updates_required)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                s.time_ms,
                s.clients,
                s.required,
                s.installed,
                s.not_required,
                s.unknown,
                s.updates_required
            ],
        )?;
        conn.execute(
            "DELETE FROM compliance_samples WHERE time_ms < ?1",
            params![now_ms - KEEP_DAYS * DAY_MS],
        )?;
        Ok(s)
    }

    fn last_compliance_sample_ms(&self) -> Result<Option<i64>> {
        Ok(self
            .reader()
            .query_row("SELECT MAX(time_ms) FROM compliance_samples", [], |r| {
                r.get(0)
            })?)
    }

    fn compliance_samples(
        &self,
        since_ms: i64,
        until_ms: i64,
        max_points: u32,
    ) -> Result<Vec<ComplianceSampleRecord>> {
        // More samples than points: the last sample of each of `max_points` equal spans.
        let span = ((until_ms - since_ms) / i64::from(max_points.max(1))).max(1);
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT time_ms, clients, required, installed, not_required, unknown, updates_required
             FROM compliance_samples
             WHERE time_ms IN (SELECT MAX(time_ms) FROM compliance_samples
                               WHERE time_ms >= ?1 AND time_ms <= ?2
                               GROUP BY (time_ms - ?1) / ?3)
             ORDER BY time_ms",
        )?;
        let rows = stmt
            .query_map(params![since_ms, until_ms, span], |r| {
                Ok(ComplianceSampleRecord {
                    time_ms: r.get(0)?,
                    clients: r.get(1)?,
                    required: r.get(2)?,
                    installed: r.get(3)?,
                    not_required: r.get(4)?,
                    unknown: r.get(5)?,
                    updates_required: r.get(6)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}
