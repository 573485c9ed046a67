//! Fetches this machine's APT sources once and prints what each suite holds and how long it took.
use std::collections::HashSet;
use std::time::Instant;

use koshin_apt::verify::Keyring;
use koshin_apt::{FetchOptions, Fetcher, sources};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let t0 = Instant::now();
    let srcs = sources::system_sources(std::path::Path::new("/etc/apt"))?;
    let fetcher = Fetcher::new(FetchOptions::default())?;
    let now = jiff::Timestamp::now().as_second();
    for s in &srcs {
        let keyring = if s.signed_by.is_empty() {
            Keyring::system()?
        } else {
            Keyring::load(&s.signed_by)?
        };
        let t = Instant::now();
        let suite = fetcher
            .fetch_suite(s, &keyring, now, &HashSet::new())
            .await?;
        let n: usize = suite
            .indices
            .iter()
            .map(|i| i.packages.as_ref().map_or(0, Vec::len))
            .sum();
        println!(
            "{}: {} packages, {} bytes, {:?}",
            s.label(),
            n,
            suite.bytes_fetched,
            t.elapsed()
        );
    }
    println!("total {:?}", t0.elapsed());
    Ok(())
}
