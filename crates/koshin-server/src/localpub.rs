//! Reads the local publisher folder (S12): `*.toml` files of `[[update]]` definitions, their
//! content files checked (size, SHA-256) so clients get exactly what was published.

use std::collections::HashSet;
use std::path::Path;

use koshin_domain::Classification;
use koshin_domain::catalog::{LOCAL_PUBLISHER_PRODUCT, UpdateCandidate, UpdateId};
use koshin_domain::localpub::{LocalContent, LocalUpdate, LocalUpdateDef};
use serde::Deserialize;
use sha2::{Digest, Sha256};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DefinitionFile {
    #[serde(default)]
    update: Vec<LocalUpdateDef>,
}

/// Loads every definition under `dir`. A missing folder is an empty publisher.
pub fn load(dir: &Path, now_s: i64) -> Result<Vec<UpdateCandidate>, String> {
    let mut files: Vec<_> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(format!(
                "cannot read local publisher folder {}: {e}",
                dir.display()
            ));
        }
    };
    files.sort();
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for path in files {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let file: DefinitionFile =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        for def in file.update {
            def.validate()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let id = UpdateId::for_local(&def.vendor, &def.article_id);
            if !seen.insert(id) {
                return Err(format!(
                    "{}: update {} / {} is defined twice",
                    path.display(),
                    def.vendor,
                    def.article_id
                ));
            }
            out.push(candidate(dir, &path, def, id, now_s)?);
        }
    }
    Ok(out)
}

fn candidate(
    dir: &Path,
    file: &Path,
    def: LocalUpdateDef,
    id: UpdateId,
    now_s: i64,
) -> Result<UpdateCandidate, String> {
    let mut content = Vec::new();
    for c in &def.content {
        let p = dir.join(&c.path);
        let bytes = std::fs::read(&p)
            .map_err(|e| format!("{}: content file {}: {e}", file.display(), p.display()))?;
        let sha = hex::encode(Sha256::digest(&bytes));
        if let Some(want) = &c.sha256
            && !want.eq_ignore_ascii_case(&sha)
        {
            return Err(format!(
                "{}: content file {} has SHA-256 {sha}, the definition says {want}",
                file.display(),
                c.path
            ));
        }
        content.push(LocalContent {
            path: c.path.clone(),
            size: bytes.len() as u64,
            sha256: sha,
        });
    }
    let released = def
        .released
        .as_deref()
        .and_then(|d| d.parse::<jiff::civil::Date>().ok())
        .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp().as_second())
        .unwrap_or(now_s);
    let classification =
        Classification::parse(&def.classification).unwrap_or(Classification::Updates);
    Ok(UpdateCandidate {
        id,
        product: LOCAL_PUBLISHER_PRODUCT.to_string(),
        classification,
        title: def.title,
        description: def.description,
        vendor: def.vendor.clone(),
        article_id: def.article_id.clone(),
        bulletin_id: def.bulletin_id,
        severity: def.severity,
        source: def.vendor,
        version: def.article_id,
        released,
        binaries: Vec::new(),
        local: Some(LocalUpdate {
            detection: def.detection,
            content,
            install_command: def.install_command,
            uninstall_command: def.uninstall_command,
            language: def.language,
        }),
    })
}
