//! Running external tools (`gpg`, `dpkg-deb`, `apt-ftparchive`, ...) with
//! error messages that say what was run and include its stderr.

use std::fs::File;
use std::io;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Builds an `io::Error` carrying a plain message.
pub(crate) fn err(msg: impl Into<String>) -> io::Error {
    io::Error::other(msg.into())
}

/// Renders a command line for error messages.
fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Hint for the Debian package that provides a tool.
fn package_hint(program: &str) -> &'static str {
    match program {
        "gpg" | "gpgconf" => "gnupg",
        "apt-ftparchive" => "apt-utils",
        "dpkg-deb" => "dpkg",
        "xz" => "xz-utils",
        "gzip" => "gzip",
        "apt-get" | "apt-cache" => "apt",
        _ => "the package providing it",
    }
}

fn spawn_error(cmd: &Command, e: io::Error) -> io::Error {
    let program = cmd.get_program().to_string_lossy().into_owned();
    if e.kind() == io::ErrorKind::NotFound {
        err(format!(
            "cannot run `{program}`: not found (install the Debian package `{}`)",
            package_hint(&program)
        ))
    } else {
        err(format!("cannot run `{}`: {e}", describe(cmd)))
    }
}

/// Runs `cmd` to completion, capturing stdout and stderr; a non-zero exit
/// status is an error whose message includes the command line and stderr.
pub(crate) fn run(cmd: &mut Command) -> io::Result<Output> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| spawn_error(cmd, e))?;
    if !out.status.success() {
        return Err(err(format!(
            "`{}` failed ({}): {}",
            describe(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out)
}

/// Runs `cmd` with stdin read from `input` and stdout written to `output`.
pub(crate) fn run_filter(cmd: &mut Command, input: &Path, output: &Path) -> io::Result<()> {
    let stdin =
        File::open(input).map_err(|e| err(format!("cannot open {}: {e}", input.display())))?;
    let stdout = File::create(output)
        .map_err(|e| err(format!("cannot create {}: {e}", output.display())))?;
    let out = cmd
        .stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| spawn_error(cmd, e))?;
    if !out.status.success() {
        return Err(err(format!(
            "`{}` < {} failed ({}): {}",
            describe(cmd),
            input.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Reads a file to a string, naming the file in the error.
pub(crate) fn read_string(path: &Path) -> io::Result<String> {
    std::fs::read_to_string(path).map_err(|e| err(format!("cannot read {}: {e}", path.display())))
}

/// Writes a file, naming the file in the error.
pub(crate) fn write(path: &Path, contents: impl AsRef<[u8]>) -> io::Result<()> {
    std::fs::write(path, contents).map_err(|e| err(format!("cannot write {}: {e}", path.display())))
}
