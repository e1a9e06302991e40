//! [`Committer`]: the one way anything on a manager writes to the replicated store. The Engine
//! API, the peer endpoints, the dispatcher and the leader's controllers all commit through it,
//! so none of them needs the others (or the manager as a whole) to write.

use std::sync::Arc;
use std::time::Duration;

use swarm_raft::ProposeError;
use swarm_raft::RaftNode;
use tokio::sync::watch;

use crate::store::Proposal;
use crate::store::Store;
use crate::store::StoreAction;
use crate::store::StoreError;
use crate::store::Transaction;
use crate::store::TxResults;

/// Largest number of transactions in one raft entry.
pub const MAX_TXS_PER_PROPOSAL: usize = 500;

/// Why a write did not happen, or may not have.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// Raft could not commit it: no leader, no quorum, a leader change.
    #[error(transparent)]
    Propose(#[from] ProposeError),
    /// The state machine refused the transaction (a name taken, a stale version).
    #[error(transparent)]
    Refused(#[from] StoreError),
    #[error("cannot encode the proposal: {0}")]
    Encode(std::io::Error),
    #[error("cannot decode the transaction results: {0}")]
    Decode(std::io::Error),
    #[error("the state machine returned {returned} results for {sent} transactions")]
    ResultCount { sent: usize, returned: usize },
}

/// Commits transactions through raft and hands back what the state machine said of each.
pub struct Committer {
    raft: Arc<RaftNode<Store>>,
}

impl Committer {
    pub fn new(raft: Arc<RaftNode<Store>>) -> Self {
        Self { raft }
    }

    /// Commits one transaction (forwarded to the leader if need be) and returns the raft index
    /// it was applied at; a refused transaction is [`CommitError::Refused`].
    pub async fn commit(&self, actions: Vec<StoreAction>) -> Result<u64, CommitError> {
        let (index, mut results) = self.commit_txs(vec![Transaction { actions }]).await?;
        match results.pop() {
            Some(Ok(())) => Ok(index),
            Some(Err(e)) => Err(CommitError::Refused(e)),
            None => Err(CommitError::ResultCount { sent: 1, returned: 0 }),
        }
    }

    /// Commits independent transactions in one raft entry (forwarded to the leader if need be).
    pub async fn commit_txs(&self, txs: Vec<Transaction>) -> Result<(u64, TxResults), CommitError> {
        self.propose(txs, false).await
    }

    /// Like [`Committer::commit_txs`], but only while this manager is the leader, never
    /// forwarded: what a leader decided must not be applied by a later leader.
    pub async fn propose_as_leader(&self, txs: Vec<Transaction>) -> Result<(u64, TxResults), CommitError> {
        self.propose(txs, true).await
    }

    async fn propose(&self, txs: Vec<Transaction>, leader_only: bool) -> Result<(u64, TxResults), CommitError> {
        let sent = txs.len();
        let bytes = Store::encode_proposal(&Proposal { txs }).map_err(CommitError::Encode)?;
        let proposed = if leader_only {
            self.raft.propose_as_leader(bytes).await?
        } else {
            self.raft.propose(bytes).await?
        };
        let results = Store::decode_results(&proposed.result).map_err(CommitError::Decode)?;
        if results.len() != sent {
            return Err(CommitError::ResultCount {
                sent,
                returned: results.len(),
            });
        }
        Ok((proposed.index, results))
    }

    /// Commits `txs` as leader in raft entries of at most [`MAX_TXS_PER_PROPOSAL`]
    /// transactions. The entries are proposed together, so raft appends (and fsyncs) them as
    /// one batch. Returns how many transactions were refused (`name` says whose, in the log);
    /// they are decided again on the next pass.
    pub async fn commit_chunked(&self, name: &str, mut txs: Vec<Transaction>) -> Result<usize, CommitError> {
        let mut chunks = Vec::new();
        while !txs.is_empty() {
            let rest = txs.split_off(txs.len().min(MAX_TXS_PER_PROPOSAL));
            chunks.push(std::mem::replace(&mut txs, rest));
        }
        let outcomes = futures_util::future::join_all(chunks.into_iter().map(|c| self.propose_as_leader(c))).await;
        let mut refused = 0;
        let mut failure = None;
        for outcome in outcomes {
            match outcome {
                Ok((_, results)) => {
                    for e in results.into_iter().filter_map(Result::err) {
                        refused += 1;
                        tracing::debug!(controller = name, error = %e, "transaction refused");
                    }
                }
                Err(e) => failure = Some(e),
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(refused),
        }
    }

    /// Waits until this leader has applied every entry in its log, so a write that failed
    /// but may still commit has either landed or is gone. False if it stopped leading (or
    /// `stop` turned true) first.
    pub async fn settled(&self, stop: &mut watch::Receiver<bool>) -> bool {
        loop {
            let st = self.raft.status();
            if !st.is_leader() {
                return false;
            }
            if st.applied >= st.last_log_index {
                return true;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = stop.wait_for(|s| *s) => return false,
            }
        }
    }
}
