//! `koshin bench scan`: an offline agent scan of this machine against the full catalog of
//! its APT sources, beside `apt list --upgradable` from the same sources and dpkg database,
//! measured in the same run: wall time and peak resident memory of each process, and
//! whether both name the same packages and versions. apt keeps its package cache
//! (`pkgcache.bin`) between runs, as it does on a normal machine.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use clap::Args;

#[derive(Args)]
pub struct ScanBenchArgs {
    /// Timed runs of each command.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Keep the site, agent and apt folders (printed at the end).
    #[arg(long)]
    keep: bool,
    #[arg(long)]
    json: bool,
}

/// The peak resident memory (KiB) of a live process's own address space (`VmHWM`). Unlike
/// `ru_maxrss`, it does not carry the parent's peak across fork and exec.
fn vm_hwm(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Wall time, peak resident memory (KiB, sampled every millisecond until the process
/// exits) and standard output of one child process.
fn measure(cmd: &mut Command) -> anyhow::Result<(Duration, u64, Vec<u8>)> {
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    let pid = child.id();
    let mut stdout = child.stdout.take().context("no stdout")?;
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut buf);
        buf
    });
    let mut peak = 0;
    let status = loop {
        if let Some(h) = vm_hwm(pid) {
            peak = peak.max(h);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let elapsed = start.elapsed();
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    let out = reader.join().map_err(|_| anyhow!("output reader failed"))?;
    Ok((elapsed, peak, out))
}

/// A new bench site in `data`, fully synced from this machine's APT sources.
pub async fn synced_site(
    data: &std::path::Path,
) -> anyhow::Result<std::sync::Arc<koshin_server::Site>> {
    koshin_server::init::init_site(&koshin_server::init::InitOptions {
        code: "BEN".into(),
        data: data.to_path_buf(),
        upstreams: vec!["system".into()],
        listen: Some("127.0.0.1:0".into()),
        parent: None,
        secondary: false,
    })?;
    let site = koshin_server::Site::open(data)?;
    koshin_server::sync::SyncManager::new(site.clone())
        .run_once(
            koshin_domain::SyncTrigger::FullRequest,
            koshin_domain::SyncKind::Full,
        )
        .await
        .map_err(|f| anyhow!("the sync failed: {} ({})", f.reason, f.source))?;
    Ok(site)
}

fn stats(v: &mut [Duration]) -> (Duration, Duration) {
    v.sort();
    (v[0], v[v.len() / 2])
}

/// (name, arch) → highest target version among the Required updates of a scan.
fn parse_scan(out: &[u8]) -> anyhow::Result<BTreeMap<(String, String), String>> {
    let scan: koshin_wire::ScanOutput =
        serde_json::from_slice(out).context("the agent's scan output")?;
    let mut m: BTreeMap<(String, String), String> = BTreeMap::new();
    for u in scan.updates.iter().filter(|u| u.state == "required") {
        for p in &u.packages {
            let e = m
                .entry((p.name.clone(), p.arch.clone()))
                .or_insert_with(|| p.target.clone());
            if koshin_domain::version::compare_lenient(&p.target, e) == std::cmp::Ordering::Greater
            {
                *e = p.target.clone();
            }
        }
    }
    Ok(m)
}

pub async fn run(a: ScanBenchArgs) -> anyhow::Result<std::process::ExitCode> {
    if a.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let agent_bin = std::env::current_exe()?
        .parent()
        .map(|d| d.join("koshin-agent"))
        .filter(|p| p.exists())
        .ok_or_else(|| {
            anyhow!(
                "koshin-agent is not built beside koshin: cargo build --release -p koshin-agent"
            )
        })?;
    let work = tempfile::Builder::new()
        .prefix("koshin-bench-scan-")
        .tempdir()?;
    let root = work.path();
    eprintln!("bench: syncing a site from this machine's APT sources ...");
    let data = root.join("site");
    let site = synced_site(&data).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(koshin_server::serve(site.clone(), listener, async move {
        let _ = stopped.await;
    }));
    let token = std::fs::read_to_string(data.join("admin.token"))?;
    let state = root.join("agent");
    eprintln!("bench: enrolling an agent and filling its catalog (one online scan) ...");
    koshin_agent::enroll::enroll(&koshin_agent::enroll::EnrollOptions {
        site: url.clone(),
        token: token.trim().to_string(),
        name: Some("bench".into()),
        state: state.clone(),
        root: PathBuf::from("/"),
        ca_certificate: None,
    })
    .await?;
    let status = Command::new(&agent_bin)
        .args(["--state"])
        .arg(&state)
        .args(["scan"])
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("the agent's first (online) scan failed");
    }
    let _ = stop.send(());
    let _ = server.await;

    eprintln!("bench: apt-get update into fresh lists from the same sources ...");
    let options = koshin_apt::peer::PeerOptions {
        sources: None,
        dpkg_status: Some("/var/lib/dpkg/status".into()),
        architecture: None,
    };
    let conf = koshin_apt::peer::prepare(&root.join("apt"), &options)?;
    let up = koshin_apt::peer::command(&conf, "apt-get", &["-q", "update"]).output()?;
    if !up.status.success() {
        bail!(
            "apt-get update failed: {}",
            String::from_utf8_lossy(&up.stderr)
        );
    }

    let mut agent_times = Vec::new();
    let mut apt_times = Vec::new();
    let (mut agent_rss, mut apt_rss) = (0u64, 0u64);
    let (mut ours, mut theirs) = (BTreeMap::new(), BTreeMap::new());
    for i in 0..a.runs + 1 {
        eprintln!("bench: run {}/{}", i, a.runs);
        // The first round compares results (JSON); the timed rounds print the plain report,
        // as `apt list --upgradable` does.
        let args: &[&str] = if i == 0 {
            &["scan", "--offline", "--json"]
        } else {
            &["scan", "--offline"]
        };
        let (t, rss, out) = measure(
            Command::new(&agent_bin)
                .arg("--state")
                .arg(&state)
                .args(args)
                .env("KOSHIN_LOG", "warn"),
        )?;
        let (t2, rss2, out2) = measure(&mut koshin_apt::peer::command(
            &conf,
            "apt",
            &["list", "--upgradable"],
        ))?;
        if i == 0 {
            // Warm-up round, and the result comparison.
            ours = parse_scan(&out)?;
            theirs = koshin_apt::peer::parse_upgradable(&String::from_utf8_lossy(&out2));
            continue;
        }
        agent_times.push(t);
        apt_times.push(t2);
        agent_rss = agent_rss.max(rss);
        apt_rss = apt_rss.max(rss2);
    }
    let (amin, amed) = stats(&mut agent_times);
    let (pmin, pmed) = stats(&mut apt_times);
    let same = ours == theirs;
    let speedup = pmed.as_secs_f64() / amed.as_secs_f64().max(1e-9);
    if a.json {
        let v = serde_json::json!({
            "runs": a.runs,
            "agent_offline_scan": {"min_s": amin.as_secs_f64(), "median_s": amed.as_secs_f64(), "max_rss_kib": agent_rss},
            "apt_list_upgradable": {"min_s": pmin.as_secs_f64(), "median_s": pmed.as_secs_f64(), "max_rss_kib": apt_rss},
            "speedup_median": speedup,
            "same_result": same,
            "required_packages": ours.len(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("command                                runs  min      median   peak RSS");
        println!(
            "koshin-agent scan --offline            {:<5} {:.3} s  {:.3} s  {:.1} MB",
            a.runs,
            amin.as_secs_f64(),
            amed.as_secs_f64(),
            agent_rss as f64 / 1024.0
        );
        println!(
            "apt list --upgradable                  {:<5} {:.3} s  {:.3} s  {:.1} MB",
            a.runs,
            pmin.as_secs_f64(),
            pmed.as_secs_f64(),
            apt_rss as f64 / 1024.0
        );
        println!("speed-up (median): {speedup:.1}×   target ≥ 10×");
        println!(
            "same packages and target versions: {} ({} required packages)",
            if same { "yes" } else { "NO" },
            ours.len()
        );
        println!(
            "agent peak resident memory: {:.1} MB   target < 20 MB",
            agent_rss as f64 / 1024.0
        );
    }
    if a.keep {
        let kept = work.keep();
        eprintln!("kept: {}", kept.display());
    }
    if !same {
        eprintln!("koshin: the agent and apt disagree: ours {ours:?}\napt {theirs:?}");
        return Ok(std::process::ExitCode::FAILURE);
    }
    Ok(std::process::ExitCode::SUCCESS)
}
