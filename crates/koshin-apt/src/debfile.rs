//! Reads the `control` stanza out of a `.deb` file, so that a distribution point can list
//! a package it holds in its own `Packages` index without running `dpkg-deb`.
//!
//! A `.deb` is an `ar` archive whose first member is `debian-binary` (`2.0`), followed by
//! `control.tar` (uncompressed, or `.gz`, `.xz`, `.zst`) and then `data.tar.*`. Only the
//! first two are read: the data member (the bulk of the file) is never touched. The control
//! tarball is decompressed in memory, bounded, since it holds only the maintainer scripts
//! and file lists. Every problem is an error naming the file: a package that cannot be read
//! must not be published.

use std::io::Read;
use std::path::Path;

use crate::AptError;

/// The most a control tarball may decompress to (a guard against decompression bombs;
/// real ones are a few KiB, the largest in Debian a few MiB).
const MAX_CONTROL_TAR: u64 = 256 * 1024 * 1024;

/// The most the `control` file itself may hold.
const MAX_CONTROL_FILE: u64 = 16 * 1024 * 1024;

/// How the control tarball is compressed, from its member name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Xz,
    Zstd,
}

impl Compression {
    fn of_member(name: &str) -> Option<Compression> {
        match name {
            "control.tar" => Some(Compression::None),
            "control.tar.gz" => Some(Compression::Gzip),
            "control.tar.xz" => Some(Compression::Xz),
            "control.tar.zst" => Some(Compression::Zstd),
            _ => None,
        }
    }

    fn format(self) -> &'static str {
        match self {
            Compression::None => "tar",
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
        }
    }
}

/// Reads the `control` file of the `.deb` at `path` and returns its stanza text as it is
/// in the package, without trailing newlines.
pub fn read_control(path: &Path) -> Result<String, AptError> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| AptError::Io {
        path: name.clone(),
        reason: e.to_string(),
    })?;
    let not_a_deb = |reason: String| AptError::NotADeb {
        path: name.clone(),
        reason,
    };
    let mut archive = ar::Archive::new(std::io::BufReader::new(file));

    // The first member must be debian-binary with a 2.x format version.
    let mut first = match archive.next_entry() {
        None => return Err(not_a_deb("the ar archive is empty".into())),
        Some(Err(e)) => return Err(not_a_deb(format!("not an ar archive ({e})"))),
        Some(Ok(entry)) => entry,
    };
    let first_name = member_name(first.header().identifier());
    if first_name != "debian-binary" {
        return Err(not_a_deb(format!(
            "the first member is '{first_name}', not debian-binary"
        )));
    }
    let mut version = Vec::new();
    (&mut first)
        .take(64)
        .read_to_end(&mut version)
        .map_err(|e| not_a_deb(format!("cannot read debian-binary: {e}")))?;
    if !version.starts_with(b"2.") {
        return Err(not_a_deb(format!(
            "unsupported format version {:?} in debian-binary",
            String::from_utf8_lossy(&version).trim()
        )));
    }
    drop(first);

    // dpkg puts control.tar right after debian-binary, but tolerates members starting with
    // an underscore (added by other tools) in between.
    loop {
        let mut entry = match archive.next_entry() {
            None => return Err(AptError::NoControlTar { path: name }),
            Some(Err(e)) => return Err(not_a_deb(format!("broken ar archive ({e})"))),
            Some(Ok(entry)) => entry,
        };
        let member = member_name(entry.header().identifier());
        if let Some(compression) = Compression::of_member(&member) {
            let label = format!("{name} ({member})");
            let tar = decompress(&label, compression, &mut entry)?;
            return control_from_tar(&name, &member, &tar);
        }
        if member.starts_with('_') {
            continue;
        }
        if member.starts_with("control.tar") {
            return Err(not_a_deb(format!(
                "unsupported control member compression '{member}'"
            )));
        }
        // data.tar (or anything else) before any control.tar.
        return Err(AptError::NoControlTar { path: name });
    }
}

/// An ar member name as text; GNU ar ends names with '/', which dpkg ignores too.
fn member_name(identifier: &[u8]) -> String {
    let text = String::from_utf8_lossy(identifier);
    text.trim_end_matches('/').to_string()
}

/// Decompresses a control tarball in memory, at most [`MAX_CONTROL_TAR`] bytes.
fn decompress(
    label: &str,
    compression: Compression,
    input: &mut impl Read,
) -> Result<Vec<u8>, AptError> {
    let corrupt = |reason: String| AptError::Decompress {
        path: label.to_string(),
        format: compression.format(),
        reason,
    };
    let mut out = Vec::new();
    let limit = MAX_CONTROL_TAR + 1;
    let read = match compression {
        Compression::None => input.take(limit).read_to_end(&mut out),
        Compression::Gzip => flate2::read::MultiGzDecoder::new(input)
            .take(limit)
            .read_to_end(&mut out),
        Compression::Xz => liblzma::read::XzDecoder::new_multi_decoder(input)
            .take(limit)
            .read_to_end(&mut out),
        Compression::Zstd => {
            let mut compressed = Vec::new();
            input
                .take(limit)
                .read_to_end(&mut compressed)
                .map_err(|e| corrupt(format!("cannot read the member: {e}")))?;
            return unzstd(&compressed, limit).map_err(corrupt).and_then(|out| {
                if out.len() as u64 > MAX_CONTROL_TAR {
                    Err(too_big(label))
                } else {
                    Ok(out)
                }
            });
        }
    };
    read.map_err(|e| corrupt(e.to_string()))?;
    if out.len() as u64 > MAX_CONTROL_TAR {
        return Err(too_big(label));
    }
    Ok(out)
}

fn too_big(label: &str) -> AptError {
    AptError::NotADeb {
        path: label.to_string(),
        reason: format!("the control tarball is larger than {MAX_CONTROL_TAR} bytes"),
    }
}

/// Decodes every zstd frame in `data` (skippable frames are skipped), at most `limit` bytes.
fn unzstd(data: &[u8], limit: u64) -> Result<Vec<u8>, String> {
    use ruzstd::decoding::StreamingDecoder;
    use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
    let mut out = Vec::new();
    let mut rest = data;
    if rest.is_empty() {
        return Err("empty input".into());
    }
    while !rest.is_empty() && (out.len() as u64) < limit {
        let mut decoder = match StreamingDecoder::new(&mut rest) {
            Ok(d) => d,
            Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                length,
                ..
            })) => {
                let skip = usize::try_from(length).unwrap_or(usize::MAX);
                if skip > rest.len() {
                    return Err("truncated skippable frame".into());
                }
                rest = &rest[skip..];
                continue;
            }
            Err(e) => return Err(e.to_string()),
        };
        let room = limit - out.len() as u64;
        (&mut decoder)
            .take(room)
            .read_to_end(&mut out)
            .map_err(|e| e.to_string())?;
        if !decoder.decoder.is_finished() && (out.len() as u64) < limit {
            return Err("the data ends inside a frame".into());
        }
    }
    Ok(out)
}

/// Finds `./control` (or `control`) at the top of the tarball and returns its text.
fn control_from_tar(name: &str, member: &str, tar_data: &[u8]) -> Result<String, AptError> {
    let bad_tar = |e: std::io::Error| AptError::NotADeb {
        path: name.to_string(),
        reason: format!("{member} is not a valid tar archive: {e}"),
    };
    let mut tar = tar::Archive::new(tar_data);
    for entry in tar.entries().map_err(bad_tar)? {
        let mut entry = entry.map_err(bad_tar)?;
        let entry_path = entry.path_bytes().into_owned();
        let entry_path = entry_path.strip_prefix(b"./").unwrap_or(&entry_path);
        if entry_path != b"control" {
            continue;
        }
        if !entry.header().entry_type().is_file() {
            return Err(AptError::NotADeb {
                path: name.to_string(),
                reason: format!("control in {member} is not a regular file"),
            });
        }
        let mut bytes = Vec::new();
        (&mut entry)
            .take(MAX_CONTROL_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(bad_tar)?;
        if bytes.len() as u64 > MAX_CONTROL_FILE {
            return Err(AptError::NotADeb {
                path: name.to_string(),
                reason: format!("the control file is larger than {MAX_CONTROL_FILE} bytes"),
            });
        }
        let text = String::from_utf8(bytes).map_err(|e| AptError::NotADeb {
            path: name.to_string(),
            reason: format!(
                "the control file is not UTF-8 (at byte {})",
                e.utf8_error().valid_up_to()
            ),
        })?;
        return Ok(text.trim_end_matches(['\n', '\r']).to_string());
    }
    Err(AptError::NoControlFile {
        path: name.to_string(),
        member: member.to_string(),
    })
}

/// A tarball being written, gzip-compressed in memory.
type GzTar = tar::Builder<flate2::write::GzEncoder<Vec<u8>>>;

/// A file to put into a `.deb` built by [`build`]: its path under the root (no leading
/// `/`), its bytes and its mode.
#[derive(Clone, Debug)]
pub struct DebEntry<'a> {
    pub path: &'a str,
    pub data: &'a [u8],
    pub mode: u32,
}

/// Writes a `.deb` (format 2.0: `debian-binary`, `control.tar.gz`, `data.tar.gz`) to `out`
/// with the given control stanza and files, every entry dated `mtime_s` and owned by root.
/// The site uses it for the packages it makes itself (the offline scan catalog); `dpkg-deb`
/// and apt read the result like any other package. Written beside `out` and renamed, so a
/// reader never sees half a package.
pub fn build(
    out: &Path,
    control: &str,
    files: &[DebEntry<'_>],
    mtime_s: u64,
) -> Result<(), AptError> {
    let io = |e: std::io::Error| AptError::Io {
        path: out.display().to_string(),
        reason: e.to_string(),
    };
    // Entry names as dpkg-deb writes them, `./usr/...`: written into the header as they are
    // (the tar crate's path setters drop the leading `./`).
    let header =
        |path: &str, size: u64, mode: u32, kind: tar::EntryType| -> std::io::Result<tar::Header> {
            let name = format!("./{path}");
            let mut h = tar::Header::new_gnu();
            let raw = &mut h.as_old_mut().name;
            if name.len() >= raw.len() {
                return Err(std::io::Error::other(format!(
                    "{name}: the path is too long"
                )));
            }
            raw[..name.len()].copy_from_slice(name.as_bytes());
            h.set_entry_type(kind);
            h.set_size(size);
            h.set_mode(mode);
            h.set_mtime(mtime_s);
            h.set_uid(0);
            h.set_gid(0);
            h.set_username("root")?;
            h.set_groupname("root")?;
            h.set_cksum();
            Ok(h)
        };
    let gz_tar = |entries: &mut dyn FnMut(&mut GzTar) -> std::io::Result<()>| {
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::best(),
        ));
        entries(&mut b)?;
        b.into_inner()?.finish()
    };

    let mut control_text = control.trim_end_matches('\n').to_string();
    control_text.push('\n');
    let control_tar = gz_tar(&mut |b| {
        b.append(
            &header("", 0, 0o755, tar::EntryType::Directory)?,
            std::io::empty(),
        )?;
        b.append(
            &header(
                "control",
                control_text.len() as u64,
                0o644,
                tar::EntryType::Regular,
            )?,
            control_text.as_bytes(),
        )
    })
    .map_err(io)?;

    // Every directory above every file, parents first, once.
    let mut dirs: Vec<String> = Vec::new();
    for f in files {
        let mut at = String::new();
        let parts: Vec<&str> = f.path.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            at.push_str(part);
            at.push('/');
            if !dirs.contains(&at) {
                dirs.push(at.clone());
            }
        }
    }
    let data_tar = gz_tar(&mut |b| {
        b.append(
            &header("", 0, 0o755, tar::EntryType::Directory)?,
            std::io::empty(),
        )?;
        for d in &dirs {
            b.append(
                &header(d, 0, 0o755, tar::EntryType::Directory)?,
                std::io::empty(),
            )?;
        }
        for f in files {
            b.append(
                &header(f.path, f.data.len() as u64, f.mode, tar::EntryType::Regular)?,
                f.data,
            )?;
        }
        Ok(())
    })
    .map_err(io)?;

    let tmp = out.with_extension("deb.tmp");
    let write = || -> std::io::Result<()> {
        let file = std::fs::File::create(&tmp)?;
        let mut ar = ar::Builder::new(std::io::BufWriter::new(file));
        for (name, data) in [
            ("debian-binary", &b"2.0\n"[..]),
            ("control.tar.gz", &control_tar[..]),
            ("data.tar.gz", &data_tar[..]),
        ] {
            let mut h = ar::Header::new(name.as_bytes().to_vec(), data.len() as u64);
            h.set_mtime(mtime_s);
            h.set_mode(0o100644);
            ar.append(&h, data)?;
        }
        let file = ar.into_inner()?.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, out)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}

/// Reads one regular file, `wanted` (a path under the root, with or without `./`), out of
/// the data member of the `.deb` at `path`, at most `max` bytes. The data tarball is read
/// as a stream, never whole into memory.
pub fn read_data_file(path: &Path, wanted: &str, max: u64) -> Result<Vec<u8>, AptError> {
    let name = path.display().to_string();
    let not_a_deb = |reason: String| AptError::NotADeb {
        path: name.clone(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| AptError::Io {
        path: name.clone(),
        reason: e.to_string(),
    })?;
    let mut archive = ar::Archive::new(std::io::BufReader::new(file));
    match archive.next_entry() {
        Some(Ok(first)) if member_name(first.header().identifier()) == "debian-binary" => {}
        Some(Ok(_)) => return Err(not_a_deb("the first member is not debian-binary".into())),
        Some(Err(e)) => return Err(not_a_deb(format!("not an ar archive ({e})"))),
        None => return Err(not_a_deb("the ar archive is empty".into())),
    }
    let wanted = wanted.trim_start_matches("./").trim_start_matches('/');
    loop {
        let entry = match archive.next_entry() {
            None => return Err(not_a_deb("it has no data.tar member".into())),
            Some(Err(e)) => return Err(not_a_deb(format!("broken ar archive ({e})"))),
            Some(Ok(entry)) => entry,
        };
        let member = member_name(entry.header().identifier());
        let reader: Box<dyn Read + '_> = match member.as_str() {
            "data.tar" => Box::new(entry),
            "data.tar.gz" => Box::new(flate2::read::MultiGzDecoder::new(entry)),
            "data.tar.xz" => Box::new(liblzma::read::XzDecoder::new_multi_decoder(entry)),
            "data.tar.zst" => Box::new(
                ruzstd::decoding::StreamingDecoder::new(entry)
                    .map_err(|e| not_a_deb(format!("{member}: {e}")))?,
            ),
            m if m.starts_with("data.tar") => {
                return Err(not_a_deb(format!(
                    "unsupported data member compression '{m}'"
                )));
            }
            _ => continue,
        };
        let bad =
            |e: std::io::Error| not_a_deb(format!("{member} is not a valid tar archive: {e}"));
        let mut tar = tar::Archive::new(reader);
        for e in tar.entries().map_err(bad)? {
            let mut e = e.map_err(bad)?;
            let p = e.path_bytes().into_owned();
            let p = p.strip_prefix(b"./").unwrap_or(&p);
            if p != wanted.as_bytes() {
                continue;
            }
            if !e.header().entry_type().is_file() {
                return Err(not_a_deb(format!("{wanted} is not a regular file")));
            }
            if e.size() > max {
                return Err(not_a_deb(format!(
                    "{wanted} is {} bytes, more than the {max} allowed",
                    e.size()
                )));
            }
            let mut out = Vec::new();
            (&mut e).take(max + 1).read_to_end(&mut out).map_err(bad)?;
            return Ok(out);
        }
        return Err(not_a_deb(format!("it holds no file {wanted}")));
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::PathBuf;

    use koshin_testkit::{DebCompression, DebSpec};

    use super::*;

    fn spec() -> DebSpec {
        DebSpec::new("hello", "2.10-3", "amd64")
            .depends("libc6 (>= 2.34)")
            .description("the classic greeting\nSecond line.\n\nAfter a blank line.")
            .file("usr/bin/hello", b"#!/bin/sh\necho hello\n")
    }

    fn built(dir: &Path, compression: DebCompression) -> PathBuf {
        let path = dir.join(format!("hello{}.deb", compression.extension()));
        spec()
            .build_compressed(&path, compression)
            .expect("dpkg-deb");
        path
    }

    /// The members of an ar archive, in order.
    fn members(path: &Path) -> Vec<(String, Vec<u8>)> {
        let mut archive = ar::Archive::new(std::fs::File::open(path).expect("open"));
        let mut out = Vec::new();
        while let Some(entry) = archive.next_entry() {
            let mut entry = entry.expect("ar entry");
            let name = member_name(entry.header().identifier());
            let mut data = Vec::new();
            entry.read_to_end(&mut data).expect("read member");
            out.push((name, data));
        }
        out
    }

    fn write_ar(path: &Path, members: &[(&str, &[u8])]) {
        let mut b = ar::Builder::new(std::fs::File::create(path).expect("create"));
        for (name, data) in members {
            let header = ar::Header::new(name.as_bytes().to_vec(), data.len() as u64);
            b.append(&header, *data).expect("append");
        }
    }

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *data).expect("tar append");
        }
        b.into_inner().expect("tar")
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).expect("gzip");
        e.finish().expect("gzip")
    }

    #[test]
    fn builds_a_deb_that_dpkg_deb_reads_and_reads_a_file_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("koshin-test_1.2_all.deb");
        let control = "Package: koshin-test\nVersion: 1.2\nArchitecture: all\nMaintainer: koshin <root@localhost>\nDescription: a test\n";
        let payload = b"KOSHIN payload\n\x00\x01binary";
        build(
            &out,
            control,
            &[DebEntry {
                path: "usr/share/koshin/payload.bin",
                data: payload,
                mode: 0o644,
            }],
            1_700_000_000,
        )
        .expect("build");
        // dpkg-deb, the real tool, takes it.
        let info = std::process::Command::new("dpkg-deb")
            .args(["--field"])
            .arg(&out)
            .args(["Package", "Version"])
            .output()
            .expect("dpkg-deb");
        assert!(
            info.status.success(),
            "{}",
            String::from_utf8_lossy(&info.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&info.stdout),
            "Package: koshin-test\nVersion: 1.2\n"
        );
        let contents = std::process::Command::new("dpkg-deb")
            .arg("--contents")
            .arg(&out)
            .output()
            .expect("dpkg-deb");
        let listing = String::from_utf8_lossy(&contents.stdout);
        assert!(contents.status.success());
        assert!(
            listing.contains("./usr/share/koshin/payload.bin"),
            "{listing}"
        );
        assert!(listing.contains("root/root"), "{listing}");
        assert_eq!(read_control(&out).expect("control"), control.trim_end());
        assert_eq!(
            read_data_file(&out, "usr/share/koshin/payload.bin", 1024).expect("file"),
            payload
        );
        assert_eq!(
            read_data_file(&out, "/usr/share/koshin/payload.bin", 1024).expect("file"),
            payload
        );
        let missing = read_data_file(&out, "usr/share/koshin/other", 1024).unwrap_err();
        assert!(
            missing
                .to_string()
                .contains("holds no file usr/share/koshin/other"),
            "{missing}"
        );
        let big = read_data_file(&out, "usr/share/koshin/payload.bin", 4).unwrap_err();
        assert!(big.to_string().contains("more than the 4 allowed"), "{big}");
        // A file from dpkg-deb with every compression reads back too.
        for compression in [
            DebCompression::Xz,
            DebCompression::Zstd,
            DebCompression::None,
        ] {
            let path = built(dir.path(), compression);
            assert_eq!(
                read_data_file(&path, "./usr/bin/hello", 1024).expect("hello"),
                b"#!/bin/sh\necho hello\n"
            );
        }
        // Not a .deb at all.
        let junk = dir.path().join("junk.deb");
        std::fs::write(&junk, b"not an archive").expect("write");
        assert!(read_data_file(&junk, "x", 10).is_err());
    }

    #[test]
    fn reads_what_dpkg_deb_builds_with_every_compression() {
        let dir = tempfile::tempdir().expect("tempdir");
        let expected = spec().control();
        let expected = expected.trim_end_matches('\n');
        for compression in [
            DebCompression::Xz,
            DebCompression::Gzip,
            DebCompression::Zstd,
            DebCompression::None,
        ] {
            let path = built(dir.path(), compression);
            let names: Vec<String> = members(&path).into_iter().map(|(n, _)| n).collect();
            assert_eq!(
                names[1],
                format!("control.tar{}", compression.extension()),
                "dpkg-deb {} made {names:?}",
                compression.dpkg_deb_arg()
            );
            let control = read_control(&path).expect("read_control");
            assert_eq!(control, expected, "{compression:?}");
        }
    }

    #[test]
    fn reads_a_hand_built_package_with_gnu_member_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let control = "Package: tiny\nVersion: 1.0\nArchitecture: all\nMaintainer: x <x@y>\nDescription: tiny\n long\n\n";
        let tar = tar_of(&[("./md5sums", b"00  x\n"), ("./control", control.as_bytes())]);
        let path = dir.path().join("tiny.deb");
        write_ar(
            &path,
            &[
                ("debian-binary/", b"2.0\n"),
                ("control.tar.gz/", &gz(&tar)),
                ("data.tar.gz/", &gz(&tar_of(&[]))),
            ],
        );
        assert_eq!(
            read_control(&path).expect("read_control"),
            "Package: tiny\nVersion: 1.0\nArchitecture: all\nMaintainer: x <x@y>\nDescription: tiny\n long"
        );
    }

    #[test]
    fn refuses_what_is_not_a_package() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = dir.path().join("notes.deb");
        std::fs::write(&text, "just some text, long enough to be read\n").expect("write");
        let err = read_control(&text).expect_err("not ar");
        assert!(matches!(err, AptError::NotADeb { .. }), "{err}");
        assert!(err.to_string().contains("notes.deb"), "{err}");

        let empty = dir.path().join("empty.deb");
        std::fs::write(&empty, "").expect("write");
        assert!(matches!(
            read_control(&empty),
            Err(AptError::NotADeb { .. })
        ));

        let missing = dir.path().join("missing.deb");
        assert!(matches!(read_control(&missing), Err(AptError::Io { .. })));

        // An ar archive that is not a Debian package.
        let other = dir.path().join("lib.a");
        write_ar(&other, &[("foo.o", b"\x7fELF")]);
        let err = read_control(&other).expect_err("not a deb");
        assert!(err.to_string().contains("debian-binary"), "{err}");

        let v3 = dir.path().join("v3.deb");
        write_ar(&v3, &[("debian-binary", b"3.0\n")]);
        let err = read_control(&v3).expect_err("format 3");
        assert!(err.to_string().contains("3.0"), "{err}");
    }

    #[test]
    fn names_a_missing_control_member_or_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let real = built(dir.path(), DebCompression::Xz);
        let m = members(&real);
        let data = m
            .iter()
            .find(|(n, _)| n.starts_with("data.tar"))
            .expect("data");

        let no_control = dir.path().join("nocontrol.deb");
        write_ar(
            &no_control,
            &[("debian-binary", b"2.0\n"), (&data.0, &data.1)],
        );
        let err = read_control(&no_control).expect_err("no control.tar");
        assert!(matches!(err, AptError::NoControlTar { .. }), "{err}");
        assert!(err.to_string().contains("nocontrol.deb"), "{err}");

        let only_binary = dir.path().join("short.deb");
        write_ar(&only_binary, &[("debian-binary", b"2.0\n")]);
        assert!(matches!(
            read_control(&only_binary),
            Err(AptError::NoControlTar { .. })
        ));

        let no_file = dir.path().join("nofile.deb");
        let tar = tar_of(&[("./md5sums", b"00  x\n"), ("./postinst", b"#!/bin/sh\n")]);
        write_ar(
            &no_file,
            &[("debian-binary", b"2.0\n"), ("control.tar.gz", &gz(&tar))],
        );
        let err = read_control(&no_file).expect_err("no control file");
        assert!(matches!(err, AptError::NoControlFile { .. }), "{err}");
        assert!(err.to_string().contains("control.tar.gz"), "{err}");

        let odd = dir.path().join("odd.deb");
        write_ar(
            &odd,
            &[("debian-binary", b"2.0\n"), ("control.tar.bz2", b"BZh9")],
        );
        let err = read_control(&odd).expect_err("bzip2");
        assert!(err.to_string().contains("control.tar.bz2"), "{err}");
    }

    /// Rebuilds a real package with its control member changed by `f`.
    fn with_control_member(src: &Path, out: &Path, f: impl Fn(&[u8]) -> Vec<u8>) {
        let m = members(src);
        let changed: Vec<(String, Vec<u8>)> = m
            .into_iter()
            .map(|(n, d)| {
                if n.starts_with("control.tar") {
                    let d = f(&d);
                    (n, d)
                } else {
                    (n, d)
                }
            })
            .collect();
        let refs: Vec<(&str, &[u8])> = changed
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_slice()))
            .collect();
        write_ar(out, &refs);
    }

    #[test]
    fn corrupt_or_truncated_control_members_are_decompression_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        for compression in [
            DebCompression::Gzip,
            DebCompression::Xz,
            DebCompression::Zstd,
        ] {
            let real = built(dir.path(), compression);
            let truncated = dir.path().join("truncated.deb");
            with_control_member(&real, &truncated, |d| d[..d.len() / 2].to_vec());
            let err = read_control(&truncated).expect_err("truncated");
            assert!(
                matches!(err, AptError::Decompress { .. }),
                "{compression:?}: {err}"
            );
            assert!(err.to_string().contains("truncated.deb"), "{err}");

            let flipped = dir.path().join("flipped.deb");
            with_control_member(&real, &flipped, |d| {
                let mut d = d.to_vec();
                let mid = d.len() / 2;
                for b in &mut d[mid - 4..mid + 4] {
                    *b ^= 0xFF;
                }
                d
            });
            let err = read_control(&flipped).expect_err("flipped");
            assert!(
                matches!(err, AptError::Decompress { .. }),
                "{compression:?}: {err}"
            );

            let garbage = dir.path().join("garbage.deb");
            with_control_member(&real, &garbage, |_| b"this is not compressed data".to_vec());
            let err = read_control(&garbage).expect_err("garbage");
            assert!(
                matches!(err, AptError::Decompress { .. }),
                "{compression:?}: {err}"
            );
        }
        // An uncompressed control.tar that is not a tar archive.
        let real = built(dir.path(), DebCompression::None);
        let bad_tar = dir.path().join("badtar.deb");
        with_control_member(&real, &bad_tar, |d| {
            let mut d = d.to_vec();
            for b in &mut d[100..160] {
                *b ^= 0x55;
            }
            d
        });
        let err = read_control(&bad_tar).expect_err("bad tar");
        assert!(matches!(err, AptError::NotADeb { .. }), "{err}");
    }
}
