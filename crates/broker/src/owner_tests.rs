//! The broker keys every registration by its owner, bounds how many one
//! identity may make, and rate-limits each identity's requests.

use std::sync::Arc;

use clemmys_proto::broker::{
    BrokerOp, BrokerReply, Policy, RegisteredKind, open_broker_reply, seal_broker_request,
};
use clemmys_proto::identity::ClientIdentity;
use clemmys_proto::refusal::Refusal;
use clemmys_proto::{ClientId, Digest};
use clemmys_tee::sim::{SimPlatform, SimTee};
use clemmys_tee::{Role, Verifier, measurement, os_rng};
use clemmys_whisk::now_ms;

use crate::Broker;

struct Fixture {
    broker: Broker,
    _dir: tempfile::TempDir,
}

fn broker() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let platform = Arc::new(SimPlatform::generate());
    let tee = Arc::new(SimTee::new(
        platform.clone(),
        &measurement::expected_digest(Role::KeyBroker),
    ));
    let verifier = Verifier::new().trust_sim_platform(platform.public_key());
    let broker = Broker::open(&dir.path().join("broker.redb"), tee, verifier).expect("opens");
    Fixture { broker, _dir: dir }
}

fn ask(broker: &Broker, identity: &ClientIdentity, op: BrokerOp) -> BrokerReply {
    let (request, key) = seal_broker_request(
        identity,
        &broker.identity().keys.kem,
        op,
        now_ms(),
        &mut os_rng(),
    )
    .expect("seals");
    let reply = broker.handle_client(&request).expect("answers");
    open_broker_reply(&reply, &key).expect("opens").reply
}

fn register(name: &str, version: u64) -> BrokerOp {
    BrokerOp::Register {
        namespace: "ns".into(),
        name: name.into(),
        version,
        code_digest: Digest::of(name.as_bytes()),
        policy: Policy {
            allowed_measurements: vec![measurement::expected(Role::ActionRuntime)],
            require_hardware: false,
            allowed_clients: Vec::new(),
            min_version: version,
            entry: clemmys_proto::code::DEFAULT_ENTRY.into(),
            kind: RegisteredKind::Action,
            limits: None,
        },
    }
}

fn describe(owner: ClientId, name: &str) -> BrokerOp {
    BrokerOp::Describe {
        owner,
        namespace: "ns".into(),
        name: name.into(),
    }
}

#[test]
fn two_identities_registering_one_name_get_two_actions() {
    let fixture = broker();
    let owner = ClientIdentity::generate(&mut os_rng());
    let squatter = ClientIdentity::generate(&mut os_rng());
    let BrokerReply::Action(squatted) = ask(&fixture.broker, &squatter, register("f", 5)) else {
        panic!("refused");
    };
    // The owner's first version is not blocked by the squatter's version 5.
    let BrokerReply::Action(owned) = ask(&fixture.broker, &owner, register("f", 1)) else {
        panic!("the squatter blocked the owner");
    };
    assert_eq!(owned.owner, owner.id());
    assert_ne!(owned.action_key, squatted.action_key);
    // Each describe answers the registration of the owner it names.
    let BrokerReply::Action(described) = ask(&fixture.broker, &owner, describe(owner.id(), "f"))
    else {
        panic!("refused");
    };
    assert_eq!((described.owner, described.version), (owner.id(), 1));
    // The squatter did not allow the owner: its action is not described to it.
    assert!(matches!(
        ask(&fixture.broker, &owner, describe(squatter.id(), "f")),
        BrokerReply::Refused { .. }
    ));
}

#[test]
fn registrations_per_identity_are_bounded() {
    let fixture = broker();
    let broker = fixture.broker.with_max_actions_per_owner(2);
    let filler = ClientIdentity::generate(&mut os_rng());
    for name in ["a", "b"] {
        assert!(matches!(
            ask(&broker, &filler, register(name, 1)),
            BrokerReply::Action(_)
        ));
    }
    let BrokerReply::Refused { reason, .. } = ask(&broker, &filler, register("c", 1)) else {
        panic!("a third action was registered");
    };
    assert!(
        reason.contains("registered 2 confidential actions"),
        "{reason}"
    );
    // Updating an existing action is not a new registration.
    assert!(matches!(
        ask(&broker, &filler, register("a", 2)),
        BrokerReply::Action(_)
    ));
    // Another identity is not affected.
    let other = ClientIdentity::generate(&mut os_rng());
    assert!(matches!(
        ask(&broker, &other, register("c", 1)),
        BrokerReply::Action(_)
    ));
}

#[test]
fn a_flooding_identity_is_throttled_and_others_are_served() {
    let fixture = broker();
    // No refill, so that a slow machine cannot make the test pass or fail.
    let broker = fixture.broker.with_request_rate(3, 0);
    let flooder = ClientIdentity::generate(&mut os_rng());
    // Not registered, said as such: the client's only reason to treat a
    // name as not confidential.
    let not_registered = |reply: BrokerReply| {
        matches!(
            reply,
            BrokerReply::Refused {
                refusal: Some(Refusal::UnknownAction),
                ..
            }
        )
    };
    for _ in 0..3 {
        assert!(not_registered(ask(
            &broker,
            &flooder,
            describe(flooder.id(), "none")
        )));
    }
    let throttled = ask(&broker, &flooder, describe(flooder.id(), "none"));
    assert!(
        matches!(
            &throttled,
            BrokerReply::Refused {
                refusal: Some(Refusal::Throttled),
                ..
            }
        ),
        "{throttled:?}"
    );
    let other = ClientIdentity::generate(&mut os_rng());
    assert!(not_registered(ask(
        &broker,
        &other,
        describe(other.id(), "none")
    )));
}

#[test]
fn a_sequence_registration_allows_no_enclave() {
    let fixture = broker();
    let owner = ClientIdentity::generate(&mut os_rng());
    let sequence = |version: u64, allowed_measurements| {
        let BrokerOp::Register {
            namespace,
            name,
            code_digest,
            policy,
            ..
        } = register("pipe", version)
        else {
            unreachable!("register makes a registration")
        };
        BrokerOp::Register {
            namespace,
            name,
            version,
            code_digest,
            policy: Policy {
                allowed_measurements,
                kind: RegisteredKind::Sequence,
                ..policy
            },
        }
    };
    // An enclave would receive the key of a sequence that allowed one.
    let BrokerReply::Refused { reason, .. } = ask(
        &fixture.broker,
        &owner,
        sequence(1, vec![measurement::expected(Role::ActionRuntime)]),
    ) else {
        panic!("a sequence was registered for an enclave");
    };
    assert!(reason.contains("allows no enclave measurement"), "{reason}");
    let BrokerReply::Action(registered) = ask(&fixture.broker, &owner, sequence(2, Vec::new()))
    else {
        panic!("refused");
    };
    assert_eq!(registered.policy.kind, RegisteredKind::Sequence);
    // Described as one, which is how a client that never ran it knows.
    let BrokerReply::Action(described) = ask(&fixture.broker, &owner, describe(owner.id(), "pipe"))
    else {
        panic!("refused");
    };
    assert_eq!(
        (described.policy.kind, described.version),
        (RegisteredKind::Sequence, 2)
    );
    // To any client: it names no secret, and a step's other owner or a
    // client allowed on a step later must learn it too.
    let stranger = ClientIdentity::generate(&mut os_rng());
    assert!(matches!(
        ask(&fixture.broker, &stranger, describe(owner.id(), "pipe")),
        BrokerReply::Action(described) if described.policy.kind == RegisteredKind::Sequence
    ));
}
