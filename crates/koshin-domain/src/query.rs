//! The collection query language: a small language over a machine's inventory and
//! compliance, safe by construction — it is parsed into a tree that can only compare and
//! combine (no writes, no loops), and its size is bounded (length, nodes, depth), so one
//! evaluation costs at most a bounded number of lookups per machine.
//!
//! ```text
//! os.release = "12" and chassis = server and not name ~ "web-*"
//! ip in 10.1.0.0/16 or installed(openssl) < "3.0.11-1~deb12u2"
//! required("hello 2.10-4") or installed_update(KB-1001) or custom.app.tier = "gold"
//! ```
//!
//! Comparisons: `=`, `!=`, `<`, `<=`, `>`, `>=`, `~` (glob: `*` and `?`, case-insensitive)
//! and `in` (an IPv4 or IPv6 network). A property with several values (a machine's
//! addresses, its services) matches when one of them does. `<`/`>` compare numbers as
//! numbers and anything else in Debian version order, which orders plain text as well.
//! `installed(PKG)` alone is true when the package is installed; compared, it compares the
//! installed version in Debian version order (false when it is not installed).

use std::cmp::Ordering;
use std::net::IpAddr;

use crate::compliance::UpdateState;

/// A query longer than this is refused.
pub const MAX_LENGTH: usize = 4096;
/// At most this many comparisons and operators.
pub const MAX_NODES: usize = 256;
/// At most this deep (parentheses and `not`).
pub const MAX_DEPTH: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Glob,
}

impl Op {
    fn text(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Glob => "~",
        }
    }
}

/// A parsed query.
#[derive(Clone, Debug, PartialEq)]
pub enum Query {
    And(Box<Query>, Box<Query>),
    Or(Box<Query>, Box<Query>),
    Not(Box<Query>),
    /// `property OP value`
    Compare {
        property: String,
        op: Op,
        value: String,
    },
    /// `property in NETWORK`
    InNetwork {
        property: String,
        network: Network,
    },
    /// `installed(PKG)`, or `installed(PKG) OP "VERSION"`
    Installed {
        package: String,
        compare: Option<(Op, String)>,
    },
    /// `required(UPDATE)`: the machine's state of the update is Required.
    Required(String),
    /// `installed_update(UPDATE)`: the machine's state of the update is Installed.
    InstalledUpdate(String),
}

/// An IP network (`10.1.0.0/16`, `2001:db8::/32`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Network {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Network {
    pub fn parse(s: &str) -> Option<Network> {
        let (a, p) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if p.is_empty() { max } else { p.parse().ok()? };
        (prefix <= max).then_some(Network { addr, prefix })
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(*a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(*a) & mask
            }
            _ => false,
        }
    }
}

/// What a query reads of one machine.
pub trait Facts {
    /// The values of an inventory property (`os.release`, `chassis`, `ip`,
    /// `custom.CLASS.PROPERTY`, ...); empty when the machine has none.
    fn property(&self, path: &str) -> Vec<String>;
    /// The installed version of a package, if it is installed.
    fn installed_version(&self, package: &str) -> Option<String>;
    /// The machine's state of an update (by id or title), if the site knows one.
    fn update_state(&self, update: &str) -> Option<UpdateState>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("query: {message} (at character {at})")]
pub struct QueryError {
    pub message: String,
    pub at: usize,
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Op(Op),
    In,
    And,
    Or,
    Not,
    Open,
    Close,
}

fn tokens(text: &str) -> Result<Vec<(usize, Token)>, QueryError> {
    let err = |message: &str, at: usize| QueryError {
        message: message.to_string(),
        at,
    };
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        match c {
            '(' => {
                out.push((at, Token::Open));
                i += 1;
            }
            ')' => {
                out.push((at, Token::Close));
                i += 1;
            }
            '"' | '\'' => {
                let quote = c;
                let mut s = String::new();
                i += 1;
                loop {
                    let Some(&(_, d)) = chars.get(i) else {
                        return Err(err("a quoted value is not closed", at));
                    };
                    i += 1;
                    if d == quote {
                        break;
                    }
                    if d == '\\' {
                        let Some(&(_, e)) = chars.get(i) else {
                            return Err(err("a quoted value is not closed", at));
                        };
                        s.push(e);
                        i += 1;
                    } else {
                        s.push(d);
                    }
                }
                out.push((at, Token::Str(s)));
            }
            '=' | '!' | '<' | '>' | '~' => {
                let next = chars.get(i + 1).map(|&(_, d)| d);
                let (op, len) = match (c, next) {
                    ('=', Some('=')) => (Op::Eq, 2),
                    ('=', _) => (Op::Eq, 1),
                    ('!', Some('=')) => (Op::Ne, 2),
                    ('<', Some('=')) => (Op::Le, 2),
                    ('<', _) => (Op::Lt, 1),
                    ('>', Some('=')) => (Op::Ge, 2),
                    ('>', _) => (Op::Gt, 1),
                    ('~', _) => (Op::Glob, 1),
                    _ => return Err(err("'!' must be followed by '='", at)),
                };
                out.push((at, Token::Op(op)));
                i += len;
            }
            _ => {
                let start = i;
                while let Some(&(_, d)) = chars.get(i) {
                    if d.is_whitespace() || "()\"'=!<>~".contains(d) {
                        break;
                    }
                    i += 1;
                }
                let word: String = chars[start..i].iter().map(|&(_, d)| d).collect();
                let t = match word.to_ascii_lowercase().as_str() {
                    "and" => Token::And,
                    "or" => Token::Or,
                    "not" => Token::Not,
                    "in" => Token::In,
                    _ => Token::Word(word),
                };
                out.push((at, t));
            }
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    pos: usize,
    nodes: usize,
    end: usize,
}

impl Parser {
    fn at(&self) -> usize {
        self.tokens.get(self.pos).map(|t| t.0).unwrap_or(self.end)
    }

    fn err<T>(&self, message: impl Into<String>) -> Result<T, QueryError> {
        Err(QueryError {
            message: message.into(),
            at: self.at(),
        })
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|t| &t.1)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).map(|t| t.1.clone());
        self.pos += 1;
        t
    }

    fn node(&mut self) -> Result<(), QueryError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return self.err(format!("more than {MAX_NODES} terms"));
        }
        Ok(())
    }

    fn or(&mut self, depth: usize) -> Result<Query, QueryError> {
        let mut left = self.and(depth)?;
        while self.peek() == Some(&Token::Or) {
            self.next();
            self.node()?;
            let right = self.and(depth)?;
            left = Query::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Query, QueryError> {
        let mut left = self.unary(depth)?;
        while self.peek() == Some(&Token::And) {
            self.next();
            self.node()?;
            let right = self.unary(depth)?;
            left = Query::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize) -> Result<Query, QueryError> {
        if depth > MAX_DEPTH {
            return self.err(format!("nested more than {MAX_DEPTH} deep"));
        }
        match self.peek() {
            Some(Token::Not) => {
                self.next();
                self.node()?;
                Ok(Query::Not(Box::new(self.unary(depth + 1)?)))
            }
            Some(Token::Open) => {
                self.next();
                let q = self.or(depth + 1)?;
                if self.next() != Some(Token::Close) {
                    self.pos -= 1;
                    return self.err("')' expected");
                }
                Ok(q)
            }
            _ => self.term(),
        }
    }

    fn value(&mut self) -> Result<String, QueryError> {
        match self.next() {
            Some(Token::Word(w)) | Some(Token::Str(w)) => Ok(w),
            _ => {
                self.pos -= 1;
                self.err("a value expected")
            }
        }
    }

    fn term(&mut self) -> Result<Query, QueryError> {
        self.node()?;
        let name = match self.next() {
            Some(Token::Word(w)) => w,
            _ => {
                self.pos -= 1;
                return self.err(
                    "a property, installed(...), required(...) or installed_update(...) expected",
                );
            }
        };
        if self.peek() == Some(&Token::Open) {
            self.next();
            let arg = self.value()?;
            if self.next() != Some(Token::Close) {
                self.pos -= 1;
                return self.err("')' expected");
            }
            return match name.to_ascii_lowercase().as_str() {
                "installed" => {
                    let compare = match self.peek() {
                        Some(Token::Op(op)) if *op != Op::Glob => {
                            let op = *op;
                            self.next();
                            Some((op, self.value()?))
                        }
                        _ => None,
                    };
                    Ok(Query::Installed {
                        package: arg,
                        compare,
                    })
                }
                "required" => Ok(Query::Required(arg)),
                "installed_update" => Ok(Query::InstalledUpdate(arg)),
                other => self.err(format!(
                    "unknown function '{other}': installed, required or installed_update"
                )),
            };
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
        {
            self.pos -= 1;
            return self.err(format!("'{name}' is not a property name"));
        }
        let property = name.to_ascii_lowercase();
        match self.next() {
            Some(Token::Op(op)) => Ok(Query::Compare {
                property,
                op,
                value: self.value()?,
            }),
            Some(Token::In) => {
                let v = self.value()?;
                match Network::parse(&v) {
                    Some(network) => Ok(Query::InNetwork { property, network }),
                    None => {
                        self.pos -= 1;
                        self.err(format!(
                            "'{v}' is not a network (10.1.0.0/16, 2001:db8::/32)"
                        ))
                    }
                }
            }
            _ => {
                self.pos -= 1;
                self.err(format!(
                    "a comparison after '{name}' expected (=, !=, <, <=, >, >=, ~, in)"
                ))
            }
        }
    }
}

/// Parses a query, refusing anything malformed or too large, with where it went wrong.
pub fn parse(text: &str) -> Result<Query, QueryError> {
    if text.len() > MAX_LENGTH {
        return Err(QueryError {
            message: format!("longer than {MAX_LENGTH} characters"),
            at: MAX_LENGTH,
        });
    }
    let mut p = Parser {
        tokens: tokens(text)?,
        pos: 0,
        nodes: 0,
        end: text.len(),
    };
    if p.tokens.is_empty() {
        return p.err("the query is empty");
    }
    let q = p.or(0)?;
    if p.pos < p.tokens.len() {
        return p.err("'and', 'or' or the end expected");
    }
    Ok(q)
}

/// Case-insensitive glob: `*` any run, `?` one character.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let t: Vec<char> = text.to_lowercase().chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

fn order(a: &str, b: &str) -> Ordering {
    match (a.trim().parse::<f64>(), b.trim().parse::<f64>()) {
        (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        _ => crate::version::compare_lenient(a, b),
    }
}

fn holds(op: Op, have: &str, want: &str) -> bool {
    match op {
        Op::Eq => have.eq_ignore_ascii_case(want),
        Op::Ne => !have.eq_ignore_ascii_case(want),
        Op::Glob => glob(want, have),
        Op::Lt => order(have, want) == Ordering::Less,
        Op::Le => order(have, want) != Ordering::Greater,
        Op::Gt => order(have, want) == Ordering::Greater,
        Op::Ge => order(have, want) != Ordering::Less,
    }
}

impl Query {
    /// Whether the machine matches.
    pub fn matches(&self, facts: &dyn Facts) -> bool {
        match self {
            Query::And(a, b) => a.matches(facts) && b.matches(facts),
            Query::Or(a, b) => a.matches(facts) || b.matches(facts),
            Query::Not(q) => !q.matches(facts),
            Query::Compare {
                property,
                op,
                value,
            } => {
                let values = facts.property(property);
                if *op == Op::Ne {
                    // Different from every value (a machine without the property differs).
                    values.iter().all(|v| holds(Op::Ne, v, value))
                } else {
                    values.iter().any(|v| holds(*op, v, value))
                }
            }
            Query::InNetwork { property, network } => facts
                .property(property)
                .iter()
                .filter_map(|v| v.split('/').next().and_then(|a| a.parse::<IpAddr>().ok()))
                .any(|ip| network.contains(&ip)),
            Query::Installed { package, compare } => {
                match (facts.installed_version(package), compare) {
                    (None, _) => false,
                    (Some(_), None) => true,
                    (Some(v), Some((op, want))) => {
                        let o = crate::version::compare_lenient(&v, want);
                        match op {
                            Op::Eq => o == Ordering::Equal,
                            Op::Ne => o != Ordering::Equal,
                            Op::Lt => o == Ordering::Less,
                            Op::Le => o != Ordering::Greater,
                            Op::Gt => o == Ordering::Greater,
                            Op::Ge => o != Ordering::Less,
                            Op::Glob => glob(want, &v),
                        }
                    }
                }
            }
            Query::Required(u) => facts.update_state(u) == Some(UpdateState::Required),
            Query::InstalledUpdate(u) => facts.update_state(u) == Some(UpdateState::Installed),
        }
    }

    /// The query written back in its canonical form (what is stored and shown).
    pub fn text(&self) -> String {
        fn quote(s: &str) -> String {
            format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
        }
        fn inner(q: &Query, parent: u8) -> String {
            // Precedence: or 1, and 2, not/terms 3.
            let (mine, s) = match q {
                Query::Or(a, b) => (1, format!("{} or {}", inner(a, 1), inner(b, 1))),
                Query::And(a, b) => (2, format!("{} and {}", inner(a, 2), inner(b, 2))),
                Query::Not(a) => (3, format!("not {}", inner(a, 3))),
                Query::Compare {
                    property,
                    op,
                    value,
                } => (3, format!("{property} {} {}", op.text(), quote(value))),
                Query::InNetwork { property, network } => (
                    3,
                    format!("{property} in {}/{}", network.addr, network.prefix),
                ),
                Query::Installed { package, compare } => match compare {
                    None => (3, format!("installed({})", quote(package))),
                    Some((op, v)) => (
                        3,
                        format!("installed({}) {} {}", quote(package), op.text(), quote(v)),
                    ),
                },
                Query::Required(u) => (3, format!("required({})", quote(u))),
                Query::InstalledUpdate(u) => (3, format!("installed_update({})", quote(u))),
            };
            if mine < parent { format!("({s})") } else { s }
        }
        inner(self, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Machine {
        props: HashMap<String, Vec<String>>,
        packages: HashMap<String, String>,
        updates: HashMap<String, UpdateState>,
    }

    impl Facts for Machine {
        fn property(&self, path: &str) -> Vec<String> {
            self.props.get(path).cloned().unwrap_or_default()
        }
        fn installed_version(&self, package: &str) -> Option<String> {
            self.packages.get(package).cloned()
        }
        fn update_state(&self, update: &str) -> Option<UpdateState> {
            self.updates.get(update).copied()
        }
    }

    fn web01() -> Machine {
        let mut m = Machine::default();
        for (k, v) in [
            ("name", vec!["web-01"]),
            ("os.release", vec!["12"]),
            ("chassis", vec!["server"]),
            ("ip", vec!["10.1.4.7/16", "fe80::1/64"]),
            ("memory_mb", vec!["8192"]),
            ("custom.app.tier", vec!["gold"]),
        ] {
            m.props
                .insert(k.into(), v.into_iter().map(String::from).collect());
        }
        m.packages
            .insert("openssl".into(), "3.0.11-1~deb12u1".into());
        m.updates
            .insert("hello 2.10-4".into(), UpdateState::Required);
        m.updates.insert("KB-1001".into(), UpdateState::Installed);
        m
    }

    fn check(q: &str) -> bool {
        parse(q)
            .unwrap_or_else(|e| panic!("{q}: {e}"))
            .matches(&web01())
    }

    #[test]
    fn evaluates_the_documented_forms() {
        assert!(check(r#"os.release = "12""#));
        assert!(check("chassis = server and name ~ \"web-*\""));
        assert!(!check("chassis = desktop"));
        assert!(check("ip in 10.1.0.0/16"));
        assert!(!check("ip in 10.2.0.0/16"));
        assert!(check("ip in fe80::/10"));
        assert!(check("installed(openssl)"));
        assert!(!check("installed(nginx)"));
        assert!(check(r#"installed(openssl) < "3.0.11-1~deb12u2""#));
        assert!(!check(r#"installed(openssl) < "3.0.11-1~deb12u1""#));
        // Debian order: ~ sorts before everything.
        assert!(check(r#"installed(openssl) < "3.0.11-1""#));
        assert!(
            !check(r#"installed(nginx) < "9""#),
            "not installed is not below"
        );
        assert!(check(r#"required("hello 2.10-4")"#));
        assert!(!check(r#"installed_update("hello 2.10-4")"#));
        assert!(check("installed_update(KB-1001)"));
        assert!(check(r#"custom.app.tier = "GOLD""#));
        assert!(check("memory_mb >= 4096 and memory_mb < 16384"));
        assert!(!check("memory_mb > 10000"), "numbers compare as numbers");
        assert!(check("not (chassis = desktop or chassis = portable)"));
        assert!(check("chassis != desktop"));
        assert!(
            check("rack != a1"),
            "a machine without the property differs"
        );
        assert!(check(
            "(chassis = desktop or os.release = 12) and not name ~ db*"
        ));
    }

    #[test]
    fn and_binds_tighter_than_or() {
        // false and false or true → true; false and (false or true) → false
        assert!(check(
            "chassis = desktop and chassis = portable or chassis = server"
        ));
        assert!(!check(
            "chassis = desktop and (chassis = portable or chassis = server)"
        ));
    }

    #[test]
    fn refuses_malformed_and_oversized_queries_with_where() {
        for (q, what) in [
            ("", "empty"),
            ("os.release =", "a value expected"),
            ("os.release", "a comparison"),
            ("(chassis = server", "')' expected"),
            ("chassis = server server", "'and', 'or'"),
            ("ip in 10.1.0.0/33", "not a network"),
            ("drop(table)", "unknown function"),
            ("name = \"web", "not closed"),
            ("a ! b", "'!' must be followed"),
        ] {
            let e = parse(q).expect_err(q);
            assert!(e.message.contains(what), "{q}: {e}");
        }
        let deep = format!("{}a = 1{}", "(".repeat(40), ")".repeat(40));
        assert!(parse(&deep).expect_err("deep").message.contains("nested"));
        let wide = vec!["a = 1"; 300].join(" or ");
        assert!(parse(&wide).expect_err("wide").message.contains("terms"));
        assert!(parse(&"a".repeat(5000)).is_err());
    }

    #[test]
    fn canonical_text_parses_back_to_the_same_query() {
        for q in [
            "chassis = server and (os.release = 12 or name ~ 'web-*')",
            "not ip in 10.1.0.0/16 or installed(openssl) <= \"3.0\"",
            "required(\"hello 2.10-4\") and installed_update(KB-1001)",
        ] {
            let parsed = parse(q).expect("parse");
            let text = parsed.text();
            assert_eq!(parse(&text).expect("reparse"), parsed, "{text}");
        }
    }

    #[test]
    fn glob_matches_like_a_shell_pattern() {
        assert!(glob("web-*", "WEB-01"));
        assert!(glob("w?b*", "web"));
        assert!(!glob("web-?", "web-01"));
        assert!(glob("*", ""));
        assert!(glob("*-01", "db-web-01"));
    }
}
