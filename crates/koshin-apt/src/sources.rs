//! APT source entries: one-line (`deb [opts] URI SUITE COMPONENT...`) and deb822
//! (`.sources`), and the machine's own configuration (`/etc/apt/sources.list`,
//! `sources.list.d/*.list` and `*.sources`).

use std::path::{Path, PathBuf};

use crate::AptError;

/// One APT source: an archive URI, a suite and its components.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AptSource {
    pub uri: String,
    pub suite: String,
    pub components: Vec<String>,
    /// Architectures to fetch; empty means the machine's architecture.
    pub architectures: Vec<String>,
    /// Keyring files (`signed-by`); empty means the system keyrings.
    pub signed_by: Vec<PathBuf>,
}

impl AptSource {
    /// The URI with exactly one trailing slash.
    pub fn base(&self) -> String {
        format!("{}/", self.uri.trim_end_matches('/'))
    }
    /// `URI SUITE` — how logs and errors name a source.
    pub fn label(&self) -> String {
        format!("{} {}", self.uri.trim_end_matches('/'), self.suite)
    }
    /// The one-line form of this entry.
    pub fn to_line(&self) -> String {
        let mut opts = Vec::new();
        if !self.signed_by.is_empty() {
            let keys: Vec<String> = self
                .signed_by
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            opts.push(format!("signed-by={}", keys.join(",")));
        }
        if !self.architectures.is_empty() {
            opts.push(format!("arch={}", self.architectures.join(",")));
        }
        let opts = if opts.is_empty() {
            String::new()
        } else {
            format!("[{}] ", opts.join(" "))
        };
        format!(
            "deb {opts}{} {} {}",
            self.uri,
            self.suite,
            self.components.join(" ")
        )
    }
}

fn bad(entry: &str, reason: impl Into<String>) -> AptError {
    AptError::BadSource {
        entry: entry.to_string(),
        reason: reason.into(),
    }
}

fn split_list(v: &str) -> Vec<String> {
    v.split([',', ' ', '\t'])
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Parses a one-line entry. `deb-src` lines and comments give `Ok(None)`.
pub fn parse_line(line: &str) -> Result<Option<AptSource>, AptError> {
    let text = line.split('#').next().unwrap_or("").trim();
    if text.is_empty() {
        return Ok(None);
    }
    let (kind, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    match kind {
        "deb" => {}
        "deb-src" => return Ok(None),
        _ => return Err(bad(line, format!("unknown type '{kind}', expected 'deb'"))),
    }
    let mut rest = rest.trim_start();
    let mut signed_by = Vec::new();
    let mut architectures = Vec::new();
    if let Some(r) = rest.strip_prefix('[') {
        let Some(end) = r.find(']') else {
            return Err(bad(line, "unclosed '[' in options"));
        };
        for opt in r[..end].split_whitespace() {
            let Some((k, v)) = opt.split_once('=') else {
                return Err(bad(line, format!("option '{opt}' is not key=value")));
            };
            match k {
                "signed-by" => signed_by.extend(split_list(v).into_iter().map(PathBuf::from)),
                "arch" => architectures = split_list(v),
                _ => {} // trusted=, lang=, target=... do not change what koshin verifies.
            }
        }
        rest = r[end + 1..].trim_start();
    }
    let mut words = rest.split_whitespace();
    let uri = words.next().ok_or_else(|| bad(line, "no URI"))?.to_string();
    let suite = words
        .next()
        .ok_or_else(|| bad(line, "no suite"))?
        .to_string();
    let components: Vec<String> = words.map(str::to_string).collect();
    check(line, uri, suite, components, architectures, signed_by).map(Some)
}

fn check(
    entry: &str,
    uri: String,
    suite: String,
    components: Vec<String>,
    architectures: Vec<String>,
    signed_by: Vec<PathBuf>,
) -> Result<AptSource, AptError> {
    if !(uri.starts_with("http://") || uri.starts_with("https://") || uri.starts_with("file:")) {
        return Err(bad(
            entry,
            format!("URI '{uri}' is not http://, https:// or file:"),
        ));
    }
    if suite.ends_with('/') {
        return Err(bad(
            entry,
            "flat repositories (suite ending in '/') are not supported",
        ));
    }
    if components.is_empty() {
        return Err(bad(entry, "no component"));
    }
    Ok(AptSource {
        uri,
        suite,
        components,
        architectures,
        signed_by,
    })
}

/// Parses a deb822 `.sources` file: each stanza gives one source per URI × suite.
pub fn parse_deb822(text: &str, origin: &str) -> Result<Vec<AptSource>, AptError> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in stanza.lines() {
            if line.trim_start().starts_with('#') || line.trim().is_empty() {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                if let Some(last) = fields.last_mut() {
                    last.1.push('\n');
                    last.1.push_str(line.trim());
                }
                continue;
            }
            let Some((k, v)) = line.split_once(':') else {
                return Err(bad(origin, format!("line '{line}' is not 'Field: value'")));
            };
            fields.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        if fields.is_empty() {
            continue;
        }
        let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v.as_str());
        if get("enabled").is_some_and(|v| v.eq_ignore_ascii_case("no")) {
            continue;
        }
        let types = split_list(get("types").unwrap_or(""));
        if !types.iter().any(|t| t == "deb") {
            continue;
        }
        let uris = split_list(get("uris").unwrap_or(""));
        let suites = split_list(get("suites").unwrap_or(""));
        let components = split_list(get("components").unwrap_or(""));
        let architectures = split_list(get("architectures").unwrap_or(""));
        let signed_by = match get("signed-by") {
            Some(v) if v.contains("BEGIN PGP") => {
                return Err(bad(
                    origin,
                    "inline Signed-By keys are not supported; name a keyring file",
                ));
            }
            Some(v) => split_list(v).into_iter().map(PathBuf::from).collect(),
            None => Vec::new(),
        };
        if uris.is_empty() || suites.is_empty() {
            return Err(bad(origin, "a stanza needs URIs and Suites"));
        }
        for uri in &uris {
            for suite in &suites {
                out.push(check(
                    origin,
                    uri.clone(),
                    suite.clone(),
                    components.clone(),
                    architectures.clone(),
                    signed_by.clone(),
                )?);
            }
        }
    }
    Ok(out)
}

/// Reads the machine's APT sources under `etc_apt` (normally `/etc/apt`).
pub fn system_sources(etc_apt: &Path) -> Result<Vec<AptSource>, AptError> {
    let io = |p: &Path, e: std::io::Error| AptError::Io {
        path: p.display().to_string(),
        reason: e.to_string(),
    };
    let mut out = Vec::new();
    let main = etc_apt.join("sources.list");
    if main.exists() {
        let text = std::fs::read_to_string(&main).map_err(|e| io(&main, e))?;
        for line in text.lines() {
            out.extend(parse_line(line)?);
        }
    }
    let dir = etc_apt.join("sources.list.d");
    if dir.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| io(&dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in entries {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            // apt ignores every file whose name does not end in .list or .sources.
            if name.ends_with(".list") {
                let text = std::fs::read_to_string(&p).map_err(|e| io(&p, e))?;
                for line in text.lines() {
                    out.extend(parse_line(line)?);
                }
            } else if name.ends_with(".sources") {
                let text = std::fs::read_to_string(&p).map_err(|e| io(&p, e))?;
                out.extend(parse_deb822(&text, &p.display().to_string())?);
            }
        }
    }
    Ok(out)
}

/// The dpkg architecture of this machine.
pub fn host_architecture() -> String {
    if let Ok(out) = std::process::Command::new("dpkg")
        .arg("--print-architecture")
        .output()
        && out.status.success()
    {
        let a = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !a.is_empty() {
            return a;
        }
    }
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "i386",
        "arm" => "armhf",
        "powerpc64" => "ppc64el",
        "s390x" => "s390x",
        other => other,
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_one_line_entries() {
        let s = parse_line(
            "deb [signed-by=/k.gpg arch=amd64,i386] http://h/debian bookworm main contrib # c",
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.uri, "http://h/debian");
        assert_eq!(s.suite, "bookworm");
        assert_eq!(s.components, vec!["main", "contrib"]);
        assert_eq!(s.architectures, vec!["amd64", "i386"]);
        assert_eq!(s.signed_by, vec![PathBuf::from("/k.gpg")]);
        assert!(parse_line("# nothing").unwrap().is_none());
        assert!(parse_line("deb-src http://h/ x main").unwrap().is_none());
        assert!(parse_line("deb http://h/").is_err());
        assert!(parse_line("deb http://h/ ./").is_err());
        assert!(parse_line("rpm http://h/ x main").is_err());
        assert!(parse_line("deb [signed-by=/k http://h/ x main").is_err());
    }

    #[test]
    fn parses_deb822() {
        let text = "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb-src\nURIs: http://x/\nSuites: y\nComponents: main\n\nTypes: deb\nEnabled: no\nURIs: http://z/\nSuites: z\nComponents: main\n";
        let s = parse_deb822(text, "t").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].suite, "bookworm-updates");
        assert_eq!(s[0].signed_by.len(), 1);
    }
}
