//! Signed chain plans: what a confidential sequence runs, as its owner
//! decided it.
//!
//! The controller stores a sequence's components, and it is untrusted: a
//! client that built its [chain ticket](crate::chain::ChainTicket) from the
//! controller's list would faithfully sign whatever the provider put there
//! (a shorter list, another order, a repeated or a substituted step). So
//! the owner signs a [`ChainPlan`] when it creates or updates the sequence:
//! the sequence's namespace and name, a version that only grows, and the
//! ordered components, each `(owner, namespace, name)`. The signed plan is
//! stored with the sequence (the [`CHAIN_PLAN_ANNOTATION`], base64 of
//! [`SignedChainPlan::to_bytes`]); the controller needs no key to keep it.
//!
//! Before signing a ticket a client [verifies](SignedChainPlan::verify) the
//! plan: signed by an owner it trusts, for this sequence, not older than the
//! newest plan of it the client has seen; and it takes the steps from the
//! plan only. Each component's broker descriptor must then name the owner
//! the plan names ([`VerifiedChainPlan::check_owner`]).

use crate::broker::ActionDescriptor;
use crate::identity::{ClientIdentity, SIGNATURE_LEN};
use crate::wire::{Reader, Writer};
use crate::{ClientId, Digest, ProtoError};

/// The annotation of a confidential sequence that holds its signed plan
/// (base64 of [`SignedChainPlan::to_bytes`]).
pub const CHAIN_PLAN_ANNOTATION: &str = "chainPlan";

const FRAME: &str = "clemmys/chain-plan/v1";
const TRANSCRIPT: &str = "clemmys/chain-plan-sig/v1";
/// Most components a plan may name (a sequence has at most 50).
pub const MAX_PLAN_COMPONENTS: usize = 1024;

/// One step of a plan: an action, by its owner and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanComponent {
    /// The identity that registered the action with the broker.
    pub owner: ClientId,
    /// Namespace of the action.
    pub namespace: String,
    /// Name of the action.
    pub name: String,
}

impl PlanComponent {
    /// The fully qualified name, as an OpenWhisk sequence lists it.
    pub fn qualified(&self) -> String {
        format!("/{}/{}", self.namespace, self.name)
    }
}

/// A sequence as its owner defined it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainPlan {
    /// Who signs it.
    pub owner: ClientId,
    /// Namespace of the sequence.
    pub namespace: String,
    /// Name of the sequence.
    pub name: String,
    /// Grows with every plan of this sequence (the owner's clock in ms at
    /// signing, or one above the newest it has seen): an older plan
    /// restored by the provider is refused.
    pub version: u64,
    /// The steps, in order.
    pub components: Vec<PlanComponent>,
}

impl ChainPlan {
    fn transcript(&self) -> Vec<u8> {
        self.components
            .iter()
            .fold(self.write_header(Writer::new(TRANSCRIPT)), |w, c| {
                write_component(w, c)
            })
            .finish()
    }

    fn write_header(&self, writer: Writer) -> Writer {
        writer
            .bytes(self.owner.as_bytes())
            .str(&self.namespace)
            .str(&self.name)
            .u64(self.version)
            .u64(self.components.len() as u64)
    }

    /// Signs the plan with the owner's identity (whose id must be
    /// `self.owner` for the plan to verify).
    pub fn sign(self, identity: &ClientIdentity) -> SignedChainPlan {
        let signature = identity.sign(&self.transcript());
        SignedChainPlan {
            plan: self,
            signature,
        }
    }
}

fn write_component(writer: Writer, component: &PlanComponent) -> Writer {
    writer
        .bytes(component.owner.as_bytes())
        .str(&component.namespace)
        .str(&component.name)
}

/// A plan with its owner's signature, as stored with the sequence. Its
/// fields are not to be trusted before [`verify`](Self::verify).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedChainPlan {
    plan: ChainPlan,
    signature: [u8; SIGNATURE_LEN],
}

/// Why a sequence's plan was refused: each variant names what the provider
/// (or a stale copy) changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainPlanError {
    /// The sequence carries no signed plan (the annotation was removed).
    #[error("the sequence carries no signed chain plan (removed by the provider?)")]
    Missing,
    /// The annotation is not a signed plan.
    #[error("the sequence's chain plan is malformed: {0}")]
    Malformed(ProtoError),
    /// The signature does not verify (forged or altered plan).
    #[error("the chain plan's signature does not verify (forged or altered)")]
    BadSignature,
    /// Signed by an identity this client does not trust as an owner.
    #[error("the chain plan is signed by {0}, an owner this client does not trust")]
    UntrustedOwner(ClientId),
    /// The plan is another sequence's (copied from it).
    #[error("the chain plan was signed for sequence /{namespace}/{name}, not this one")]
    OtherSequence {
        /// The namespace it names.
        namespace: String,
        /// The sequence it names.
        name: String,
    },
    /// An older plan of this sequence than one already seen (restored).
    #[error("the chain plan is version {version}, older than version {newest} already seen")]
    RolledBack {
        /// The version presented.
        version: u64,
        /// The newest this client has seen.
        newest: u64,
    },
    /// A trusted owner registered another plan of this sequence with the
    /// key broker (another version, or other bytes): this one was stored
    /// but never registered, or copied from another deployment.
    #[error(
        "the chain plan (version {version}) is not the one registered with the key broker (version {registered}): stored without its registration, or copied from elsewhere"
    )]
    Unregistered {
        /// The version presented.
        version: u64,
        /// The version registered.
        registered: u64,
    },
    /// The key broker registers the name as an action: the sequence shown
    /// is one its owner replaced, put back.
    #[error(
        "the key broker registers this name as an action (version {registered}), not as the sequence the node shows (plan version {version}): a replaced sequence put back"
    )]
    ReplacedByAction {
        /// The plan's version.
        version: u64,
        /// The action's registered version.
        registered: u64,
    },
    /// The controller's component list is not the signed one (shortened,
    /// reordered, repeated or replaced steps).
    #[error("the sequence's components differ from its signed plan (changed by the provider)")]
    ComponentsDiffer,
    /// The broker's descriptor of component `index` names another owner
    /// than the plan.
    #[error("component {index} of the chain belongs to another owner than the plan names")]
    ComponentOwner {
        /// The component's index in the plan.
        index: usize,
    },
}

impl SignedChainPlan {
    /// The wire form, as the annotation holds it (base64).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.plan
            .components
            .iter()
            .fold(self.plan.write_header(Writer::new(FRAME)), |w, c| {
                write_component(w, c)
            })
            .bytes(&self.signature)
            .finish()
    }

    /// Parses the wire form; checks only its framing, not the signature
    /// (the controller can call it, holding no key).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ProtoError> {
        let mut reader = Reader::new(bytes, FRAME)?;
        let owner = ClientId(reader.array()?);
        let namespace = reader.str()?.to_owned();
        let name = reader.str()?.to_owned();
        let version = reader.u64()?;
        let count = usize::try_from(reader.u64()?)
            .ok()
            .filter(|count| *count <= MAX_PLAN_COMPONENTS)
            .ok_or(ProtoError::Malformed("too many chain plan components"))?;
        let mut components = Vec::with_capacity(count);
        for _ in 0..count {
            components.push(PlanComponent {
                owner: ClientId(reader.array()?),
                namespace: reader.str()?.to_owned(),
                name: reader.str()?.to_owned(),
            });
        }
        let signature = reader.array()?;
        reader.finish()?;
        Ok(Self {
            plan: ChainPlan {
                owner,
                namespace,
                name,
                version,
                components,
            },
            signature,
        })
    }

    /// The plan as signed, unverified (to show, or to find its version).
    pub fn unverified(&self) -> &ChainPlan {
        &self.plan
    }

    /// Verifies the plan for sequence `namespace/name`: its signature, that
    /// its signer is one of `trusted_owners`, that it names this sequence,
    /// and that its version is at least `newest_seen` (the newest version
    /// of this sequence's plan the client has seen, if any).
    pub fn verify(
        self,
        trusted_owners: &[ClientId],
        namespace: &str,
        name: &str,
        newest_seen: Option<u64>,
    ) -> Result<VerifiedChainPlan, ChainPlanError> {
        let plan = &self.plan;
        plan.owner
            .verify(&plan.transcript(), &self.signature, "chain plan")
            .map_err(|_| ChainPlanError::BadSignature)?;
        if !trusted_owners.contains(&plan.owner) {
            return Err(ChainPlanError::UntrustedOwner(plan.owner));
        }
        if plan.namespace != namespace || plan.name != name {
            return Err(ChainPlanError::OtherSequence {
                namespace: plan.namespace.clone(),
                name: plan.name.clone(),
            });
        }
        if let Some(newest) = newest_seen
            && plan.version < newest
        {
            return Err(ChainPlanError::RolledBack {
                version: plan.version,
                newest,
            });
        }
        if plan.components.is_empty() {
            return Err(ChainPlanError::Malformed(ProtoError::Malformed(
                "a chain plan without components",
            )));
        }
        Ok(VerifiedChainPlan(self.plan))
    }
}

/// A plan whose signature, signer, sequence and version verified: only
/// [`SignedChainPlan::verify`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedChainPlan(ChainPlan);

impl VerifiedChainPlan {
    /// The plan.
    pub fn plan(&self) -> &ChainPlan {
        &self.0
    }

    /// Checks this plan, whose wire form hashes to `plan_digest`, is the
    /// one `registered` (a trusted owner's registration of the name, the
    /// broker's answer, which the node can neither forge nor replay)
    /// names: a sequence registration of exactly its version and bytes. A
    /// registration's version as a mere floor let a plan the owner signed
    /// but never registered run, and a sequence the owner replaced by an
    /// action (registered below the plan's version) come back.
    pub fn check_registered(
        &self,
        plan_digest: &Digest,
        registered: &ActionDescriptor,
    ) -> Result<(), ChainPlanError> {
        let version = self.0.version;
        if registered.policy.kind.is_action() {
            return Err(ChainPlanError::ReplacedByAction {
                version,
                registered: registered.version,
            });
        }
        if registered.version != version || &registered.code_digest != plan_digest {
            return Err(ChainPlanError::Unregistered {
                version,
                registered: registered.version,
            });
        }
        Ok(())
    }

    /// The steps, in order.
    pub fn components(&self) -> &[PlanComponent] {
        &self.0.components
    }

    /// Checks that the controller lists exactly the plan's components, in
    /// its order (`listed`: fully qualified names).
    pub fn check_listed(&self, listed: &[String]) -> Result<(), ChainPlanError> {
        let same = listed.len() == self.0.components.len()
            && listed
                .iter()
                .zip(&self.0.components)
                .all(|(listed, planned)| *listed == planned.qualified());
        if same {
            Ok(())
        } else {
            Err(ChainPlanError::ComponentsDiffer)
        }
    }

    /// Checks that the broker's descriptor of component `index` names the
    /// owner the plan names.
    pub fn check_owner(&self, index: usize, owner: &ClientId) -> Result<(), ChainPlanError> {
        match self.0.components.get(index) {
            Some(component) if component.owner == *owner => Ok(()),
            _ => Err(ChainPlanError::ComponentOwner { index }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::tests::os_rng;

    fn component(owner: &ClientIdentity, name: &str) -> PlanComponent {
        PlanComponent {
            owner: owner.id(),
            namespace: "guest".into(),
            name: name.into(),
        }
    }

    fn plan(owner: &ClientIdentity, version: u64, steps: &[&str]) -> ChainPlan {
        ChainPlan {
            owner: owner.id(),
            namespace: "guest".into(),
            name: "pipe".into(),
            version,
            components: steps.iter().map(|s| component(owner, s)).collect(),
        }
    }

    fn listed(steps: &[&str]) -> Vec<String> {
        steps.iter().map(|s| format!("/guest/{s}")).collect()
    }

    /// A registration of `pipe` as the broker would describe it.
    fn registration(
        owner: &ClientIdentity,
        kind: crate::broker::RegisteredKind,
        version: u64,
        digest: Digest,
    ) -> ActionDescriptor {
        ActionDescriptor {
            namespace: "guest".into(),
            name: "pipe".into(),
            version,
            code_digest: digest,
            action_key: crate::suite::KemKeyPair::generate(&mut os_rng()).public(),
            owner: owner.id(),
            policy: crate::broker::Policy {
                allowed_measurements: Vec::new(),
                require_hardware: false,
                allowed_clients: Vec::new(),
                min_version: version,
                entry: "_start".into(),
                kind,
                limits: None,
            },
        }
    }

    #[test]
    fn only_the_registered_plan_passes_the_registration_check() {
        use crate::broker::RegisteredKind;
        let owner = ClientIdentity::generate(&mut os_rng());
        let signed = plan(&owner, 7, &["c1", "c2"]).sign(&owner);
        let digest = Digest::of(&signed.to_bytes());
        let verified = signed
            .verify(&[owner.id()], "guest", "pipe", None)
            .expect("verifies");
        let check = |kind, version, registered_digest| {
            verified.check_registered(
                &digest,
                &registration(&owner, kind, version, registered_digest),
            )
        };
        assert_eq!(check(RegisteredKind::Sequence, 7, digest), Ok(()));
        assert_eq!(
            check(RegisteredKind::Sequence, 8, digest),
            Err(ChainPlanError::Unregistered {
                version: 7,
                registered: 8
            })
        );
        assert_eq!(
            check(RegisteredKind::Sequence, 7, Digest::of(b"another plan")),
            Err(ChainPlanError::Unregistered {
                version: 7,
                registered: 7
            })
        );
        assert_eq!(
            check(RegisteredKind::Action, 7, digest),
            Err(ChainPlanError::ReplacedByAction {
                version: 7,
                registered: 7
            })
        );
    }

    #[test]
    fn a_signed_plan_round_trips_and_verifies_for_its_sequence() {
        let owner = ClientIdentity::generate(&mut os_rng());
        let signed = plan(&owner, 7, &["c1", "c2"]).sign(&owner);
        let parsed = SignedChainPlan::from_bytes(&signed.to_bytes()).expect("parses");
        assert_eq!(parsed, signed);
        let verified = parsed
            .verify(&[owner.id()], "guest", "pipe", Some(7))
            .expect("verifies");
        verified.check_listed(&listed(&["c1", "c2"])).expect("same");
        verified.check_owner(1, &owner.id()).expect("owner");
        assert_eq!(verified.plan().version, 7);
    }

    #[test]
    fn a_controller_list_other_than_the_plan_is_refused() {
        let owner = ClientIdentity::generate(&mut os_rng());
        let verified = plan(&owner, 1, &["c1", "c2"])
            .sign(&owner)
            .verify(&[owner.id()], "guest", "pipe", None)
            .expect("verifies");
        for changed in [
            &["c2"][..],
            &["c2", "c1"],
            &["c1", "c1"],
            &["c1", "c3"],
            &["c1", "c2", "c2"],
            &[],
        ] {
            assert_eq!(
                verified.check_listed(&listed(changed)),
                Err(ChainPlanError::ComponentsDiffer),
                "{changed:?}"
            );
        }
        let other = ClientIdentity::generate(&mut os_rng());
        assert_eq!(
            verified.check_owner(0, &other.id()),
            Err(ChainPlanError::ComponentOwner { index: 0 })
        );
        assert_eq!(
            verified.check_owner(2, &owner.id()),
            Err(ChainPlanError::ComponentOwner { index: 2 })
        );
    }

    #[test]
    fn forged_foreign_untrusted_and_older_plans_are_refused() {
        let owner = ClientIdentity::generate(&mut os_rng());
        let trusted = [owner.id()];
        let signed = plan(&owner, 5, &["c1", "c2"]).sign(&owner);

        // Any signed field changed: the signature fails.
        let mut shortened = signed.clone();
        shortened.plan.components.pop();
        assert_eq!(
            shortened.verify(&trusted, "guest", "pipe", None),
            Err(ChainPlanError::BadSignature)
        );
        let mut newer = signed.clone();
        newer.plan.version += 1;
        assert_eq!(
            newer.verify(&trusted, "guest", "pipe", None),
            Err(ChainPlanError::BadSignature)
        );
        // Signed by someone else, claiming the owner.
        let intruder = ClientIdentity::generate(&mut os_rng());
        let forged = plan(&owner, 5, &["c1"]).sign(&intruder);
        assert_eq!(
            forged.verify(&trusted, "guest", "pipe", None),
            Err(ChainPlanError::BadSignature)
        );
        // Signed by its own (untrusted) signer.
        let own = plan(&intruder, 5, &["c1"]).sign(&intruder);
        assert_eq!(
            own.verify(&trusted, "guest", "pipe", None),
            Err(ChainPlanError::UntrustedOwner(intruder.id()))
        );
        // Another sequence's plan.
        assert!(matches!(
            signed.clone().verify(&trusted, "guest", "other", None),
            Err(ChainPlanError::OtherSequence { name, .. }) if name == "pipe"
        ));
        assert!(matches!(
            signed.clone().verify(&trusted, "alice", "pipe", None),
            Err(ChainPlanError::OtherSequence { .. })
        ));
        // Older than the newest seen.
        assert_eq!(
            signed.clone().verify(&trusted, "guest", "pipe", Some(6)),
            Err(ChainPlanError::RolledBack {
                version: 5,
                newest: 6
            })
        );
        // An empty plan is no plan.
        let empty = plan(&owner, 5, &[]).sign(&owner);
        assert!(matches!(
            empty.verify(&trusted, "guest", "pipe", None),
            Err(ChainPlanError::Malformed(_))
        ));
    }

    #[test]
    fn malformed_bytes_are_refused() {
        let owner = ClientIdentity::generate(&mut os_rng());
        let bytes = plan(&owner, 1, &["c1"]).sign(&owner).to_bytes();
        for cut in [0, 1, 10, bytes.len() - 1] {
            assert!(SignedChainPlan::from_bytes(&bytes[..cut]).is_err(), "{cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(SignedChainPlan::from_bytes(&longer).is_err());
        let huge = Writer::new(FRAME)
            .bytes(owner.id().as_bytes())
            .str("guest")
            .str("pipe")
            .u64(1)
            .u64(u64::MAX)
            .finish();
        assert!(SignedChainPlan::from_bytes(&huge).is_err());
    }
}
