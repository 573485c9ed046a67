//! A fast reader of `Packages` indices: the fields a catalog needs, with no copy of the
//! parts it skips. Hand-written (not a deb822 crate) because a full sync parses ~60 MB of
//! stanzas and the target is within 2× of `apt-get update`; every stanza is still checked
//! for the fields it must have, and a malformed one fails the sync with its line number.

use koshin_domain::catalog::BinaryPackage;

use crate::AptError;

/// Parses a whole `Packages` file. `path` names it in errors.
pub fn parse(path: &str, data: &[u8]) -> Result<Vec<BinaryPackage>, AptError> {
    let text = std::str::from_utf8(data).map_err(|e| AptError::MalformedStanza {
        path: path.to_string(),
        line: line_of(data, e.valid_up_to()),
        reason: "not UTF-8 text".into(),
    })?;
    let mut out = Vec::with_capacity(data.len() / 900 + 16);
    let mut line_no = 1usize;
    let mut rest = text;
    while !rest.is_empty() {
        let end = memchr::memmem::find(rest.as_bytes(), b"\n\n")
            .map(|i| i + 1)
            .unwrap_or(rest.len());
        let stanza = &rest[..end];
        let lines_in = memchr::memchr_iter(b'\n', stanza.as_bytes()).count();
        let trimmed = stanza.trim_matches('\n');
        if !trimmed.is_empty() {
            out.push(parse_stanza(path, line_no, stanza)?);
        }
        line_no += lines_in;
        // Skip the blank separator lines.
        let mut next = &rest[end..];
        while let Some(r) = next.strip_prefix('\n') {
            next = r;
            line_no += 1;
        }
        rest = next;
    }
    Ok(out)
}

fn line_of(data: &[u8], offset: usize) -> usize {
    memchr::memchr_iter(b'\n', &data[..offset.min(data.len())]).count() + 1
}

fn parse_stanza(path: &str, first_line: usize, stanza: &str) -> Result<BinaryPackage, AptError> {
    let malformed = |offset: usize, reason: String| AptError::MalformedStanza {
        path: path.to_string(),
        line: first_line + line_of(stanza.as_bytes(), offset) - 1,
        reason,
    };
    let mut package = None;
    let mut version = None;
    let mut architecture = None;
    let mut source = None;
    let mut filename = None;
    let mut size = None;
    let mut sha256 = None;
    let mut section = "";
    let mut priority = "";
    let mut description = "";
    let mut offset = 0usize;
    for line in stanza.split('\n') {
        let here = offset;
        offset += line.len() + 1;
        if line.is_empty() || line.starts_with([' ', '\t']) {
            continue;
        }
        let Some(colon) = memchr::memchr(b':', line.as_bytes()) else {
            return Err(malformed(
                here,
                format!("'{}' is not 'Field: value'", truncate(line)),
            ));
        };
        let (key, value) = (&line[..colon], line[colon + 1..].trim());
        match key {
            "Package" => package = Some(value),
            "Version" => version = Some(value),
            "Architecture" => architecture = Some(value),
            "Source" => source = Some(value),
            "Filename" => filename = Some(value),
            "Size" => {
                size = Some(value.parse::<u64>().map_err(|_| {
                    malformed(here, format!("Size '{}' is not a number", truncate(value)))
                })?)
            }
            "SHA256" => sha256 = Some(value),
            "Section" => section = value,
            "Priority" => priority = value,
            "Description" => description = value,
            _ => {}
        }
    }
    let need = |v: Option<&str>, name: &str| -> Result<String, AptError> {
        match v {
            Some(v) if !v.is_empty() => Ok(v.to_string()),
            _ => Err(malformed(0, format!("missing {name} field"))),
        }
    };
    let name = need(package, "Package")?;
    let version = need(version, "Version")?;
    if let Err(e) = koshin_domain::version::Version::parse(&version) {
        return Err(malformed(0, format!("package {name}: {e}")));
    }
    let (source, source_version) = match source {
        None => (name.clone(), version.clone()),
        Some(s) => match s.split_once('(') {
            Some((n, v)) => (
                n.trim().to_string(),
                v.trim_end_matches(')').trim().to_string(),
            ),
            None => (s.trim().to_string(), version.clone()),
        },
    };
    let sha256 = need(sha256, "SHA256")?;
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(malformed(
            0,
            format!("package {name}: bad SHA256 '{}'", truncate(&sha256)),
        ));
    }
    Ok(BinaryPackage {
        architecture: need(architecture, "Architecture")?,
        filename: need(filename, "Filename")?,
        size: size.ok_or_else(|| malformed(0, format!("package {name}: missing Size field")))?,
        sha256,
        source,
        source_version,
        section: section.to_string(),
        priority: priority.to_string(),
        description: description.to_string(),
        name,
        version,
    })
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(60) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "9e0b5aabb2465b3d2e7a7fe27f9913846277833f7a2826e7767acccff5b588c5";

    fn stanza(extra: &str) -> String {
        format!(
            "Package: hello\nVersion: 2.10-3+b1\nArchitecture: amd64\n{extra}Filename: pool/main/h/hello/hello_2.10-3+b1_amd64.deb\nSize: 53000\nSHA256: {SHA}\nDescription: example package\n multi-line\n"
        )
    }

    #[test]
    fn reads_stanzas_and_source_versions() {
        let text = format!("{}\n{}\n\n", stanza("Source: hello (2.10-3)\n"), stanza(""));
        let p = parse("P", text.as_bytes()).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].source.as_str(), p[0].source_version.as_str()),
            ("hello", "2.10-3")
        );
        assert_eq!(
            (p[1].source.as_str(), p[1].source_version.as_str()),
            ("hello", "2.10-3+b1")
        );
        assert_eq!(p[0].description, "example package");
    }

    #[test]
    fn refuses_malformed_stanzas_with_their_line() {
        let text = format!("{}\nPackage: broken\nVersion: 1\n", stanza(""));
        match parse("P", text.as_bytes()) {
            Err(AptError::MalformedStanza { line, reason, .. }) => {
                assert_eq!(line, 10);
                assert!(reason.contains("missing"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let text = stanza("").replace("Size: 53000", "Size: lots");
        assert!(parse("P", text.as_bytes()).is_err());
        assert!(parse("P", b"garbage without colon\n").is_err());
        assert!(parse("P", &[0xff, 0xfe]).is_err());
    }
}
