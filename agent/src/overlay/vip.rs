//! Virtual IPs, balanced inside each container's network namespace by nftables DNAT, where
//! Swarm uses IPVS. This machine kind's kernel has no IPVS and cannot load modules, but it
//! has `nf_tables` NAT. A connection to a VIP is sent round-robin to one of the service's
//! tasks in rotation; the container's conntrack keeps it there. When the rotation changes, the
//! table is replaced in one atomic `nft` transaction, so new connections never reach a task
//! that left it. A VIP with no task in rotation refuses connections at once instead of
//! letting them time out.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Stdio;

use swarm_protocol::dispatcher::ServiceRecord;
use tokio::io::AsyncWriteExt;

use super::OverlayError;

/// The nftables table the agent owns in each container.
pub const TABLE: &str = "swarm";

/// The `nft` script that sets a container's VIP table for the services on `networks`.
pub fn vip_script(records: &[ServiceRecord], networks: &[String]) -> String {
    let mut dnat = String::new();
    let mut empty: Vec<Ipv4Addr> = Vec::new();
    for r in records
        .iter()
        .filter(|r| !r.ingress && networks.contains(&r.network_id))
    {
        let Some(vip) = r.vip else { continue };
        match r.tasks.as_slice() {
            [] => empty.push(vip),
            [one] => dnat.push_str(&format!("    ip daddr {vip} dnat to {one}\n")),
            many => {
                let map: Vec<String> = many.iter().enumerate().map(|(i, a)| format!("{i} : {a}")).collect();
                dnat.push_str(&format!(
                    "    ip daddr {vip} dnat to numgen inc mod {} map {{ {} }}\n",
                    many.len(),
                    map.join(", ")
                ));
            }
        }
    }
    let mut script = format!("add table ip {TABLE}\ndelete table ip {TABLE}\ntable ip {TABLE} {{\n");
    script.push_str("  chain vips {\n    type nat hook output priority -100; policy accept;\n");
    script.push_str(&dnat);
    script.push_str("  }\n");
    if !empty.is_empty() {
        let list: Vec<String> = empty.iter().map(|a| a.to_string()).collect();
        script.push_str("  chain empty {\n    type filter hook output priority 0; policy accept;\n");
        script.push_str(&format!("    ip daddr {{ {} }} reject\n  }}\n", list.join(", ")));
    }
    script.push_str("}\n");
    script
}

/// Runs `script` with `nft` inside the network namespace at `netns`.
pub async fn apply_nft(netns: &Path, script: &str) -> Result<(), OverlayError> {
    let failed = |detail: String| OverlayError::Nft {
        netns: netns.display().to_string(),
        detail,
    };
    let mut child = tokio::process::Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(["nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(format!("cannot run nsenter and nft: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .await
            .map_err(|e| failed(format!("writing the rules: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| failed(format!("waiting for nft: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(failed(String::from_utf8_lossy(&out.stderr).trim().to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(network: &str, vip: Option<&str>, tasks: &[&str]) -> ServiceRecord {
        ServiceRecord {
            service_id: "s".to_string(),
            network_id: network.to_string(),
            ingress: network == "ingress",
            names: vec!["s".to_string()],
            vip: vip.and_then(|v| v.parse().ok()),
            tasks: tasks.iter().filter_map(|t| t.parse().ok()).collect(),
            proxied: Vec::new(),
            mesh_ports: Vec::new(),
        }
    }

    #[test]
    fn each_vip_of_the_containers_networks_is_balanced_or_refused() {
        let records = vec![
            record("back", Some("10.0.1.2"), &["10.0.1.3", "10.0.1.4"]),
            record("back", Some("10.0.1.9"), &["10.0.1.10"]),
            record("back", Some("10.0.1.20"), &[]),
            record("back", None, &["10.0.1.5"]),
            record("front", Some("10.0.2.2"), &["10.0.2.3"]),
            record("ingress", Some("10.0.0.2"), &["10.0.0.3"]),
        ];
        let script = vip_script(&records, &["back".to_string()]);
        assert_eq!(
            script,
            "add table ip swarm\ndelete table ip swarm\ntable ip swarm {\n  chain vips {\n    type nat hook output priority -100; policy accept;\n    ip daddr 10.0.1.2 dnat to numgen inc mod 2 map { 0 : 10.0.1.3, 1 : 10.0.1.4 }\n    ip daddr 10.0.1.9 dnat to 10.0.1.10\n  }\n  chain empty {\n    type filter hook output priority 0; policy accept;\n    ip daddr { 10.0.1.20 } reject\n  }\n}\n"
        );
        let none = vip_script(&records, &[]);
        assert!(!none.contains("daddr"), "{none}");
    }
}
