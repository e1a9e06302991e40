//! Task tables, as `service ps` and `node ps` print them.

use serde_json::Value;
use swarm_model::Node;
use swarm_model::Service;
use swarm_model::Task;
use swarm_model::TaskState;
use swarm_model::Timestamp;

use super::CtlError;
use super::ListArgs;
use super::print_json;
use super::table;
use crate::client::ApiClient;
use crate::client::encode_query;

/// `filters={"key":{"v1":true,...}}`, encoded for a query string.
pub fn filters_query(key: &str, values: &[String]) -> String {
    let mut map = serde_json::Map::new();
    let inner: serde_json::Map<String, Value> = values.iter().map(|v| (v.clone(), Value::Bool(true))).collect();
    map.insert(key.to_string(), Value::Object(inner));
    encode_query(&Value::Object(map).to_string())
}

/// `5 seconds ago`, as docker prints times.
pub fn human_since(then: &Timestamp) -> String {
    let (Some(then), Some(now)) = (then.unix_nanos(), Timestamp::now().unix_nanos()) else {
        return String::new();
    };
    let secs = ((now - then).max(0) / 1_000_000_000) as u64;
    let text = match secs {
        0 => "Less than a second".to_string(),
        1 => "1 second".to_string(),
        s if s < 60 => format!("{s} seconds"),
        s if s < 120 => "About a minute".to_string(),
        s if s < 3600 => format!("{} minutes", s / 60),
        s if s < 7200 => "About an hour".to_string(),
        s if s < 48 * 3600 => format!("{} hours", s / 3600),
        s => format!("{} days", s / 86400),
    };
    format!("{text} ago")
}

pub async fn print_tasks(client: &ApiClient, mut tasks: Vec<Task>, list: &ListArgs) -> Result<(), CtlError> {
    if list.quiet {
        for t in &tasks {
            println!("{}", t.id);
        }
        return Ok(());
    }
    if list.format == "json" {
        return print_json(&tasks);
    }
    let services: Vec<Service> = client.get("/services").await?;
    let nodes: Vec<Node> = client.get("/nodes").await?;
    let svc_name = |id: &str| {
        services
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.spec.name.clone())
            .unwrap_or_else(|| id.to_string())
    };
    let node_name = |id: &str| {
        nodes
            .iter()
            .find(|n| n.id == id)
            .map(|n| {
                if n.spec.name.is_empty() {
                    n.description.hostname.clone()
                } else {
                    n.spec.name.clone()
                }
            })
            .unwrap_or_default()
    };
    // Group by slot (or node for global tasks), newest first within a group.
    let group_node = |t: &Task| if t.slot == 0 { t.node_id.clone() } else { String::new() };
    tasks.sort_by(|a, b| {
        (svc_name(&a.service_id), a.slot, group_node(a))
            .cmp(&(svc_name(&b.service_id), b.slot, group_node(b)))
            .then(b.created_at.cmp(&a.created_at))
    });
    let mut rows = Vec::new();
    let mut last_group: Option<(String, u64, String)> = None;
    for t in &tasks {
        let group = (t.service_id.clone(), t.slot, group_node(t));
        let name = t.display_name(&svc_name(&t.service_id));
        let name = if last_group.as_ref() == Some(&group) {
            format!(" \\_ {name}")
        } else {
            name
        };
        last_group = Some(group);
        let state = |s: TaskState| {
            serde_json::to_value(s)
                .ok()
                .and_then(|v| v.as_str().map(table::title))
                .unwrap_or_default()
        };
        let image = t
            .spec
            .container_spec
            .as_ref()
            .map(|c| c.image.split('@').next().unwrap_or_default().to_string())
            .unwrap_or_default();
        rows.push(vec![
            t.id.chars().take(12).collect(),
            name,
            image,
            node_name(&t.node_id),
            state(t.desired_state),
            format!("{} {}", state(t.status.state), human_since(&t.status.timestamp)),
            t.status.err.clone(),
            host_ports(&t.status.port_status),
        ]);
    }
    print!(
        "{}",
        table::render(
            &[
                "ID",
                "NAME",
                "IMAGE",
                "NODE",
                "DESIRED STATE",
                "CURRENT STATE",
                "ERROR",
                "PORTS"
            ],
            &rows
        )
    );
    Ok(())
}

/// The host-mode ports a task's node publishes, as `docker service ps` shows them.
fn host_ports(status: &swarm_model::PortStatus) -> String {
    status
        .ports
        .iter()
        .flatten()
        .map(|p| {
            let protocol = if p.protocol.is_empty() {
                "tcp"
            } else {
                p.protocol.as_str()
            };
            format!("*:{}->{}/{protocol}", p.published_port.unwrap_or(0), p.target_port)
        })
        .collect::<Vec<_>>()
        .join(",")
}
