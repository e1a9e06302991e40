//! Leader duties: the controllers that run only on the raft leader, started when this manager
//! becomes leader (with a quorum) and stopped when it is not any more.

use std::sync::Arc;
use std::time::Duration;

use swarm_raft::RaftNode;
use tokio::sync::watch;

use crate::commit::Committer;
use crate::controller;
use crate::controller::Controller;
use crate::dispatcher::Dispatcher;
use crate::interest;
use crate::orchestrator::allocator;
use crate::orchestrator::constraint_enforcer;
use crate::orchestrator::global;
use crate::orchestrator::jobs;
use crate::orchestrator::reaper;
use crate::orchestrator::replicated;
use crate::orchestrator::restart;
use crate::orchestrator::update;
use crate::role_manager;
use crate::scheduler;
use crate::store::Store;

/// What the leader's duties read and write: each controller gets the handles it needs, not
/// the manager.
pub struct LeaderDuties {
    pub raft: Arc<RaftNode<Store>>,
    pub store: Arc<Store>,
    pub committer: Arc<Committer>,
    pub dispatcher: Arc<Dispatcher>,
}

impl LeaderDuties {
    async fn wait_leadership(&self, want: bool, shutdown: &mut watch::Receiver<bool>) -> bool {
        loop {
            if self.raft.leads_with_quorum() == want {
                return true;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = shutdown.wait_for(|s| *s) => return false,
            }
        }
    }

    /// Runs the duties during each leadership of this manager, until `shutdown`.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if !self.wait_leadership(true, &mut shutdown).await {
                return;
            }
            // Apply everything committed before this leadership, so no controller decides on a
            // view older than the log: an empty proposal commits only after all earlier entries.
            if let Err(e) = self.committer.propose_as_leader(Vec::new()).await {
                tracing::warn!(error = %e, "leadership barrier failed; waiting");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            tracing::info!("became leader: starting orchestration, scheduling and dispatching");
            let (stop_tx, stop) = watch::channel(false);
            let reap: controller::Decide = |s, _| reaper::decide(s);
            let ms = Duration::from_millis;
            let controller = |name, decide, wants, tick| Controller {
                name,
                decide,
                wants,
                due: None,
                tick,
            };
            let controllers = [
                controller("allocator", allocator::decide, interest::allocator, ms(1000)),
                controller("replicated", replicated::decide, interest::replicated, ms(1000)),
                controller("global", global::decide, interest::lifecycle_and_nodes, ms(1000)),
                controller("jobs", jobs::decide, interest::lifecycle_and_nodes, ms(1000)),
                controller(
                    "constraint-enforcer",
                    constraint_enforcer::decide,
                    interest::constraint_enforcer,
                    ms(1000),
                ),
                Controller {
                    due: Some(restart::next_due),
                    ..controller("restart", restart::decide, interest::lifecycle_and_nodes, ms(200))
                },
                controller("updater", update::decide, interest::updater, ms(200)),
                controller("scheduler", scheduler::decide, interest::scheduler, ms(1000)),
                controller("reaper", reap, interest::lifecycle_and_nodes, ms(1000)),
            ];
            let mut handles: Vec<_> = controllers
                .into_iter()
                .map(|c| {
                    tokio::spawn(controller::run(
                        c,
                        self.store.clone(),
                        self.committer.clone(),
                        stop.clone(),
                    ))
                })
                .collect();
            handles.push(tokio::spawn(self.dispatcher.clone().run_leader(stop.clone())));
            handles.push(tokio::spawn(role_manager::run(
                self.store.clone(),
                self.raft.clone(),
                stop.clone(),
            )));
            let still_running = self.wait_leadership(false, &mut shutdown).await;
            let _ = stop_tx.send(true);
            for mut h in handles {
                if tokio::time::timeout(Duration::from_secs(5), &mut h).await.is_err() {
                    h.abort();
                }
            }
            self.dispatcher.step_down();
            if !still_running {
                return;
            }
            tracing::info!("no longer leader: controllers stopped");
        }
    }
}
