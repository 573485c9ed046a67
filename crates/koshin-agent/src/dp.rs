//! Which distribution point this client uses (P22): its own addresses against the
//! boundaries of the distribution points in policy (`koshin_domain::boundaries::choose`).

use std::net::IpAddr;

use koshin_domain::boundaries::{Boundary, Candidate, choose};
use koshin_wire::{DpChoice, MachinePolicy};

/// This machine's addresses, from the kernel's interface list.
pub fn local_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we walk read-only and free once.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return out;
        }
        let mut cur = head;
        while !cur.is_null() {
            let a = (*cur).ifa_addr;
            if !a.is_null() {
                match i32::from((*a).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(a as *const libc::sockaddr_in);
                        out.push(IpAddr::from(sin.sin_addr.s_addr.to_ne_bytes()));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(a as *const libc::sockaddr_in6);
                        out.push(IpAddr::from(sin6.sin6_addr.s6_addr));
                    }
                    _ => {}
                }
            }
            cur = (*cur).ifa_next;
        }
        libc::freeifaddrs(head);
    }
    out.sort();
    out.dedup();
    out
}

/// The distribution point policy gives this client, and why; none when no point may
/// serve it (every one is protected and it is inside none of their boundaries).
pub fn chosen(policy: &MachinePolicy, addresses: &[IpAddr]) -> Option<DpChoice> {
    let candidates: Vec<Candidate> = policy
        .distribution_points
        .iter()
        .map(|d| Candidate {
            name: d.name.clone(),
            // A boundary that does not parse is ignored, not fatal: the site checks them.
            boundaries: d
                .boundaries
                .iter()
                .filter_map(|b| Boundary::parse(b).ok())
                .collect(),
            protected: d.protected,
        })
        .collect();
    let c = choose(addresses, &candidates)?;
    let dp = &policy.distribution_points[c.index];
    Some(DpChoice {
        name: dp.name.clone(),
        url: dp.url.clone(),
        reason: c.reason,
    })
}
