//! Template mining alone (no I/O): lines per second for masking, for mining with a fresh
//! miner (every template and cache entry built along the way) and with a warm one. The lines
//! are generated: eight kinds of event with numbers, IPs, UUIDs, paths, durations, sizes and
//! user names that vary. Target: over 1,000,000 lines/s on one core (docs/notes/018).
//!
//! Run with `cargo bench -p medic-analysis --bench mining`; scripts/bench-logs measures the
//! whole `medic logs mine` against drain3 on the loghub samples.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "benchmark"
)]

use divan::counter::ItemsCount;
use medic_analysis::logs::Miner;
use medic_analysis::logs::mask::mask_into;

fn main() {
    divan::main();
}

const LINES: usize = 100_000;

fn lines() -> Vec<String> {
    let users = [
        "root", "admin", "oracle", "test", "guest", "deploy", "git", "ftp",
    ];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    (0..LINES)
        .map(|index| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let value = state % 1_000_000;
            let user = users[(state >> 20) as usize % users.len()];
            match state % 8 {
                0 => format!("Failed password for {user} from 173.234.{}.{} port {value} ssh2", value % 256, index % 256),
                1 => format!("Received block blk_-{value}{index} of size 67108864 from /10.251.{}.{}", value % 256, index % 256),
                2 => format!("proxy-{}.example.com:443 close, {value} bytes ({}.{} KB) sent, {} bytes received, lifetime 00:{:02}", value % 50, value / 1000, value % 10, value % 3000, value % 60),
                3 => format!("Finished task {}.0 in stage {}.0 (TID {index}). {value} bytes result sent to driver", value % 200, value % 30),
                4 => format!("request 550e8400-e29b-41d4-a716-{value:012x} GET /api/v1/orders/{value} took {}ms status 200", value % 900),
                5 => format!("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=112.95.{}.{} user={user}", value % 256, index % 256),
                6 => format!("Times: total = {}, boot = {}, init = {}, finish = {}", value % 100, value % 7, value % 50, value % 3),
                _ => format!("worker pool-{} thread {} picked job {value:x} from queue jobs.high", value % 4, index % 64),
            }
        })
        .collect()
}

#[divan::bench]
fn mask(bencher: divan::Bencher) {
    let lines = lines();
    let mut out = String::new();
    bencher
        .counter(ItemsCount::new(lines.len()))
        .bench_local(|| {
            let mut total = 0;
            for line in &lines {
                total += mask_into(line, &mut out);
            }
            total
        });
}

#[divan::bench]
fn mine_fresh_miner(bencher: divan::Bencher) {
    let lines = lines();
    bencher
        .counter(ItemsCount::new(lines.len()))
        .bench_local(|| {
            let mut miner = Miner::new();
            for line in &lines {
                divan::black_box(miner.add(line));
            }
            miner.len()
        });
}

#[divan::bench]
fn mine_warm_miner(bencher: divan::Bencher) {
    let lines = lines();
    let mut miner = Miner::new();
    for line in &lines {
        miner.add(line);
    }
    bencher
        .counter(ItemsCount::new(lines.len()))
        .bench_local(|| {
            for line in &lines {
                divan::black_box(miner.add(line));
            }
        });
}
