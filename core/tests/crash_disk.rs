//! Crash consistency of the disk pipeline store, with real processes.
//!
//! * **SIGKILL at random moments.** A writer process (this test binary
//!   re-run in child mode) puts and flushes blobs in a loop, printing each op
//!   after its flush returned. The parent kills it (SIGKILL) at a seeded
//!   random moment, 200 times over one store, and after every kill reopens
//!   the store: every acknowledged blob is there byte for byte, the op in
//!   flight is there whole or not at all, no torn, partial or altered blob is
//!   ever returned (nor even found: the corrupt counter stays 0), and the
//!   temp files the killed writers left are removed.
//! * **Several processes at once** write, read and remove the same keys of
//!   one store: every blob read is one a writer wrote, whole.
//! * **Full disk.** A tiny tmpfs (ENOSPC, in a private mount namespace so
//!   nothing outlives the test) and a file-size limit (EFBIG, `prlimit`):
//!   a put that cannot be written is an error, never a partial entry, and
//!   leaves no temp file.
//!
//! Deterministic: every op sequence and kill delay comes from a fixed seed.
//! Child processes are bounded by deadlines and killed on drop.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cachescope_core::Error;
use cachescope_core::pipeline::{
    DiskPipelineStore, DiskStoreConfig, PipelineCacheKey, PipelineCacheStore, PipelineFeatureFlags,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SEED: u64 = 0x5eed_c4a5_0001;
/// Distinct keys the writers touch (so later generations overwrite earlier
/// ones and every verification reads the whole store).
const KEYS: u32 = 32;
const KILLS: u64 = 200;

// ------------------------------------------------------------------ helpers

fn key(n: u32) -> PipelineCacheKey {
    let mut shader = [0u8; 32];
    shader[..4].copy_from_slice(&n.to_le_bytes());
    PipelineCacheKey::new(shader, [3; 32], 8, [64, 1, 1], PipelineFeatureFlags::empty(), "vulkan")
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Op `i` of generation `generation`: which key and how many bytes. A pure
/// function, so the parent knows what the child was doing when it died.
fn op(generation: u64, i: u64) -> (u32, usize) {
    let h = splitmix(SEED ^ (generation << 32) ^ i);
    let key = (h % u64::from(KEYS)) as u32;
    // Mostly small, sometimes 256 KiB+, so kills land inside writes too.
    let len = if (h >> 8).is_multiple_of(16) {
        128 * 1024 + (h >> 16) as usize % 65_536
    } else {
        1 + (h >> 16) as usize % 16_000
    };
    (key, len)
}

/// The payload of op `(generation, i)`: names its key and op, then bytes
/// that differ for every op, so any mix-up or alteration shows.
fn payload(generation: u64, i: u64) -> Vec<u8> {
    let (k, len) = op(generation, i);
    let mut v = Vec::with_capacity(len.max(16));
    v.extend_from_slice(&k.to_le_bytes());
    v.extend_from_slice(&(generation as u32).to_le_bytes());
    v.extend_from_slice(&i.to_le_bytes());
    let mut x = splitmix(generation.wrapping_mul(1_000_003) ^ i);
    while v.len() < len {
        x = splitmix(x);
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len.max(16));
    v
}

fn temp_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(shards) = std::fs::read_dir(root) else { return out };
    for shard in shards.flatten() {
        if let Ok(files) = std::fs::read_dir(shard.path()) {
            for f in files.flatten() {
                if f.file_name().to_string_lossy().ends_with(".tmp") {
                    out.push(f.path());
                }
            }
        }
    }
    out
}

/// Kills (SIGKILL) and reaps a child when dropped, so a failing test leaves
/// no process behind.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// This test binary, re-run to execute only the child-mode test `name`.
fn child_command(name: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("test binary path"));
    cmd.args(["--exact", name, "--nocapture", "--test-threads=1"]);
    cmd
}

fn wait_bounded(child: &mut Child, within: Duration, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "{what} did not finish within {within:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

// -------------------------------------------------------- SIGKILL, 200 times

/// Child mode of [`sigkill_at_random_moments_never_tears_a_blob`]: writes and
/// flushes op after op until killed, acknowledging each on stdout. A no-op
/// when run as an ordinary test.
#[test]
fn crash_writer_child() {
    let Some(root) = std::env::var_os("CRASH_WRITER_ROOT") else { return };
    let generation = env_u64("CRASH_WRITER_GEN").expect("generation");
    let sync_every_put = env_u64("CRASH_WRITER_SYNC") == Some(1);
    let config = DiskStoreConfig { sync_every_put, ..DiskStoreConfig::default() };
    let store = DiskPipelineStore::open(PathBuf::from(root), config).expect("open");
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY").unwrap();
    out.flush().unwrap();
    for i in 0u64.. {
        let (k, _) = op(generation, i);
        let outcome = store.put(&key(k), Arc::from(payload(generation, i))).expect("put");
        assert!(outcome.is_stored());
        store.flush().expect("flush");
        writeln!(out, "ACK {i}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn sigkill_at_random_moments_never_tears_a_blob() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pipelines");
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    // key -> the (generation, op) whose payload it must hold.
    let mut latest: HashMap<u32, (u64, u64)> = HashMap::new();
    let mut expected_bytes: HashMap<u32, ((u64, u64), Vec<u8>)> = HashMap::new();
    let (mut acked, mut in_flight_landed, mut temps_cleaned, mut kills_with_temp) = (0u64, 0u64, 0u64, 0u64);
    let started = Instant::now();
    let (mut t_spawn, mut t_verify) = (Duration::ZERO, Duration::ZERO);
    for generation in 0..KILLS {
        let t0 = Instant::now();
        let sync = generation % 4 == 3;
        let mut child = Guard(
            child_command("crash_writer_child")
                .env("CRASH_WRITER_ROOT", &root)
                .env("CRASH_WRITER_GEN", generation.to_string())
                .env("CRASH_WRITER_SYNC", if sync { "1" } else { "0" })
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn writer"),
        );
        let mut lines = BufReader::new(child.0.stdout.take().unwrap());
        // Wait (bounded by the child's own life) for the store to be open,
        // so most kills land among the writes rather than at start-up.
        let mut line = String::new();
        loop {
            line.clear();
            let n = lines.read_line(&mut line).expect("read child");
            assert!(n > 0, "writer {generation} exited before it was ready");
            assert!(!line.starts_with("ACK"), "writer {generation}: READY missed");
            // libtest prints `test crash_writer_child ... ` before it.
            if line.trim_end().ends_with("READY") {
                break;
            }
        }
        t_spawn += t0.elapsed();
        // The fault: SIGKILL after a seeded random delay (0-25 ms). This
        // sleep is the injected timing, not a wait for anything.
        std::thread::sleep(Duration::from_micros(rng.random_range(0..25_000)));
        child.0.kill().expect("SIGKILL");
        let status = wait_bounded(&mut child.0, Duration::from_secs(10), "killed writer");
        assert!(!status.success(), "the writer was killed, not finished");
        let mut rest = String::new();
        lines.read_to_string(&mut rest).expect("drain");
        let acks: Vec<u64> = rest.lines().filter_map(|l| l.strip_prefix("ACK ")?.parse().ok()).collect();
        for (expected, &got) in acks.iter().enumerate() {
            assert_eq!(got, expected as u64, "acks are in order");
        }
        let n = acks.len() as u64;
        acked += n;
        for i in 0..n {
            latest.insert(op(generation, i).0, (generation, i));
        }
        // The expected bytes of every key, rebuilt only where they changed.
        for (&k, &(g, i)) in &latest {
            if expected_bytes.get(&k).is_none_or(|(gi, _)| *gi != (g, i)) {
                expected_bytes.insert(k, ((g, i), payload(g, i)));
            }
        }
        // Op n may have been written (killed after its flush, before its
        // ack), be half written, or not started.
        let in_flight = (op(generation, n).0, (generation, n));

        let t1 = Instant::now();
        let leftover = temp_files(&root).len() as u64;
        kills_with_temp += u64::from(leftover > 0);
        let config = DiskStoreConfig { stale_temp_secs: 0, ..DiskStoreConfig::default() };
        let store = DiskPipelineStore::open(&root, config).expect("reopen after kill");
        assert_eq!(store.stale_temps_removed(), leftover, "every leftover temp file is removed at open");
        temps_cleaned += store.stale_temps_removed();
        assert!(temp_files(&root).is_empty(), "temp files survive reopen: {:?}", temp_files(&root));
        for k in 0..KEYS {
            let got = store.get(&key(k)).expect("get after kill");
            let expected = expected_bytes.get(&k).map(|(_, b)| b);
            let flight = (in_flight.0 == k).then(|| payload(in_flight.1.0, in_flight.1.1));
            match got {
                None => assert!(
                    expected.is_none(),
                    "kill {generation}: key {k} lost its acknowledged blob {:?}",
                    latest.get(&k)
                ),
                Some(bytes) => {
                    if expected.is_some_and(|e| e[..] == bytes[..]) {
                        continue;
                    }
                    assert!(
                        Some(&*bytes) == flight.as_deref(),
                        "kill {generation}: key {k} returned {} bytes that no put of it wrote",
                        bytes.len()
                    );
                    latest.insert(k, in_flight.1);
                    in_flight_landed += 1;
                }
            }
        }
        assert_eq!(store.stats().corrupt, 0, "kill {generation}: a torn or altered file was found at a blob path");
        t_verify += t1.elapsed();
    }
    let elapsed = started.elapsed();
    eprintln!(
        "crash_disk: {KILLS} SIGKILLs survived in {elapsed:.1?}: {acked} acknowledged blobs all intact, \
         {in_flight_landed} in-flight puts landed whole, {kills_with_temp} kills left temp files \
         ({temps_cleaned} removed at reopen), 0 corrupt (start-up {t_spawn:.1?}, verification {t_verify:.1?})"
    );
    assert!(acked > KILLS, "the writers made progress ({acked} acks)");
    assert!(kills_with_temp > 0, "some kills landed inside a write (else the test proves little)");
}

// ------------------------------------------------- several processes at once

const MIX_KEYS: u32 = 12;

fn mix_payload(k: u32, writer: u32, seq: u32) -> Vec<u8> {
    let len = 16 + (splitmix(u64::from(k) << 40 | u64::from(writer) << 20 | u64::from(seq)) % 40_000) as usize;
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&k.to_le_bytes());
    v.extend_from_slice(&writer.to_le_bytes());
    v.extend_from_slice(&seq.to_le_bytes());
    v.extend_from_slice(&(len as u32).to_le_bytes());
    let fill = (k as u8).wrapping_mul(31) ^ (writer as u8).wrapping_mul(7) ^ seq as u8;
    v.resize(len, fill);
    v
}

/// A blob read for key `k` must be exactly what some writer wrote for it.
fn check_mix_blob(k: u32, bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < 16 {
        return Err(format!("key {k}: {} bytes", bytes.len()));
    }
    let field = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap());
    let (bk, writer, seq) = (field(0), field(4), field(8));
    if bk != k {
        return Err(format!("key {k} served key {bk}'s blob"));
    }
    if mix_payload(k, writer, seq) != bytes {
        return Err(format!("key {k}: blob of writer {writer} op {seq} altered or torn"));
    }
    Ok(())
}

/// Child mode of [`several_processes_share_one_store_without_corruption`].
#[test]
fn mix_child() {
    let Some(root) = std::env::var_os("CRASH_MIX_ROOT") else { return };
    let writer = env_u64("CRASH_MIX_WRITER").expect("writer") as u32;
    let ops = env_u64("CRASH_MIX_OPS").expect("ops") as u32;
    let store = DiskPipelineStore::open(PathBuf::from(root), DiskStoreConfig::default()).expect("open");
    let mut rng = ChaCha8Rng::seed_from_u64(SEED ^ u64::from(writer));
    let (mut reads, mut found) = (0u64, 0u64);
    for seq in 0..ops {
        let k = rng.random_range(0..MIX_KEYS);
        match rng.random_range(0..10) {
            // Writer 0 only reads.
            0..=3 if writer != 0 => {
                store.put(&key(k), Arc::from(mix_payload(k, writer, seq))).expect("put");
            }
            4 if writer != 0 => {
                store.remove(&key(k)).expect("remove");
            }
            5 => store.flush().expect("flush"),
            _ => {
                reads += 1;
                if let Some(b) = store.get(&key(k)).expect("get") {
                    found += 1;
                    check_mix_blob(k, &b).unwrap();
                }
            }
        }
    }
    store.flush().expect("flush");
    assert_eq!(store.stats().corrupt, 0, "writer {writer} found a corrupt blob");
    println!("MIX {writer} reads {reads} found {found}");
}

#[test]
fn several_processes_share_one_store_without_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pipelines");
    let children: Vec<Guard> = (0..4u32)
        .map(|w| {
            Guard(
                child_command("mix_child")
                    .env("CRASH_MIX_ROOT", &root)
                    .env("CRASH_MIX_WRITER", w.to_string())
                    .env("CRASH_MIX_OPS", "1500")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawn"),
            )
        })
        .collect();
    let mut found = 0u64;
    for (w, mut c) in children.into_iter().enumerate() {
        let status = wait_bounded(&mut c.0, Duration::from_secs(60), "a sharing process");
        let mut out = String::new();
        let mut err = String::new();
        c.0.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        c.0.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        assert!(status.success(), "process {w} failed:\n{out}\n{err}");
        // libtest prints `test mix_child ... ` before the child's line.
        let line = out.lines().find_map(|l| l.split_once("MIX ")).expect("summary line").1;
        found += line.rsplit(' ').next().unwrap().trim().parse::<u64>().unwrap();
    }
    assert!(found > 100, "readers saw blobs ({found})");
    let store = DiskPipelineStore::open(&root, DiskStoreConfig::default()).unwrap();
    for k in 0..MIX_KEYS {
        if let Some(b) = store.get(&key(k)).unwrap() {
            check_mix_blob(k, &b).unwrap();
        }
    }
    assert_eq!(store.stats().corrupt, 0);
    assert!(temp_files(&root).is_empty(), "live writers leave no temp file behind");
}

// ----------------------------------------------------------------- full disk

/// Child mode of the full-disk tests: fills the store at `CRASH_FULL_ROOT`
/// until writes fail, checking after every put that nothing partial is
/// visible, then frees space and writes again.
#[test]
fn full_disk_child() {
    let Some(root) = std::env::var_os("CRASH_FULL_ROOT") else { return };
    let root = PathBuf::from(root);
    let sync_every_put = env_u64("CRASH_FULL_SYNC") == Some(1);
    let store =
        DiskPipelineStore::open(&root, DiskStoreConfig { sync_every_put, ..DiskStoreConfig::default() }).expect("open");
    let mut stored: HashMap<u32, Vec<u8>> = HashMap::new();
    let mut failures = 0u32;
    for i in 0..200u32 {
        let k = i % 40;
        // 20-60 KiB: the tmpfs fills within the first 40 keys.
        let len = 20_000 + (i as usize * 997) % 40_000;
        let mut x = splitmix(u64::from(i));
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x = splitmix(x);
                x as u8
            })
            .collect();
        match store.put(&key(k), Arc::from(bytes.clone())) {
            Ok(o) => {
                assert!(o.is_stored());
                stored.insert(k, bytes);
            }
            Err(Error::Io { op, source, .. }) => {
                failures += 1;
                assert!(
                    matches!(source.raw_os_error(), Some(28) | Some(27)),
                    "ENOSPC or EFBIG expected, got {op}: {source}"
                );
                // The failed put drops the key: never a partial entry, never
                // the bytes of an earlier put (the trait's contract).
                stored.remove(&k);
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
        assert!(temp_files(&root).is_empty(), "put {i} left a temp file");
        let _ = store.flush();
        for (&sk, sv) in &stored {
            let got = store.get(&key(sk)).expect("get");
            assert_eq!(got.as_deref(), Some(&sv[..]), "key {sk} after put {i}");
        }
        if let Some(got) = store.get(&key(k)).expect("get")
            && stored.get(&k).is_none_or(|v| v[..] != got[..])
        {
            panic!("key {k}: a failed put left {} bytes visible", got.len());
        }
    }
    assert!(failures > 0, "the disk never filled up");
    assert_eq!(store.stats().corrupt, 0);
    // Space freed: writes work again.
    for k in 0..40 {
        store.remove(&key(k)).expect("remove");
    }
    store.put(&key(1), Arc::from(vec![9u8; 1000])).expect("put after freeing space");
    assert_eq!(store.get(&key(1)).unwrap().as_deref(), Some(&[9u8; 1000][..]));
    println!("FULL failures {failures}");
}

fn run_full_disk(mut cmd: Command, what: &str) {
    let mut child = Guard(cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn"));
    let status = wait_bounded(&mut child.0, Duration::from_secs(60), what);
    let mut out = String::new();
    let mut err = String::new();
    child.0.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    child.0.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(status.success(), "{what} failed:\n{out}\n{err}");
    let line = out
        .lines()
        .find_map(|l| l.split_once("FULL "))
        .unwrap_or_else(|| panic!("{what}: no summary:\n{out}\n{err}"))
        .1;
    eprintln!("{what}: {line}");
}

/// ENOSPC from a real 256 KiB tmpfs, mounted in a private mount namespace
/// (`unshare`, util-linux) so it disappears with the child. Needs root (CI
/// runs as root); elsewhere it says so and checks EFBIG only.
#[test]
fn full_tmpfs_gives_errors_never_partial_entries() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let probe = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", "mount -t tmpfs -o size=256k tmpfs \"$0\""])
        .arg(&mnt)
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        eprintln!("full_tmpfs: cannot mount a tmpfs here (not root?); the EFBIG test covers write failures");
        return;
    }
    for sync in ["0", "1"] {
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg("mount -t tmpfs -o size=256k tmpfs \"$0\" && exec \"$@\"")
            .arg(&mnt)
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", "full_disk_child", "--nocapture", "--test-threads=1"])
            .env("CRASH_FULL_ROOT", mnt.join("pipelines"))
            .env("CRASH_FULL_SYNC", sync);
        run_full_disk(cmd, &format!("tmpfs ENOSPC (sync_every_put={sync})"));
    }
}

/// EFBIG from a file-size limit (`prlimit --fsize`, util-linux), with
/// SIGXFSZ ignored (inherited across exec) so the write fails instead of
/// the process dying. Works without privileges.
#[test]
fn file_size_limit_gives_errors_never_partial_entries() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("trap '' XFSZ; exec prlimit --fsize=40000 -- \"$@\"")
        .arg("sh")
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "full_disk_child", "--nocapture", "--test-threads=1"])
        .env("CRASH_FULL_ROOT", dir.path().join("pipelines"))
        .env("CRASH_FULL_SYNC", "0");
    run_full_disk(cmd, "RLIMIT_FSIZE EFBIG");
}

// ------------------------------------------------------ tuner decisions file

fn decision(i: u64) -> cachescope_core::tuner::Decision {
    cachescope_core::tuner::Decision {
        workgroup: [64 << (i % 3), 1, 1],
        min_ns: 1_000 + i,
        median_ns: 2_000 + i,
        samples: 24,
        confident: i.is_multiple_of(2),
    }
}

fn program(i: u64) -> cachescope_core::tuner::ProgramKey {
    cachescope_core::tuner::ProgramKey::new(b"crash-test", &[i])
}

/// Child mode of [`sigkill_during_tuner_saves_never_tears_the_file`]: adds a
/// decision and saves, op after op, acknowledging each save.
#[test]
fn tuner_writer_child() {
    let Some(path) = std::env::var_os("CRASH_TUNER_PATH") else { return };
    let start = env_u64("CRASH_TUNER_START").expect("start");
    let mut store = cachescope_core::tuner::TunerStore::open(PathBuf::from(path)).expect("open");
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY").unwrap();
    out.flush().unwrap();
    for i in start.. {
        store.insert("crash-adapter", program(i), decision(i));
        store.save().expect("save");
        writeln!(out, "ACK {i}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn sigkill_during_tuner_saves_never_tears_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tuner").join("decisions.toml");
    let mut rng = ChaCha8Rng::seed_from_u64(SEED ^ 0x70e);
    let mut saved = 0u64; // decisions 0..saved are acknowledged
    for kill in 0..40 {
        let mut child = Guard(
            child_command("tuner_writer_child")
                .env("CRASH_TUNER_PATH", &path)
                .env("CRASH_TUNER_START", saved.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn"),
        );
        let mut lines = BufReader::new(child.0.stdout.take().unwrap());
        let mut line = String::new();
        while !line.trim_end().ends_with("READY") {
            line.clear();
            assert!(lines.read_line(&mut line).expect("read") > 0, "tuner writer {kill} died before it was ready");
        }
        // Injected timing of the fault, not a wait.
        std::thread::sleep(Duration::from_micros(rng.random_range(0..20_000)));
        child.0.kill().unwrap();
        wait_bounded(&mut child.0, Duration::from_secs(10), "killed tuner writer");
        let mut rest = String::new();
        lines.read_to_string(&mut rest).unwrap();
        let acked = rest.lines().filter(|l| l.starts_with("ACK ")).count() as u64;
        saved += acked;
        // The file parses (never torn) and holds every acknowledged
        // decision, plus at most the one in flight.
        let store = cachescope_core::tuner::TunerStore::open(&path).expect("decisions file parses after SIGKILL");
        for i in 0..saved {
            assert_eq!(store.get("crash-adapter", &program(i)), Some(&decision(i)), "kill {kill}: decision {i} lost");
        }
        let n = store.len() as u64;
        assert!(n == saved || n == saved + 1, "kill {kill}: {n} decisions, {saved} acknowledged");
        saved = n;
    }
    assert!(saved > 40, "the writers made progress ({saved})");
    eprintln!("tuner: 40 SIGKILLs during saves, {saved} decisions all intact, file always parsed");
}
