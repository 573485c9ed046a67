//! Throwaway OpenPGP signing keys, driven through the real `gpg` binary in a
//! private `GNUPGHOME`, for signing `InRelease` and `Release.gpg`.

use std::io;
use std::path::Path;
use std::process::Command;

use tempfile::TempDir;

use crate::cmd::{err, run};

/// A throwaway signing key in its own temporary `GNUPGHOME`.
///
/// The key has no passphrase and never expires. Dropping the value stops the
/// `gpg-agent` that `gpg` started for the home directory and deletes it.
pub struct Gpg {
    home: TempDir,
    fingerprint: String,
}

impl std::fmt::Debug for Gpg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpg")
            .field("home", &self.home.path())
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

impl Gpg {
    /// Creates a fresh signing key whose user id is
    /// `"<name> <test@koshin.invalid>"` (ed25519; rsa3072 if this gpg cannot
    /// make ed25519 keys).
    pub fn throwaway(name: &str) -> io::Result<Gpg> {
        if name.is_empty() || name.contains(['<', '>', '\n']) {
            return Err(err(format!("invalid gpg key name {name:?}")));
        }
        let home = tempfile::Builder::new().prefix("kgpg").tempdir()?;
        let mut gpg = Gpg {
            home,
            fingerprint: String::new(),
        };
        let uid = format!("{name} <test@koshin.invalid>");
        let ed = run(gpg.cmd().args([
            "--passphrase",
            "",
            "--quick-gen-key",
            &uid,
            "ed25519",
            "sign",
            "never",
        ]));
        if let Err(ed_err) = ed {
            run(gpg.cmd().args([
                "--passphrase",
                "",
                "--quick-gen-key",
                &uid,
                "rsa3072",
                "sign",
                "never",
            ]))
            .map_err(|e| {
                err(format!(
                    "gpg key generation failed: ed25519: {ed_err}; rsa3072: {e}"
                ))
            })?;
        }
        let out = run(gpg.cmd().args(["--with-colons", "--list-secret-keys"]))?;
        let listing = String::from_utf8_lossy(&out.stdout);
        // The first `fpr` record follows the primary `sec` record.
        gpg.fingerprint = listing
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .and_then(|rest| rest.split(':').find(|f| !f.is_empty()))
            .map(str::to_owned)
            .ok_or_else(|| err(format!("no fingerprint in gpg key listing:\n{listing}")))?;
        Ok(gpg)
    }

    /// The primary key's fingerprint (40 upper-case hex digits for v4 keys).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The private `GNUPGHOME` of this key.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// Writes the public key as a binary keyring (like
    /// `/usr/share/keyrings/*.gpg`, usable in `signed-by=`) to `path`.
    pub fn export_keyring(&self, path: &Path) -> io::Result<()> {
        self.export(path, false)
    }

    /// Writes the public key ASCII-armored (`.asc`) to `path`.
    pub fn export_armored(&self, path: &Path) -> io::Result<()> {
        self.export(path, true)
    }

    fn export(&self, path: &Path, armor: bool) -> io::Result<()> {
        let mut cmd = self.cmd();
        if armor {
            cmd.arg("--armor");
        }
        cmd.arg("--output")
            .arg(path)
            .args(["--export", &self.fingerprint]);
        run(&mut cmd)?;
        let len = std::fs::metadata(path)?.len();
        if len == 0 {
            return Err(err(format!(
                "gpg exported an empty key for {} to {}",
                self.fingerprint,
                path.display()
            )));
        }
        Ok(())
    }

    /// Clear-signs `input` into `output` (an `InRelease` file).
    pub fn clearsign(&self, input: &Path, output: &Path) -> io::Result<()> {
        let mut cmd = self.cmd();
        cmd.args(["--local-user", &self.fingerprint, "--digest-algo", "SHA512"])
            .arg("--output")
            .arg(output)
            .arg("--clearsign")
            .arg(input);
        run(&mut cmd).map(drop)
    }

    /// Writes an armored detached signature of `input` to `output` (a
    /// `Release.gpg` file).
    pub fn detach_sign(&self, input: &Path, output: &Path) -> io::Result<()> {
        let mut cmd = self.cmd();
        cmd.args(["--local-user", &self.fingerprint, "--digest-algo", "SHA512"])
            .arg("--output")
            .arg(output)
            .args(["--armor", "--detach-sign"])
            .arg(input);
        run(&mut cmd).map(drop)
    }

    /// A `gpg` command bound to this key's home, non-interactive.
    fn cmd(&self) -> Command {
        let mut cmd = Command::new("gpg");
        cmd.arg("--homedir").arg(self.home.path()).args([
            "--batch",
            "--yes",
            "--quiet",
            "--no-tty",
            "--pinentry-mode",
            "loopback",
        ]);
        cmd
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        // gpg starts a gpg-agent per home directory; stop ours. Failure is
        // harmless (the agent exits once its socket directory disappears).
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.home.path())
            .args(["--kill", "all"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}
