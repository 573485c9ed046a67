//! The sync manager against real signed APT archives served on loopback (requirements
//! S1–S7, S11, S12): what a good sync leaves in the site database and the log, how every
//! kind of bad upstream fails a sync without touching the catalog, full versus delta
//! syncs, the inbox and API triggers of the running server, the local publisher, and the
//! sync criteria.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use koshin_domain::SyncKind;
use koshin_domain::catalog::UpdateId;
use koshin_server::sync::SyncFailure;
use koshin_testkit::{Compression, Fault, Gpg};
use koshin_wire::{
    MachinePolicy, StatusMessageOut, SyncRequestAccepted, SyncRun, SyncStatus, UpdateDetail,
    UpdateSummary,
};

const STARTED: u32 = 6701;
const DONE: u32 = 6702;
const FAILED: u32 = 6703;
const PHASE_UPSTREAM: u32 = 6704;
const PHASE_DATABASE: u32 = 6705;

fn hello_id() -> String {
    apt_id("hello", "2.10-3")
}
fn libfoo_id() -> String {
    apt_id("libfoo", "1.0-1")
}
fn libfoo_sec_id() -> String {
    apt_id("libfoo", "1.0-1+deb12u1")
}
fn curl_id() -> String {
    apt_id("curl", "7.88.1-10")
}
fn curl_sec_id() -> String {
    apt_id("curl", "7.88.1-10+deb12u5")
}

fn ids(cat: &[UpdateSummary]) -> BTreeSet<String> {
    cat.iter().map(|u| u.id.clone()).collect()
}

fn detail(fx: &Fixture, id: &str) -> UpdateDetail {
    fx.site
        .store
        .get_update(id, &koshin_domain::Scope::All)
        .expect("get update")
        .unwrap_or_else(|| panic!("no update {id}"))
}

// ----- 1. a good full sync -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn full_sync_reports_milestones_and_builds_the_catalog() {
    let fx = Fixture::new();
    assert_eq!(fx.content_version(), 0);
    assert!(
        fx.site.store.machine_policy().unwrap().is_none(),
        "no machine policy before the first sync"
    );
    let before = fx.last_record();

    let report = fx.sync_ok(SyncKind::Full).await;

    // S4: started, upstream phase, database phase, done — in this order, nothing else.
    let msgs = fx.messages_since(before);
    assert_eq!(
        msgs.iter().map(|m| m.message_id).collect::<Vec<_>>(),
        vec![STARTED, PHASE_UPSTREAM, PHASE_DATABASE, DONE]
    );
    assert!(msgs.iter().all(|m| m.severity == "I" && m.site == "CS1"));
    assert!(msgs.iter().all(|m| m.component == COMPONENT));

    // S6: the content version moved from 0 to 1.
    assert_eq!(report.content_version, 1);
    assert_eq!(fx.content_version(), 1);
    assert_eq!(report.items, 5);

    // One update per source version; the binNMU is grouped under its source version.
    let cat = fx.catalog();
    let want: BTreeSet<String> = [
        hello_id(),
        libfoo_id(),
        libfoo_sec_id(),
        curl_id(),
        curl_sec_id(),
    ]
    .into_iter()
    .collect();
    assert_eq!(ids(&cat), want, "catalog: {cat:#?}");
    for u in &cat {
        assert_eq!(u.product, PRODUCT);
        assert_eq!(u.revision, 1);
        assert!(!u.expired);
        let security = u.id == libfoo_sec_id() || u.id == curl_sec_id();
        assert_eq!(
            u.classification,
            if security {
                "Security Updates"
            } else {
                "Updates"
            },
            "{u:?}"
        );
    }
    let hello = fx.update(&hello_id());
    assert_eq!(
        (hello.source.as_str(), hello.version.as_str()),
        ("hello", "2.10-3")
    );
    assert_eq!(hello.title, "hello 2.10-3");
    assert_eq!(hello.superseded_by, None);
    let bins: Vec<(String, String)> = detail(&fx, &hello_id())
        .packages
        .iter()
        .map(|b| (b.name.clone(), b.version.clone()))
        .collect();
    assert_eq!(
        bins,
        vec![
            ("hello".to_string(), "2.10-3+b1".to_string()),
            ("hello-doc".to_string(), "2.10-3".to_string())
        ]
    );
    // The security versions supersede the bookworm ones of the same source.
    assert_eq!(fx.update(&libfoo_id()).superseded_by, Some(libfoo_sec_id()));
    assert_eq!(fx.update(&curl_id()).superseded_by, Some(curl_sec_id()));
    assert_eq!(fx.update(&curl_sec_id()).superseded_by, None);

    // S11: the site-wide machine policy exists and names this content version.
    let (version, body) = fx
        .site
        .store
        .machine_policy()
        .unwrap()
        .expect("a machine policy after the sync");
    let policy: MachinePolicy = serde_json::from_value(body).expect("policy body");
    assert_eq!(policy.policy_version, version);
    assert_eq!(policy.content_version, 1);
    assert_eq!(policy.site, "CS1");
    assert_eq!(policy.update_points.len(), 1);
    assert_eq!(policy.update_points[0].role, "active");

    // S5: the seeds' log lines.
    let log = fx.log();
    let has = |l: &str| log.iter().any(|x| x == l);
    assert!(has("Starting Sync"), "{log:#?}");
    assert!(has("Performing sync on local request"), "{log:#?}");
    assert!(
        has("Synchronizing updates, 2 of 2 items (100%)"),
        "{log:#?}"
    );
    for u in &cat {
        let line = format!("Synchronized update {} - {}", u.id, u.title);
        assert!(has(&line), "missing '{line}' in {log:#?}");
    }
    assert_eq!(count_lines(&log, "Synchronized update "), 5);
    assert!(
        has("Updated 5 items in site database, new update source content version is 1"),
        "{log:#?}"
    );
    let sync_time = log
        .iter()
        .find(|l| l.starts_with("Sync time: "))
        .expect("a Sync time line");
    let t = sync_time.trim_start_matches("Sync time: ");
    assert!(
        t.len() == 11 && t.starts_with("0d00h00m") && t.ends_with('s'),
        "{sync_time}"
    );
    assert!(
        log.iter()
            .any(|l| l.starts_with("STATMSG: ID=6702 SEV=I LEV=M")),
        "{log:#?}"
    );
    // The order of the milestones in the log matches the database.
    let pos = |p: &str| log.iter().position(|l| l.starts_with(p)).unwrap();
    assert!(pos("Starting Sync") < pos("STATMSG: ID=6701"));
    assert!(pos("STATMSG: ID=6704") < pos("Synchronizing updates, 2 of 2"));
    assert!(pos("STATMSG: ID=6705") < pos("Synchronized update "));
    assert!(pos("Synchronized update ") < pos("STATMSG: ID=6702"));
    assert!(pos("STATMSG: ID=6702") < pos("Sync time: "));
}

// ----- 2. bad inputs -------------------------------------------------------------------

/// After a good full sync, `mutate` breaks the upstream; the next full sync must fail with
/// 6703 naming the cause (every keyword, case-insensitive), leave the catalog and the
/// content version exactly as they were, and schedule a retry in 60 minutes (S7).
async fn bad_input(
    opts: Options,
    mutate: impl FnOnce(&mut Fixture),
    keywords: &[&str],
) -> (Fixture, SyncFailure) {
    let mut fx = Fixture::with(opts);
    fx.sync_ok(SyncKind::Full).await;
    let catalog = fx.catalog();
    let cv = fx.content_version();
    assert_eq!(cv, 1);
    assert_eq!(catalog.len(), 5);
    assert_eq!(fx.site.store.schedule_get("retry_sync").unwrap(), None);

    mutate(&mut fx);
    let before = fx.last_record();
    let failure = match fx.sync(SyncKind::Full).await {
        Ok(r) => panic!("the sync succeeded on a broken upstream: {r:?}"),
        Err(f) => f,
    };

    let msgs = fx.messages_since(before);
    assert_eq!(
        msgs.iter().map(|m| m.message_id).collect::<Vec<_>>(),
        vec![STARTED, PHASE_UPSTREAM, FAILED],
        "{msgs:#?}"
    );
    let failed: &StatusMessageOut = msgs.last().unwrap();
    assert_eq!(failed.severity, "E");
    let reason = &failed.insertion_strings[0];
    eprintln!("6703: {reason} (source: {})", failure.source);
    assert_eq!(reason, &failure.reason);
    assert_eq!(failed.insertion_strings[1], failure.source);
    for k in keywords {
        assert!(
            reason.to_lowercase().contains(&k.to_lowercase()),
            "6703 reason '{reason}' does not name '{k}'"
        );
    }
    assert!(failed.description.contains(reason.as_str()), "{failed:#?}");

    // Nothing changed in the site database.
    assert_eq!(
        fx.catalog(),
        catalog,
        "the catalog changed on a failed sync"
    );
    assert_eq!(fx.content_version(), cv, "the content version moved");

    // S7: a retry in 60 minutes, of the same kind.
    let retry = fx
        .site
        .store
        .schedule_get("retry_sync")
        .unwrap()
        .expect("a retry is scheduled");
    assert_about_minutes_ahead(retry, 60);
    assert_eq!(
        fx.site.store.site_get("retry_kind").unwrap().as_deref(),
        Some("full")
    );
    let run = &fx.site.store.runs(1).unwrap()[0];
    assert_eq!(run.state, "failed");
    assert!(run.error.as_deref().unwrap_or("").contains(reason.as_str()));
    let log = fx.log();
    assert!(
        log.iter()
            .any(|l| l.starts_with("Sync failed: ") && l.contains(reason.as_str())),
        "{log:#?}"
    );
    assert!(
        log.iter()
            .any(|l| l == "Sync failed. Will retry in 60 minutes")
    );
    (fx, failure)
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_signature_fails_the_sync() {
    let (fx, f) = bad_input(
        Options::default(),
        |fx| {
            fx.archive
                .tamper_inrelease_unsigned(STABLE, |t| {
                    t.replacen("Components: main", "Components: main contrib", 1)
                })
                .unwrap()
        },
        &["bad signature", "dists/bookworm/InRelease"],
    )
    .await;
    assert_eq!(f.source, format!("{} bookworm", fx.server().url()));
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_signing_key_fails_the_sync() {
    let other = Gpg::throwaway("other").expect("other key");
    let fpr = other.fingerprint().to_uppercase();
    bad_input(
        Options::default(),
        |fx| fx.archive.resign_with(&other, STABLE).unwrap(),
        &["unknown key", &fpr, "dists/bookworm/InRelease"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn checksum_mismatch_of_the_fetched_index_fails_the_sync() {
    let (fx, _) = bad_input(
        Options::default(),
        |fx| {
            fx.server().clear_log();
            let rel = fx.by_hash(STABLE, PACKAGES_GZ);
            koshin_testkit::corrupt(&fx.archive_path(&rel)).unwrap();
        },
        &["SHA-256 mismatch", "Packages.gz"],
    )
    .await;
    // The damaged file is the one koshin fetched.
    let rel = fx.by_hash(STABLE, PACKAGES_GZ);
    assert!(fx.server().requests(&rel) >= 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn size_mismatch_fails_the_sync() {
    bad_input(
        Options::default(),
        |fx| bump_release_size(&mut fx.archive, STABLE, PACKAGES_GZ, 7),
        &["size mismatch", "Packages.gz"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn truncated_gzip_index_fails_the_sync() {
    // The upstream publishes (and vouches for) a truncated Packages.gz: the checksums
    // match, the gzip stream does not end.
    bad_input(
        Options::default(),
        |fx| {
            let path = fx.archive.suite_dir(STABLE).join(PACKAGES_GZ);
            let data = std::fs::read(&path).unwrap();
            let cut = data[..data.len() / 2].to_vec();
            revouch(&mut fx.archive, STABLE, &[(PACKAGES_GZ, cut)]);
        },
        &["corrupt or truncated gzip", "Packages.gz"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupt_xz_index_fails_the_sync() {
    let (fx, _) = bad_input(
        Options::default().compressions(&[Compression::Xz]),
        |fx| {
            let path = fx.archive.suite_dir(STABLE).join(PACKAGES_XZ);
            let mut data = std::fs::read(&path).unwrap();
            let mid = data.len() / 2;
            for b in &mut data[mid - 4..mid + 4] {
                *b ^= 0xff;
            }
            revouch(&mut fx.archive, STABLE, &[(PACKAGES_XZ, data)]);
        },
        &["corrupt or truncated xz", "Packages.xz"],
    )
    .await;
    assert!(fx.server().requests("Packages.gz") == 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_valid_until_fails_the_sync() {
    bad_input(
        Options::default(),
        |fx| {
            fx.archive
                .tamper_release(STABLE, |t| {
                    let mut out = String::new();
                    for line in t.lines() {
                        out.push_str(line);
                        out.push('\n');
                        if line.starts_with("Date: ") {
                            out.push_str("Valid-Until: Sat, 01 Jan 2000 00:00:00 UTC\n");
                        }
                    }
                    out
                })
                .unwrap()
        },
        &["expired", "Valid-Until", "Sat, 01 Jan 2000 00:00:00 UTC"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_stanza_fails_the_sync() {
    // A stanza without its Version field, in a Packages file the Release vouches for.
    let mut line = 0;
    let (_, f) = bad_input(
        Options::default(),
        |fx| {
            let text = packages_text(&fx.archive, STABLE);
            let stanzas: Vec<String> = text
                .split("\n\n")
                .map(|s| {
                    if s.lines().any(|l| l == "Package: curl") {
                        s.lines()
                            .filter(|l| !l.starts_with("Version: "))
                            .collect::<Vec<_>>()
                            .join("\n")
                    } else {
                        s.to_string()
                    }
                })
                .collect();
            let text = stanzas.join("\n\n");
            line = text
                .lines()
                .position(|l| l == "Package: curl")
                .expect("curl stanza")
                + 1;
            rewrite_packages(&mut fx.archive, STABLE, &text);
        },
        &["malformed stanza", "missing Version field", "Packages.gz"],
    )
    .await;
    assert!(
        f.reason.contains(&format!("at line {line}:")),
        "{} does not name line {line}",
        f.reason
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_stanza_is_named_by_its_line() {
    let mut line = 0;
    let (_, f) = bad_input(
        Options::default(),
        |fx| {
            let text = packages_text(&fx.archive, STABLE);
            let text = text.replacen("Package: curl\n", "Package: curl\nNot a field\n", 1);
            line = text
                .lines()
                .position(|l| l == "Not a field")
                .expect("bad line")
                + 1;
            rewrite_packages(&mut fx.archive, STABLE, &text);
        },
        &["malformed stanza", "is not 'Field: value'"],
    )
    .await;
    assert!(
        f.reason.contains(&format!("at line {line}:")),
        "{} does not name line {line}",
        f.reason
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_upstream_fails_the_sync() {
    bad_input(
        Options::default(),
        |fx| {
            // Take the upstream down: its port is closed now.
            fx.server = None;
        },
        &["cannot reach", "InRelease"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn closed_port_upstream_fails_the_first_sync() {
    // A site whose upstream never answered: the first sync fails, nothing is created.
    let mut fx = Fixture::new();
    let port = closed_port();
    let keyring = fx.archive.keyring().display().to_string();
    fx.configure(|cfg| {
        cfg.upstream.sources = vec![format!(
            "deb [signed-by={keyring} arch=amd64] http://127.0.0.1:{port}/ bookworm main"
        )];
    });
    let before = fx.last_record();
    let f = fx.sync(SyncKind::Full).await.expect_err("must fail");
    assert_eq!(
        fx.message_ids_since(before),
        vec![STARTED, PHASE_UPSTREAM, FAILED]
    );
    assert!(f.reason.contains("cannot reach"), "{}", f.reason);
    assert!(
        f.reason.contains(&format!("127.0.0.1:{port}")),
        "{}",
        f.reason
    );
    assert_eq!(f.source, format!("http://127.0.0.1:{port} bookworm"));
    assert!(fx.catalog().is_empty());
    assert_eq!(fx.content_version(), 0);
    assert!(fx.site.store.machine_policy().unwrap().is_none());
    assert!(fx.site.store.schedule_get("retry_sync").unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_upstream_fails_the_sync_after_the_read_timeout() {
    let started = std::time::Instant::now();
    bad_input(
        Options::default().configure(|cfg| cfg.upstream.read_timeout_seconds = 1),
        |fx| {
            fx.server()
                .set_fault("bookworm/InRelease", Fault::Delay(Duration::from_secs(4)))
        },
        &["no answer within 1 s", "dists/bookworm/InRelease"],
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test(flavor = "multi_thread")]
async fn http_500_fails_the_sync_and_a_later_good_sync_clears_the_retry() {
    let (fx, _) = bad_input(
        Options::default(),
        |fx| {
            fx.server()
                .set_fault("bookworm/InRelease", Fault::Status(500))
        },
        &["HTTP 500", "dists/bookworm/InRelease"],
    )
    .await;
    fx.server().clear_faults();
    let r = fx.sync_ok(SyncKind::Full).await;
    assert_eq!(r.items, 0);
    assert_eq!(fx.content_version(), 1);
    assert_eq!(fx.site.store.schedule_get("retry_sync").unwrap(), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn dropped_connection_fails_the_sync() {
    bad_input(
        Options::default(),
        |fx| {
            let rel = fx.by_hash(STABLE, PACKAGES_GZ);
            fx.server().set_fault(&rel, Fault::DropConnection);
        },
        &["by-hash/SHA256/", "closed"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn transfer_cut_short_fails_the_sync() {
    bad_input(
        Options::default(),
        |fx| {
            let rel = fx.by_hash(STABLE, PACKAGES_GZ);
            let len = std::fs::metadata(fx.archive_path(&rel)).unwrap().len() as usize;
            fx.server().set_fault(&rel, Fault::Truncate(len / 2));
        },
        &["by-hash/SHA256/"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replayed_release_of_another_suite_fails_the_sync() {
    // A correctly signed InRelease, but of bookworm-security, served as bookworm's.
    bad_input(
        Options::default(),
        |fx| {
            let from = fx.archive.suite_dir(SECURITY).join("InRelease");
            let to = fx.archive.suite_dir(STABLE).join("InRelease");
            std::fs::copy(from, to).unwrap();
        },
        &["is for 'bookworm-security'", "not 'bookworm'"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn index_not_matching_the_plain_checksum_fails_the_sync() {
    // The Release vouches for the Packages.gz, but what it decompresses to is not the
    // Packages the Release lists.
    bad_input(
        Options::default(),
        |fx| {
            let text = packages_text(&fx.archive, STABLE).replace("Section: web", "Section: net");
            revouch(
                &mut fx.archive,
                STABLE,
                &[(PACKAGES_GZ, gzip(text.as_bytes()))],
            );
        },
        &["does not match", "plain file", "Packages.gz"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn release_without_the_wanted_index_fails_the_sync() {
    bad_input(
        Options::default(),
        |fx| {
            fx.archive
                .tamper_release(STABLE, |t| {
                    t.replace("main/binary-amd64/", "main/binary-arm64/")
                })
                .unwrap()
        },
        &["lists no Packages index", "main/binary-amd64"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn detached_signature_is_verified_when_there_is_no_inrelease() {
    let mut fx = Fixture::new();
    // No InRelease anywhere: koshin falls back to Release + Release.gpg.
    fx.server().set_fault("InRelease", Fault::NotFound);
    // No by-hash copy either: koshin falls back to the canonical index path.
    let by_hash = fx.by_hash(STABLE, PACKAGES_GZ);
    fx.server().set_fault(&by_hash, Fault::NotFound);
    let r = fx.sync_ok(SyncKind::Full).await;
    assert_eq!((r.content_version, fx.catalog().len()), (1, 5));
    assert_eq!(fx.server().requests("/Release.gpg"), 2);
    assert!(
        fx.server()
            .requests("bookworm/main/binary-amd64/Packages.gz")
            >= 1
    );

    // Release edited after signing: the detached signature no longer matches.
    fx.archive
        .tamper_inrelease_unsigned(STABLE, |t| {
            t.replacen("Components: main", "Components: main non-free", 1)
        })
        .unwrap();
    let catalog = fx.catalog();
    let f = fx.sync(SyncKind::Full).await.expect_err("must fail");
    assert!(f.reason.contains("bad signature"), "{}", f.reason);
    assert!(f.reason.contains("dists/bookworm/Release"), "{}", f.reason);

    // No signature at all.
    fx.server()
        .set_fault("bookworm/Release.gpg", Fault::NotFound);
    let before = fx.last_record();
    let f = fx.sync(SyncKind::Full).await.expect_err("must fail");
    assert!(f.reason.contains("is not signed"), "{}", f.reason);
    assert_eq!(
        fx.message_ids_since(before),
        vec![STARTED, PHASE_UPSTREAM, FAILED]
    );
    assert_eq!(fx.catalog(), catalog);
    assert_eq!(fx.content_version(), 1);
}

// ----- 3. full and delta ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn sync_without_upstream_change_keeps_the_content_version() {
    let fx = Fixture::new();
    fx.sync_ok(SyncKind::Full).await;
    let catalog = fx.catalog();
    let synced = count_lines(&fx.log(), "Synchronized update ");
    assert_eq!(synced, 5);

    let before = fx.last_record();
    let r = fx.sync_ok(SyncKind::Delta).await;
    assert_eq!(
        fx.message_ids_since(before),
        vec![STARTED, PHASE_UPSTREAM, PHASE_DATABASE, DONE]
    );
    assert_eq!(r.items, 0);
    assert_eq!(r.content_version, 1);
    assert_eq!(fx.content_version(), 1);
    assert_eq!(fx.catalog(), catalog);
    let log = fx.log();
    assert_eq!(count_lines(&log, "Synchronized update "), synced);
    assert!(
        log.iter().any(
            |l| l == "Updated 0 items in site database, new update source content version is 1"
        ),
        "{log:#?}"
    );

    // A full sync of an unchanged upstream changes nothing either.
    let r = fx.sync_ok(SyncKind::Full).await;
    assert_eq!((r.items, r.content_version), (0, 1));
    assert_eq!(fx.catalog(), catalog);
    assert_eq!(count_lines(&fx.log(), "Synchronized update "), synced);
}

#[tokio::test(flavor = "multi_thread")]
async fn delta_inserts_and_supersedes_but_only_full_expires() {
    let mut fx = Fixture::new();
    fx.sync_ok(SyncKind::Full).await;
    let old = hello_id();
    let new = apt_id("hello", "2.10-4");

    // hello 2.10-4 replaces 2.10-3 in bookworm.
    fx.archive.remove(STABLE, "hello", "2.10-3+b1");
    fx.archive.remove(STABLE, "hello-doc", "2.10-3");
    fx.archive
        .add(
            STABLE,
            "main",
            &koshin_testkit::DebSpec::new("hello", "2.10-4", "amd64"),
        )
        .unwrap();
    fx.archive
        .add(
            STABLE,
            "main",
            &koshin_testkit::DebSpec::new("hello-doc", "2.10-4", "amd64").source("hello", None),
        )
        .unwrap();
    fx.publish_stable();

    // Delta: the new update is inserted and supersedes the old, which is not expired.
    let r = fx.sync_ok(SyncKind::Delta).await;
    assert_eq!(r.content_version, 2);
    assert_eq!(fx.content_version(), 2);
    let cat = fx.catalog();
    assert_eq!(cat.len(), 6);
    let n = fx.update(&new);
    assert_eq!(
        (n.title.as_str(), n.revision, n.expired),
        ("hello 2.10-4", 1, false)
    );
    assert_eq!(n.superseded_by, None);
    assert_eq!(n.classification, "Updates");
    let o = fx.update(&old);
    assert_eq!(o.superseded_by, Some(new.clone()));
    assert!(!o.expired, "a delta sync must not expire a removed package");
    assert_eq!(detail(&fx, &new).supersedes, vec![old.clone()]);
    let log = fx.log();
    assert!(
        log.iter()
            .any(|l| l == &format!("Synchronized update {new} - hello 2.10-4")),
        "{log:#?}"
    );
    assert!(!log.iter().any(|l| l.starts_with("Expired update ")));

    // A second delta of the same upstream changes nothing.
    let r = fx.sync_ok(SyncKind::Delta).await;
    assert_eq!((r.items, r.content_version), (0, 2));

    // Full: the removed version is expired (and stays superseded).
    let r = fx.sync_ok(SyncKind::Full).await;
    assert_eq!(r.content_version, 3);
    let o = fx.update(&old);
    assert!(o.expired, "a full sync marks a removed package expired");
    assert_eq!(o.superseded_by, Some(new.clone()));
    assert!(!fx.update(&new).expired);
    let expired: Vec<String> = fx
        .site
        .store
        .list_updates(&koshin_wire::UpdateQuery {
            expired: true,
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .map(|u| u.id)
        .collect();
    assert_eq!(expired, vec![old.clone()]);
    assert!(
        fx.log()
            .iter()
            .any(|l| l == &format!("Expired update {old}")),
        "{:#?}",
        fx.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn changed_package_is_revised_by_full_sync_only() {
    let mut fx = Fixture::new();
    fx.sync_ok(SyncKind::Full).await;
    let id = curl_id();
    let old_bins = detail(&fx, &id).packages;
    assert_eq!(old_bins.len(), 1);

    // The upstream rebuilds curl 7.88.1-10 (same version, other contents) in place.
    let rebuilt = common::curl().file("usr/share/doc/curl/REBUILT", b"rebuilt in place\n");
    let scratch = fx.archive.scratch_dir().join("curl-rebuilt.deb");
    rebuilt.build(&scratch).unwrap();
    let bytes = std::fs::read(&scratch).unwrap();
    let pool = rebuilt.pool_path("main");
    std::fs::write(fx.archive_path(&pool), &bytes).unwrap();
    let (size, sha) = (bytes.len() as u64, sha256_hex(&bytes));
    assert_ne!(sha, old_bins[0].sha256);
    let text = packages_text(&fx.archive, STABLE);
    let text: Vec<String> = text
        .split("\n\n")
        .map(|s| {
            if s.lines().any(|l| l == "Package: curl") {
                s.lines()
                    .map(|l| {
                        if l.starts_with("Size: ") {
                            format!("Size: {size}")
                        } else if l.starts_with("SHA256: ") {
                            format!("SHA256: {sha}")
                        } else if l.starts_with("MD5sum: ") {
                            format!("MD5sum: {}", md5_hex(&bytes))
                        } else {
                            l.to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            } else {
                s.to_string()
            }
        })
        .collect();
    rewrite_packages(&mut fx.archive, STABLE, &text.join("\n\n"));

    // Delta: not revised.
    let r = fx.sync_ok(SyncKind::Delta).await;
    assert_eq!((r.items, r.content_version), (0, 1));
    assert_eq!(fx.update(&id).revision, 1);
    assert_eq!(detail(&fx, &id).packages, old_bins);

    // Full: revision 2 with the new file's size and hash.
    let r = fx.sync_ok(SyncKind::Full).await;
    assert_eq!(r.content_version, 2);
    let u = fx.update(&id);
    assert_eq!(u.revision, 2);
    assert!(!u.expired);
    let bins = detail(&fx, &id).packages;
    assert_eq!(bins.len(), 1);
    assert_eq!(
        (bins[0].size, bins[0].sha256.as_str()),
        (size, sha.as_str())
    );
    assert!(u.revised >= u.released);
    // Nothing else was revised.
    for other in fx.catalog().iter().filter(|u| u.id != id) {
        assert_eq!(other.revision, 1, "{other:?}");
    }
    let line = format!("Synchronized update {id} - curl 7.88.1-10 (revision 2)");
    assert!(fx.log().iter().any(|l| l == &line), "{:#?}", fx.log());
}

/// product.md: "expired — gone from the upstream at a full sync". Narrowing the criteria
/// (S1) does not remove anything from the upstream, so it must not mark updates expired.
#[tokio::test(flavor = "multi_thread")]
async fn narrowing_the_criteria_does_not_expire_updates_still_upstream() {
    let mut fx = Fixture::new();
    fx.sync_ok(SyncKind::Full).await;
    fx.configure(|cfg| cfg.sync.classifications = vec!["Security Updates".to_string()]);
    fx.sync(SyncKind::Full).await.expect("full sync");
    let expired: Vec<UpdateSummary> = fx.catalog().into_iter().filter(|u| u.expired).collect();
    assert!(
        expired.is_empty(),
        "updates still in the upstream were marked expired: {:?}",
        expired.iter().map(|u| &u.title).collect::<Vec<_>>()
    );
}

// ----- 4. the running server -----------------------------------------------------------

struct Api {
    base: String,
    token: String,
    client: reqwest::Client,
}

impl Api {
    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    async fn status(&self) -> SyncStatus {
        let r = self.get("/sync").send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    /// Waits for a finished run newer than `after`.
    async fn finished_run_after(&self, after: Option<i64>) -> SyncRun {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.status().await;
            if let Some(run) = s
                .runs
                .iter()
                .find(|r| Some(r.id) > after && r.state != "running")
            {
                return run.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no finished sync run after {after:?}: {s:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn last_run(&self) -> Option<i64> {
        self.status().await.runs.iter().map(|r| r.id).max()
    }
}

/// A site served by `koshin_server::serve` on a loopback port.
struct Running {
    api: Api,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    async fn start(fx: &Fixture) -> Running {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(koshin_server::serve(fx.site.clone(), listener, async {
            let _ = stopped.await;
        }));
        Running {
            api: Api {
                base: format!("http://{addr}/api/v1"),
                token: fx.token(),
                client: reqwest::Client::new(),
            },
            stop,
            task,
        }
    }

    async fn request(&self, full: bool) -> SyncRequestAccepted {
        let r = self
            .api
            .client
            .post(format!("{}/sync", self.api.base))
            .bearer_auth(&self.api.token)
            .json(&serde_json::json!({ "full": full }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the server stops")
            .unwrap()
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn running_server_syncs_on_api_request_and_inbox_drops() {
    let mut fx = Fixture::new();
    let running = Running::start(&fx).await;
    let api = &running.api;

    // No policy before the first sync.
    let r = api
        .client
        .get(format!("{}/policy/machine", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Without a token, or with a wrong one: 401, and no sync is requested.
    let r = api
        .client
        .post(format!("{}/sync", api.base))
        .json(&serde_json::json!({"full": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = api
        .client
        .post(format!("{}/sync", api.base))
        .bearer_auth("ksn_not_a_token")
        .json(&serde_json::json!({"full": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = api
        .client
        .get(format!("{}/sync", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(api.status().await.runs.is_empty());
    assert_eq!(api.status().await.pending_request, None);

    // POST /sync with the token: a sync runs and succeeds.
    let r = api
        .client
        .post(format!("{}/sync", api.base))
        .bearer_auth(&api.token)
        .json(&serde_json::json!({"full": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let accepted: SyncRequestAccepted = r.json().await.unwrap();
    assert_eq!(accepted.kind, "full");
    assert_eq!(accepted.after_run, None);
    let run = api.finished_run_after(accepted.after_run).await;
    assert_eq!(run.state, "succeeded", "{run:#?}");
    assert_eq!(run.kind, "full");
    assert_eq!(run.content_version, Some(1));
    assert_eq!(run.items, Some(5));
    let status = api.status().await;
    assert_eq!(status.content_version, 1);
    assert_eq!(status.next_retry, None);

    // S11 through the API: the policy is there, no auth needed.
    let r = api
        .client
        .get(format!("{}/policy/machine", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let policy: MachinePolicy = r.json().await.unwrap();
    assert_eq!(policy.content_version, 1);
    assert_eq!(policy.site, "CS1");

    // The catalog and the status messages through the API.
    let sec: Vec<UpdateSummary> = api
        .get("/updates")
        .query(&[("classification", "Security Updates")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        ids(&sec),
        [libfoo_sec_id(), curl_sec_id()].into_iter().collect()
    );
    let superseded: Vec<UpdateSummary> = api
        .get("/updates")
        .query(&[("superseded", "true")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        ids(&superseded),
        [libfoo_id(), curl_id()].into_iter().collect()
    );
    let hello: UpdateDetail = api
        .get(&format!("/updates/{}", hello_id()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(hello.summary.title, "hello 2.10-3");
    assert_eq!(hello.packages.len(), 2);
    let done: Vec<StatusMessageOut> = api
        .get("/status-messages")
        .query(&[("component", COMPONENT), ("id", "6702")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(done.len(), 1);

    // SELF.SYN: a delta sync picks up a new version.
    fx.archive
        .add(
            STABLE,
            "main",
            &koshin_testkit::DebSpec::new("hello", "2.10-4", "amd64"),
        )
        .unwrap();
    fx.archive.remove(STABLE, "hello", "2.10-3+b1");
    fx.publish_stable();
    let after = api.last_run().await;
    let self_syn = fx.inbox().join("SELF.SYN");
    std::fs::write(&self_syn, b"").unwrap();
    let run = api.finished_run_after(after).await;
    assert_eq!(run.state, "succeeded", "{run:#?}");
    assert_eq!(
        (run.kind.as_str(), run.trigger.as_str()),
        ("delta", "local request")
    );
    assert_eq!(run.content_version, Some(2));
    assert!(!self_syn.exists(), "SELF.SYN was not consumed");
    let new = apt_id("hello", "2.10-4");
    assert_eq!(fx.update(&hello_id()).superseded_by, Some(new.clone()));
    let log = fx.log();
    for l in [
        "Found local sync request file",
        "Wakeup by inbox drop",
        "Performing sync on local request",
    ] {
        assert!(log.iter().any(|x| x == l), "missing '{l}' in {log:#?}");
    }

    // FULL.SYN: a full sync, which expires what the upstream removed. (hello-doc 2.10-3
    // still names source hello 2.10-3, so remove it too.)
    fx.archive.remove(STABLE, "hello-doc", "2.10-3");
    fx.publish_stable();
    let after = api.last_run().await;
    let full_syn = fx.inbox().join("FULL.SYN");
    std::fs::write(&full_syn, b"").unwrap();
    let run = api.finished_run_after(after).await;
    assert_eq!(run.state, "succeeded", "{run:#?}");
    assert_eq!(
        (run.kind.as_str(), run.trigger.as_str()),
        ("full", "local full request")
    );
    assert!(!full_syn.exists(), "FULL.SYN was not consumed");
    let expired: Vec<UpdateSummary> = api
        .get("/updates")
        .query(&[("expired", "true")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&expired), [hello_id()].into_iter().collect());

    // A delta request through the API.
    let r = api
        .client
        .post(format!("{}/sync", api.base))
        .bearer_auth(&api.token)
        .json(&serde_json::json!({"full": false}))
        .send()
        .await
        .unwrap();
    let accepted: SyncRequestAccepted = r.json().await.unwrap();
    assert_eq!(accepted.kind, "delta");
    let run = api.finished_run_after(accepted.after_run).await;
    assert_eq!(
        (run.state.as_str(), run.kind.as_str()),
        ("succeeded", "delta")
    );
    let log = fx.log();
    assert!(
        log.iter()
            .any(|l| l == "RCV: UPDATE on sync status for SyncNotif_WSyncMgr [SELF]"),
        "{log:#?}"
    );

    running.stop().await;
    fx.server = None;
}

#[tokio::test(flavor = "multi_thread")]
async fn running_server_retries_a_failed_sync_and_runs_the_schedule() {
    let fx = Fixture::new();
    let running = Running::start(&fx).await;
    let api = &running.api;
    let store = &fx.site.store;

    // S7: a failed sync (HTTP 500 upstream) is retried in 60 minutes.
    fx.server()
        .set_fault("bookworm/InRelease", Fault::Status(500));
    let accepted = running.request(true).await;
    let run = api.finished_run_after(accepted.after_run).await;
    assert_eq!(run.state, "failed", "{run:#?}");
    assert!(
        run.error.as_deref().unwrap().contains("HTTP 500"),
        "{run:#?}"
    );
    let status = api.status().await;
    let retry = status.next_retry.expect("a retry is scheduled");
    assert_about_minutes_ahead(retry.as_millisecond(), 60);
    assert_eq!(status.content_version, 0);

    // When the retry is due, the sync manager runs it (a full sync, as the failed one).
    fx.server().clear_faults();
    let now = jiff::Timestamp::now().as_millisecond();
    store.schedule_set("retry_sync", Some(now - 1)).unwrap();
    let run = api.finished_run_after(Some(run.id)).await;
    assert_eq!(run.state, "succeeded", "{run:#?}");
    assert_eq!((run.kind.as_str(), run.trigger.as_str()), ("full", "retry"));
    assert_eq!(api.status().await.next_retry, None);
    let log = fx.log();
    for l in [
        "Wakeup for retry of a failed sync",
        "Performing sync on retry schedule",
    ] {
        assert!(log.iter().any(|x| x == l), "missing '{l}' in {log:#?}");
    }

    // S2: the scheduled sync is a full sync; the next one is set a schedule interval ahead.
    store.schedule_set("scheduled_sync", Some(now - 1)).unwrap();
    let run = api.finished_run_after(Some(run.id)).await;
    assert_eq!(run.state, "succeeded", "{run:#?}");
    assert_eq!(
        (run.kind.as_str(), run.trigger.as_str()),
        ("full", "schedule")
    );
    let next = api.status().await.next_scheduled.expect("next schedule");
    assert_about_minutes_ahead(next.as_millisecond(), 24 * 60);
    let log = fx.log();
    for l in [
        "Wakeup for scheduled regular sync",
        "Performing sync on regular schedule",
    ] {
        assert!(log.iter().any(|x| x == l), "missing '{l}' in {log:#?}");
    }

    // A file in the inbox that is not a sync request is set aside, and starts nothing.
    let last = api.last_run().await;
    std::fs::write(fx.inbox().join("notes.txt"), b"hello").unwrap();
    let bad = fx.inbox().join("bad").join("notes.txt");
    wait_for("notes.txt set aside", Duration::from_secs(10), || {
        bad.exists().then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(api.last_run().await, last);

    running.stop().await;
}

// ----- 5. the local publisher ----------------------------------------------------------

const CONTENT: &[u8] = b"contoso agent 5.1 package bytes\n";

fn write_local_update(fx: &Fixture, sha256: &str) {
    let dir = fx.data.join("local-publisher");
    std::fs::write(dir.join("contoso-agent_5.1_amd64.deb"), CONTENT).unwrap();
    let def = format!(
        r#"[[update]]
title = "Contoso Agent 5.1 security fix"
vendor = "Contoso"
article_id = "KB-1001"
bulletin_id = "CSA-2026-001"
severity = "Critical"
classification = "Critical Updates"
description = "Fixes a privilege escalation in the Contoso agent."
released = "2026-11-01"
install_command = "dpkg -i contoso-agent_5.1_amd64.deb"

[update.detection]
package = {{ name = "contoso-agent", version_below = "5.1" }}

[[update.content]]
path = "contoso-agent_5.1_amd64.deb"
sha256 = "{sha256}"
"#
    );
    std::fs::write(dir.join("contoso.toml"), def).unwrap();
}

fn local_id() -> String {
    UpdateId::for_local("Contoso", "KB-1001").to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn local_publisher_update_is_synced_when_selected() {
    let fx = Fixture::new();
    write_local_update(&fx, &sha256_hex(CONTENT));
    fx.sync_ok(SyncKind::Full).await;
    let cat = fx.catalog();
    assert_eq!(cat.len(), 6);
    let u = fx.update(&local_id());
    assert_eq!(u.product, "Local publisher");
    assert_eq!(u.classification, "Critical Updates");
    assert_eq!(u.title, "Contoso Agent 5.1 security fix");
    assert_eq!(u.article_id, "KB-1001");
    assert_eq!(u.bulletin_id.as_deref(), Some("CSA-2026-001"));
    assert_eq!(u.severity.as_deref(), Some("Critical"));
    let d = detail(&fx, &local_id());
    assert_eq!(d.vendor, "Contoso");
    let local = d.local.expect("local publisher details");
    let content = &local["content"][0];
    assert_eq!(content["path"], "contoso-agent_5.1_amd64.deb");
    assert_eq!(content["sha256"], sha256_hex(CONTENT).as_str());
    assert_eq!(content["size"], CONTENT.len() as u64);
    assert_eq!(
        local["install_command"],
        "dpkg -i contoso-agent_5.1_amd64.deb"
    );
    assert!(fx.log().iter().any(|l| l
        == &format!(
            "Synchronized update {} - Contoso Agent 5.1 security fix",
            local_id()
        )));
}

#[tokio::test(flavor = "multi_thread")]
async fn local_publisher_update_is_not_synced_when_only_debian_is_selected() {
    let fx = Fixture::with(
        Options::default().configure(|cfg| cfg.sync.products = vec![PRODUCT.to_string()]),
    );
    write_local_update(&fx, &sha256_hex(CONTENT));
    fx.sync_ok(SyncKind::Full).await;
    let cat = fx.catalog();
    assert_eq!(cat.len(), 5);
    assert!(cat.iter().all(|u| u.product == PRODUCT), "{cat:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn local_publisher_content_with_wrong_sha256_fails_the_sync() {
    let fx = Fixture::new();
    write_local_update(&fx, &sha256_hex(CONTENT));
    fx.sync_ok(SyncKind::Full).await;
    let catalog = fx.catalog();
    assert_eq!(catalog.len(), 6);

    // The content file changes under its definition.
    std::fs::write(
        fx.data
            .join("local-publisher")
            .join("contoso-agent_5.1_amd64.deb"),
        b"tampered\n",
    )
    .unwrap();
    let before = fx.last_record();
    let f = fx.sync(SyncKind::Full).await.expect_err("must fail");
    let msgs = fx.messages_since(before);
    assert_eq!(
        msgs.iter().map(|m| m.message_id).collect::<Vec<_>>(),
        vec![STARTED, PHASE_UPSTREAM, FAILED]
    );
    let istr = &msgs[2].insertion_strings;
    assert!(istr[0].contains("SHA-256"), "{istr:?}");
    assert!(istr[0].contains("contoso-agent_5.1_amd64.deb"), "{istr:?}");
    assert!(istr[0].contains(&sha256_hex(CONTENT)), "{istr:?}");
    assert_eq!(istr[1], "local publisher");
    assert_eq!(f.source, "local publisher");
    assert_eq!(fx.catalog(), catalog);
    assert_eq!(fx.content_version(), 1);
    assert!(fx.site.store.schedule_get("retry_sync").unwrap().is_some());
}

/// S1/S12: the local publisher is synced only when its product is selected, so a broken
/// definition of it must not stop a sync that selects only Debian.
#[tokio::test(flavor = "multi_thread")]
async fn broken_local_publisher_does_not_fail_a_sync_that_does_not_select_it() {
    let fx = Fixture::with(
        Options::default().configure(|cfg| cfg.sync.products = vec![PRODUCT.to_string()]),
    );
    write_local_update(&fx, &sha256_hex(b"something else"));
    let r = fx.sync(SyncKind::Full).await;
    assert!(
        r.is_ok(),
        "the unselected local publisher failed the Debian sync: {:?}",
        r.err()
    );
    assert_eq!(fx.catalog().len(), 5);
}

// ----- 6. criteria ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn only_selected_classifications_enter_the_catalog() {
    let fx = Fixture::with(
        Options::default()
            .configure(|cfg| cfg.sync.classifications = vec!["Security Updates".to_string()]),
    );
    let r = fx.sync_ok(SyncKind::Full).await;
    assert_eq!(r.content_version, 1);
    let cat = fx.catalog();
    assert_eq!(
        ids(&cat),
        [libfoo_sec_id(), curl_sec_id()].into_iter().collect()
    );
    assert!(cat.iter().all(|u| u.classification == "Security Updates"));
    assert!(cat.iter().all(|u| u.superseded_by.is_none()));
}
