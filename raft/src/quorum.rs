//! Pure decisions about membership changes: a change is allowed only if the cluster keeps a
//! quorum of reachable managers before, during and after it.

use std::collections::BTreeSet;

use crate::types::RaftId;

/// Why a membership change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuorumRisk {
    #[error(
        "the cluster has no quorum right now: only {reachable} of {voters} managers are reachable and {need} are needed; \
         bring managers back before changing membership"
    )]
    NoQuorumNow {
        reachable: usize,
        voters: usize,
        need: usize,
    },
    #[error(
        "adding a manager would risk quorum: {reachable} of {voters} managers are reachable, and with the new one \
         {total} managers need {need} reachable; bring the unreachable managers back first"
    )]
    AddWouldLoseQuorum {
        reachable: usize,
        voters: usize,
        total: usize,
        need: usize,
    },
    #[error(
        "removing this manager would lose quorum: {reachable} of the remaining {remaining} managers are reachable \
         and {need} are needed"
    )]
    RemoveWouldLoseQuorum {
        reachable: usize,
        remaining: usize,
        need: usize,
    },
    #[error("cannot remove the last manager: the cluster state would be lost")]
    LastManager,
}

/// Majority of `n` voters.
pub fn majority(n: usize) -> usize {
    n / 2 + 1
}

fn check_now(voters: &BTreeSet<RaftId>, healthy: &BTreeSet<RaftId>) -> Result<usize, QuorumRisk> {
    let reachable = voters.intersection(healthy).count();
    let need = majority(voters.len());
    if reachable < need {
        return Err(QuorumRisk::NoQuorumNow {
            reachable,
            voters: voters.len(),
            need,
        });
    }
    Ok(reachable)
}

/// Checks adding one caught-up manager to `voters`, given which voters are reachable.
pub fn check_add(voters: &BTreeSet<RaftId>, healthy: &BTreeSet<RaftId>) -> Result<(), QuorumRisk> {
    let reachable = check_now(voters, healthy)?;
    let total = voters.len() + 1;
    let need = majority(total);
    if reachable + 1 < need {
        return Err(QuorumRisk::AddWouldLoseQuorum {
            reachable,
            voters: voters.len(),
            total,
            need,
        });
    }
    Ok(())
}

/// Checks removing voter `id`, given which voters are reachable.
pub fn check_remove(voters: &BTreeSet<RaftId>, healthy: &BTreeSet<RaftId>, id: RaftId) -> Result<(), QuorumRisk> {
    if !voters.contains(&id) {
        return Ok(());
    }
    if voters.len() == 1 {
        return Err(QuorumRisk::LastManager);
    }
    check_now(voters, healthy)?;
    let remaining: BTreeSet<RaftId> = voters.iter().copied().filter(|v| *v != id).collect();
    let reachable = remaining.intersection(healthy).count();
    let need = majority(remaining.len());
    if reachable < need {
        return Err(QuorumRisk::RemoveWouldLoseQuorum {
            reachable,
            remaining: remaining.len(),
            need,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn set(ids: &[u64]) -> BTreeSet<u64> {
        ids.iter().copied().collect()
    }

    #[test]
    fn adding_to_a_healthy_single_manager_is_allowed() {
        assert_eq!(check_add(&set(&[1]), &set(&[1])), Ok(()));
    }

    #[test]
    fn adding_with_one_of_three_down_is_allowed_but_two_down_is_not() {
        assert_eq!(check_add(&set(&[1, 2, 3]), &set(&[1, 2])), Ok(()));
        let err = check_add(&set(&[1, 2, 3]), &set(&[1])).unwrap_err();
        assert!(matches!(err, QuorumRisk::NoQuorumNow { .. }), "{err}");
    }

    #[test]
    fn removing_a_healthy_manager_when_another_is_down_is_refused() {
        // 3 managers, 3 is down: removing 2 leaves {1, 3} with only 1 reachable of 2 needed.
        let err = check_remove(&set(&[1, 2, 3]), &set(&[1, 2]), 2).unwrap_err();
        assert!(err.to_string().contains("would lose quorum"), "{err}");
        // Removing the dead one is fine.
        assert_eq!(check_remove(&set(&[1, 2, 3]), &set(&[1, 2]), 3), Ok(()));
    }

    #[test]
    fn the_last_manager_cannot_be_removed() {
        assert_eq!(check_remove(&set(&[1]), &set(&[1]), 1), Err(QuorumRisk::LastManager));
    }

    proptest! {
        /// Whatever the cluster looks like, an allowed change leaves a reachable majority both in
        /// the old configuration (so it can commit) and in the new one (so it keeps working).
        #[test]
        fn allowed_changes_keep_a_reachable_majority(
            n in 1usize..8,
            down in proptest::collection::btree_set(0u64..8, 0..8),
            target in 0u64..8,
            add in any::<bool>(),
        ) {
            let voters: BTreeSet<u64> = (0..n as u64).collect();
            let healthy: BTreeSet<u64> = voters.difference(&down).copied().collect();
            let old_ok = healthy.len() >= majority(voters.len());
            if add {
                if check_add(&voters, &healthy).is_ok() {
                    prop_assert!(old_ok);
                    prop_assert!(healthy.len() + 1 >= majority(voters.len() + 1));
                }
            } else if check_remove(&voters, &healthy, target).is_ok() && voters.contains(&target) {
                prop_assert!(old_ok);
                let remaining: BTreeSet<u64> = voters.iter().copied().filter(|v| *v != target).collect();
                prop_assert!(!remaining.is_empty());
                prop_assert!(remaining.intersection(&healthy).count() >= majority(remaining.len()));
            }
        }
    }
}
