//! Custom inventory classes: properties a site defines, each read on every client from one
//! source (a file in one of a few formats, a command's output, or a sysctl) and collected as
//! the inventory property `custom.CLASS.PROPERTY`.
//!
//! This module holds what needs no I/O: the rules for names and sources the site checks
//! before it stores a class, and the readers that turn a file's text (or a command's output)
//! into values. The agent does the reading and running.

use std::fmt;

/// At most this many class properties at a site.
pub const MAX_PROPERTIES: usize = 1000;
/// At most this many values for one property (what a site takes in one inventory).
pub const MAX_VALUES: usize = 1000;
/// A longer value is cut to this many bytes (what a site takes for one value).
pub const MAX_VALUE_BYTES: usize = 4096;
/// A file is read up to this many bytes.
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// A command's standard output is read up to this many bytes.
pub const MAX_COMMAND_OUTPUT: usize = 64 << 10;
/// A command running longer is killed, and gives no value.
pub const COMMAND_TIMEOUT_SECONDS: u64 = 10;

/// Why a class definition is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ClassError(pub String);

fn bad<T>(m: impl Into<String>) -> Result<T, ClassError> {
    Err(ClassError(m.into()))
}

/// A class or property name: 1 to 64 of lower-case letters, digits, `_` and `-`.
pub fn check_name(what: &str, name: &str) -> Result<(), ClassError> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    {
        return bad(format!(
            "a {what} name is 1 to 64 lower-case letters, digits, '_' or '-', not '{name}'"
        ));
    }
    Ok(())
}

/// The inventory property a class property is collected as.
pub fn property_path(class: &str, property: &str) -> String {
    format!("custom.{class}.{property}")
}

/// The format of a file a property is read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    /// `KEY=VALUE` lines, `#` comments, values optionally quoted; the last one counts.
    KeyValue,
    /// `[section]` headers and `key = value` lines; the key is `section.key`.
    Ini,
    /// A JSON document; the key is a dotted path (`app.nodes.0.name`).
    Json,
    /// os-release(5): `KEY=VALUE` with shell quoting and escapes.
    OsRelease,
}

impl FileFormat {
    pub const ALL: [FileFormat; 4] = [
        FileFormat::KeyValue,
        FileFormat::Ini,
        FileFormat::Json,
        FileFormat::OsRelease,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FileFormat::KeyValue => "key-value",
            FileFormat::Ini => "ini",
            FileFormat::Json => "json",
            FileFormat::OsRelease => "os-release",
        }
    }

    pub fn parse(s: &str) -> Option<FileFormat> {
        FileFormat::ALL.into_iter().find(|f| f.name() == s)
    }

    /// The values `key` has in `text`.
    pub fn read(self, text: &str, key: &str) -> Vec<String> {
        match self {
            FileFormat::KeyValue => key_value(text, key, false),
            FileFormat::OsRelease => key_value(text, key, true),
            FileFormat::Ini => ini(text, key),
            FileFormat::Json => json(text, key).unwrap_or_default(),
        }
    }
}

impl fmt::Display for FileFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn printable(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

/// A file source: an absolute path without `..`, and a key the format can look up.
pub fn check_file(path: &str, format: FileFormat, key: &str) -> Result<(), ClassError> {
    if !path.starts_with('/')
        || path.len() > 1024
        || !printable(path)
        || path.split('/').any(|c| c == "..")
    {
        return bad(format!(
            "a file is an absolute path of at most 1024 characters, without '..': not '{path}'"
        ));
    }
    if key.is_empty() || key.len() > 256 || !printable(key) || key.trim() != key {
        return bad("a key is 1 to 256 printable characters, without spaces at either end");
    }
    match format {
        FileFormat::KeyValue | FileFormat::OsRelease if key.contains(['=', ' ', '#']) => {
            bad(format!("a {format} key has no '=', '#' or space: '{key}'"))
        }
        FileFormat::Json if key.split('.').any(str::is_empty) => bad(format!(
            "a JSON path is names and array indices separated by dots (app.nodes.0.name): '{key}'"
        )),
        FileFormat::Ini if key.starts_with('.') || key.ends_with('.') => bad(format!(
            "an INI key is section.key (or key, before any section): '{key}'"
        )),
        _ => Ok(()),
    }
}

/// A command source: a program and its arguments, run without a shell.
pub fn check_command(argv: &[String]) -> Result<(), ClassError> {
    if argv.is_empty() || argv[0].trim().is_empty() {
        return bad("a command names at least a program");
    }
    if argv.len() > 64 || argv.iter().map(String::len).sum::<usize>() > 8192 {
        return bad("a command has at most 64 arguments and 8192 characters");
    }
    if argv.iter().any(|a| a.contains('\0')) {
        return bad("a command's arguments hold no NUL character");
    }
    Ok(())
}

/// A sysctl source: its name as `sysctl` takes it.
pub fn check_sysctl(key: &str) -> Result<(), ClassError> {
    if sysctl_path(key).is_none() {
        return bad(format!(
            "a sysctl is dot- or slash-separated names of letters, digits, '_', '-' \
             (net.ipv4.ip_forward): not '{key}'"
        ));
    }
    Ok(())
}

/// Where a sysctl is read, relative to the root: `net.ipv4.ip_forward` →
/// `proc/sys/net/ipv4/ip_forward`. As for `sysctl`, a name with `/` is split at `/` only
/// (`net/ipv4/conf/eth0.100/rp_filter`). None for a name that is not one.
pub fn sysctl_path(key: &str) -> Option<String> {
    if key.is_empty() || key.len() > 256 {
        return None;
    }
    let parts: Vec<&str> = if key.contains('/') {
        key.trim_matches('/').split('/').collect()
    } else {
        key.split('.').collect()
    };
    let ok = |p: &&str| {
        !p.is_empty()
            && *p != "."
            && *p != ".."
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '@'))
    };
    if !parts.iter().all(ok) {
        return None;
    }
    Some(format!("proc/sys/{}", parts.join("/")))
}

/// Removes one pair of matching quotes around a value; with `escapes`, a double-quoted
/// value's `\"`, `\\`, `` \` `` and `\$` are unescaped (os-release(5)).
fn unquote(v: &str, escapes: bool) -> String {
    let v = v.trim();
    let b = v.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[b.len() - 1] == b[0] {
        let inner = &v[1..v.len() - 1];
        if escapes && b[0] == b'"' {
            let mut out = String::new();
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    match chars.next() {
                        Some(n @ ('"' | '\\' | '`' | '$')) => out.push(n),
                        Some(n) => {
                            out.push('\\');
                            out.push(n);
                        }
                        None => out.push('\\'),
                    }
                } else {
                    out.push(c);
                }
            }
            return out;
        }
        return inner.to_string();
    }
    v.to_string()
}

/// `KEY=VALUE` lines (`export KEY=VALUE` too), `#` comments: the value of `key`, the last
/// when it is given several times (as a shell reading the file would have it).
pub fn key_value(text: &str, key: &str, escapes: bool) -> Vec<String> {
    let mut found = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        if let Some((k, v)) = line.split_once('=')
            && k.trim() == key
        {
            found = Some(unquote(v, escapes));
        }
    }
    found.into_iter().filter(|v| !v.is_empty()).collect()
}

/// An INI file: `[section]` headers, `key = value` lines, `#` and `;` comments. `key` is
/// `section.key` (split at the last dot), or a plain key for one before any section. Every
/// value of a key given several times, in order.
pub fn ini(text: &str, key: &str) -> Vec<String> {
    let (want_section, want_key) = key.rsplit_once('.').unwrap_or(("", key));
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.trim().to_string();
            continue;
        }
        if let Some((k, v)) = line.split_once('=')
            && section == want_section
            && k.trim() == want_key
        {
            let v = unquote(v, false);
            if !v.is_empty() {
                out.push(v);
            }
        }
    }
    out
}

/// A JSON document: the values at a dotted path (`app.nodes.0.name`; a number indexes an
/// array). A string, number or boolean is one value; an array gives each of its scalars;
/// null, an object or a path that leads nowhere gives none. Err when the text is not JSON.
pub fn json(text: &str, path: &str) -> Result<Vec<String>, String> {
    let doc: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let mut at = &doc;
    for seg in path.split('.') {
        let next = match at {
            serde_json::Value::Object(o) => o.get(seg),
            serde_json::Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        };
        match next {
            Some(n) => at = n,
            None => return Ok(Vec::new()),
        }
    }
    let scalar = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    Ok(match at {
        serde_json::Value::Array(a) => a.iter().filter_map(scalar).collect(),
        v => scalar(v).into_iter().collect(),
    })
}

/// A command's standard output: each non-empty line (trimmed) is one value.
pub fn lines(output: &str) -> Vec<String> {
    output
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Values as a site takes them: trimmed, none empty, each at most [`MAX_VALUE_BYTES`]
/// (cut at a character boundary), at most [`MAX_VALUES`].
pub fn bounded(values: Vec<String>) -> Vec<String> {
    values
        .into_iter()
        .map(|v| {
            let v = v.trim();
            let mut end = v.len().min(MAX_VALUE_BYTES);
            while !v.is_char_boundary(end) {
                end -= 1;
            }
            v[..end].trim_end().to_string()
        })
        .filter(|v| !v.is_empty())
        .take(MAX_VALUES)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(format: FileFormat, text: &str, key: &str, want: &[&str]) {
        assert_eq!(format.read(text, key), want, "{format} {key:?} in {text:?}");
    }

    #[test]
    fn names() {
        for ok in ["app", "a", "web-tier_2", "0"] {
            assert!(check_name("class", ok).is_ok(), "{ok}");
        }
        for bad in ["", "App", "a.b", "a b", "é", &"x".repeat(65)] {
            assert!(check_name("class", bad).is_err(), "{bad}");
        }
        assert_eq!(property_path("app", "tier"), "custom.app.tier");
    }

    #[test]
    fn key_value_files() {
        let text = "# a comment\nTIER=gold\nNAME = \"web one\"\n  export REGION='eu-west'\nEMPTY=\nTIER=platinum\n#TIER=bronze\nEQ=a=b\n";
        check(FileFormat::KeyValue, text, "TIER", &["platinum"]);
        check(FileFormat::KeyValue, text, "NAME", &["web one"]);
        check(FileFormat::KeyValue, text, "REGION", &["eu-west"]);
        check(FileFormat::KeyValue, text, "EMPTY", &[]);
        check(FileFormat::KeyValue, text, "EQ", &["a=b"]);
        check(FileFormat::KeyValue, text, "MISSING", &[]);
        check(FileFormat::KeyValue, "", "TIER", &[]);
        check(FileFormat::KeyValue, "\u{0}\u{1}garbage", "TIER", &[]);
        // Without escapes, a backslash is kept.
        check(FileFormat::KeyValue, "A=\"x\\$y\"", "A", &["x\\$y"]);
    }

    #[test]
    fn os_release_files() {
        let text = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\nNOTE=\"say \\\"hi\\\" for \\$5\"\n";
        check(FileFormat::OsRelease, text, "ID", &["debian"]);
        check(FileFormat::OsRelease, text, "VERSION_ID", &["12"]);
        check(
            FileFormat::OsRelease,
            text,
            "PRETTY_NAME",
            &["Debian GNU/Linux 12 (bookworm)"],
        );
        check(FileFormat::OsRelease, text, "NOTE", &["say \"hi\" for $5"]);
    }

    #[test]
    fn ini_files() {
        let text = "top = 1\n; comment\n[server]\nport = 8080\nhost=\"a.example\"\n# comment\n[branch.main]\nremote = origin\n[server]\nport = 8443\n[empty]\nkey =\n";
        check(FileFormat::Ini, text, "server.port", &["8080", "8443"]);
        check(FileFormat::Ini, text, "server.host", &["a.example"]);
        check(FileFormat::Ini, text, "branch.main.remote", &["origin"]);
        check(FileFormat::Ini, text, "top", &["1"]);
        check(FileFormat::Ini, text, "port", &[]);
        check(FileFormat::Ini, text, "empty.key", &[]);
        check(FileFormat::Ini, text, "nosuch.port", &[]);
        check(FileFormat::Ini, "[unclosed\nport=1", "unclosed.port", &[]);
    }

    #[test]
    fn json_paths() {
        let text = r#"{"app": {"tier": "gold", "replicas": 3, "on": true, "none": null,
            "nodes": [{"name": "n1"}, {"name": "n2"}], "tags": ["a", "b", 7, {"x": 1}, null],
            "0": "zero-key", "obj": {"k": "v"}}}"#;
        check(FileFormat::Json, text, "app.tier", &["gold"]);
        check(FileFormat::Json, text, "app.replicas", &["3"]);
        check(FileFormat::Json, text, "app.on", &["true"]);
        check(FileFormat::Json, text, "app.none", &[]);
        check(FileFormat::Json, text, "app.nodes.0.name", &["n1"]);
        check(FileFormat::Json, text, "app.nodes.1.name", &["n2"]);
        check(FileFormat::Json, text, "app.nodes.2.name", &[]);
        check(FileFormat::Json, text, "app.nodes.x", &[]);
        check(FileFormat::Json, text, "app.tags", &["a", "b", "7"]);
        check(FileFormat::Json, text, "app.0", &["zero-key"]);
        check(FileFormat::Json, text, "app.obj", &[]);
        check(FileFormat::Json, text, "app.tier.deeper", &[]);
        check(FileFormat::Json, text, "nope", &[]);
        check(FileFormat::Json, "[\"x\", \"y\"]", "1", &["y"]);
        assert!(json("{not json", "a").is_err());
        check(FileFormat::Json, "{not json", "a", &[]);
        check(FileFormat::Json, "", "a", &[]);
    }

    #[test]
    fn sysctls() {
        assert_eq!(
            sysctl_path("net.ipv4.ip_forward").as_deref(),
            Some("proc/sys/net/ipv4/ip_forward")
        );
        assert_eq!(
            sysctl_path("net/ipv4/conf/eth0.100/rp_filter").as_deref(),
            Some("proc/sys/net/ipv4/conf/eth0.100/rp_filter")
        );
        for bad in [
            "",
            "net..ipv4",
            "net/../../etc/shadow",
            "a b",
            "net.ipv4.*",
            "/",
        ] {
            assert_eq!(sysctl_path(bad), None, "{bad}");
            assert!(check_sysctl(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sources_are_checked() {
        use FileFormat::*;
        assert!(check_file("/etc/app.conf", KeyValue, "TIER").is_ok());
        assert!(check_file("/etc/app.json", Json, "app.nodes.0.name").is_ok());
        assert!(check_file("etc/app.conf", KeyValue, "TIER").is_err());
        assert!(check_file("/etc/../shadow", KeyValue, "TIER").is_err());
        assert!(check_file("/etc/app.conf", KeyValue, "").is_err());
        assert!(check_file("/etc/app.conf", KeyValue, "A=B").is_err());
        assert!(check_file("/etc/app.json", Json, "app..x").is_err());
        assert!(check_file("/etc/app.ini", Ini, "server.").is_err());
        assert!(check_file("/etc/app.ini", Ini, "port").is_ok());
        assert!(check_command(&["echo".into(), "hello".into()]).is_ok());
        assert!(check_command(&[]).is_err());
        assert!(check_command(&[" ".into()]).is_err());
        assert!(check_command(&["a\0b".into()]).is_err());
        for f in FileFormat::ALL {
            assert_eq!(FileFormat::parse(f.name()), Some(f));
        }
        assert_eq!(FileFormat::parse("yaml"), None);
    }

    #[test]
    fn output_lines_and_bounds() {
        assert_eq!(lines("a\n\n  b  \r\n\n"), ["a", "b"]);
        assert!(lines("").is_empty());
        let long = "é".repeat(3000);
        let v = bounded(vec![long, " x ".into(), "  ".into()]);
        assert!(v[0].len() <= MAX_VALUE_BYTES && v[0].chars().all(|c| c == 'é'));
        assert_eq!(&v[1..], ["x"]);
        assert_eq!(bounded(vec!["v".into(); 5000]).len(), MAX_VALUES);
    }
}
