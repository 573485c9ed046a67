//! Which distribution point a client uses (P22): boundaries are subnets (`10.1.0.0/16`) or
//! address ranges (`10.1.0.10-10.1.0.99`). A client uses a distribution point whose
//! boundaries contain one of its addresses, the most specific boundary first; a
//! **protected** distribution point serves only clients inside its boundaries, so a client
//! in none falls back to the nearest unprotected one — nearest by the longest common
//! address prefix with the distribution point's boundaries, then by name.

use std::fmt;
use std::net::IpAddr;

/// A subnet or an inclusive address range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Boundary {
    Subnet { network: IpAddr, prefix: u8 },
    Range { first: IpAddr, last: IpAddr },
}

fn bits(a: IpAddr) -> (u128, u32) {
    match a {
        IpAddr::V4(v) => (u128::from(u32::from(v)), 32),
        IpAddr::V6(v) => (u128::from(v), 128),
    }
}

impl Boundary {
    pub fn parse(s: &str) -> Result<Boundary, String> {
        let s = s.trim();
        let bad = |why: &str| {
            format!(
                "boundary '{s}': {why} (a subnet such as 10.1.0.0/16 or a range such as 10.1.0.10-10.1.0.99)"
            )
        };
        if let Some((net, prefix)) = s.split_once('/') {
            let network: IpAddr = net.parse().map_err(|_| bad("not an address"))?;
            let prefix: u8 = prefix.parse().map_err(|_| bad("not a prefix length"))?;
            if u32::from(prefix) > bits(network).1 {
                return Err(bad("prefix too long"));
            }
            return Ok(Boundary::Subnet { network, prefix });
        }
        if let Some((a, b)) = s.split_once('-') {
            let first: IpAddr = a.trim().parse().map_err(|_| bad("not an address"))?;
            let last: IpAddr = b.trim().parse().map_err(|_| bad("not an address"))?;
            if first.is_ipv4() != last.is_ipv4() || bits(first).0 > bits(last).0 {
                return Err(bad("the range is empty or mixes IPv4 and IPv6"));
            }
            return Ok(Boundary::Range { first, last });
        }
        let a: IpAddr = s.parse().map_err(|_| bad("not an address"))?;
        Ok(Boundary::Range { first: a, last: a })
    }

    /// The first and last address as numbers, and the address width.
    fn span(&self) -> (u128, u128, u32) {
        match *self {
            Boundary::Subnet { network, prefix } => {
                let (n, width) = bits(network);
                let host = width - u32::from(prefix);
                let mask = if host >= 128 {
                    u128::MAX
                } else {
                    (1u128 << host) - 1
                };
                (n & !mask, (n & !mask) | mask, width)
            }
            Boundary::Range { first, last } => {
                let (a, width) = bits(first);
                (a, bits(last).0, width)
            }
        }
    }

    pub fn contains(&self, a: IpAddr) -> bool {
        let (lo, hi, width) = self.span();
        let (n, w) = bits(a);
        w == width && lo <= n && n <= hi
    }

    /// How many addresses it holds, less one (smaller is more specific).
    fn size(&self) -> u128 {
        let (lo, hi, _) = self.span();
        hi - lo
    }

    /// Common leading bits of `a` with this boundary's first address.
    fn closeness(&self, a: IpAddr) -> u32 {
        let (lo, _, width) = self.span();
        let (n, w) = bits(a);
        if w != width {
            return 0;
        }
        let shift = 128 - width;
        ((lo ^ n) << shift).leading_zeros().min(width)
    }
}

impl fmt::Display for Boundary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Boundary::Subnet { network, prefix } => write!(f, "{network}/{prefix}"),
            Boundary::Range { first, last } if first == last => write!(f, "{first}"),
            Boundary::Range { first, last } => write!(f, "{first}-{last}"),
        }
    }
}

/// A distribution point as a client sees it in policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub name: String,
    pub boundaries: Vec<Boundary>,
    pub protected: bool,
}

/// The distribution point chosen, and why — shown by `koshin-agent status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    pub index: usize,
    pub reason: String,
}

/// Chooses a distribution point for a client with `addresses`.
pub fn choose(addresses: &[IpAddr], dps: &[Candidate]) -> Option<Choice> {
    // Inside a boundary: the most specific one; protected first on a tie, then by name.
    let inside = dps
        .iter()
        .enumerate()
        .flat_map(|(i, dp)| {
            dp.boundaries.iter().flat_map(move |b| {
                addresses
                    .iter()
                    .filter(move |a| b.contains(**a))
                    .map(move |a| (i, *b, *a))
            })
        })
        .min_by(|x, y| {
            (x.1.size(), !dps[x.0].protected, &dps[x.0].name).cmp(&(
                y.1.size(),
                !dps[y.0].protected,
                &dps[y.0].name,
            ))
        });
    if let Some((i, b, a)) = inside {
        return Some(Choice {
            index: i,
            reason: format!(
                "{a} is inside its boundary {b}{}",
                if dps[i].protected { " (protected)" } else { "" }
            ),
        });
    }
    // Outside every boundary: the nearest unprotected one.
    dps.iter()
        .enumerate()
        .filter(|(_, dp)| !dp.protected)
        .max_by(|(_, x), (_, y)| {
            let near = |dp: &Candidate| {
                dp.boundaries
                    .iter()
                    .flat_map(|b| addresses.iter().map(move |a| b.closeness(*a)))
                    .max()
                    .unwrap_or(0)
            };
            (near(x), std::cmp::Reverse(&x.name)).cmp(&(near(y), std::cmp::Reverse(&y.name)))
        })
        .map(|(i, _)| Choice {
            index: i,
            reason:
                "no boundary of a distribution point holds this client: the nearest unprotected one"
                    .into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dp(name: &str, b: &[&str], protected: bool) -> Candidate {
        Candidate {
            name: name.into(),
            boundaries: b.iter().map(|s| Boundary::parse(s).unwrap()).collect(),
            protected,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn boundaries_parse_and_contain() {
        let b = Boundary::parse("10.1.0.0/16").unwrap();
        assert!(b.contains(ip("10.1.255.7")));
        assert!(!b.contains(ip("10.2.0.1")));
        assert!(!b.contains(ip("::1")));
        let r = Boundary::parse("10.1.0.10-10.1.0.99").unwrap();
        assert!(r.contains(ip("10.1.0.10")) && r.contains(ip("10.1.0.99")));
        assert!(!r.contains(ip("10.1.0.100")));
        assert_eq!(
            Boundary::parse("10.1.2.3/8").unwrap().to_string(),
            "10.1.2.3/8"
        );
        assert!(Boundary::parse("10.1.0.0/33").is_err());
        assert!(Boundary::parse("10.0.0.9-10.0.0.1").is_err());
        assert!(Boundary::parse("fd00::/8").unwrap().contains(ip("fd12::1")));
        assert!(
            Boundary::parse("0.0.0.0/0")
                .unwrap()
                .contains(ip("192.0.2.1"))
        );
    }

    #[test]
    fn protected_distribution_points_bind_and_others_fall_back() {
        let dps = [
            dp("branch", &["10.1.0.0/16"], true),
            dp("lab", &["10.1.5.0/24"], false),
            dp("hq", &["10.0.0.0/16"], false),
            dp("dmz", &["192.168.0.0/16"], false),
        ];
        // The most specific boundary wins.
        assert_eq!(choose(&[ip("10.1.5.9")], &dps).unwrap().index, 1);
        // Inside the protected one only: bound to it.
        let c = choose(&[ip("10.1.9.9")], &dps).unwrap();
        assert_eq!(c.index, 0);
        assert!(c.reason.contains("protected"), "{}", c.reason);
        // Outside every boundary: the nearest unprotected, never the protected one.
        let c = choose(&[ip("10.3.0.1")], &dps).unwrap();
        assert_eq!(dps[c.index].name, "hq", "{}", c.reason);
        let only_protected = [dp("branch", &["10.1.0.0/16"], true)];
        assert_eq!(choose(&[ip("10.3.0.1")], &only_protected), None);
        assert_eq!(choose(&[ip("10.1.0.1")], &only_protected).unwrap().index, 0);
    }
}
