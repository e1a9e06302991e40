//! Log subscriptions on the leader, kept apart from sessions as SwarmKit keeps its log broker:
//! a subscription asks the nodes running some tasks for their output, and their lines go to
//! whoever reads the subscription until every node is done (or the reader goes away).

use std::collections::HashMap;
use std::collections::HashSet;
use std::sync::Mutex;

use swarm_model::new_id;
use swarm_protocol::dispatcher::LogBatch;
use swarm_protocol::dispatcher::LogLine;
use swarm_protocol::dispatcher::LogOptions;
use swarm_protocol::dispatcher::LogRequest;
use swarm_protocol::dispatcher::SessionMessage;
use swarm_sync::lock;
use tokio::sync::mpsc;

use super::DispatchError;

/// One subscription: lines from the nodes go to whoever reads `lines`.
struct LogSubscription {
    lines: mpsc::Sender<LogLine>,
    /// Nodes that have not said they are done, with the tasks each was asked for: a node may
    /// only send output of those.
    pending: HashMap<String, HashSet<String>>,
}

/// A node to ask for output: its ID, its session's message queue, and its tasks to read.
pub(super) type LogTarget = (String, mpsc::Sender<SessionMessage>, Vec<String>);

#[derive(Default)]
pub(super) struct LogBroker {
    subscriptions: Mutex<HashMap<String, LogSubscription>>,
}

impl LogBroker {
    /// Sends a log request down each target's session. Lines arrive on the returned channel
    /// until every target is done; with no targets it ends at once.
    pub(super) async fn subscribe(&self, targets: Vec<LogTarget>, options: LogOptions) -> mpsc::Receiver<LogLine> {
        let subscription = new_id();
        let (tx, rx) = mpsc::channel(256);
        if targets.is_empty() {
            return rx;
        }
        lock(&self.subscriptions).insert(
            subscription.clone(),
            LogSubscription {
                lines: tx,
                pending: targets
                    .iter()
                    .map(|(n, _, ids)| (n.clone(), ids.iter().cloned().collect()))
                    .collect(),
            },
        );
        for (node, extra, ids) in targets {
            let req = SessionMessage::Logs(LogRequest {
                subscription: subscription.clone(),
                tasks: ids,
                options: options.clone(),
            });
            if extra.send(req).await.is_err() {
                self.node_done(&subscription, &node);
            }
        }
        rx
    }

    /// Passes on the lines a node sent; [`DispatchError::SubscriptionEnded`] once nobody reads
    /// them, so the node stops.
    pub(super) async fn publish(&self, node_id: &str, batch: LogBatch) -> Result<(), DispatchError> {
        let tx = {
            let subs = lock(&self.subscriptions);
            let sub = subs.get(&batch.subscription).ok_or(DispatchError::SubscriptionEnded)?;
            let Some(asked) = sub.pending.get(node_id) else {
                return Err(DispatchError::SubscriptionEnded);
            };
            if let Some(line) = batch.lines.iter().find(|l| !asked.contains(&l.task_id)) {
                return Err(DispatchError::NotItsTask {
                    node_id: node_id.to_string(),
                    task_id: line.task_id.clone(),
                });
            }
            sub.lines.clone()
        };
        for line in batch.lines {
            if tx.send(line).await.is_err() {
                lock(&self.subscriptions).remove(&batch.subscription);
                return Err(DispatchError::SubscriptionEnded);
            }
        }
        if batch.done {
            self.node_done(&batch.subscription, node_id);
        }
        Ok(())
    }

    /// A node whose session ended sends no more lines: its subscriptions stop waiting for it.
    pub(super) fn node_gone(&self, node_id: &str) {
        lock(&self.subscriptions).retain(|_, sub| {
            sub.pending.remove(node_id);
            !sub.pending.is_empty()
        });
    }

    /// Ends every subscription: readers see their streams end.
    pub(super) fn clear(&self) {
        lock(&self.subscriptions).clear();
    }

    fn node_done(&self, subscription: &str, node_id: &str) {
        let mut subs = lock(&self.subscriptions);
        if let Some(sub) = subs.get_mut(subscription) {
            sub.pending.remove(node_id);
            if sub.pending.is_empty() {
                subs.remove(subscription);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use swarm_model::Timestamp;

    use super::*;

    fn line(task_id: &str) -> LogLine {
        LogLine {
            task_id: task_id.to_string(),
            stderr: false,
            timestamp: Timestamp::now(),
            data: b"hello\n".to_vec(),
        }
    }

    /// A node could publish lines under any task ID, so a compromised worker could pass off
    /// output as another node's task. It may only send output of the tasks it was asked for.
    #[tokio::test]
    async fn a_node_may_only_send_output_of_the_tasks_it_was_asked_for() {
        let broker = LogBroker::default();
        let (n1_session, mut n1_requests) = mpsc::channel(4);
        let (n2_session, _n2_requests) = mpsc::channel(4);
        let mut lines = broker
            .subscribe(
                vec![
                    ("n1".to_string(), n1_session, vec!["t1".to_string()]),
                    ("n2".to_string(), n2_session, vec!["t2".to_string()]),
                ],
                LogOptions::default(),
            )
            .await;
        let Some(SessionMessage::Logs(req)) = n1_requests.recv().await else {
            panic!("n1 was asked for its output");
        };
        let batch = |lines: Vec<LogLine>| LogBatch {
            session_id: "s".to_string(),
            subscription: req.subscription.clone(),
            lines,
            done: false,
        };
        let err = broker
            .publish("n1", batch(vec![line("t1"), line("t2")]))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "node n1 sent output of task t2, which this subscription did not ask it for"
        );
        broker.publish("n1", batch(vec![line("t1")])).await.unwrap();
        assert_eq!(lines.recv().await.unwrap().task_id, "t1");
        assert!(lines.try_recv().is_err(), "nothing of the refused batch got through");
    }
}
