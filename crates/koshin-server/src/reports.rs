//! The reports (P9): each a named, parameterized, read-only SQL query over the documented
//! views of the site database (docs/reports.md). A report is a `.sql` file: a header of
//! `-- key: value` comments (title, category, completed-by, optional), free comment lines
//! describing it, then one SELECT whose `:name` parameters are the report's parameters —
//! required, except those the `optional` line names, which are NULL when not given. The built-in
//! reports are such files compiled in; a site's own reports are files in `DATA/reports/`,
//! read at every request, so a copied and edited file appears without a restart.

use std::path::{Path, PathBuf};

use koshin_wire::ReportInfo;

/// The directory under a site's data directory that holds its own reports.
pub const REPORTS_DIR: &str = "reports";

/// The largest report file read.
const MAX_REPORT_BYTES: u64 = 256 * 1024;

const BUILT_IN: &[(&str, &str)] = &[
    (
        "compliance-by-product",
        include_str!("../reports/compliance-by-product.sql"),
    ),
    (
        "compliance-by-update",
        include_str!("../reports/compliance-by-update.sql"),
    ),
    (
        "computers-for-update",
        include_str!("../reports/computers-for-update.sql"),
    ),
    (
        "computers-in-state-for-update",
        include_str!("../reports/computers-in-state-for-update.sql"),
    ),
    (
        "updates-for-computer",
        include_str!("../reports/updates-for-computer.sql"),
    ),
    (
        "updates-not-approved",
        include_str!("../reports/updates-not-approved.sql"),
    ),
    (
        "updates-with-counts",
        include_str!("../reports/updates-with-counts.sql"),
    ),
    (
        "computers-with-update-distribution-status",
        include_str!("../reports/computers-with-update-distribution-status.sql"),
    ),
    (
        "distribution-status-summary",
        include_str!("../reports/distribution-status-summary.sql"),
    ),
    (
        "distribution-status-by-update",
        include_str!("../reports/distribution-status-by-update.sql"),
    ),
    (
        "failed-distributions-summary",
        include_str!("../reports/failed-distributions-summary.sql"),
    ),
    (
        "computers-with-errors-for-deployment",
        include_str!("../reports/computers-with-errors-for-deployment.sql"),
    ),
    (
        "infrastructure-status",
        include_str!("../reports/infrastructure-status.sql"),
    ),
    (
        "status-messages-for-computer",
        include_str!("../reports/status-messages-for-computer.sql"),
    ),
    (
        "new-updates-7-days",
        include_str!("../reports/new-updates-7-days.sql"),
    ),
    (
        "package-transfer-progress",
        include_str!("../reports/package-transfer-progress.sql"),
    ),
    (
        "owners-missing-approved-updates",
        include_str!("../reports/owners-missing-approved-updates.sql"),
    ),
    (
        "inventory-health",
        include_str!("../reports/inventory-health.sql"),
    ),
    (
        "computers-by-chassis-and-os",
        include_str!("../reports/computers-by-chassis-and-os.sql"),
    ),
    (
        "compliance-by-classification",
        include_str!("../reports/compliance-by-classification.sql"),
    ),
    (
        "deployments-for-computer",
        include_str!("../reports/deployments-for-computer.sql"),
    ),
    (
        "inventory-for-computer",
        include_str!("../reports/inventory-for-computer.sql"),
    ),
];

/// Where a report comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    BuiltIn,
    File(PathBuf),
}

#[derive(Clone, Debug)]
pub struct Report {
    pub name: String,
    pub title: String,
    pub category: String,
    pub description: String,
    /// The later capability whose data completes it (until then it returns no rows).
    pub completed_by: Option<String>,
    /// The parameters a run must give, in order of first use.
    pub parameters: Vec<String>,
    /// The parameters a run may leave out (header `-- optional: a, b`): NULL when left out.
    pub optional: Vec<String>,
    /// The whole file, header included: what `koshin report sql` prints, ready to copy.
    pub sql: String,
    pub source: Source,
    /// Why this report cannot run (a bad file, a name taken by a built-in report).
    pub error: Option<String>,
}

impl Report {
    pub fn info(&self) -> ReportInfo {
        ReportInfo {
            name: self.name.clone(),
            title: self.title.clone(),
            category: self.category.clone(),
            parameters: self.parameters.clone(),
            optional_parameters: self.optional.clone(),
            sql: self.sql.trim_end().to_string(),
            description: self.description.clone(),
            source: match &self.source {
                Source::BuiltIn => "built-in".into(),
                Source::File(p) => p.display().to_string(),
            },
            completed_by: self.completed_by.clone(),
            error: self.error.clone(),
        }
    }
}

/// A report name: lower-case letters, digits and dashes, as a file stem.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
}

/// Reads a report file's header and parameters. The SQL itself is checked by the store.
pub fn parse(name: &str, text: &str, source: Source) -> Report {
    let mut title = None;
    let mut category = None;
    let mut completed_by = None;
    let mut optional: Vec<String> = Vec::new();
    let mut description = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some(comment) = line.strip_prefix("--") else {
            break;
        };
        let comment = comment.trim();
        match comment.split_once(':') {
            Some((k, v)) if k.trim().eq_ignore_ascii_case("title") => {
                title = Some(v.trim().to_string())
            }
            Some((k, v)) if k.trim().eq_ignore_ascii_case("category") => {
                category = Some(v.trim().to_string())
            }
            Some((k, v)) if k.trim().eq_ignore_ascii_case("completed-by") => {
                completed_by = Some(v.trim().to_string())
            }
            // `-- optional: a, b`; a line that names no list of parameters is description.
            Some((k, v))
                if k.trim().eq_ignore_ascii_case("optional") && parameter_list(v).is_some() =>
            {
                optional.extend(parameter_list(v).unwrap_or_default())
            }
            _ => description.push(comment.to_string()),
        }
    }
    let used = parameters(text);
    let error = optional
        .iter()
        .find(|o| !used.contains(o))
        .map(|o| format!("the header makes '{o}' optional, but the statement has no :{o}"));
    Report {
        name: name.to_string(),
        title: title.unwrap_or_else(|| name.to_string()),
        category: category.unwrap_or_else(|| "Custom".into()),
        description: description.join(" "),
        completed_by,
        parameters: used.into_iter().filter(|p| !optional.contains(p)).collect(),
        optional,
        sql: text.to_string(),
        source,
        error,
    }
}

/// `a, :b` as parameter names, or None when it is not such a list.
fn parameter_list(v: &str) -> Option<Vec<String>> {
    v.split(',')
        .map(|p| {
            let p = p.trim().trim_start_matches([':', '@', '$']);
            let ok = p.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            ok.then(|| p.to_string())
        })
        .collect()
}

/// The `:name` parameters of a statement, in order of first use; string literals, quoted
/// identifiers and comments are skipped.
pub fn parameters(sql: &str) -> Vec<String> {
    let b = sql.as_bytes();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    i += 1;
                }
                i += 1;
            }
            b'[' => {
                while i < b.len() && b[i] != b']' {
                    i += 1;
                }
                i += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b':' | b'@' | b'$'
                if b.get(i + 1)
                    .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_') =>
            {
                let start = i + 1;
                i = start;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                let name = &sql[start..i];
                if !out.iter().any(|p| p == name) {
                    out.push(name.to_string());
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// The built-in reports.
pub fn built_in() -> Vec<Report> {
    BUILT_IN
        .iter()
        .map(|(name, text)| parse(name, text, Source::BuiltIn))
        .collect()
}

/// The site's own reports in `dir`, sorted by name. A file that cannot be used is still
/// listed, with the reason in `error`, so a typo is visible rather than silently missing.
pub fn custom(dir: &Path) -> Vec<Report> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("sql") {
            continue;
        }
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let broken = |error: String| Report {
            name: name.clone(),
            title: name.clone(),
            category: "Custom".into(),
            description: String::new(),
            completed_by: None,
            parameters: Vec::new(),
            optional: Vec::new(),
            sql: String::new(),
            source: Source::File(path.clone()),
            error: Some(error),
        };
        if !valid_name(&name) {
            out.push(broken(format!(
                "'{name}' is not a report name: use lower-case letters, digits and dashes"
            )));
            continue;
        }
        if BUILT_IN.iter().any(|(n, _)| *n == name) {
            out.push(broken(format!(
                "a built-in report is named '{name}': give the copy a name of its own"
            )));
            continue;
        }
        match std::fs::metadata(&path) {
            Ok(m) if m.len() > MAX_REPORT_BYTES => {
                out.push(broken(format!(
                    "the file is {} bytes; a report file may hold at most {MAX_REPORT_BYTES}",
                    m.len()
                )));
                continue;
            }
            Err(e) => {
                out.push(broken(format!("cannot read {}: {e}", path.display())));
                continue;
            }
            Ok(_) => {}
        }
        match std::fs::read_to_string(&path) {
            Ok(text) => out.push(parse(&name, &text, Source::File(path))),
            Err(e) => out.push(broken(format!("cannot read {}: {e}", path.display()))),
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Every report of a site: built-in first, then its own.
pub fn all(data: &Path) -> Vec<Report> {
    let mut v = built_in();
    v.extend(custom(&data.join(REPORTS_DIR)));
    v
}

/// One report by name.
pub fn find(data: &Path, name: &str) -> Option<Report> {
    if let Some((n, text)) = BUILT_IN.iter().find(|(n, _)| *n == name) {
        return Some(parse(n, text, Source::BuiltIn));
    }
    if !valid_name(name) {
        return None;
    }
    custom(&data.join(REPORTS_DIR))
        .into_iter()
        .find(|r| r.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_skip_literals_and_comments() {
        let sql = "-- :not_this\nSELECT ':nor_this', \"a:b\" FROM t WHERE x = :update AND y = :days /* :no */ OR z = :update";
        assert_eq!(parameters(sql), vec!["update", "days"]);
    }

    #[test]
    fn header_is_read() {
        let r = parse(
            "x",
            "-- title: A title\n-- category: Cat\n-- completed-by: deployments\n-- Says what.\nSELECT 1 WHERE :p",
            Source::BuiltIn,
        );
        assert_eq!(r.title, "A title");
        assert_eq!(r.category, "Cat");
        assert_eq!(r.completed_by.as_deref(), Some("deployments"));
        assert_eq!(r.description, "Says what.");
        assert_eq!(r.parameters, vec!["p"]);
    }

    #[test]
    fn optional_parameters_are_named_in_the_header() {
        let r = parse(
            "x",
            "-- title: T\n-- optional: collection, :days\nSELECT 1 WHERE :update AND (:collection IS NULL OR :days)",
            Source::BuiltIn,
        );
        assert_eq!(r.parameters, vec!["update"]);
        assert_eq!(r.optional, vec!["collection", "days"]);
        assert_eq!(r.error, None);
        assert_eq!(r.description, "");

        let r = parse(
            "x",
            "-- optional: colection\nSELECT :collection",
            Source::BuiltIn,
        );
        assert_eq!(r.parameters, vec!["collection"]);
        let e = r.error.expect("an optional parameter the statement lacks");
        assert!(e.contains("'colection'"), "{e}");

        // Prose that begins with "Optional:" is description.
        let r = parse(
            "x",
            "-- Optional: narrow it to one collection.\nSELECT 1",
            Source::BuiltIn,
        );
        assert!(r.optional.is_empty());
        assert_eq!(r.description, "Optional: narrow it to one collection.");
    }

    #[test]
    fn every_built_in_has_a_title_and_category() {
        for r in built_in() {
            assert!(valid_name(&r.name), "{}", r.name);
            assert_eq!(r.error, None, "{}", r.name);
            assert_ne!(r.title, r.name, "{} has no title", r.name);
            assert_ne!(r.category, "Custom", "{} has no category", r.name);
        }
    }

    #[test]
    fn names() {
        assert!(valid_name("my-report-2"));
        assert!(!valid_name("../x"));
        assert!(!valid_name("Bad"));
        assert!(!valid_name("-x"));
        assert!(!valid_name(""));
    }
}
