//! In-place damage to published files, for bad-input tests.

use std::fs::OpenOptions;
use std::io;
use std::path::Path;

use crate::cmd::{err, write};

/// Inverts up to 8 bytes around the middle of `buf`.
pub(crate) fn flip_middle(buf: &mut [u8]) {
    let n = buf.len().min(8);
    let start = buf.len() / 2 - n / 2;
    for b in &mut buf[start..start + n] {
        *b ^= 0xFF;
    }
}

/// Flips bytes in the middle of the file at `path` (its length stays the
/// same, its checksums change). An empty file is an error.
pub fn corrupt(path: &Path) -> io::Result<()> {
    let mut data =
        std::fs::read(path).map_err(|e| err(format!("cannot read {}: {e}", path.display())))?;
    if data.is_empty() {
        return Err(err(format!("cannot corrupt empty file {}", path.display())));
    }
    flip_middle(&mut data);
    write(path, data)
}

/// Cuts the file at `path` down to `len` bytes; `len` must not exceed its
/// current size.
pub fn truncate(path: &Path, len: usize) -> io::Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| err(format!("cannot open {}: {e}", path.display())))?;
    let size = file.metadata()?.len();
    let len = len as u64;
    if len > size {
        return Err(err(format!(
            "cannot truncate {} ({size} bytes) to {len} bytes",
            path.display()
        )));
    }
    file.set_len(len)
}

#[cfg(test)]
mod tests {
    use super::flip_middle;

    #[test]
    fn flips_middle_bytes() {
        let mut b = vec![0u8; 20];
        flip_middle(&mut b);
        assert_eq!(b.iter().filter(|&&x| x == 0xFF).count(), 8);
        assert_eq!(&b[6..14], &[0xFF; 8]);
        let mut one = vec![1u8];
        flip_middle(&mut one);
        assert_eq!(one, vec![0xFE]);
        let mut empty: Vec<u8> = Vec::new();
        flip_middle(&mut empty);
    }
}
