//! The second peer of `koshin bench sync`: aptly (Debian package `aptly`) mirroring the same
//! suites from the same loopback copy.
//!
//! Each round gets a fresh aptly root: its own configuration file (`-config`, `rootDir` in
//! the round's folder), so nothing is read from `~/.aptly.conf` or `/etc/aptly.conf`. One
//! mirror per suite is created and updated from the loopback URL with signature checking
//! against the same keyrings apt and koshin use (`-keyring`; aptly runs `gpgv`), then updated
//! again with nothing changed. The copy holds metadata only, so every mirror carries a
//! filter that matches no package: aptly still downloads, verifies, decompresses and parses
//! every index, then queues nothing to download and stores no package in its database. Its
//! figures are therefore a lower bound on a real `aptly mirror update`.
//!
//! `HOME` and `GNUPGHOME` point into the bench's run folder, so `gpg`/`gpgv` read no key or
//! option of the host either.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};

use super::{Counters, Output, Traffic, Upstream, run_timed};

/// The mirror filter: a package name that no Debian archive holds. The bench checks that
/// aptly reports `-> 0` packages after filtering and `0 items` to download, so a name that
/// did exist would stop the bench instead of starting a download.
pub(super) const MATCH_NOTHING: &str = "koshin-bench-matches-no-package";

pub(super) const FULL: &str = "aptly mirror create + update (fresh root)";
pub(super) const DELTA: &str = "aptly mirror update again (no change)";
pub(super) const CREATE: &str = "aptly mirror create only";
pub(super) const UNTIL_FILTER: &str = "aptly mirror update until \"Applying filter\"";
pub(super) const FILTER: &str = "aptly filter step (matches nothing)";

/// One mirror per suite of the loopback copy.
#[derive(Clone, Debug)]
pub(super) struct Mirror {
    name: String,
    url: String,
    suite: String,
    components: Vec<String>,
    architectures: Vec<String>,
    keyrings: Vec<PathBuf>,
}

/// The mirrors aptly keeps for `ups` served at `base` (`http://127.0.0.1:PORT`), named
/// after their suites.
pub(super) fn mirrors(ups: &[Upstream], base: &str) -> Vec<Mirror> {
    let mut out: Vec<Mirror> = Vec::new();
    for up in ups {
        let mut name = up.source.suite.replace('/', "-");
        if out.iter().any(|m| m.name == name) {
            name = format!("{name}-{}", out.len() + 1);
        }
        out.push(Mirror {
            name,
            url: format!("{base}/{}/", up.local),
            suite: up.source.suite.clone(),
            components: up.source.components.clone(),
            architectures: up.architectures.clone(),
            keyrings: up.keyrings.clone(),
        });
    }
    out
}

/// aptly's version (`aptly version`), or why it cannot be measured.
pub(super) fn version() -> Result<String, String> {
    match std::process::Command::new("aptly")
        .arg("version")
        .stdin(Stdio::null())
        .output()
    {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            let line = text.lines().next().unwrap_or("").trim();
            Ok(line
                .strip_prefix("aptly version:")
                .unwrap_or(line)
                .trim()
                .to_string())
        }
        Ok(o) => Err(format!(
            "`aptly version` failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err("aptly is not installed (Debian package `aptly`)".into())
        }
        Err(e) => Err(format!("cannot run aptly: {e}")),
    }
}

/// The `HOME` (and `GNUPGHOME` under it) aptly and the `gpg`/`gpgv` it runs see: one per
/// bench run, so the keybox `gpg` creates on first use is made in the warm-up round.
pub(super) fn prepare_home(work: &Path) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let home = work.join("aptly-home");
    let gnupg = home.join(".gnupg");
    std::fs::create_dir_all(&gnupg)
        .with_context(|| format!("cannot create {}", gnupg.display()))?;
    std::fs::set_permissions(&gnupg, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot restrict {}", gnupg.display()))?;
    Ok(home)
}

/// One round of aptly: create and update every mirror in a fresh root, then update again.
pub(super) struct AptlyRun {
    /// Every `mirror create` and `mirror update` of a fresh root, one after another.
    pub(super) full: Duration,
    /// Every `mirror update` again on the same root, nothing changed.
    pub(super) delta: Duration,
    /// The `mirror create` commands alone (fetch the InRelease, `gpgv`).
    pub(super) create: Duration,
    /// The first `mirror update` commands until aptly prints `Applying filter...`: process
    /// start, InRelease again, `gpgv`, the indices fetched, decompressed and parsed.
    pub(super) until_filter: Duration,
    /// The first `mirror update` commands from `Applying filter...` to `Packages filtered`:
    /// the one step the bench's filter adds to aptly's work.
    pub(super) filter: Duration,
    /// Packages aptly parsed from every index (before the filter).
    pub(super) packages: usize,
    pub(super) full_traffic: Traffic,
    pub(super) delta_traffic: Traffic,
}

/// What an `aptly mirror update` printed about its work.
#[derive(Debug, PartialEq)]
struct UpdateLines {
    until_filter: Duration,
    filter: Duration,
    packages: usize,
}

/// Runs `aptly ARGS` with the bench's `HOME`, `GNUPGHOME` and no proxy; fails unless it
/// exits 0.
async fn aptly(home: &Path, args: &[String]) -> anyhow::Result<Output> {
    let mut cmd = tokio::process::Command::new("aptly");
    cmd.args(args)
        .env("HOME", home)
        .env("GNUPGHOME", home.join(".gnupg"))
        .env_remove("no_proxy")
        .env_remove("NO_PROXY");
    let (output, status) = run_timed(
        cmd,
        "aptly",
        "is the `aptly` package installed? --no-aptly leaves it out",
    )
    .await?;
    if !status.success() {
        bail!(
            "`aptly {}` failed ({status}):\n--- stdout\n{}--- stderr\n{}(--no-aptly leaves aptly out of the bench)",
            args.join(" "),
            output.text(),
            output.stderr,
        );
    }
    Ok(output)
}

/// Reads an `aptly mirror update`'s output: how many packages it parsed, when it reached
/// the filter and left it, and that it queued nothing to download.
fn read_update(stdout: &[(Duration, String)]) -> anyhow::Result<UpdateLines> {
    let find = |prefix: &str| stdout.iter().find(|(_, l)| l.trim().starts_with(prefix));
    let text = || {
        stdout
            .iter()
            .map(|(_, l)| format!("{l}\n"))
            .collect::<String>()
    };
    let (applying, _) = find("Applying filter").ok_or_else(|| {
        anyhow!(
            "aptly mirror update printed no \"Applying filter\" line:\n{}",
            text()
        )
    })?;
    let (filtered, line) = find("Packages filtered:").ok_or_else(|| {
        anyhow!(
            "aptly mirror update printed no \"Packages filtered\" line:\n{}",
            text()
        )
    })?;
    let counts = line
        .trim()
        .trim_start_matches("Packages filtered:")
        .trim()
        .trim_end_matches('.');
    let (before, after) = counts
        .split_once("->")
        .map(|(b, a)| (b.trim().parse::<usize>(), a.trim().parse::<usize>()))
        .ok_or_else(|| anyhow!("cannot read aptly's line {line:?}"))?;
    let (Ok(packages), Ok(kept)) = (before, after) else {
        bail!("cannot read aptly's line {line:?}");
    };
    if kept != 0 {
        bail!(
            "aptly's filter {MATCH_NOTHING:?} kept {kept} packages: the copy has no .deb files to download"
        );
    }
    match find("Download queue:") {
        Some((_, l)) if l.trim().starts_with("Download queue: 0 items") => {}
        _ => bail!(
            "aptly mirror update queued downloads (the copy has no .deb files):\n{}",
            text()
        ),
    }
    if find("Mirror `").is_none_or(|(_, l)| !l.contains("successfully updated")) {
        bail!(
            "aptly mirror update did not say the mirror was updated:\n{}",
            text()
        );
    }
    Ok(UpdateLines {
        until_filter: *applying,
        filter: filtered.saturating_sub(*applying),
        packages,
    })
}

fn create_args(config: &Path, m: &Mirror) -> Vec<String> {
    let mut args = vec![
        "mirror".to_string(),
        "create".into(),
        format!("-config={}", config.display()),
        format!("-architectures={}", m.architectures.join(",")),
        // bookworm-security's Release names its components `updates/main` etc. while its
        // indices sit under `main/`, where apt and koshin fetch them: without this aptly
        // refuses component `main`. It only skips that check.
        "-force-components".into(),
        format!("-filter={MATCH_NOTHING}"),
    ];
    args.extend(
        m.keyrings
            .iter()
            .map(|k| format!("-keyring={}", k.display())),
    );
    args.push(m.name.clone());
    args.push(m.url.clone());
    args.push(m.suite.clone());
    args.extend(m.components.iter().cloned());
    args
}

fn update_args(config: &Path, m: &Mirror) -> Vec<String> {
    let mut args = vec![
        "mirror".to_string(),
        "update".into(),
        format!("-config={}", config.display()),
    ];
    args.extend(
        m.keyrings
            .iter()
            .map(|k| format!("-keyring={}", k.display())),
    );
    args.push(m.name.clone());
    args
}

/// aptly's configuration for one round: its root in `dir`, signatures checked with `gpgv`.
fn write_config(dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let config = dir.join("aptly.conf");
    let body = serde_json::json!({
        "rootDir": dir.join("root"),
        "gpgProvider": "gpg",
        "gpgDisableVerify": false,
        "downloadSourcePackages": false,
    });
    std::fs::write(&config, serde_json::to_vec_pretty(&body)?)
        .with_context(|| format!("cannot write {}", config.display()))?;
    Ok(config)
}

/// A fresh aptly root in `dir`: every mirror created and updated (timed together), then
/// updated again (timed together). Writing the configuration file is not timed.
pub(super) async fn run_aptly(
    dir: &Path,
    home: &Path,
    mirrors: &[Mirror],
    counters: &Counters,
) -> anyhow::Result<AptlyRun> {
    let config = write_config(dir)?;
    let before = counters.snapshot();
    let started = Instant::now();
    let mut create = Duration::ZERO;
    let mut until_filter = Duration::ZERO;
    let mut filter = Duration::ZERO;
    let mut packages = 0;
    for m in mirrors {
        create += aptly(home, &create_args(&config, m)).await?.elapsed;
        let out = aptly(home, &update_args(&config, m)).await?;
        let lines = read_update(&out.stdout)
            .with_context(|| format!("aptly mirror {} in {}", m.name, dir.display()))?;
        until_filter += lines.until_filter;
        filter += lines.filter;
        packages += lines.packages;
    }
    let full = started.elapsed();
    let between = counters.snapshot();
    let started = Instant::now();
    let mut again = 0;
    for m in mirrors {
        let out = aptly(home, &update_args(&config, m)).await?;
        again += read_update(&out.stdout)
            .with_context(|| format!("aptly mirror {} in {}", m.name, dir.display()))?
            .packages;
    }
    let delta = started.elapsed();
    let after = counters.snapshot();
    let db = dir.join("root/db");
    if !db.is_dir() {
        bail!(
            "aptly left no database at {}: it did not use the bench's configuration",
            db.display()
        );
    }
    if again != packages {
        bail!(
            "aptly parsed {packages} packages, then {again} from the same copy (in {})",
            dir.display()
        );
    }
    Ok(AptlyRun {
        full,
        delta,
        create,
        until_filter,
        filter,
        packages,
        full_traffic: between.since(before),
        delta_traffic: after.since(between),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<(Duration, String)> {
        text.lines()
            .map(|l| {
                let (ms, l) = l.split_once(' ').unwrap_or((l, ""));
                (
                    Duration::from_millis(ms.parse().unwrap_or(0)),
                    l.to_string(),
                )
            })
            .collect()
    }

    const UPDATED: &str = "\
120 Downloading http://127.0.0.1:1/d/dists/bookworm/InRelease...
130 Success downloading http://127.0.0.1:1/d/dists/bookworm/InRelease
230 Downloading & parsing package files...
240 Downloading http://127.0.0.1:1/d/dists/bookworm/main/binary-amd64/Packages.gz...
450 Success downloading http://127.0.0.1:1/d/dists/bookworm/main/binary-amd64/Packages.gz
3990 Applying filter...
4160 Packages filtered: 63440 -> 0.
4170 Building download queue...
4180 Download queue: 0 items (0 B)
4190 
4200 Mirror `bookworm` has been successfully updated.";

    #[test]
    fn reads_an_update_that_queued_nothing() {
        assert_eq!(
            read_update(&lines(UPDATED)).unwrap(),
            UpdateLines {
                until_filter: Duration::from_millis(3990),
                filter: Duration::from_millis(170),
                packages: 63440,
            }
        );
    }

    #[test]
    fn refuses_an_update_that_would_download() {
        let kept = UPDATED.replace("63440 -> 0.", "63440 -> 2.");
        assert!(read_update(&lines(&kept)).is_err());
        let queued = UPDATED.replace("0 items (0 B)", "2 items (1.2 MiB)");
        assert!(read_update(&lines(&queued)).is_err());
        let unfinished = UPDATED.replace("has been successfully updated", "is updating");
        assert!(read_update(&lines(&unfinished)).is_err());
        let unfiltered: String = UPDATED
            .lines()
            .filter(|l| !l.contains("filter"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(read_update(&lines(&unfiltered)).is_err());
    }

    #[test]
    fn create_checks_signatures_with_the_given_keyrings() {
        let m = Mirror {
            name: "bookworm-security".into(),
            url: "http://127.0.0.1:9/deb.debian.org/debian-security/".into(),
            suite: "bookworm-security".into(),
            components: vec!["main".into()],
            architectures: vec!["amd64".into()],
            keyrings: vec![PathBuf::from("/k/a.gpg"), PathBuf::from("/k/b.gpg")],
        };
        let args = create_args(Path::new("/r/aptly.conf"), &m);
        assert!(!args.iter().any(|a| a.contains("ignore-signatures")));
        assert_eq!(
            args,
            [
                "mirror",
                "create",
                "-config=/r/aptly.conf",
                "-architectures=amd64",
                "-force-components",
                "-filter=koshin-bench-matches-no-package",
                "-keyring=/k/a.gpg",
                "-keyring=/k/b.gpg",
                "bookworm-security",
                "http://127.0.0.1:9/deb.debian.org/debian-security/",
                "bookworm-security",
                "main",
            ]
        );
        assert_eq!(
            update_args(Path::new("/r/aptly.conf"), &m),
            [
                "mirror",
                "update",
                "-config=/r/aptly.conf",
                "-keyring=/k/a.gpg",
                "-keyring=/k/b.gpg",
                "bookworm-security"
            ]
        );
    }
}
