//! Runs every fuzz oracle on stable Rust, as CI does: over its seeds, over
//! its valid object with every byte flipped (two ways), and over thousands
//! of deterministic random inputs and edits. An oracle panics when its
//! property breaks, so a passing run means none broke on these inputs.

use std::path::Path;

use chacha20::ChaCha20Rng;
use clemmys_fuzzing::input::{Edit, edits, raw};
use clemmys_fuzzing::{TARGETS, Target, target};
use rand_core::{Rng, SeedableRng};

const RANDOM_INPUTS: usize = 10_000;

fn seeds_are_handled(target: &Target) {
    for seed in target.seeds() {
        (target.oracle)(&seed);
    }
}

fn every_byte_flipped(target: &Target) {
    let valid = (target.valid)();
    for at in 0..valid.len() {
        let at = u16::try_from(at).expect("fixtures are under 64 KiB");
        for mask in [0x01, 0x80] {
            (target.oracle)(&edits(&[Edit::Xor { at, mask }]));
        }
    }
}

fn random_inputs(target: &Target, seed: u8) {
    let mut rng = ChaCha20Rng::from_seed([seed; 32]);
    let valid = (target.valid)();
    let len = u16::try_from(valid.len().max(1)).expect("fixtures are under 64 KiB");
    for _ in 0..RANDOM_INPUTS {
        let data = if rng.next_u32() % 3 == 0 {
            let mut bytes = vec![0u8; (rng.next_u32() % 300) as usize];
            rng.fill_bytes(&mut bytes);
            // Half of them start like the valid object, to get past framing.
            if rng.next_u32() % 2 == 0 {
                let keep = valid.len().min(bytes.len());
                bytes[..keep].copy_from_slice(&valid[..keep]);
            }
            raw(&bytes)
        } else {
            let count = 1 + rng.next_u32() % 4;
            let list: Vec<Edit> = (0..count)
                .map(|_| {
                    let at = (rng.next_u32() % u32::from(len)) as u16;
                    let value = (rng.next_u32() & 0xff) as u8;
                    match rng.next_u32() % 8 {
                        0 => Edit::Insert { at, value },
                        1 => Edit::Remove { at },
                        2 => Edit::Truncate { at },
                        _ => Edit::Xor {
                            at,
                            mask: value.max(1),
                        },
                    }
                })
                .collect();
            edits(&list)
        };
        (target.oracle)(&data);
    }
}

fn run(name: &str, seed: u8) {
    let target = target(name).expect("known target");
    seeds_are_handled(target);
    every_byte_flipped(target);
    random_inputs(target, seed);
}

#[test]
fn every_target_is_tested_here() {
    let names: Vec<&str> = TARGETS.iter().map(|target| target.name).collect();
    assert_eq!(
        names,
        [
            "wire",
            "invocation",
            "session",
            "session_answer",
            "sealed_code",
            "opened_code",
            "chain_hop",
            "chain_session_hop",
            "chain_ticket",
            "chain_plan",
            "answer",
            "evidence",
            "broker_request",
            "broker_reply",
            "grant",
            "key_request",
            "broker_identity",
            "admit_request",
            "admit_reply",
            "ratls_certificate",
            "credential_request",
            "action_put",
            "trigger_put",
            "web_request",
            "web_result",
            "package_put",
            "store_record"
        ],
        "add a test below for each new target"
    );
}

/// Every input kept in the repository's corpora (`fuzz/corpus/TARGET/`,
/// written by other processes: the seed generator and earlier fuzz runs)
/// still passes its oracle in this one. An oracle whose fixture differs
/// between processes fails here, as the RA-TLS one did.
#[test]
fn committed_corpora_pass_their_oracles() {
    let corpora = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    for target in TARGETS {
        let directory = corpora.join(target.name);
        let entries = std::fs::read_dir(&directory)
            .unwrap_or_else(|error| panic!("{}: {error}", directory.display()));
        let mut inputs = 0;
        for entry in entries {
            let path = entry.expect("a corpus entry").path();
            let input = std::fs::read(&path).expect("a corpus file");
            let passed = std::panic::catch_unwind(|| (target.oracle)(&input));
            assert!(passed.is_ok(), "{} fails its oracle", path.display());
            inputs += 1;
        }
        assert!(inputs > 0, "{} is empty", directory.display());
    }
}

#[test]
fn opened_code() {
    run("opened_code", 34);
}

#[test]
fn credential_request() {
    run("credential_request", 33);
}

#[test]
fn chain_plan() {
    run("chain_plan", 13);
}

#[test]
fn wire() {
    run("wire", 1);
}

#[test]
fn invocation() {
    run("invocation", 2);
}

#[test]
fn session() {
    run("session", 3);
}

#[test]
fn session_answer() {
    run("session_answer", 12);
}

#[test]
fn sealed_code() {
    run("sealed_code", 4);
}

#[test]
fn chain_hop() {
    run("chain_hop", 5);
}

#[test]
fn chain_session_hop() {
    run("chain_session_hop", 11);
}

#[test]
fn chain_ticket() {
    run("chain_ticket", 6);
}

#[test]
fn answer() {
    run("answer", 7);
}

#[test]
fn evidence() {
    run("evidence", 8);
}

#[test]
fn broker_request() {
    run("broker_request", 9);
}

#[test]
fn action_put() {
    run("action_put", 10);
}

#[test]
fn trigger_put() {
    run("trigger_put", 21);
}

#[test]
fn web_request() {
    run("web_request", 30);
}

#[test]
fn web_result() {
    run("web_result", 31);
}

#[test]
fn broker_reply() {
    run("broker_reply", 20);
}

#[test]
fn grant() {
    run("grant", 21);
}

#[test]
fn key_request() {
    run("key_request", 22);
}

#[test]
fn broker_identity() {
    run("broker_identity", 23);
}

#[test]
fn admit_request() {
    run("admit_request", 24);
}

#[test]
fn admit_reply() {
    run("admit_reply", 25);
}

#[test]
fn ratls_certificate() {
    run("ratls_certificate", 32);
}

#[test]
fn package_put() {
    run("package_put", 23);
}

#[test]
fn store_record() {
    run("store_record", 24);
}

#[test]
fn store_record_edits_start_from_a_real_record() {
    let (selector, record) = clemmys_fuzzing::oracles::STORE_RECORD
        .split_first()
        .expect("a selector byte");
    assert_eq!(selector % 6, 0, "the fixture selects an activation");
    let activation: clemmys_whisk::Activation =
        serde_json::from_slice(record).expect("the fixture is a stored activation");
    assert_eq!(activation.name, "hello");
}

#[test]
fn package_put_edits_start_from_a_binding() {
    let put: clemmys_whisk::PackagePut =
        serde_json::from_slice(clemmys_fuzzing::oracles::PACKAGE_PUT).expect("a package put");
    assert!(put.binding.is_some_and(|binding| !binding.is_empty()));
}
