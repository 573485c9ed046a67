//! The `Release` file of a suite: its identity (origin, codename, version), its validity
//! (`Date`, `Valid-Until`) and the SHA-256 list of the indices it vouches for.

use std::collections::HashMap;

use crate::AptError;

#[derive(Clone, Debug, Default)]
pub struct Release {
    pub origin: String,
    pub label: String,
    pub suite: String,
    pub version: String,
    pub codename: String,
    /// Unix seconds.
    pub date: Option<i64>,
    pub valid_until: Option<(i64, String)>,
    pub acquire_by_hash: bool,
    pub architectures: Vec<String>,
    pub components: Vec<String>,
    pub no_support_arch_all: bool,
    /// Path relative to `dists/<suite>/` → (size, lowercase hex SHA-256).
    pub sha256: HashMap<String, (u64, String)>,
}

/// Parses an RFC 2822-style Release date: `Sat, 11 Jul 2026 10:16:37 UTC`.
pub fn parse_date(text: &str) -> Option<i64> {
    let t = text.trim();
    let t = match t.split_once(',') {
        Some((_, rest)) => rest.trim(),
        None => t,
    };
    let parts: Vec<&str> = t.split_whitespace().collect();
    if parts.len() < 4 {
        return None;
    }
    let civil = jiff::civil::DateTime::strptime("%d %b %Y %H:%M:%S", parts[..4].join(" ")).ok()?;
    let offset_secs: i64 = match parts.get(4).copied().unwrap_or("UTC") {
        "UTC" | "GMT" | "UT" | "Z" => 0,
        z if (z.starts_with('+') || z.starts_with('-')) && z.len() == 5 => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let h: i64 = z[1..3].parse().ok()?;
            let m: i64 = z[3..5].parse().ok()?;
            sign * (h * 3600 + m * 60)
        }
        _ => return None,
    };
    let ts = civil.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
    Some(ts.as_second() - offset_secs)
}

impl Release {
    pub fn parse(text: &str, suite: &str) -> Result<Release, AptError> {
        let malformed = |reason: String| AptError::MalformedRelease {
            suite: suite.to_string(),
            reason,
        };
        let mut r = Release::default();
        let mut in_sha256 = false;
        let mut any_field = false;
        for (n, line) in text.lines().enumerate() {
            if line.is_empty() {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                if in_sha256 {
                    let mut w = line.split_whitespace();
                    let (Some(hash), Some(size), Some(path), None) =
                        (w.next(), w.next(), w.next(), w.next())
                    else {
                        return Err(malformed(format!("line {}: bad SHA256 entry", n + 1)));
                    };
                    let size: u64 = size
                        .parse()
                        .map_err(|_| malformed(format!("line {}: bad size '{size}'", n + 1)))?;
                    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(malformed(format!("line {}: bad SHA-256 '{hash}'", n + 1)));
                    }
                    r.sha256
                        .insert(path.to_string(), (size, hash.to_ascii_lowercase()));
                }
                continue;
            }
            let Some((k, v)) = line.split_once(':') else {
                return Err(malformed(format!(
                    "line {}: '{line}' is not 'Field: value'",
                    n + 1
                )));
            };
            any_field = true;
            let v = v.trim();
            in_sha256 = k == "SHA256";
            match k {
                "Origin" => r.origin = v.to_string(),
                "Label" => r.label = v.to_string(),
                "Suite" => r.suite = v.to_string(),
                "Version" => r.version = v.to_string(),
                "Codename" => r.codename = v.to_string(),
                "Date" => {
                    r.date =
                        Some(parse_date(v).ok_or_else(|| malformed(format!("bad Date '{v}'")))?);
                }
                "Valid-Until" => {
                    let t =
                        parse_date(v).ok_or_else(|| malformed(format!("bad Valid-Until '{v}'")))?;
                    r.valid_until = Some((t, v.to_string()));
                }
                "Acquire-By-Hash" => r.acquire_by_hash = v.eq_ignore_ascii_case("yes"),
                "Architectures" => {
                    r.architectures = v.split_whitespace().map(str::to_string).collect()
                }
                "Components" => r.components = v.split_whitespace().map(str::to_string).collect(),
                "No-Support-for-Architecture-all" => r.no_support_arch_all = v == "Packages",
                _ => {}
            }
        }
        if !any_field {
            return Err(malformed("no fields".into()));
        }
        if r.sha256.is_empty() {
            return Err(malformed(
                "no SHA256 checksums (koshin does not trust MD5 or SHA1 alone)".into(),
            ));
        }
        Ok(r)
    }

    /// Refuses a Release whose `Valid-Until` is past at `now` (Unix seconds).
    pub fn check_valid(&self, suite: &str, now: i64) -> Result<(), AptError> {
        if let Some((until, text)) = &self.valid_until
            && *until < now
        {
            return Err(AptError::Expired {
                suite: suite.to_string(),
                valid_until: text.clone(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dates() {
        assert_eq!(
            parse_date("Sat, 11 Jul 2026 10:16:37 UTC"),
            Some(1_783_764_997)
        );
        assert_eq!(parse_date("Thu, 01 Jan 1970 01:00:00 +0100"), Some(0));
        assert_eq!(parse_date("garbage"), None);
    }

    #[test]
    fn parses_a_release() {
        let text = "Origin: Debian\nLabel: Debian-Security\nSuite: oldstable-security\nVersion: 12\nCodename: bookworm-security\nDate: Wed, 18 Nov 2026 22:17:41 UTC\nValid-Until: Wed, 25 Nov 2026 22:17:41 UTC\nAcquire-By-Hash: yes\nArchitectures: amd64\nComponents: updates/main\nSHA256:\n 8185a31dad942e3e9ec627d824cfdb67daeb96180b4c830f94ca12bccee97493  2513441 main/binary-amd64/Packages\n";
        let r = Release::parse(text, "bookworm-security").unwrap();
        assert_eq!(r.codename, "bookworm-security");
        assert!(r.acquire_by_hash);
        assert_eq!(r.sha256["main/binary-amd64/Packages"].0, 2_513_441);
        assert!(r.check_valid("s", 0).is_ok());
        assert!(matches!(
            r.check_valid("s", i64::MAX),
            Err(AptError::Expired { .. })
        ));
        assert!(Release::parse("Origin: x\n", "s").is_err());
        assert!(Release::parse("SHA256:\n zz 1 p\n", "s").is_err());
    }
}
