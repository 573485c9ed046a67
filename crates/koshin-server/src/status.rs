//! The status message reporter: every component's way to report on itself. A message goes
//! to the site database (for `koshin status-messages`, reports and the console) and, as a
//! `STATMSG:` line, to the component's log.

use std::collections::BTreeMap;
use std::sync::Arc;

use koshin_domain::status::{Level, SOURCE_SERVER, Severity, StatusMessage, statmsg_line};
use koshin_store::Store;

use crate::log::{ComponentLog, thread_id};

#[derive(Clone)]
pub struct StatusReporter {
    store: Arc<dyn Store>,
    site: String,
    system: String,
}

impl StatusReporter {
    pub fn new(store: Arc<dyn Store>, site: &str, system: &str) -> StatusReporter {
        StatusReporter {
            store,
            site: site.to_string(),
            system: system.to_string(),
        }
    }

    /// Reports a milestone status message of `component`, and logs it to `log`.
    pub fn report(
        &self,
        log: &ComponentLog,
        component: &str,
        message_id: u32,
        severity: Severity,
        insertion_strings: Vec<String>,
        attributes: BTreeMap<String, String>,
    ) -> StatusMessage {
        let mut insertion_strings = insertion_strings;
        insertion_strings.truncate(10);
        let m = StatusMessage {
            message_id,
            severity,
            level: Level::Milestone,
            source: SOURCE_SERVER.to_string(),
            component: component.to_string(),
            system: self.system.clone(),
            site: self.site.clone(),
            process_id: std::process::id(),
            thread_id: thread_id(),
            time_ms: jiff::Timestamp::now().as_millisecond(),
            insertion_strings,
            attributes,
        };
        log.line(statmsg_line(&m));
        if let Err(e) = self.store.insert_status(&m) {
            // The message is still in the component log; say loudly that the database missed it.
            tracing::error!(message_id, error = %e, "cannot store status message");
            log.line(format!(
                "Failed to store status message {message_id} in the site database: {e}"
            ));
        }
        m
    }
}
