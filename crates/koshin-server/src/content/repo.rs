//! A distribution point's repository tree: `pool/<aa>/<sha256>/<name>.deb` and the signed
//! indices under `dists/koshin/`. Files are written beside their final name and renamed, the
//! signed `InRelease` last, so apt never reads an index that names a file not yet there.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use koshin_apt::repo::{RepoEntry, RepoMeta, build_indices};
use koshin_apt::signing::ArchiveKey;
use koshin_store::LibraryFile;

/// The suite and component every distribution point serves.
pub const SUITE: &str = "koshin";
pub const COMPONENT: &str = "main";

/// A file's path in a distribution point, relative to its root.
pub fn pool_path(sha256: &str, name: &str) -> String {
    format!("pool/{}/{sha256}/{name}", sha256.get(..2).unwrap_or("00"))
}

/// The architectures an index lists: those of the files, and the site's own.
fn architectures(files: &[LibraryFile], configured: &[String]) -> Vec<String> {
    let mut out: Vec<String> = configured.to_vec();
    for f in files {
        for line in f.control.lines() {
            if let Some(a) = line.strip_prefix("Architecture:") {
                let a = a.trim();
                if a != "all" && !a.is_empty() && !out.iter().any(|x| x == a) {
                    out.push(a.to_string());
                }
            }
        }
    }
    if out.is_empty() {
        out.push("amd64".into());
    }
    out.sort();
    out
}

/// Builds and signs the indices of a distribution point holding `files`.
pub fn indices(
    site_code: &str,
    files: &[LibraryFile],
    architectures_configured: &[String],
    key: &ArchiveKey,
) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let entries: Vec<RepoEntry> = files
        .iter()
        .map(|f| RepoEntry {
            control: f.control.clone(),
            filename: pool_path(&f.sha256, &f.name),
            size: u64::try_from(f.size).unwrap_or(0),
            sha256: f.sha256.clone(),
        })
        .collect();
    let meta = RepoMeta {
        origin: "koshin".into(),
        label: format!("koshin site {site_code}"),
        suite: SUITE.into(),
        codename: SUITE.into(),
        component: COMPONENT.into(),
        architectures: architectures(files, architectures_configured),
        description: format!("Update content distributed by koshin site {site_code}"),
        date: jiff::Timestamp::now(),
        valid_until: None,
    };
    Ok(build_indices(&meta, &entries, key)?)
}

/// Writes index files under `root`: each to a temporary name, then renamed; `InRelease`
/// and `Release.gpg` last.
pub fn write_indices(root: &Path, files: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
    let mut ordered: Vec<&(String, Vec<u8>)> = files.iter().collect();
    ordered.sort_by_key(|(p, _)| {
        (
            p.ends_with("InRelease") || p.ends_with("Release.gpg"),
            p.clone(),
        )
    });
    for (path, data) in ordered {
        let target = safe_join(root, path)?;
        if !path.starts_with("dists/") {
            anyhow::bail!("index path {path} is not under dists/");
        }
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = target.with_extension("koshin-tmp");
        std::fs::write(&tmp, data)?;
        std::fs::rename(&tmp, &target)?;
    }
    Ok(())
}

/// Removes pool files not in `keep` (relative paths), after new indices are in place.
pub fn prune(root: &Path, keep: &HashSet<String>) -> anyhow::Result<usize> {
    let pool = root.join("pool");
    let mut removed = 0;
    for path in pool_files(root)? {
        let rel = path
            .strip_prefix(root)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !keep.contains(&rel) {
            std::fs::remove_file(&path)?;
            removed += 1;
            if let Some(dir) = path.parent()
                && dir != pool
            {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }
    Ok(removed)
}

/// Every file under `root/pool`, as `pool/aa/<sha256>/<name>` paths.
pub fn pool_files(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let pool = root.join("pool");
    if !pool.exists() {
        return Ok(out);
    }
    for a in std::fs::read_dir(&pool)? {
        let a = a?.path();
        if !a.is_dir() {
            continue;
        }
        for s in std::fs::read_dir(&a)? {
            let s = s?.path();
            if !s.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(&s)? {
                let f = f?.path();
                if f.is_file() {
                    out.push(f);
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The SHA-256 a pool file should have: its directory's name.
pub fn expected_sha256(path: &Path) -> Option<String> {
    path.parent()?.file_name()?.to_str().map(str::to_string)
}

/// Hashes the pool and returns the SHA-256 of every file whose content does not match
/// its name, removing it so that it is never served.
pub fn validate(root: &Path) -> anyhow::Result<(usize, Vec<String>)> {
    let files = pool_files(root)?;
    let mut damaged = Vec::new();
    for path in &files {
        let Some(expected) = expected_sha256(path) else {
            continue;
        };
        let actual = crate::content::library::sha256_file(path)?;
        if actual != expected {
            std::fs::remove_file(path)?;
            damaged.push(expected);
        }
    }
    Ok((files.len(), damaged))
}

/// `root/rel`, refusing absolute paths and `..`.
pub fn safe_join(root: &Path, rel: &str) -> anyhow::Result<PathBuf> {
    let p = Path::new(rel);
    if p.is_absolute()
        || p.components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        anyhow::bail!("'{rel}' is not a plain relative path");
    }
    Ok(root.join(p))
}
