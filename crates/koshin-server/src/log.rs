//! Component logs in the seeds' form (`WSyncMgr.log`): one line per event,
//! `text  $$<COMPONENT><MM-DD-YYYY HH:MM:SS.mmm+000><thread=N (0xN)>`, rolled over to
//! `<name>.lo_` when it passes its size limit, as Configuration Manager does.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub struct ComponentLog {
    component: String,
    path: PathBuf,
    max_bytes: u64,
    inner: Mutex<Option<(BufWriter<File>, u64)>>,
}

/// The OS thread id of the caller (0 where the platform does not say).
pub fn thread_id() -> u64 {
    // The OS thread id, as the seeds' logs show it.
    #[cfg(target_os = "linux")]
    {
        std::fs::read_link("/proc/thread-self")
            .ok()
            .and_then(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|s| s.parse().ok())
            })
            .unwrap_or(0)
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

impl ComponentLog {
    pub fn open(dir: &Path, file_name: &str, component: &str) -> ComponentLog {
        ComponentLog {
            component: component.to_string(),
            path: dir.join(file_name),
            max_bytes: 16 << 20,
            inner: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn format(&self, text: &str, tid: u64) -> String {
        let now = jiff::Timestamp::now();
        format!(
            "{text}  $$<{}><{}+000><thread={tid} (0x{tid:X})>\n",
            self.component,
            now.strftime("%m-%d-%Y %H:%M:%S%.3f")
        )
    }

    /// Writes lines and flushes them. A log that cannot be written (full disk) never stops
    /// the component: the failure goes to the process log instead.
    pub fn lines<I, S>(&self, lines: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let tid = thread_id();
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            match OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
            {
                Ok(f) => {
                    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
                    *guard = Some((BufWriter::new(f), len));
                }
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot open component log");
                    return;
                }
            }
        }
        let Some((w, len)) = guard.as_mut() else {
            return;
        };
        for line in lines {
            let s = self.format(line.as_ref(), tid);
            *len += s.len() as u64;
            if let Err(e) = w.write_all(s.as_bytes()) {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot write component log");
                *guard = None;
                return;
            }
        }
        if let Err(e) = w.flush() {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot write component log");
            *guard = None;
            return;
        }
        if *len > self.max_bytes {
            *guard = None;
            let rolled = self.path.with_extension("lo_");
            if let Err(e) = std::fs::rename(&self.path, &rolled) {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot roll over component log");
            }
        }
    }

    pub fn line(&self, text: impl AsRef<str>) {
        self.lines(std::iter::once(text));
    }
}
