//! Log template mining and comparison on generated data (the loghub samples are measured by
//! scripts/bench-logs, not tested here).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use medic_analysis::logs::mask::{MAX_TOKEN_BYTES, MAX_TOKENS, mask_into};
use medic_analysis::logs::{Miner, TemplateChange, TemplateId, WindowCounts, compare};

fn masked(message: &str) -> String {
    let mut out = String::new();
    mask_into(message, &mut out);
    out
}

#[test]
fn masks_values_and_keeps_words() {
    let cases = [
        (
            "PacketResponder 1 for block",
            "PacketResponder <*> for block",
        ),
        ("offset -42 and +7", "offset <*> and <*>"),
        ("took 0.25 of it", "took <*> of it"),
        ("pointer 0x7ffd5e8a", "pointer <*>"),
        ("commit 3f2a9b1c7d4e", "commit <*>"),
        ("from 10.251.73.220 ok", "from <*> ok"),
        ("src: /10.250.19.102:54106 dest:", "src: <*> dest:"),
        ("peer 10.0.0.1:8080 closed", "peer <*> closed"),
        ("peer fe80::1ff:fe23:4567:890a closed", "peer <*> closed"),
        ("peer [2001:db8::1]:443 closed", "peer <*> closed"),
        ("proxy.example.com:5070 open", "<*> open"),
        ("localhost:8080 up", "<*> up"),
        (
            "id 550e8400-e29b-41d4-a716-446655440000 done",
            "id <*> done",
        ),
        (
            "req-550e8400-e29b-41d4-a716-446655440000 done",
            "req-<*> done",
        ),
        ("file /var/log/app.log rotated", "file <*> rotated"),
        ("file C:\\logs\\app.log rotated", "file <*> rotated"),
        ("get https://example.com/a?b=1 failed", "get <*> failed"),
        ("at 2017-06-09T20:10:40Z began", "at <*> began"),
        ("lifetime 00:02 ended", "lifetime <*> ended"),
        ("took 10ms total", "took <*> total"),
        ("took 1.5s total", "took <*> total"),
        ("took 20 ms total", "took <*> total"),
        ("lifetime <1 sec", "lifetime <*>"),
        ("1190 bytes (1.16 KB) sent", "<*> sent"),
        ("size 384.0 B, free 317.5 KB)", "size <*>, free <*>)"),
        ("uid=0 euid=0 user=root", "uid=<*> euid=<*> user=root"),
        ("rhost=173.234.31.186 port", "rhost=<*> port"),
        ("blk_-6952295868487656571 gone", "blk_<*> gone"),
        ("rdd_42_7 found", "rdd_<*>_<*> found"),
        ("(TID 8). done", "(TID <*>). done"),
        ("[173.234.31.186] failed", "[<*>] failed"),
        ("host ec2-52-1-2-3.compute.amazonaws.com", "host <*>"),
        ("delete blk_1 blk_2 blk_3 now", "delete blk_<*> now"),
        ("ssh2 [preauth] Failed", "ssh2 [preauth] Failed"),
        (
            "org.apache.spark.Executor started",
            "org.apache.spark.Executor started",
        ),
        ("", ""),
    ];
    for (message, expected) in cases {
        assert_eq!(masked(message), expected, "masking {message:?}");
    }
}

#[test]
fn masking_bounds_tokens_and_their_length() {
    let long_token = "x".repeat(MAX_TOKEN_BYTES + 1);
    assert_eq!(masked(&format!("key {long_token} end")), "key <*> end");
    let many: Vec<String> = (0..MAX_TOKENS * 3)
        .map(|index| format!("w{index}"))
        .collect();
    let out = masked(&many.join(" "));
    assert_eq!(out.split(' ').count(), MAX_TOKENS);
    assert!(out.ends_with(" <*>"));
}

fn mine(lines: &[String]) -> (Miner, Vec<TemplateId>) {
    let mut miner = Miner::new();
    let ids = lines.iter().map(|line| miner.add(line)).collect();
    (miner, ids)
}

/// A deterministic mix of events with varying values, in a scrambled order.
fn generated(count: usize) -> Vec<String> {
    generated_with_events(count)
        .into_iter()
        .map(|(_, line)| line)
        .collect()
}

/// The lines and the event each was made from.
fn generated_with_events(count: usize) -> Vec<(u64, String)> {
    let users = ["alice", "bob", "carol", "dave", "erin"];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..count)
        .map(|index| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let value = state % 100_000;
            let user = users[(state % 5) as usize];
            let event = state % 6;
            let line = match event {
                0 => format!("Accepted password for {user} from 10.0.{}.{} port {value} ssh2", value % 256, index % 256),
                1 => format!("request {value} served in {}ms", value % 900),
                2 => format!("Block rdd_{value}_{} stored as bytes in memory (estimated size {}.0 B, free {}.5 MB)", index % 9, value % 999, value % 400),
                3 => format!("Block broadcast_{value} stored as values in memory (estimated size {}.0 B, free {}.5 MB)", value % 999, value % 400),
                4 => format!("connection from [2001:db8::{:x}]:{value} closed", value % 65536),
                _ => format!("job 550e8400-e29b-41d4-a716-{:012x} finished with status {}", value, value % 3),
            };
            (event, line)
        })
        .collect()
}

#[test]
fn the_same_input_gives_the_same_ids_and_patterns() {
    let lines = generated(5_000);
    let (first, first_ids) = mine(&lines);
    let (second, second_ids) = mine(&lines);
    assert_eq!(first_ids, second_ids);
    assert_eq!(first.len(), second.len());
    let patterns = |miner: &Miner| -> Vec<Option<String>> {
        first_ids
            .iter()
            .map(|id| miner.pattern(miner.canonical(*id)))
            .collect()
    };
    assert_eq!(patterns(&first), patterns(&second));
}

#[test]
fn generated_events_make_one_template_each() {
    let lines = generated(20_000);
    let (miner, ids) = mine(&lines);
    assert_eq!(
        miner.len(),
        6,
        "{:?}",
        miner.ids().map(|id| miner.pattern(id)).collect::<Vec<_>>()
    );
    let mut patterns: Vec<String> = miner.ids().filter_map(|id| miner.pattern(id)).collect();
    patterns.sort();
    assert_eq!(
        patterns,
        [
            "Accepted password for <*> from <*> port <*> ssh2",
            "Block broadcast_<*> stored as values in memory (estimated size <*>, free <*>)",
            "Block rdd_<*>_<*> stored as bytes in memory (estimated size <*>, free <*>)",
            "connection from <*> closed",
            "job <*> finished with status <*>",
            "request <*> served in <*>",
        ]
    );
    // Every id answered along the way still names a template, and the lines of one event end
    // under one template (and only they).
    let events: Vec<u64> = generated_with_events(20_000)
        .into_iter()
        .map(|(event, _)| event)
        .collect();
    let mut template_of_event = std::collections::BTreeMap::new();
    for (event, id) in events.iter().zip(&ids) {
        assert!(miner.pattern(*id).is_some());
        let template = *template_of_event
            .entry(*event)
            .or_insert(miner.canonical(*id));
        assert_eq!(template, miner.canonical(*id));
    }
    assert_eq!(template_of_event.len(), 6);
    let distinct: std::collections::BTreeSet<_> = template_of_event.values().collect();
    assert_eq!(distinct.len(), 6);
}

#[test]
fn a_position_generalises_at_its_third_word_and_ids_stay_valid() {
    let mut miner = Miner::new();
    let alice = miner.add("user alice logged in");
    assert_eq!(miner.pattern(alice).unwrap(), "user alice logged in");
    let bob = miner.add("user bob logged in");
    // Two words: possibly two events, kept apart for now.
    assert_ne!(miner.canonical(alice), miner.canonical(bob));
    let carol = miner.add("user carol logged in");
    // The third makes it a value: one template, under the oldest id.
    assert_eq!(carol, alice);
    assert_eq!(miner.canonical(bob), alice);
    assert_eq!(miner.pattern(bob).unwrap(), "user <*> logged in");
    assert_eq!(miner.len(), 1);
    assert_eq!(miner.add("user dave logged in"), alice);
}

#[test]
fn a_masked_value_generalises_at_once() {
    let mut miner = Miner::new();
    let first = miner.add("connected to db.internal now");
    let second = miner.add("connected to 10.0.0.7 now");
    assert_eq!(first, second);
    assert_eq!(miner.pattern(first).unwrap(), "connected to <*> now");
}

#[test]
fn two_words_stay_two_templates() {
    let mut miner = Miner::new();
    let mut https = Vec::new();
    let mut socks = Vec::new();
    for index in 0..200 {
        https.push(miner.add(&format!(
            "host{index}.example.com:443 open through proxy proxy.example.com:5070 HTTPS"
        )));
        if index % 50 == 0 {
            socks.push(miner.add(&format!(
                "host{index}.example.com:443 open through proxy proxy.example.com:5070 SOCKS5"
            )));
        }
    }
    let https_id = miner.canonical(https[0]);
    let socks_id = miner.canonical(socks[0]);
    assert_ne!(https_id, socks_id);
    assert!(https.iter().all(|id| miner.canonical(*id) == https_id));
    assert!(socks.iter().all(|id| miner.canonical(*id) == socks_id));
    assert_eq!(
        miner.pattern(https_id).unwrap(),
        "<*> open through proxy <*> HTTPS"
    );
}

#[test]
fn memory_is_bounded_by_templates_not_lines() {
    let mut miner = Miner::new();
    for index in 0..200_000u64 {
        miner.add(&format!(
            "worker {index} processed batch {} in {}ms",
            index * 7,
            index % 1000
        ));
        miner.add(&format!("cache miss for key user:{index}"));
    }
    assert_eq!(miner.len(), 2);
}

#[test]
fn hostile_messages_do_not_panic() {
    let mut miner = Miner::new();
    let huge = "a".repeat(10 << 20);
    let many_tokens = "x ".repeat(1 << 20);
    let messages = [
        "",
        " ",
        "\t\t",
        "<*>",
        "<*> <*> <*>",
        "=",
        "==== ====",
        "a=",
        "=b",
        "(((((",
        ")))))",
        "[::]:",
        "[",
        "-",
        "--1",
        "0x",
        "1e999999",
        "\u{0}\u{1}\u{7f}",
        "ÿ\u{fffd}\u{fffd} 12 é",
        "日本語 1 ログ",
        huge.as_str(),
        many_tokens.as_str(),
    ];
    for message in messages {
        let id = miner.add(message);
        let pattern = miner.pattern(id).unwrap();
        assert!(pattern.len() <= (MAX_TOKEN_BYTES + 1) * MAX_TOKENS);
    }
    assert_eq!(miner.pattern(TemplateId(u32::MAX)), None);
}

fn counts(ids: &[(TemplateId, u64)]) -> WindowCounts {
    let mut counts = WindowCounts::default();
    for (id, count) in ids {
        for _ in 0..*count {
            counts.add(*id);
        }
    }
    counts
}

#[test]
fn compare_orders_new_then_spiking_then_the_rest() {
    let mut miner = Miner::new();
    let steady = miner.add("heartbeat ok");
    let spike = miner.add("disk almost full");
    let mild = miner.add("cache evicted entries");
    let small_spike = miner.add("retrying request");
    let fresh = miner.add("segfault in worker");
    let fresh_many = miner.add("connection refused by upstream");
    let baseline = counts(&[(steady, 100), (spike, 5), (mild, 10), (small_spike, 1)]);
    let current = counts(&[
        (steady, 100),
        (spike, 50),
        (mild, 25),
        (small_spike, 9),
        (fresh, 1),
        (fresh_many, 7),
    ]);
    assert_eq!(current.total(), 192);
    assert_eq!(current.get(spike), 50);
    assert_eq!(current.get(TemplateId(999)), 0);
    let changes = compare(&miner, &current, &baseline, 10);
    let summary: Vec<(TemplateId, bool, bool)> = changes
        .iter()
        .map(|change| (change.id, change.new, change.spiking))
        .collect();
    assert_eq!(
        summary,
        [
            (fresh_many, true, false),
            (fresh, true, false),
            (spike, false, true),
            (steady, false, false),
            (mild, false, false),
            // 9 against 1 is a ratio of 9 but under the minimum count of 10.
            (small_spike, false, false),
        ]
    );
    assert_eq!(
        changes[2],
        TemplateChange {
            id: spike,
            pattern: "disk almost full".into(),
            count: 50,
            baseline: 5,
            new: false,
            spiking: true,
        }
    );
    assert_eq!(compare(&miner, &current, &baseline, 2).len(), 2);
    assert!(compare(&miner, &WindowCounts::default(), &baseline, 10).is_empty());
}

#[test]
fn compare_ranks_spikes_by_ratio() {
    let mut miner = Miner::new();
    let double = miner.add("alpha event");
    let tenfold = miner.add("beta event happened");
    let baseline = counts(&[(double, 10), (tenfold, 2)]);
    let current = counts(&[(double, 40), (tenfold, 20)]);
    let order: Vec<TemplateId> = compare(&miner, &current, &baseline, 10)
        .iter()
        .map(|change| change.id)
        .collect();
    assert_eq!(order, [tenfold, double]);
}

#[test]
fn compare_adds_up_ids_merged_since_they_were_counted() {
    let mut miner = Miner::new();
    let mut baseline = WindowCounts::default();
    baseline.add(miner.add("user alice logged in"));
    let mut current = WindowCounts::default();
    current.add(miner.add("user bob logged in"));
    current.add(miner.add("user carol logged in"));
    let changes = compare(&miner, &current, &baseline, 10);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].pattern, "user <*> logged in");
    assert_eq!(
        (changes[0].count, changes[0].baseline, changes[0].new),
        (2, 1, false)
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_messages_mine_deterministically(messages in proptest::collection::vec(".{0,80}", 0..40)) {
            let mut first = Miner::new();
            let mut second = Miner::new();
            for message in &messages {
                let id = first.add(message);
                prop_assert_eq!(id, second.add(message));
                prop_assert!(first.pattern(id).is_some());
            }
            prop_assert_eq!(first.len(), second.len());
            prop_assert!(first.len() <= messages.len());
        }

        #[test]
        fn masking_never_grows_a_message_much(message in "[ -~]{0,200}") {
            let out = masked(&message);
            prop_assert!(out.len() <= message.len() * 3 + 3);
        }
    }
}
