//! Owners' delegations to gateways: a gateway acts for an owner only while
//! the owner's delegation to it lives, and the delegations are part of
//! the sealed, counter-bound state.

use std::sync::Arc;

use clemmys_proto::broker::{
    Admission, BrokerOp, BrokerReply, Policy, RegisteredKind, open_broker_reply,
    seal_broker_request_for,
};
use clemmys_proto::identity::ClientIdentity;
use clemmys_proto::{ClientId, Digest};
use clemmys_tee::sim::{SimPlatform, SimTee};
use clemmys_tee::{Role, Verifier, measurement, os_rng};
use clemmys_whisk::now_ms;

use crate::Broker;

struct Fixture {
    dir: tempfile::TempDir,
    platform: Arc<SimPlatform>,
}

impl Fixture {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
            platform: Arc::new(SimPlatform::generate()),
        }
    }

    fn open(&self) -> Broker {
        let tee = SimTee::with_counter_file(
            self.platform.clone(),
            &measurement::expected_digest(Role::KeyBroker),
            &self.dir.path().join("broker.counter"),
        )
        .expect("counter");
        let verifier = Verifier::new().trust_sim_platform(self.platform.public_key());
        Broker::open(
            &self.dir.path().join("broker.redb"),
            Arc::new(tee),
            verifier,
        )
        .expect("opens")
    }
}

fn ask(
    broker: &Broker,
    identity: &ClientIdentity,
    on_behalf_of: Option<ClientId>,
    op: BrokerOp,
) -> BrokerReply {
    let (request, key) = seal_broker_request_for(
        identity,
        &broker.identity().keys.kem,
        op,
        on_behalf_of,
        now_ms(),
        &mut os_rng(),
    )
    .expect("seals");
    let reply = broker.handle_client(&request).expect("answers");
    open_broker_reply(&reply, &key).expect("opens").reply
}

fn register(version: u64) -> BrokerOp {
    BrokerOp::Register {
        namespace: "ns".into(),
        name: "a".into(),
        version,
        code_digest: Digest::of(b"code"),
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

fn delegate(gateway: ClientId, expires_ms: u64) -> BrokerOp {
    BrokerOp::Delegate {
        gateway,
        measurement: measurement::expected(Role::Gateway),
        expires_ms,
    }
}

fn refused(reply: &BrokerReply) -> bool {
    matches!(reply, BrokerReply::Refused { .. })
}

#[test]
fn an_undelegated_gateway_cannot_register_or_describe_for_an_owner() {
    let fixture = Fixture::new();
    let broker = fixture.open();
    let owner = ClientIdentity::generate(&mut os_rng());
    let gateway = ClientIdentity::generate(&mut os_rng());
    assert!(refused(&ask(
        &broker,
        &gateway,
        Some(owner.id()),
        register(1)
    )));
    let BrokerReply::Action(_) = ask(&broker, &owner, None, register(1)) else {
        panic!("the owner registers");
    };
    let describe = BrokerOp::Describe {
        owner: owner.id(),
        namespace: "ns".into(),
        name: "a".into(),
    };
    assert!(refused(&ask(
        &broker,
        &gateway,
        Some(owner.id()),
        describe.clone()
    )));

    // Delegated: the gateway registers the owner's next version, as the
    // owner's.
    let BrokerReply::Delegated(delegation) = ask(
        &broker,
        &owner,
        None,
        delegate(gateway.id(), now_ms() + 60_000),
    ) else {
        panic!("the owner delegates");
    };
    assert_eq!(delegation.owner, owner.id());
    let BrokerReply::Action(registered) = ask(&broker, &gateway, Some(owner.id()), register(2))
    else {
        panic!("the delegate registers");
    };
    assert_eq!(registered.owner, owner.id());
    assert!(matches!(
        ask(&broker, &gateway, Some(owner.id()), describe.clone()),
        BrokerReply::Action(_)
    ));

    // A delegate cannot pass its delegation on.
    let third = ClientIdentity::generate(&mut os_rng());
    assert!(refused(&ask(
        &broker,
        &gateway,
        Some(owner.id()),
        delegate(third.id(), now_ms() + 60_000)
    )));

    // Revoked: refused again.
    assert!(matches!(
        ask(
            &broker,
            &owner,
            None,
            BrokerOp::Revoke {
                gateway: gateway.id()
            }
        ),
        BrokerReply::Revoked { .. }
    ));
    assert!(refused(&ask(&broker, &gateway, Some(owner.id()), describe)));
    assert!(refused(&ask(
        &broker,
        &gateway,
        Some(owner.id()),
        register(3)
    )));
}

#[test]
fn an_expired_delegation_is_refused_and_a_revocation_survives_a_restart() {
    let fixture = Fixture::new();
    let owner = ClientIdentity::generate(&mut os_rng());
    let gateway = ClientIdentity::generate(&mut os_rng());
    {
        let broker = fixture.open();
        ask(&broker, &owner, None, delegate(gateway.id(), now_ms() - 1));
        assert!(refused(&ask(
            &broker,
            &gateway,
            Some(owner.id()),
            register(1)
        )));
        ask(
            &broker,
            &owner,
            None,
            delegate(gateway.id(), now_ms() + 60_000),
        );
        assert!(matches!(
            ask(&broker, &gateway, Some(owner.id()), register(1)),
            BrokerReply::Action(_)
        ));
    }
    // The delegation is part of the sealed state.
    {
        let broker = fixture.open();
        assert!(matches!(
            ask(&broker, &gateway, Some(owner.id()), register(2)),
            BrokerReply::Action(_)
        ));
        ask(
            &broker,
            &owner,
            None,
            BrokerOp::Revoke {
                gateway: gateway.id(),
            },
        );
    }
    let broker = fixture.open();
    assert!(refused(&ask(
        &broker,
        &gateway,
        Some(owner.id()),
        register(3)
    )));
    // Nothing to revoke twice.
    assert!(refused(&ask(
        &broker,
        &owner,
        None,
        BrokerOp::Revoke {
            gateway: gateway.id()
        }
    )));
}

#[test]
fn an_enclave_admits_a_gateways_invocation_only_while_it_is_delegated() {
    admits_only_while_delegated(|n| Admission::Invocation { nonce: [n; 16] });
}

#[test]
fn an_enclave_admits_a_gateways_chain_steps_only_while_it_is_delegated() {
    // A sequence the gateway runs for the owner: each step is admitted
    // under the delegation, and none once it is revoked.
    admits_only_while_delegated(|n| Admission::ChainStep {
        chain_id: [n; 16],
        index: u64::from(n % 3),
    });
}

/// Admissions made with `admission(n)` (a fresh one for each `n`) for the
/// owner, then for a gateway before, during and after its delegation.
fn admits_only_while_delegated(admission: impl Fn(u8) -> Admission) {
    use clemmys_proto::broker::{AdmitRequest, KeyRequest, open_grant};
    use clemmys_proto::identity::EnclaveKeys;

    let fixture = Fixture::new();
    let broker = fixture.open();
    let owner = ClientIdentity::generate(&mut os_rng());
    let gateway = ClientIdentity::generate(&mut os_rng());
    let BrokerReply::Action(_) = ask(&broker, &owner, None, register(1)) else {
        panic!("the owner registers");
    };
    // An action runtime of this release gets the owner's action key.
    let enclave = EnclaveKeys::generate(&mut os_rng());
    let request = KeyRequest {
        evidence: fixture.platform.report(
            &measurement::expected_digest(Role::ActionRuntime),
            &enclave.public().report_data(),
        ),
        enclave: enclave.public(),
        owner: owner.id(),
        namespace: "ns".into(),
        name: "a".into(),
    };
    let sealed = broker.grant(&request).expect("granted");
    let grant =
        open_grant(&sealed, &request, &enclave, &broker.identity().keys.signing).expect("opens");
    let mut nonce = 0u8;
    let mut admit = |delegate: Option<ClientId>| {
        nonce += 1;
        let request = AdmitRequest::new(
            &grant.admission_key,
            grant.grant_id,
            "ns",
            "a",
            1,
            admission(nonce),
            // At the replay floor of a broker that just started.
            now_ms() + crate::MAX_CLOCK_SKEW_MS,
            &mut os_rng(),
        )
        .and_then(|request| request.for_delegate(&grant.admission_key, delegate))
        .expect("request");
        let reply = broker.admit(&request).expect("answers");
        reply
            .verify(&grant.admission_key, &request)
            .expect("authentic")
    };

    // The owner's own invocation, then the gateway's before any delegation.
    assert!(admit(None).is_ok());
    assert!(admit(Some(gateway.id())).is_err(), "admitted undelegated");
    ask(
        &broker,
        &owner,
        None,
        delegate(gateway.id(), now_ms() + 60_000),
    );
    assert!(admit(Some(gateway.id())).is_ok());
    // Another identity riding on the gateway's delegation is not admitted.
    let stranger = ClientIdentity::generate(&mut os_rng());
    assert!(admit(Some(stranger.id())).is_err());
    ask(
        &broker,
        &owner,
        None,
        BrokerOp::Revoke {
            gateway: gateway.id(),
        },
    );
    assert!(
        admit(Some(gateway.id())).is_err(),
        "admitted after revocation"
    );
}

#[test]
fn a_delegation_stamped_before_the_revocation_is_refused_also_after_a_restart() {
    let fixture = Fixture::new();
    let owner = ClientIdentity::generate(&mut os_rng());
    let gateway = ClientIdentity::generate(&mut os_rng());
    let delegate_at = |broker: &Broker, stamped_ms: u64| {
        let (request, key) = seal_broker_request_for(
            &owner,
            &broker.identity().keys.kem,
            BrokerOp::Delegate {
                gateway: gateway.id(),
                measurement: measurement::expected(Role::ActionRuntime),
                expires_ms: now_ms() + 3_600_000,
            },
            None,
            stamped_ms,
            &mut os_rng(),
        )
        .expect("seals");
        let reply = broker.handle_client(&request).expect("answers");
        open_broker_reply(&reply, &key).expect("opens").reply
    };
    let broker = fixture.open();
    let first = now_ms() - 2_000;
    assert!(matches!(
        delegate_at(&broker, first),
        BrokerReply::Delegated(_)
    ));
    assert!(matches!(
        ask(
            &broker,
            &owner,
            None,
            BrokerOp::Revoke {
                gateway: gateway.id()
            }
        ),
        BrokerReply::Revoked { .. }
    ));
    // A delegation stamped before the revocation (a new one, not a
    // replay: the nonce is fresh) is older than the owner's last word.
    assert!(matches!(
        delegate_at(&broker, first + 1),
        BrokerReply::Refused { .. }
    ));
    drop(broker);
    let broker = fixture.open();
    assert!(matches!(
        delegate_at(&broker, first + 1),
        BrokerReply::Refused { .. }
    ));
    assert!(matches!(
        ask(&broker, &gateway, Some(owner.id()), register(1)),
        BrokerReply::Refused { .. }
    ));
    // The owner's next delegation, stamped now, is accepted.
    assert!(matches!(
        delegate_at(&broker, now_ms()),
        BrokerReply::Delegated(_)
    ));
    assert!(matches!(
        ask(&broker, &gateway, Some(owner.id()), register(1)),
        BrokerReply::Action(_)
    ));
}
