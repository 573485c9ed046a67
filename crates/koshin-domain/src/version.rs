//! Debian version parsing and ordering, identical to dpkg's `verrevcmp`.
//!
//! Written here rather than taken from a crate because ordering must agree with
//! `dpkg --compare-versions` on every input (leading zeros in digit runs, digit runs of any
//! length, `~` before the empty string), and it must never panic on data from outside.

use std::cmp::Ordering;
use std::fmt;

/// A parsed Debian version `[epoch:]upstream[-revision]`, borrowed from its text.
#[derive(Clone, Copy, Debug)]
pub struct Version<'a> {
    pub epoch: u32,
    pub upstream: &'a str,
    pub revision: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("version '{text}' has bad syntax: {reason}")]
pub struct VersionError {
    pub text: String,
    pub reason: &'static str,
}

impl<'a> Version<'a> {
    /// Parses with dpkg's rules (`parseversion`): an error for what dpkg refuses; what dpkg
    /// only warns about (see [`Version::lint`]) still parses and compares as dpkg does.
    pub fn parse(text: &'a str) -> Result<Self, VersionError> {
        let err = |reason| VersionError {
            text: text.to_string(),
            reason,
        };
        // dpkg strips and refuses only blanks (space, tab); other whitespace is a character.
        let blank = |c: char| c == ' ' || c == '\t';
        let t = text.trim_start_matches(blank);
        if t.is_empty() {
            return Err(err("version string is empty"));
        }
        let t = t.trim_end_matches(blank);
        if t.contains(blank) {
            return Err(err("version string has embedded spaces"));
        }
        let (epoch, rest) = match t.find(':') {
            Some(i) => {
                // The epoch is read like strtol(3): leading whitespace, an optional sign.
                let e = t[..i].trim_start_matches([' ', '\t', '\n', '\u{b}', '\u{c}', '\r']);
                let (negative, digits) = match e.as_bytes().first() {
                    Some(b'-') => (true, &e[1..]),
                    Some(b'+') => (false, &e[1..]),
                    _ => (false, e),
                };
                let n = digits.bytes().take_while(u8::is_ascii_digit).count();
                if n == 0 {
                    return Err(err("epoch in version is empty"));
                }
                if n != digits.len() {
                    return Err(err("epoch in version is not number"));
                }
                let value = digits.trim_start_matches('0');
                if negative && !value.is_empty() {
                    return Err(err("epoch in version is negative"));
                }
                let epoch = match value.parse::<u32>() {
                    Ok(v) if v <= i32::MAX as u32 => v,
                    _ if value.is_empty() => 0,
                    _ => return Err(err("epoch in version is too big")),
                };
                let rest = &t[i + 1..];
                if rest.is_empty() {
                    return Err(err("nothing after colon in version number"));
                }
                (epoch, rest)
            }
            None => (0, t),
        };
        let (upstream, revision) = match rest.rfind('-') {
            Some(i) => {
                let r = &rest[i + 1..];
                if r.is_empty() {
                    return Err(err("revision number is empty"));
                }
                (&rest[..i], r)
            }
            None => (rest, ""),
        };
        if upstream.is_empty() {
            return Err(err("version number is empty"));
        }
        Ok(Version {
            epoch,
            upstream,
            revision,
        })
    }
}

impl Version<'_> {
    /// What dpkg warns about but still accepts: a first character that is not a digit,
    /// characters outside Debian policy.
    pub fn lint(&self) -> Option<&'static str> {
        if !self.upstream.as_bytes()[0].is_ascii_digit() {
            return Some("version number does not start with digit");
        }
        if !self
            .upstream
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-+~:".contains(&b))
        {
            return Some("invalid character in version number");
        }
        if !self
            .revision
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".+~".contains(&b))
        {
            return Some("invalid character in revision number");
        }
        None
    }
}

impl fmt::Display for Version<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // An upstream part with a colon needs its epoch written, even 0, to parse back.
        if self.epoch != 0 || self.upstream.contains(':') {
            write!(f, "{}:", self.epoch)?;
        }
        f.write_str(self.upstream)?;
        if !self.revision.is_empty() {
            write!(f, "-{}", self.revision)?;
        }
        Ok(())
    }
}

impl PartialEq for Version<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Version<'_> {}
impl PartialOrd for Version<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Version<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| verrevcmp(self.upstream, other.upstream))
            .then_with(|| verrevcmp(self.revision, other.revision))
    }
}

fn order(c: u8) -> i32 {
    match c {
        b'0'..=b'9' => 0,
        b'a'..=b'z' | b'A'..=b'Z' => c as i32,
        b'~' => -1,
        0 => 0,
        // dpkg's `char` is signed on amd64: bytes of 0x80 and above order below ASCII.
        c => c as i8 as i32 + 256,
    }
}

/// dpkg's `verrevcmp` over byte strings.
fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let at = |i: usize| a.get(i).copied().unwrap_or(0);
    let bt = |i: usize| b.get(i).copied().unwrap_or(0);
    let (mut i, mut j) = (0usize, 0usize);
    while at(i) != 0 || bt(j) != 0 {
        let mut first_diff: i32 = 0;
        while (at(i) != 0 && !at(i).is_ascii_digit()) || (bt(j) != 0 && !bt(j).is_ascii_digit()) {
            let ac = order(at(i));
            let bc = order(bt(j));
            if ac != bc {
                return (ac - bc).cmp(&0);
            }
            i += 1;
            j += 1;
        }
        while at(i) == b'0' {
            i += 1;
        }
        while bt(j) == b'0' {
            j += 1;
        }
        while at(i).is_ascii_digit() && bt(j).is_ascii_digit() {
            if first_diff == 0 {
                first_diff = at(i) as i32 - bt(j) as i32;
            }
            i += 1;
            j += 1;
        }
        if at(i).is_ascii_digit() {
            return Ordering::Greater;
        }
        if bt(j).is_ascii_digit() {
            return Ordering::Less;
        }
        if first_diff != 0 {
            return first_diff.cmp(&0);
        }
    }
    Ordering::Equal
}

/// Compares two version strings the way `dpkg --compare-versions` does.
pub fn compare(a: &str, b: &str) -> Result<Ordering, VersionError> {
    Ok(Version::parse(a)?.cmp(&Version::parse(b)?))
}

/// Compares two versions known to come from a verified index; a string dpkg would refuse
/// sorts by the lenient reading (epoch 0, whole text as upstream) instead of failing.
pub fn compare_lenient(a: &str, b: &str) -> Ordering {
    let lenient = |s: &'_ str| -> (u32, String, String) {
        match Version::parse(s) {
            Ok(v) => (v.epoch, v.upstream.to_string(), v.revision.to_string()),
            Err(_) => (0, s.to_string(), String::new()),
        }
    };
    let (ea, ua, ra) = lenient(a);
    let (eb, ub, rb) = lenient(b);
    ea.cmp(&eb)
        .then_with(|| verrevcmp(&ua, &ub))
        .then_with(|| verrevcmp(&ra, &rb))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(a: &str, b: &str, expected: Ordering) {
        assert_eq!(compare(a, b).unwrap(), expected, "{a} vs {b}");
        assert_eq!(compare(b, a).unwrap(), expected.reverse(), "{b} vs {a}");
    }

    #[test]
    fn orders_like_dpkg() {
        use Ordering::*;
        check("1.0", "1.0", Equal);
        check("1.0", "1.0-0", Equal);
        check("1a", "1a0", Equal);
        check("1.0~rc1", "1.0", Less);
        check("1.0~~", "1.0~", Less);
        check("1.0+b1", "1.0", Greater);
        check("1:0.1", "2.0", Greater);
        check("2.10-3+b1", "2.10-3", Greater);
        check("3.0.11-1~deb12u2", "3.0.11-1~deb12u1", Greater);
        check("3.0.11-1~deb12u2", "3.0.11-1", Less);
        check("1.2.3", "1.2.10", Less);
        check("0010", "10", Equal);
        check("a1", "1", Greater);
        check("1_0", "1", Greater);
        check(
            "99999999999999999999999",
            "99999999999999999999998",
            Greater,
        );
        check("1.0.", "1.0", Greater);
        check("1-1-1", "1-1", Greater);
    }

    #[test]
    fn refuses_what_dpkg_refuses() {
        for bad in ["", "1:", ":1", "x:1", "1.0-", "1 0", "-1"] {
            assert!(Version::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(Version::parse("1:2.0-1~bpo1").unwrap().lint().is_none());
        assert!(Version::parse("a1").unwrap().lint().is_some());
        assert!(Version::parse("1.0-a_b").unwrap().lint().is_some());
    }
}
