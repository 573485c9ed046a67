//! Shared fixtures for the koshin-testkit integration tests.

#![allow(dead_code)]

use std::process::Command;

use koshin_testkit::{Archive, DebSpec, SuiteSpec};

/// The packages of the two-suite test archive.
pub fn hello() -> DebSpec {
    DebSpec::new("hello", "2.10-3", "amd64")
        .section("devel")
        .depends("libc6 (>= 2.34)")
        .description(
            "example package based on GNU hello\nThe GNU hello program.\n\nSecond paragraph.",
        )
        .file("usr/bin/hello", b"#!/bin/sh\necho hello\n")
}

pub fn hello_binnmu() -> DebSpec {
    DebSpec::new("hello", "2.10-3+b1", "amd64")
        .source("hello", Some("2.10-3"))
        .section("devel")
        .depends("libc6 (>= 2.34)")
        .description("example package based on GNU hello")
        .file("usr/bin/hello", b"#!/bin/sh\necho hello binnmu\n")
}

pub fn libfoo() -> DebSpec {
    DebSpec::new("libfoo1", "1.0-1", "amd64")
        .source("libfoo", None)
        .section("libs")
        .field("Multi-Arch", "same")
}

pub fn data_all() -> DebSpec {
    DebSpec::new("koshin-data", "1:1.0-1", "all").section("misc")
}

/// An archive with "bookworm" (hello, libfoo1, koshin-data) and
/// "bookworm-security" (binNMU of hello, koshin-data), both published.
pub fn two_suite_archive() -> (Archive, SuiteSpec, SuiteSpec) {
    let mut archive = Archive::new().expect("archive");
    for deb in [hello(), libfoo(), data_all()] {
        archive
            .add("bookworm", "main", &deb)
            .expect("add to bookworm");
    }
    for deb in [hello_binnmu(), data_all()] {
        archive
            .add("bookworm-security", "main", &deb)
            .expect("add to bookworm-security");
    }
    let stable = SuiteSpec::new("bookworm", "bookworm");
    let security = SuiteSpec::new("bookworm-security", "bookworm-security")
        .label("Debian-Security")
        .valid_until("Sat, 01 Jan 2100 00:00:00 UTC");
    archive.publish(&stable).expect("publish bookworm");
    archive
        .publish(&security)
        .expect("publish bookworm-security");
    (archive, stable, security)
}

/// Runs a command and returns its stdout; panics with stderr on failure.
pub fn output(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
