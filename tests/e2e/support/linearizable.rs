//! A linearizability checker for the fault suite's histories (issue 16), in the manner of
//! Knossos and Porcupine: Wing and Gong's search with Lowe's memoization, per object.
//!
//! A history is a list of operations, each with the time it was invoked, the time it returned
//! (none when its outcome is unknown: the client timed out or lost the connection) and what it
//! returned. The history is linearizable when every operation can be given one instant between
//! its invocation and its return at which it took effect, in an order that a sequential model
//! accepts. An operation with an unknown outcome may take effect at any instant after its
//! invocation, or never.

use std::collections::HashSet;
use std::fmt::Debug;
use std::hash::Hash;

/// A sequential specification: what one operation does to the state, given what it returned.
pub trait Model {
    type State: Clone + Eq + Hash + Debug;
    type Input: Debug;
    type Output: Debug;

    fn init(&self) -> Self::State;

    /// The state after `input` returned `output`, or `None` if that cannot happen in `state`.
    /// `output` is `None` for an operation whose outcome is unknown: any outcome goes.
    fn step(&self, state: &Self::State, input: &Self::Input, output: Option<&Self::Output>) -> Option<Self::State>;
}

/// One operation of a history. Times are from one monotonic clock.
#[derive(Debug, Clone)]
pub struct Operation<I, O> {
    pub invoked: u64,
    /// `None`: the outcome is unknown; the operation may have taken effect, or not.
    pub returned: Option<(u64, O)>,
    pub input: I,
}

/// Whether `history` is linearizable under `model`.
pub fn check<M: Model>(model: &M, history: &[Operation<M::Input, M::Output>]) -> bool {
    // Known operations must all be linearized; unknown ones may be left out.
    let n = history.len();
    assert!(
        n <= 128,
        "histories are checked per object and kept short (at most 128 operations)"
    );
    let returned_at = |i: usize| history[i].returned.as_ref().map(|(t, _)| *t).unwrap_or(u64::MAX);
    let required: u128 = (0..n)
        .filter(|&i| history[i].returned.is_some())
        .fold(0, |m, i| m | (1u128 << i));
    let mut seen: HashSet<(u128, M::State)> = HashSet::new();
    let mut stack: Vec<(u128, M::State)> = vec![(0, model.init())];
    while let Some((done, state)) = stack.pop() {
        if done & required == required {
            return true;
        }
        if !seen.insert((done, state.clone())) {
            continue;
        }
        // The earliest return among operations not yet linearized bounds which may go next:
        // an operation invoked after that return must come after that operation.
        let horizon = (0..n)
            .filter(|&i| done & (1u128 << i) == 0)
            .map(returned_at)
            .min()
            .unwrap_or(u64::MAX);
        for (i, op) in history.iter().enumerate() {
            if done & (1u128 << i) != 0 || op.invoked > horizon {
                continue;
            }
            let output = op.returned.as_ref().map(|(_, o)| o);
            if let Some(next) = model.step(&state, &op.input, output) {
                stack.push((done | (1u128 << i), next));
            }
            // An unknown operation may also never take effect: it is then dropped, so that it
            // no longer counts among the operations still to place.
            if op.returned.is_none() {
                stack.push((done | (1u128 << i), state.clone()));
            }
        }
    }
    false
}

/// The fault suite's model of one service: absent, or present with a shape.
pub struct ServiceModel;

/// What the suite's operations change of a service: its replica count and the generation its
/// task template was last updated to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    pub replicas: u64,
    pub generation: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceOp {
    Create {
        replicas: u64,
    },
    Scale {
        replicas: u64,
    },
    /// A rolling update of the task template to a new generation.
    Update {
        generation: u64,
    },
    Remove,
    /// An inspect: what it saw is its output.
    Read,
}

/// What an operation returned: `Ok` with what a read saw (`None`: no such service), or `Fail`
/// when the cluster answered with an error that says nothing was done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceResult {
    Ok(Option<Shape>),
    Fail,
}

impl Model for ServiceModel {
    type State = Option<Shape>;
    type Input = ServiceOp;
    type Output = ServiceResult;

    fn init(&self) -> Self::State {
        None
    }

    fn step(&self, state: &Self::State, input: &ServiceOp, output: Option<&ServiceResult>) -> Option<Self::State> {
        let effect = match (input, state) {
            (ServiceOp::Create { replicas }, None) => Some(Some(Shape {
                replicas: *replicas,
                generation: 0,
            })),
            (ServiceOp::Scale { replicas }, Some(s)) => Some(Some(Shape {
                replicas: *replicas,
                ..*s
            })),
            (ServiceOp::Update { generation }, Some(s)) => Some(Some(Shape {
                generation: *generation,
                ..*s
            })),
            (ServiceOp::Remove, Some(_)) => Some(None),
            (ServiceOp::Read, s) => Some(*s),
            // Creating what exists, or changing what does not, fails and changes nothing.
            _ => None,
        };
        match (output, effect) {
            (None, Some(next)) => Some(next),
            (None, None) => Some(*state),
            (Some(ServiceResult::Fail), None) => Some(*state),
            // A definite failure did nothing (and a failed read saw nothing).
            (Some(ServiceResult::Fail), Some(_)) => Some(*state),
            (Some(ServiceResult::Ok(seen)), Some(next)) => match input {
                ServiceOp::Read => (seen == state).then_some(next),
                _ => Some(next),
            },
            (Some(ServiceResult::Ok(_)), None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(
        invoked: u64,
        returned: Option<(u64, ServiceResult)>,
        input: ServiceOp,
    ) -> Operation<ServiceOp, ServiceResult> {
        Operation {
            invoked,
            returned,
            input,
        }
    }

    /// A return at `t` that saw `replicas` (None: no service) at generation 0.
    fn ok(t: u64, replicas: Option<u64>) -> Option<(u64, ServiceResult)> {
        let seen = replicas.map(|replicas| Shape {
            replicas,
            generation: 0,
        });
        Some((t, ServiceResult::Ok(seen)))
    }

    #[test]
    fn sequential_and_overlapping_histories_that_a_register_allows_pass() {
        let h = vec![
            op(0, ok(1, None), ServiceOp::Create { replicas: 1 }),
            op(2, ok(3, None), ServiceOp::Scale { replicas: 3 }),
            op(4, ok(5, Some(3)), ServiceOp::Read),
        ];
        assert!(check(&ServiceModel, &h));
        // A read overlapping a scale may see either value.
        let h = vec![
            op(0, ok(1, None), ServiceOp::Create { replicas: 1 }),
            op(2, ok(6, None), ServiceOp::Scale { replicas: 3 }),
            op(3, ok(4, Some(1)), ServiceOp::Read),
            op(5, ok(7, Some(3)), ServiceOp::Read),
        ];
        assert!(check(&ServiceModel, &h));
    }

    #[test]
    fn a_lost_acknowledged_write_or_a_stale_read_is_caught() {
        // The scale was acknowledged before the read began, yet the read saw the old value.
        let h = vec![
            op(0, ok(1, None), ServiceOp::Create { replicas: 1 }),
            op(2, ok(3, None), ServiceOp::Scale { replicas: 3 }),
            op(4, ok(5, Some(1)), ServiceOp::Read),
        ];
        assert!(!check(&ServiceModel, &h));
        // An acknowledged create that a later read does not find.
        let h = vec![
            op(0, ok(1, None), ServiceOp::Create { replicas: 2 }),
            op(2, ok(3, None), ServiceOp::Read),
        ];
        assert!(!check(&ServiceModel, &h));
    }

    #[test]
    fn failed_writes_never_appear_and_unknown_ones_may_go_either_way() {
        let failed = vec![
            op(0, Some((1, ServiceResult::Fail)), ServiceOp::Create { replicas: 2 }),
            op(2, ok(3, Some(2)), ServiceOp::Read),
        ];
        assert!(
            !check(&ServiceModel, &failed),
            "a write that definitely failed appeared"
        );
        for seen in [None, Some(2)] {
            let unknown = vec![
                op(0, None, ServiceOp::Create { replicas: 2 }),
                op(2, ok(3, seen), ServiceOp::Read),
            ];
            assert!(
                check(&ServiceModel, &unknown),
                "an unknown create may or may not have happened"
            );
        }
        // But not both: once seen, it cannot vanish without a remove.
        let h = vec![
            op(0, None, ServiceOp::Create { replicas: 2 }),
            op(2, ok(3, Some(2)), ServiceOp::Read),
            op(4, ok(5, None), ServiceOp::Read),
        ];
        assert!(!check(&ServiceModel, &h));
    }
}
