//! Which distribution point this client uses (P22): its own addresses against the
//! boundaries of the distribution points in policy (`koshin_domain::boundaries::choose`).

use std::net::IpAddr;

use koshin_domain::boundaries::{Boundary, Candidate, choose};
use koshin_wire::{DpChoice, MachinePolicy};

/// This machine's addresses, from the kernel's interface list.
pub fn local_addresses() -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = crate::inventory::addresses()
        .into_iter()
        .map(|(ip, _)| ip)
        .collect();
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
