//! The client's check of a chain's answer, as pure functions: that every
//! step of the ticket that ran, ran in order, exactly once, as the
//! ticket's code, in an enclave the step's policy allows, on the previous
//! step's output, and that the answer is the last step's output.
//!
//! A first run's receipts are signed ([`ChainAnswer`] of
//! [`SignedReceipt`](crate::invoke::SignedReceipt)s): the caller checks
//! their signatures and evidence (which needs a TEE verifier), then
//! [`verify_chain_answer`] checks what they say. A chain-session run's
//! receipts are rebuilt from the ticket and the steps' traces and must
//! match the running MAC: [`verify_session_answer`] does both.

use serde_json::Value;

use crate::chain::{ChainAnswer, ChainKey, ChainStep};
use crate::chain_session::{SessionAnswer, StepTrace, rebuild_receipt};
use crate::invoke::Receipt;
use crate::{Digest, Measurement, ProtoError};

/// What the client expects of a chain run.
#[derive(Debug, Clone, Copy)]
pub struct ExpectedChain<'a> {
    /// The chain id of the ticket (for a session run, the run id).
    pub chain_id: [u8; 16],
    /// Digest of the client's input to step 0.
    pub input_hash: Digest,
    /// The ticket's steps, in order.
    pub steps: &'a [ChainStep],
    /// For each step (at least each that ran), the enclave measurements
    /// its policy allows.
    pub allowed_measurements: &'a [&'a [Measurement]],
    /// The component activation ids the sequence record lists (empty when
    /// the record lists none).
    pub component_ids: &'a [String],
}

/// Why a chain answer does not prove that the ticket ran: each variant
/// names what the provider changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainCheckError {
    /// A sealed part did not open or the receipts' MAC did not verify.
    #[error(transparent)]
    Tampered(#[from] ProtoError),
    /// More receipts than steps, or not one per step that ran.
    #[error("the chain's receipts do not match its steps")]
    ReceiptCount,
    /// Fewer steps ran than the ticket names, yet the chain succeeded.
    #[error("the chain stopped early without an error (truncated)")]
    Truncated,
    /// The sequence record lists other steps than ran.
    #[error("the sequence record lists other steps than ran")]
    RecordListsOtherSteps,
    /// A step's receipt is not a chain receipt.
    #[error("the receipt of step {index} is not a chain receipt")]
    NotAChainReceipt {
        /// The step.
        index: usize,
    },
    /// A receipt of another position or another chain.
    #[error("step {index} ran out of order or in another chain")]
    OutOfOrder {
        /// The step.
        index: usize,
    },
    /// A step ran another action, version or code than the ticket names.
    #[error("step {index} ran other code than the ticket names")]
    OtherCode {
        /// The step.
        index: usize,
    },
    /// A step ran in an enclave its policy does not allow.
    #[error("step {index} ran in an enclave the policy does not allow")]
    MeasurementNotAllowed {
        /// The step.
        index: usize,
    },
    /// A step ran on another input than its predecessor's output.
    #[error("step {index} ran on another input than its predecessor's output")]
    InputNotLinked {
        /// The step.
        index: usize,
    },
    /// A step's receipt names another activation than the record lists.
    #[error("the receipt of step {index} names another activation")]
    OtherActivation {
        /// The step.
        index: usize,
    },
    /// The answer is not the last step's output.
    #[error("the answer is not the last step's output")]
    AnswerNotLastOutput,
}

/// Checks a chain answer whose receipts' authenticity (signatures and
/// evidence, or MAC) is already checked.
pub fn verify_chain_answer(
    answer: &ChainAnswer<Receipt>,
    expected: &ExpectedChain<'_>,
) -> Result<(), ChainCheckError> {
    let ran = usize::try_from(answer.last_index)
        .unwrap_or(usize::MAX)
        .saturating_add(1);
    if answer.receipts.len() != ran || ran > expected.steps.len() {
        return Err(ChainCheckError::ReceiptCount);
    }
    if ran < expected.steps.len() && answer.status == clemmys_whisk::ActivationStatus::Success {
        return Err(ChainCheckError::Truncated);
    }
    if !expected.component_ids.is_empty() && expected.component_ids.len() != ran {
        return Err(ChainCheckError::RecordListsOtherSteps);
    }
    let mut expected_input = expected.input_hash;
    for (index, (receipt, step)) in answer.receipts.iter().zip(expected.steps).enumerate() {
        let position = receipt
            .chain
            .ok_or(ChainCheckError::NotAChainReceipt { index })?;
        if position.chain_id != expected.chain_id || position.index != index as u64 {
            return Err(ChainCheckError::OutOfOrder { index });
        }
        if receipt.namespace != step.namespace
            || receipt.action != step.action
            || receipt.version != step.version
            || receipt.code_digest != step.code_digest
            || receipt.entry != step.entry
        {
            return Err(ChainCheckError::OtherCode { index });
        }
        let allowed = expected
            .allowed_measurements
            .get(index)
            .is_some_and(|allowed| allowed.contains(&receipt.measurement));
        if !allowed {
            return Err(ChainCheckError::MeasurementNotAllowed { index });
        }
        if receipt.input_hash != expected_input {
            return Err(ChainCheckError::InputNotLinked { index });
        }
        if let Some(id) = expected.component_ids.get(index)
            && &receipt.activation_id != id
        {
            return Err(ChainCheckError::OtherActivation { index });
        }
        expected_input = receipt.output_hash;
    }
    let output = serde_json::to_vec(&answer.result)
        .map_err(|_| ProtoError::Malformed("chain answer result"))?;
    if Digest::of(&output) != expected_input {
        return Err(ChainCheckError::AnswerNotLastOutput);
    }
    Ok(())
}

/// The receipts of a session run's steps, rebuilt from the ticket, the
/// client's input, the steps' traces and the component activation ids of
/// the sequence record.
pub fn rebuild_session_receipts(
    traces: &[StepTrace],
    expected: &ExpectedChain<'_>,
) -> Result<Vec<Receipt>, ChainCheckError> {
    if traces.len() > expected.steps.len() || expected.component_ids.len() != traces.len() {
        return Err(ChainCheckError::RecordListsOtherSteps);
    }
    let mut input_hash = expected.input_hash;
    let mut receipts = Vec::with_capacity(traces.len());
    for (index, ((trace, step), id)) in traces
        .iter()
        .zip(expected.steps)
        .zip(expected.component_ids)
        .enumerate()
    {
        let receipt = rebuild_receipt(
            step,
            expected.chain_id,
            index as u64,
            id.clone(),
            input_hash,
            trace,
        );
        input_hash = receipt.output_hash;
        receipts.push(receipt);
    }
    Ok(receipts)
}

/// Checks an opened session run's answer under `run_key`: rebuilds its
/// receipts, checks them against the running MAC, then as
/// [`verify_chain_answer`] does. Answers the run's result with its receipts.
pub fn verify_session_answer(
    answer: SessionAnswer,
    run_key: &ChainKey,
    expected: &ExpectedChain<'_>,
) -> Result<ChainAnswer<Receipt>, ChainCheckError> {
    let receipts = rebuild_session_receipts(&answer.traces, expected)?;
    answer.receipts.verify(&receipts, run_key)?;
    let result: Value = serde_json::from_slice(&answer.result)
        .map_err(|_| ProtoError::Malformed("chain answer result"))?;
    let checked = ChainAnswer {
        status: answer.status,
        result,
        last_index: answer.last_index,
        receipts,
    };
    verify_chain_answer(&checked, expected)?;
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use clemmys_whisk::ActivationStatus;
    use serde_json::json;

    use super::*;
    use crate::KemPublicKey;
    use crate::chain_session::ReceiptMac;
    use crate::invoke::ChainPosition;

    const CHAIN: [u8; 16] = [4; 16];
    const GOOD: Measurement = Measurement::sim([5; 32]);

    fn steps() -> Vec<ChainStep> {
        (0..3u8)
            .map(|i| ChainStep {
                namespace: "guest".into(),
                action: format!("step{i}"),
                version: 1,
                code_digest: Digest::of(&[i]),
                entry: "_start".into(),
                action_key: KemPublicKey([i; 32]),
            })
            .collect()
    }

    fn ids() -> Vec<String> {
        (0..3).map(|i| format!("a{i}")).collect()
    }

    fn output(i: usize) -> Value {
        json!({ "step": i })
    }

    /// A run of all three steps as the enclaves report it.
    fn answer(steps: &[ChainStep]) -> ChainAnswer<Receipt> {
        let mut input = Digest::of(b"input");
        let receipts = steps
            .iter()
            .enumerate()
            .map(|(i, step)| {
                let out = Digest::of(&serde_json::to_vec(&output(i)).expect("json"));
                let receipt = Receipt {
                    activation_id: format!("a{i}"),
                    namespace: step.namespace.clone(),
                    action: step.action.clone(),
                    version: step.version,
                    code_digest: step.code_digest,
                    entry: step.entry.clone(),
                    measurement: GOOD,
                    input_hash: input,
                    output_hash: out,
                    nonce: CHAIN,
                    chain: Some(ChainPosition {
                        chain_id: CHAIN,
                        index: i as u64,
                    }),
                };
                input = out;
                receipt
            })
            .collect();
        ChainAnswer {
            status: ActivationStatus::Success,
            result: output(steps.len() - 1),
            last_index: steps.len() as u64 - 1,
            receipts,
        }
    }

    fn check(answer: &ChainAnswer<Receipt>, ids: &[String]) -> Result<(), ChainCheckError> {
        let steps = steps();
        let allowed = [&[GOOD][..], &[GOOD], &[GOOD]];
        verify_chain_answer(
            answer,
            &ExpectedChain {
                chain_id: CHAIN,
                input_hash: Digest::of(b"input"),
                steps: &steps,
                allowed_measurements: &allowed,
                component_ids: ids,
            },
        )
    }

    #[test]
    fn a_faithful_run_verifies() {
        check(&answer(&steps()), &ids()).expect("verifies");
        check(&answer(&steps()), &[]).expect("a record without component ids");
    }

    #[test]
    fn each_tampered_answer_is_refused_with_its_cause() {
        let good = answer(&steps());
        type Edit = fn(&mut ChainAnswer<Receipt>);
        let cases: [(Edit, ChainCheckError); 10] = [
            (
                |a| {
                    a.receipts.pop();
                },
                ChainCheckError::ReceiptCount,
            ),
            (
                |a| {
                    a.receipts.truncate(2);
                    a.last_index = 1;
                    a.result = output(1);
                },
                ChainCheckError::Truncated,
            ),
            (
                |a| a.receipts.swap(0, 1),
                ChainCheckError::OutOfOrder { index: 0 },
            ),
            (
                |a| a.receipts[1].chain = None,
                ChainCheckError::NotAChainReceipt { index: 1 },
            ),
            (
                |a| {
                    a.receipts[2].chain = Some(ChainPosition {
                        chain_id: [9; 16],
                        index: 2,
                    })
                },
                ChainCheckError::OutOfOrder { index: 2 },
            ),
            (
                |a| a.receipts[1].version = 2,
                ChainCheckError::OtherCode { index: 1 },
            ),
            (
                |a| a.receipts[2].measurement = Measurement::sim([6; 32]),
                ChainCheckError::MeasurementNotAllowed { index: 2 },
            ),
            (
                |a| a.receipts[1].input_hash = Digest::of(b"spliced"),
                ChainCheckError::InputNotLinked { index: 1 },
            ),
            (
                |a| a.receipts[0].activation_id = "elsewhere".into(),
                ChainCheckError::OtherActivation { index: 0 },
            ),
            (
                |a| a.result = json!({"forged": true}),
                ChainCheckError::AnswerNotLastOutput,
            ),
        ];
        for (edit, expected) in cases {
            let mut tampered = good.clone();
            edit(&mut tampered);
            assert_eq!(
                check(&tampered, &ids()),
                Err(expected.clone()),
                "{expected}"
            );
        }
        assert_eq!(
            check(&good, &ids()[..2]),
            Err(ChainCheckError::RecordListsOtherSteps)
        );
        // A failed step may stop the chain early.
        let mut stopped = good.clone();
        stopped.receipts.truncate(2);
        stopped.last_index = 1;
        stopped.result = output(1);
        stopped.status = ActivationStatus::ApplicationError;
        check(&stopped, &ids()[..2]).expect("stopped on an error");
    }

    fn session(answer: &ChainAnswer<Receipt>, key: &ChainKey) -> SessionAnswer {
        let mut mac = ReceiptMac::start();
        for receipt in &answer.receipts {
            mac = mac.extend(receipt, key).expect("mac");
        }
        SessionAnswer {
            status: answer.status,
            result: serde_json::to_vec(&answer.result).expect("json"),
            last_index: answer.last_index,
            traces: answer
                .receipts
                .iter()
                .map(|r| StepTrace {
                    measurement: r.measurement,
                    output_hash: r.output_hash,
                })
                .collect(),
            receipts: mac,
        }
    }

    #[test]
    fn a_session_run_verifies_only_with_its_running_mac() {
        let steps = steps();
        let allowed = [&[GOOD][..], &[GOOD], &[GOOD]];
        let ids = ids();
        let expected = ExpectedChain {
            chain_id: CHAIN,
            input_hash: Digest::of(b"input"),
            steps: &steps,
            allowed_measurements: &allowed,
            component_ids: &ids,
        };
        let key = ChainKey::from_bytes([7; 32]);
        let good = answer(&steps);
        let checked = verify_session_answer(session(&good, &key), &key, &expected).expect("ok");
        assert_eq!(checked, good);

        // Another key's MAC (another run), a trace changed, a step dropped.
        let other = ChainKey::from_bytes([8; 32]);
        assert!(matches!(
            verify_session_answer(session(&good, &other), &key, &expected),
            Err(ChainCheckError::Tampered(_))
        ));
        let mut traced = session(&good, &key);
        traced.traces[1].measurement = Measurement::sim([6; 32]);
        assert!(matches!(
            verify_session_answer(traced, &key, &expected),
            Err(ChainCheckError::Tampered(_))
        ));
        let mut dropped = session(&good, &key);
        dropped.traces.pop();
        assert_eq!(
            verify_session_answer(dropped, &key, &expected),
            Err(ChainCheckError::RecordListsOtherSteps)
        );
        // A MAC'd answer the policy refuses is still refused.
        let mut bad_enclave = good.clone();
        bad_enclave.receipts[0].measurement = Measurement::sim([6; 32]);
        assert_eq!(
            verify_session_answer(session(&bad_enclave, &key), &key, &expected),
            Err(ChainCheckError::MeasurementNotAllowed { index: 0 })
        );
    }
}
