//! The content library: `.deb` files fetched from the upstream when a package needs them,
//! verified by size and SHA-256 against the catalog (which came from the signed indices),
//! stored once by SHA-256 however many packages hold them. A download that breaks off keeps
//! what arrived (`*.part`) and resumes with an HTTP Range request.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use koshin_store::{LibraryFile, PackageFile};
use sha2::{Digest, Sha256};

use super::library_path;

/// The SHA-256 of a file, in lower-case hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// An HTTP client for upstream content.
pub fn client() -> anyhow::Result<reqwest::Client> {
    Ok(builder().build()?)
}

/// [`client`]'s settings, for a client of its own (the parent link's).
pub fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(15))
        .read_timeout(std::time::Duration::from_secs(60))
        .user_agent(concat!("koshin/", env!("CARGO_PKG_VERSION")))
}

/// Downloads `url` into `part`, resuming from what `part` holds. Returns Ok(false) when the
/// server does not have the file (404), so the caller tries the next upstream.
pub async fn download(
    client: &reqwest::Client,
    url: &str,
    part: &Path,
    size: u64,
) -> anyhow::Result<bool> {
    download_as(client, url, None, part, size).await
}

/// `download`, presenting a bearer token (a child site fetching from its parent's library).
pub async fn download_as(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    part: &Path,
    size: u64,
) -> anyhow::Result<bool> {
    let mut have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    if have > size {
        std::fs::remove_file(part)?;
        have = 0;
    }
    if have == size {
        return Ok(true);
    }
    let mut req = client.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if have > 0 {
        req = req.header(reqwest::header::RANGE, format!("bytes={have}-"));
    }
    let resp = req
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
    let status = resp.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Ok(false);
    }
    let mut file = match status {
        reqwest::StatusCode::PARTIAL_CONTENT if have > 0 => {
            std::fs::OpenOptions::new().append(true).open(part)?
        }
        s if s.is_success() => {
            // The server sent the whole file: start over.
            have = 0;
            std::fs::File::create(part)?
        }
        reqwest::StatusCode::RANGE_NOT_SATISFIABLE => {
            std::fs::remove_file(part)?;
            anyhow::bail!("{url}: the server refused to resume; starting over next time");
        }
        s => anyhow::bail!("{url}: HTTP {s}"),
    };
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            anyhow::anyhow!("{url}: the download broke off after {have} of {size} bytes: {e}")
        })?;
        have += chunk.len() as u64;
        if have > size {
            drop(file);
            std::fs::remove_file(part)?;
            anyhow::bail!("{url}: longer than the {size} bytes the catalog gives");
        }
        file.write_all(&chunk)?;
    }
    file.sync_all()?;
    if have < size {
        anyhow::bail!("{url}: the download broke off after {have} of {size} bytes");
    }
    Ok(true)
}

/// Where a library file can come from: an upstream archive root (ending in '/', the file at
/// its pool path), or the parent site's library (the file by SHA-256, with the link token).
#[derive(Clone, Debug)]
pub enum FileSource {
    Upstream(String),
    /// With the client for the parent link ([`crate::links::client`]).
    Parent {
        url: String,
        token: String,
        client: reqwest::Client,
    },
}

impl FileSource {
    fn url(&self, f: &PackageFile) -> String {
        match self {
            FileSource::Upstream(base) => format!("{base}{}", f.filename.trim_start_matches('/')),
            FileSource::Parent { url, .. } => format!(
                "{}/api/v1/sites/library/{}",
                url.trim_end_matches('/'),
                f.sha256
            ),
        }
    }

    /// The client for this source: the parent link's own, or `default`.
    fn client<'a>(&'a self, default: &'a reqwest::Client) -> &'a reqwest::Client {
        match self {
            FileSource::Upstream(_) => default,
            FileSource::Parent { client, .. } => client,
        }
    }

    fn token(&self) -> Option<&str> {
        match self {
            FileSource::Upstream(_) => None,
            FileSource::Parent { token, .. } => Some(token),
        }
    }
}

/// Makes sure `f` is in the library: there already, or fetched from one of `bases`, with up
/// to three resumed attempts each, then verified and its control stanza read.
pub async fn ensure(
    library: &Path,
    store: &std::sync::Arc<dyn koshin_store::Store>,
    client: &reqwest::Client,
    f: &PackageFile,
    bases: &[FileSource],
) -> anyhow::Result<LibraryFile> {
    let path = library_path(library, &f.sha256);
    if let Some(known) = store.library_file(&f.sha256)?
        && std::fs::metadata(&path).is_ok_and(|m| m.len() == known.size as u64)
    {
        return Ok(known);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let part = path.with_extension("part");
    let size = u64::try_from(f.size).unwrap_or(0);
    let mut last = String::from("no upstream is configured");
    let mut found = false;
    'bases: for base in bases {
        let url = base.url(f);
        for _ in 0..3 {
            match download_as(base.client(client), &url, base.token(), &part, size).await {
                Ok(true) => {
                    found = true;
                    break 'bases;
                }
                Ok(false) => {
                    last = format!("{url}: not found");
                    continue 'bases;
                }
                Err(e) => last = e.to_string(),
            }
        }
    }
    if !found {
        anyhow::bail!("cannot fetch {} ({}): {last}", f.name, f.sha256);
    }
    let part2 = part.clone();
    let actual = tokio::task::spawn_blocking(move || sha256_file(&part2)).await??;
    if actual != f.sha256 {
        std::fs::remove_file(&part)?;
        anyhow::bail!(
            "{}: SHA-256 {actual} does not match the catalog's {}; the file is discarded",
            f.name,
            f.sha256
        );
    }
    std::fs::rename(&part, &path)?;
    let p = path.clone();
    let control = tokio::task::spawn_blocking(move || koshin_apt::debfile::read_control(&p))
        .await?
        .map_err(|e| anyhow::anyhow!("{}: {e}", f.name))?;
    let rec = LibraryFile {
        sha256: f.sha256.clone(),
        size: f.size,
        name: f.name.clone(),
        control,
    };
    store.add_library_file(&rec, jiff::Timestamp::now().as_millisecond())?;
    Ok(rec)
}

/// Copies a library file into a distribution point tree (a copy, not a link: damage to the
/// distribution point's file must not reach the library).
pub fn place(from: &Path, to: &PathBuf) -> std::io::Result<()> {
    if to.exists() {
        return Ok(());
    }
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = to.with_extension("koshin-tmp");
    std::fs::copy(from, &tmp)?;
    std::fs::rename(&tmp, to)?;
    Ok(())
}
