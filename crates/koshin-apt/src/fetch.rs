//! Fetching a suite: `InRelease` (falling back to `Release` + `Release.gpg`), its signature
//! and validity, then each `Packages` index — by-hash when the Release offers it — checked
//! for size and SHA-256 before it is decompressed and parsed. Indices are fetched and parsed
//! concurrently; decompression and parsing run on blocking threads.

use std::collections::HashSet;
use std::io::Read;
use std::time::Duration;

use koshin_domain::catalog::BinaryPackage;
use sha2::{Digest, Sha256};

use crate::release::Release;
use crate::verify::Keyring;
use crate::{AptError, AptSource, packages};

#[derive(Clone, Debug)]
pub struct FetchOptions {
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of a response: a slower upstream fails the sync.
    pub read_timeout: Duration,
    /// Preferred index compressions, first found in the Release wins: "gz", "xz", "" (none).
    pub compression_order: Vec<String>,
    /// Architecture when a source names none.
    pub default_architecture: String,
    /// Largest `InRelease`/`Release` accepted, in bytes.
    pub max_release_size: u64,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
            compression_order: vec!["gz".into(), "xz".into(), String::new()],
            default_architecture: crate::sources::host_architecture(),
            max_release_size: 64 << 20,
        }
    }
}

/// One verified `Packages` index of a suite.
#[derive(Debug)]
pub struct FetchedIndex {
    /// Path under `dists/<suite>/`, e.g. `main/binary-amd64/Packages.gz`.
    pub path: String,
    pub sha256: String,
    /// `None` when the caller said this index (by SHA-256) was already synced.
    pub packages: Option<Vec<BinaryPackage>>,
}

/// What a suite holds now, verified.
#[derive(Debug)]
pub struct FetchedSuite {
    pub source: AptSource,
    pub release: Release,
    /// SHA-256 of the signed Release text.
    pub release_sha256: String,
    pub indices: Vec<FetchedIndex>,
    pub bytes_fetched: u64,
}

#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    opts: FetchOptions,
}

impl Fetcher {
    pub fn new(opts: FetchOptions) -> Result<Fetcher, AptError> {
        let client = reqwest::Client::builder()
            .connect_timeout(opts.connect_timeout)
            .read_timeout(opts.read_timeout)
            .user_agent(concat!("koshin/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AptError::Unreachable {
                url: String::new(),
                reason: format!("cannot set up the HTTP client: {e}"),
            })?;
        Ok(Fetcher { client, opts })
    }

    pub fn options(&self) -> &FetchOptions {
        &self.opts
    }

    /// GETs a URL (or reads a `file:` path). `Ok(None)` for 404, so callers can fall back.
    /// At most `limit` bytes are accepted.
    async fn get(&self, url: &str, limit: u64) -> Result<Option<Vec<u8>>, AptError> {
        if let Some(path) = url
            .strip_prefix("file://")
            .or_else(|| url.strip_prefix("file:"))
        {
            return match tokio::fs::read(path).await {
                Ok(b) if b.len() as u64 > limit => Err(AptError::SizeMismatch {
                    path: url.to_string(),
                    expected: limit,
                    actual: b.len() as u64,
                }),
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(AptError::Io {
                    path: path.to_string(),
                    reason: e.to_string(),
                }),
            };
        }
        let map = |e: reqwest::Error| {
            if e.is_timeout() {
                AptError::Timeout {
                    url: url.to_string(),
                    seconds: self.opts.read_timeout.as_secs().max(1),
                }
            } else if e.is_connect() {
                AptError::Unreachable {
                    url: url.to_string(),
                    reason: error_chain(&e),
                }
            } else {
                AptError::Transfer {
                    url: url.to_string(),
                    reason: error_chain(&e),
                }
            }
        };
        let mut resp = self.client.get(url).send().await.map_err(map)?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(AptError::HttpStatus {
                url: url.to_string(),
                status: status.as_u16(),
            });
        }
        let announced = resp.content_length();
        let mut buf = Vec::with_capacity(announced.unwrap_or(0).min(limit) as usize);
        while let Some(chunk) = resp.chunk().await.map_err(map)? {
            if buf.len() as u64 + chunk.len() as u64 > limit {
                return Err(AptError::SizeMismatch {
                    path: url.to_string(),
                    expected: limit,
                    actual: buf.len() as u64 + chunk.len() as u64,
                });
            }
            buf.extend_from_slice(&chunk);
        }
        if let Some(n) = announced
            && n != buf.len() as u64
        {
            return Err(AptError::Transfer {
                url: url.to_string(),
                reason: format!("announced {n} bytes, received {}", buf.len()),
            });
        }
        Ok(Some(buf))
    }

    /// Fetches and verifies the suite's Release: `InRelease`, else `Release` + `Release.gpg`.
    /// Returns the Release and the SHA-256 of its signed text.
    pub async fn fetch_release(
        &self,
        source: &AptSource,
        keyring: &Keyring,
        now: i64,
    ) -> Result<(Release, String), AptError> {
        let dists = format!("{}dists/{}/", source.base(), source.suite);
        let limit = self.opts.max_release_size;
        let inrelease_url = format!("{dists}InRelease");
        let text = match self.get(&inrelease_url, limit).await? {
            Some(bytes) => {
                let text = String::from_utf8(bytes).map_err(|_| AptError::BadSignature {
                    url: inrelease_url.clone(),
                    reason: "InRelease is not UTF-8 text".into(),
                })?;
                keyring.verify_inrelease(&inrelease_url, &text)?
            }
            None => {
                let release_url = format!("{dists}Release");
                let release = self
                    .get(&release_url, limit)
                    .await?
                    .ok_or(AptError::HttpStatus {
                        url: release_url.clone(),
                        status: 404,
                    })?;
                let sig_url = format!("{dists}Release.gpg");
                let sig = self
                    .get(&sig_url, 1 << 20)
                    .await?
                    .ok_or(AptError::NotSigned {
                        url: release_url.clone(),
                    })?;
                keyring.verify_detached(&release_url, &release, &sig)?;
                String::from_utf8(release).map_err(|_| AptError::MalformedRelease {
                    suite: source.suite.clone(),
                    reason: "not UTF-8 text".into(),
                })?
            }
        };
        let release = Release::parse(&text, &source.suite)?;
        if !release.suite.is_empty()
            && !release.codename.is_empty()
            && release.suite != source.suite
            && release.codename != source.suite
        {
            return Err(AptError::MalformedRelease {
                suite: source.suite.clone(),
                reason: format!(
                    "the signed Release is for '{}' ({}), not '{}'",
                    release.codename, release.suite, source.suite
                ),
            });
        }
        release.check_valid(&source.suite, now)?;
        Ok((release, hex::encode(Sha256::digest(text.as_bytes()))))
    }

    /// Fetches a whole suite. Indices whose SHA-256 is in `already_synced` are not fetched.
    pub async fn fetch_suite(
        &self,
        source: &AptSource,
        keyring: &Keyring,
        now: i64,
        already_synced: &HashSet<String>,
    ) -> Result<FetchedSuite, AptError> {
        let (release, release_sha256) = self.fetch_release(source, keyring, now).await?;
        let targets = self.index_targets(source, &release)?;
        let dists = format!("{}dists/{}/", source.base(), source.suite);
        let mut set = tokio::task::JoinSet::new();
        let mut indices = Vec::new();
        for (i, (path, size, sha)) in targets.into_iter().enumerate() {
            if already_synced.contains(&sha) {
                indices.push((
                    i,
                    FetchedIndex {
                        path,
                        sha256: sha,
                        packages: None,
                    },
                    0u64,
                ));
                continue;
            }
            let this = self.clone();
            let by_hash = release.acquire_by_hash;
            let dists = dists.clone();
            let plain = plain_entry(&release, &path);
            set.spawn(async move {
                let canonical = format!("{dists}{path}");
                let mut data = None;
                if by_hash {
                    let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                    let url = format!("{dists}{dir}/by-hash/SHA256/{sha}");
                    data = this.get(&url, size).await?;
                }
                if data.is_none() {
                    data = this.get(&canonical, size).await?;
                }
                let data = data.ok_or(AptError::HttpStatus {
                    url: canonical.clone(),
                    status: 404,
                })?;
                let fetched = data.len() as u64;
                let packages = tokio::task::spawn_blocking(move || {
                    verify_and_parse(&canonical, &path, data, size, &sha, plain)
                        .map(|p| (path, sha, p))
                })
                .await
                .map_err(|e| AptError::Io {
                    path: String::new(),
                    reason: format!("index worker failed: {e}"),
                })??;
                Ok::<_, AptError>((i, packages, fetched))
            });
        }
        let mut bytes_fetched = 0;
        while let Some(r) = set.join_next().await {
            let (i, (path, sha256, packages), n) = r.map_err(|e| AptError::Io {
                path: String::new(),
                reason: format!("index task failed: {e}"),
            })??;
            bytes_fetched += n;
            indices.push((
                i,
                FetchedIndex {
                    path,
                    sha256,
                    packages: Some(packages),
                },
                n,
            ));
        }
        indices.sort_by_key(|(i, _, _)| *i);
        Ok(FetchedSuite {
            source: source.clone(),
            release,
            release_sha256,
            indices: indices.into_iter().map(|(_, f, _)| f).collect(),
            bytes_fetched,
        })
    }

    /// Which index files to fetch: per component and architecture, the first compression
    /// in the preferred order that the Release lists.
    pub fn index_targets(
        &self,
        source: &AptSource,
        release: &Release,
    ) -> Result<Vec<(String, u64, String)>, AptError> {
        let mut archs = if source.architectures.is_empty() {
            vec![self.opts.default_architecture.clone()]
        } else {
            source.architectures.clone()
        };
        if !release.no_support_arch_all
            && release.architectures.iter().any(|a| a == "all")
            && !archs.iter().any(|a| a == "all")
        {
            archs.push("all".into());
        }
        let mut out = Vec::new();
        for component in &source.components {
            // Security archives list components as "updates/main" but index paths as "main/".
            let component = component.rsplit('/').next().unwrap_or(component);
            for arch in &archs {
                let base = format!("{component}/binary-{arch}/Packages");
                let found = self.opts.compression_order.iter().find_map(|ext| {
                    let p = if ext.is_empty() {
                        base.clone()
                    } else {
                        format!("{base}.{ext}")
                    };
                    release
                        .sha256
                        .get(&p)
                        .map(|(size, sha)| (p, *size, sha.clone()))
                });
                match found {
                    Some(t) => out.push(t),
                    // binary-all is optional; a requested architecture is not.
                    None if arch == "all" => {}
                    None => {
                        return Err(AptError::NoIndex {
                            suite: source.suite.clone(),
                            component: component.to_string(),
                            arch: arch.clone(),
                        });
                    }
                }
            }
        }
        Ok(out)
    }
}

fn plain_entry(release: &Release, path: &str) -> Option<(u64, String)> {
    let plain = path
        .strip_suffix(".gz")
        .or_else(|| path.strip_suffix(".xz"))
        .unwrap_or(path);
    if plain == path {
        return None;
    }
    release.sha256.get(plain).cloned()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Checks size and SHA-256 against the Release, decompresses, checks the plain text
/// against the Release when it lists it, and parses.
pub fn verify_and_parse(
    url: &str,
    path: &str,
    data: Vec<u8>,
    size: u64,
    sha: &str,
    plain: Option<(u64, String)>,
) -> Result<Vec<BinaryPackage>, AptError> {
    if data.len() as u64 != size {
        return Err(AptError::SizeMismatch {
            path: url.to_string(),
            expected: size,
            actual: data.len() as u64,
        });
    }
    let actual = hex::encode(Sha256::digest(&data));
    if actual != sha {
        return Err(AptError::HashMismatch {
            path: url.to_string(),
            expected: sha.to_string(),
            actual,
        });
    }
    let limit = plain.as_ref().map(|(n, _)| *n).unwrap_or(4 << 30);
    let text = if path.ends_with(".gz") {
        decompress(
            url,
            "gzip",
            flate2::read::MultiGzDecoder::new(&data[..]),
            limit,
        )?
    } else if path.ends_with(".xz") {
        decompress(
            url,
            "xz",
            liblzma::read::XzDecoder::new_multi_decoder(&data[..]),
            limit,
        )?
    } else {
        data
    };
    if let Some((psize, psha)) = plain
        && (text.len() as u64 != psize || hex::encode(Sha256::digest(&text)) != psha)
    {
        return Err(AptError::Decompress {
            path: url.to_string(),
            format: if path.ends_with(".gz") { "gzip" } else { "xz" },
            reason:
                "the decompressed index does not match the Release's checksum of the plain file"
                    .into(),
        });
    }
    packages::parse(url, &text)
}

fn decompress(
    url: &str,
    format: &'static str,
    r: impl Read,
    limit: u64,
) -> Result<Vec<u8>, AptError> {
    let mut out = Vec::with_capacity(limit.min(512 << 20) as usize);
    r.take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| AptError::Decompress {
            path: url.to_string(),
            format,
            reason: e.to_string(),
        })?;
    if out.len() as u64 > limit {
        return Err(AptError::Decompress {
            path: url.to_string(),
            format,
            reason: format!("more than the {limit} bytes the Release announces"),
        });
    }
    Ok(out)
}
