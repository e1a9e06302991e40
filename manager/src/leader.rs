//! Leader duties: the controllers that run only on the raft leader, started when this manager
//! becomes leader and stopped when it is not any more.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::controller;
use super::orchestrator::allocator;
use super::orchestrator::constraint_enforcer;
use super::orchestrator::global;
use super::orchestrator::jobs;
use super::orchestrator::reaper;
use super::orchestrator::replicated;
use super::orchestrator::restart;
use super::orchestrator::update;
use super::runtime::Manager;
use super::scheduler;

async fn wait_leadership(m: &Manager, want: bool, shutdown: &mut watch::Receiver<bool>) -> bool {
    loop {
        if m.raft.leads_with_quorum() == want {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = shutdown.wait_for(|s| *s) => return false,
        }
    }
}

pub async fn run(m: Arc<Manager>, mut shutdown: watch::Receiver<bool>) {
    loop {
        if !wait_leadership(&m, true, &mut shutdown).await {
            return;
        }
        // Apply everything committed before this leadership, so no controller decides on a
        // view older than the log: an empty proposal commits only after all earlier entries.
        if let Err(e) = m.commit_txs_as_leader(Vec::new()).await {
            tracing::warn!(error = %e.message, "leadership barrier failed; waiting");
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        tracing::info!("became leader: starting orchestration, scheduling and dispatching");
        let (stop_tx, stop) = watch::channel(false);
        let reap: controller::Decide = |s, _| reaper::decide(s);
        let controllers: [(&'static str, controller::Decide, u64); 9] = [
            ("allocator", allocator::decide, 1000),
            ("replicated", replicated::decide, 1000),
            ("global", global::decide, 1000),
            ("jobs", jobs::decide, 1000),
            ("constraint-enforcer", constraint_enforcer::decide, 1000),
            ("restart", restart::decide, 200),
            ("updater", update::decide, 200),
            ("scheduler", scheduler::decide, 1000),
            ("reaper", reap, 1000),
        ];
        let mut handles: Vec<_> = controllers
            .into_iter()
            .map(|(name, decide, tick)| {
                tokio::spawn(controller::run(
                    name,
                    m.clone(),
                    decide,
                    Duration::from_millis(tick),
                    stop.clone(),
                ))
            })
            .collect();
        handles.push(tokio::spawn(m.dispatcher.clone().run_leader(m.clone(), stop.clone())));
        handles.push(tokio::spawn(super::role_manager::run(m.clone(), stop.clone())));
        let still_running = wait_leadership(&m, false, &mut shutdown).await;
        let _ = stop_tx.send(true);
        for mut h in handles {
            if tokio::time::timeout(Duration::from_secs(5), &mut h).await.is_err() {
                h.abort();
            }
        }
        m.dispatcher.step_down();
        if !still_running {
            return;
        }
        tracing::info!("no longer leader: controllers stopped");
    }
}
