//! Hardware and software inventory: what the machine is, read from the
//! same places an administrator would look — `/etc/os-release`, the firmware's DMI table
//! in `/sys/class/dmi/id`, `/proc/cpuinfo` and `/proc/meminfo`, the mounted file systems,
//! the network adapters and addresses, the services (the computer's roles), the last user
//! who logged on (`/var/log/wtmp`) — and the packages dpkg holds; and the properties of the
//! site's custom inventory classes (`custom.CLASS.PROPERTY`, [`crate::inventory_classes`]).
//!
//! Everything is read under a root (`/` on a real machine; another root for a test or a
//! container image). Addresses and running services are the live machine's: they are read
//! from the kernel and from systemd only when the root is `/`.
//!
//! Property names are the ones the collection query language reads (`os.release`,
//! `chassis`, `ip`, `memory_mb`, `disk.root.free_mb`, ...); see docs/inventory.md.

use std::collections::BTreeMap;
use std::path::Path;

use koshin_domain::UpdateState;
use serde::{Deserialize, Serialize};

/// A machine's inventory: properties (each with one or more values) and installed packages.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    pub properties: BTreeMap<String, Vec<String>>,
    /// `name:arch` → version, for every package dpkg counts as installed.
    pub packages: BTreeMap<String, String>,
}

impl Inventory {
    fn set(&mut self, key: &str, value: impl Into<String>) {
        let v = value.into();
        if !v.trim().is_empty() {
            self.properties
                .entry(key.to_string())
                .or_default()
                .push(v.trim().to_string());
        }
    }
}

impl koshin_domain::query::Facts for Inventory {
    fn property(&self, path: &str) -> Vec<String> {
        self.properties.get(path).cloned().unwrap_or_default()
    }

    fn installed_version(&self, package: &str) -> Option<String> {
        if package.contains(':') {
            return self.packages.get(package).cloned();
        }
        let prefix = format!("{package}:");
        self.packages
            .iter()
            .find(|(k, _)| k.starts_with(&prefix))
            .map(|(_, v)| v.clone())
    }

    fn update_state(&self, _update: &str) -> Option<UpdateState> {
        // Compliance is the site's to know; the agent's inventory holds none.
        None
    }
}

fn read(root: &Path, rel: &str) -> String {
    std::fs::read_to_string(root.join(rel)).unwrap_or_default()
}

/// SMBIOS chassis types (DMTF DSP0134, 7.4.1) by the word administrators use.
fn chassis_of(code: u32) -> &'static str {
    match code {
        3 | 4 | 5 | 6 | 7 | 13 | 15 | 16 | 24 | 34 | 35 | 36 => "desktop",
        8 | 9 | 10 | 11 | 12 | 14 | 18 | 21 | 30 | 31 | 32 => "portable",
        17 | 22 | 23 | 25 | 28 | 29 => "server",
        _ => "unknown",
    }
}

const HYPERVISORS: &[&str] = &[
    "qemu",
    "kvm",
    "vmware",
    "virtualbox",
    "xen",
    "microsoft corporation virtual",
    "hyper-v",
    "bochs",
    "parallels",
    "amazon ec2",
    "google compute engine",
    "openstack",
];

/// Collects the inventory of the machine under `root`, without custom classes.
pub fn collect(root: &Path) -> Inventory {
    collect_with(root, &[])
}

/// Collects the inventory of the machine under `root` with the custom inventory classes'
/// properties (`custom.CLASS.PROPERTY`, read as [`crate::inventory_classes`] says).
pub fn collect_with(root: &Path, classes: &[koshin_wire::InventoryClassProperty]) -> Inventory {
    let mut inv = builtin(root);
    inv.properties
        .extend(crate::inventory_classes::collect(root, classes));
    inv
}

fn builtin(root: &Path) -> Inventory {
    let live = root == Path::new("/");
    let mut inv = Inventory::default();

    // Name and operating system.
    let hostname = read(root, "etc/hostname");
    let hostname = hostname.lines().next().unwrap_or("").trim().to_string();
    inv.set(
        "name",
        if hostname.is_empty() && live {
            crate::enroll::hostname()
        } else {
            hostname
        },
    );
    let os = read(root, "etc/os-release");
    let os = if os.is_empty() {
        read(root, "usr/lib/os-release")
    } else {
        os
    };
    for (key, prop) in [
        ("NAME", "os.name"),
        ("ID", "os.id"),
        ("VERSION_ID", "os.release"),
        ("VERSION_CODENAME", "os.codename"),
        ("PRETTY_NAME", "os.pretty_name"),
    ] {
        if let Some(v) = os.lines().find_map(|l| l.strip_prefix(&format!("{key}="))) {
            inv.set(prop, v.trim().trim_matches('"'));
        }
    }
    inv.set("kernel", read(root, "proc/sys/kernel/osrelease"));
    inv.set("architecture", crate::dpkg::architecture(root));

    // Hardware: the firmware's DMI table.
    let dmi = |f: &str| {
        read(root, &format!("sys/class/dmi/id/{f}"))
            .trim()
            .to_string()
    };
    let (vendor, model) = (dmi("sys_vendor"), dmi("product_name"));
    inv.set("vendor", vendor.clone());
    inv.set("model", model.clone());
    let cpuinfo = read(root, "proc/cpuinfo");
    let virtual_machine = {
        let who = format!("{vendor} {model}").to_lowercase();
        HYPERVISORS.iter().any(|h| who.contains(h))
            || cpuinfo
                .lines()
                .any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "hypervisor"))
    };
    let chassis = if virtual_machine {
        "virtual"
    } else {
        dmi("chassis_type")
            .parse::<u32>()
            .map(chassis_of)
            .unwrap_or("unknown")
    };
    inv.set("chassis", chassis);
    if let Some(m) = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
    {
        inv.set("cpu.model", m.1);
    }
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    if cpus > 0 {
        inv.set("cpu.count", cpus.to_string());
    }
    if let Some(kb) = read(root, "proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
    {
        inv.set("memory_mb", (kb / 1024).to_string());
    }

    // Disks: the mounted local file systems, their size and free space.
    for line in read(root, "proc/mounts").lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [_, mount, fstype, ..] = f[..] else {
            continue;
        };
        if !matches!(
            fstype,
            "ext2"
                | "ext3"
                | "ext4"
                | "xfs"
                | "btrfs"
                | "vfat"
                | "zfs"
                | "f2fs"
                | "jfs"
                | "reiserfs"
        ) {
            continue;
        }
        let key = if mount == "/" {
            "root".to_string()
        } else {
            mount
                .trim_matches('/')
                .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        };
        inv.set("disk.mount", mount);
        inv.set("disk.fs", fstype);
        if let Some((size, free)) = space(&root.join(mount.trim_start_matches('/'))) {
            inv.set(&format!("disk.{key}.size_mb"), size.to_string());
            inv.set(&format!("disk.{key}.free_mb"), free.to_string());
            inv.set("disk.free_mb", free.to_string());
        }
    }

    // Network: adapters (with their hardware address) and the live addresses.
    if let Ok(dir) = std::fs::read_dir(root.join("sys/class/net")) {
        let mut names: Vec<String> = dir
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n != "lo")
            .collect();
        names.sort();
        for n in names {
            let mac = read(root, &format!("sys/class/net/{n}/address"));
            inv.set("net.adapter", n.clone());
            inv.set(&format!("net.{n}.mac"), mac);
        }
    }
    if live {
        for (ip, prefix) in addresses() {
            if !ip.is_loopback() {
                inv.set("ip", format!("{ip}/{prefix}"));
            }
        }
    }

    // Services: running ones on the live machine (systemd), else the enabled ones.
    let mut services: Vec<String> = if live { running_services() } else { Vec::new() };
    if services.is_empty() {
        for wants in [
            "etc/systemd/system/multi-user.target.wants",
            "etc/systemd/system/graphical.target.wants",
        ] {
            if let Ok(dir) = std::fs::read_dir(root.join(wants)) {
                services.extend(dir.filter_map(|e| e.ok()).filter_map(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .strip_suffix(".service")
                        .map(str::to_string)
                }));
            }
        }
    }
    services.sort();
    services.dedup();
    for s in services {
        inv.set("service", s);
    }

    if let Some(user) = last_user(&root.join("var/log/wtmp")) {
        inv.set("last_user", user);
    }

    // Software: what dpkg holds.
    if let Ok(status) = crate::dpkg::read_status(root) {
        inv.packages = status
            .into_iter()
            .map(|((name, arch), version)| (format!("{name}:{arch}"), version))
            .collect();
    }
    inv.set("packages", inv.packages.len().to_string());
    inv
}

impl Inventory {
    /// The inventory's name: SHA-256 of its canonical JSON.
    pub fn hash(&self) -> String {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(serde_json::to_vec(self).unwrap_or_default()))
    }

    /// The report of this inventory against `last` (the one the site acknowledged): the
    /// changed and removed properties and packages; the whole inventory without `last`.
    pub fn report(&self, last: Option<&Inventory>, now_ms: i64) -> koshin_wire::InventoryReport {
        let hash = self.hash();
        let Some(last) = last else {
            return koshin_wire::InventoryReport {
                hash,
                base: None,
                properties: self.properties.clone(),
                removed_properties: Vec::new(),
                packages: self.packages.clone(),
                removed_packages: Vec::new(),
                collected_ms: now_ms,
            };
        };
        koshin_wire::InventoryReport {
            hash,
            base: Some(last.hash()),
            properties: self
                .properties
                .iter()
                .filter(|(k, v)| last.properties.get(*k) != Some(v))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            removed_properties: last
                .properties
                .keys()
                .filter(|k| !self.properties.contains_key(*k))
                .cloned()
                .collect(),
            packages: self
                .packages
                .iter()
                .filter(|(k, v)| last.packages.get(*k) != Some(v))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            removed_packages: last
                .packages
                .keys()
                .filter(|k| !self.packages.contains_key(*k))
                .cloned()
                .collect(),
            collected_ms: now_ms,
        }
    }
}

/// What sending the inventory did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InventorySent {
    /// Whether the whole inventory went (the first time, or the site held another).
    pub whole: bool,
    pub properties_sent: usize,
    pub packages_sent: usize,
    pub ack: koshin_wire::InventoryAck,
}

/// Collects the inventory under `root` and sends what changed since the inventory the site
/// acknowledged last (kept in the agent's database); whole when the site holds another.
pub async fn send(
    db: &crate::db::AgentDb,
    mp: &crate::mp::Mp,
    root: &Path,
) -> anyhow::Result<InventorySent> {
    let now = jiff::Timestamp::now().as_millisecond();
    // Custom classes may run commands for seconds: off the async threads.
    let classes = crate::inventory_classes::held(db);
    let at = root.to_path_buf();
    let inv = tokio::task::spawn_blocking(move || collect_with(&at, &classes)).await?;
    let last: Option<Inventory> = db
        .get("inventory_sent")?
        .and_then(|j| serde_json::from_str(&j).ok());
    let mut report = inv.report(last.as_ref(), now);
    let ack = match mp.inventory(&report).await {
        Err(crate::mp::MpError::Refused(409, _)) if report.base.is_some() => {
            report = inv.report(None, now);
            mp.inventory(&report).await?
        }
        r => r?,
    };
    db.set("inventory_sent", &serde_json::to_string(&inv)?)?;
    db.set("inventory_ms", &now.to_string())?;
    Ok(InventorySent {
        whole: report.base.is_none(),
        properties_sent: report.properties.len() + report.removed_properties.len(),
        packages_sent: report.packages.len() + report.removed_packages.len(),
        ack,
    })
}

/// (size, free) in MiB of the file system holding `path`.
fn space(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we own; `c` is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let frsize = st.f_frsize as u64;
    Some((
        st.f_blocks as u64 * frsize / (1 << 20),
        st.f_bavail as u64 * frsize / (1 << 20),
    ))
}

/// The machine's addresses with their prefix length, from the kernel's interface list.
pub fn addresses() -> Vec<(std::net::IpAddr, u32)> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we walk read-only and free once.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return out;
        }
        let mut cur = head;
        while !cur.is_null() {
            let (a, m) = ((*cur).ifa_addr, (*cur).ifa_netmask);
            if !a.is_null() {
                match i32::from((*a).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(a as *const libc::sockaddr_in);
                        let prefix = if m.is_null() {
                            32
                        } else {
                            (*(m as *const libc::sockaddr_in))
                                .sin_addr
                                .s_addr
                                .count_ones()
                        };
                        out.push((
                            std::net::IpAddr::from(sin.sin_addr.s_addr.to_ne_bytes()),
                            prefix,
                        ));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(a as *const libc::sockaddr_in6);
                        let prefix = if m.is_null() {
                            128
                        } else {
                            (*(m as *const libc::sockaddr_in6))
                                .sin6_addr
                                .s6_addr
                                .iter()
                                .map(|b| b.count_ones())
                                .sum()
                        };
                        out.push((std::net::IpAddr::from(sin6.sin6_addr.s6_addr), prefix));
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

fn running_services() -> Vec<String> {
    std::process::Command::new("systemctl")
        .args([
            "list-units",
            "--type=service",
            "--state=running",
            "--no-legend",
            "--plain",
            "--no-pager",
        ])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.split_whitespace().next())
                .filter_map(|u| u.strip_suffix(".service"))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The user of the newest login record in a wtmp file (glibc's `struct utmp`, 384 bytes,
/// `ut_type` 7 = USER_PROCESS, `ut_user` 32 bytes at offset 44).
pub fn last_user(wtmp: &Path) -> Option<String> {
    const RECORD: usize = 384;
    const USER_PROCESS: i16 = 7;
    let data = std::fs::read(wtmp).ok()?;
    data.chunks_exact(RECORD).rev().find_map(|r| {
        let kind = i16::from_ne_bytes([r[0], r[1]]);
        if kind != USER_PROCESS {
            return None;
        }
        let user = &r[44..76];
        let end = user.iter().position(|&b| b == 0).unwrap_or(user.len());
        let name = String::from_utf8_lossy(&user[..end]).trim().to_string();
        (!name.is_empty()).then_some(name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use koshin_domain::query;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn utmp(kind: i16, user: &str) -> Vec<u8> {
        let mut r = vec![0u8; 384];
        r[0..2].copy_from_slice(&kind.to_ne_bytes());
        r[44..44 + user.len()].copy_from_slice(user.as_bytes());
        r
    }

    fn web01() -> (tempfile::TempDir, Inventory) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "etc/hostname", "web-01\n");
        write(
            root,
            "etc/os-release",
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n",
        );
        write(root, "sys/class/dmi/id/chassis_type", "23\n");
        write(root, "sys/class/dmi/id/sys_vendor", "Dell Inc.\n");
        write(root, "sys/class/dmi/id/product_name", "PowerEdge R650\n");
        write(
            root,
            "proc/cpuinfo",
            "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Gold 6338\nflags\t\t: fpu sse2\n\nprocessor\t: 1\nmodel name\t: Intel(R) Xeon(R) Gold 6338\n",
        );
        write(
            root,
            "proc/meminfo",
            "MemTotal:       16384000 kB\nMemFree: 1 kB\n",
        );
        write(
            root,
            "proc/mounts",
            "/dev/sda1 / ext4 rw 0 0\nproc /proc proc rw 0 0\n",
        );
        write(root, "sys/class/net/eth0/address", "52:54:00:12:34:56\n");
        write(root, "sys/class/net/lo/address", "00:00:00:00:00:00\n");
        write(
            root,
            "etc/systemd/system/multi-user.target.wants/nginx.service",
            "",
        );
        write(
            root,
            "etc/systemd/system/multi-user.target.wants/ssh.service",
            "",
        );
        write(root, "var/lib/dpkg/arch", "amd64\n");
        write(
            root,
            "var/lib/dpkg/status",
            "Package: nginx\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.22.1-9\n\n\
             Package: openssl\nStatus: install ok installed\nArchitecture: amd64\nVersion: 3.0.11-1~deb12u1\n\n\
             Package: gone\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1\n",
        );
        let mut wtmp = utmp(7, "alice");
        wtmp.extend(utmp(8, ""));
        wtmp.extend(utmp(7, "bob"));
        wtmp.extend(utmp(2, "reboot"));
        std::fs::create_dir_all(root.join("var/log")).unwrap();
        std::fs::write(root.join("var/log/wtmp"), wtmp).unwrap();
        let inv = collect(root);
        (dir, inv)
    }

    #[test]
    fn reads_a_machine_from_its_files() {
        let (_dir, inv) = web01();
        let p = |k: &str| inv.properties.get(k).cloned().unwrap_or_default();
        assert_eq!(p("name"), ["web-01"]);
        assert_eq!(p("os.release"), ["12"]);
        assert_eq!(p("os.codename"), ["bookworm"]);
        assert_eq!(p("chassis"), ["server"]);
        assert_eq!(p("model"), ["PowerEdge R650"]);
        assert_eq!(p("cpu.count"), ["2"]);
        assert_eq!(p("cpu.model"), ["Intel(R) Xeon(R) Gold 6338"]);
        assert_eq!(p("memory_mb"), ["16000"]);
        assert_eq!(p("disk.mount"), ["/"]);
        assert!(p("disk.root.free_mb").len() == 1, "{inv:?}");
        assert_eq!(p("net.adapter"), ["eth0"]);
        assert_eq!(p("net.eth0.mac"), ["52:54:00:12:34:56"]);
        assert_eq!(p("service"), ["nginx", "ssh"]);
        assert_eq!(p("last_user"), ["bob"]);
        assert_eq!(inv.packages.len(), 2, "config-files only is not installed");
        assert_eq!(inv.packages["openssl:amd64"], "3.0.11-1~deb12u1");
    }

    #[test]
    fn a_hypervisor_makes_the_chassis_virtual() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "sys/class/dmi/id/chassis_type", "1\n");
        write(dir.path(), "sys/class/dmi/id/sys_vendor", "QEMU\n");
        let inv = collect(dir.path());
        assert_eq!(inv.properties["chassis"], ["virtual"]);
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "sys/class/dmi/id/chassis_type", "10\n");
        assert_eq!(collect(dir.path()).properties["chassis"], ["portable"]);
    }

    #[test]
    fn the_query_language_reads_an_inventory() {
        let (_dir, inv) = web01();
        for (q, want) in [
            ("os.release = 12 and chassis = server", true),
            ("name ~ \"web-*\" and service = nginx", true),
            ("installed(openssl) < \"3.0.11-1~deb12u2\"", true),
            ("installed(openssl:amd64) >= \"3.0.11-1~deb12u1\"", true),
            ("installed(apache2)", false),
            ("memory_mb > 8000 and cpu.count >= 2", true),
            ("chassis = portable or last_user = alice", false),
        ] {
            let parsed = query::parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
            assert_eq!(parsed.matches(&inv), want, "{q}");
        }
    }
}
