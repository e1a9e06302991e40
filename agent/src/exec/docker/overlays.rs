//! A node's overlay networks as its tasks use them: built when the first task on a network
//! starts here, removed when the last one is gone, with the peers the managers push applied to
//! each. Containers are joined to their overlays here, after they start. Until the node has
//! its own gateway bridge with NAT, a container keeps the engine's default network for
//! outbound traffic (its `eth0`, the overlays from `eth1`), unless every network it joins is
//! `--internal`: then it starts with no Docker network and has no way out.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::net::SocketAddr;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::Server;
use swarm_model::NetworkAttachment;
use swarm_model::Task;
use swarm_model::VXLAN_ID_OPTION;
use swarm_protocol::dispatcher::OverlayPeer;
use swarm_protocol::dispatcher::ServiceRecord;
use tokio::sync::Mutex;
use tokio::sync::watch;

use crate::dns::ContainerResolver;
use crate::dns::RESOLVER_ADDR;
use crate::mesh::Mesh;
use crate::mesh::mesh_targets;
use crate::overlay;
use crate::overlay::Endpoint;
use crate::overlay::OverlayError;
use crate::overlay::OverlaySpec;

/// The MTU of an overlay unless its `com.docker.network.driver.mtu` option says otherwise:
/// 1500 less the 50 bytes of VXLAN headers.
pub const DEFAULT_MTU: u32 = 1450;
const MTU_OPTION: &str = "com.docker.network.driver.mtu";

/// One network of a task, as the node builds it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Joined {
    spec: OverlaySpec,
    endpoint: Endpoint,
}

#[derive(Default)]
struct State {
    handle: Option<rtnetlink::Handle>,
    /// The tasks on each network (by VXLAN ID) of this node.
    users: BTreeMap<u32, BTreeSet<String>>,
    /// What the managers last sent, and what is in the kernel.
    wanted: BTreeSet<OverlayPeer>,
    applied: BTreeSet<OverlayPeer>,
    /// The containers joined here, by task ID.
    sandboxes: BTreeMap<String, Sandbox>,
    /// The node's own address on ingress, while it serves the routing mesh: (VXLAN ID, address).
    mesh_address: Option<(u32, Ipv4Addr)>,
}

/// What the node runs for one container: its resolver, and the VIP rules last set in it.
struct Sandbox {
    netns: PathBuf,
    /// The container's networks, by ID, in the order it joined them.
    networks: Vec<String>,
    /// Serves the resolver's sockets until dropped.
    _resolver: Server<ContainerResolver>,
    vips: String,
}

/// The overlays of one node, whose underlay address is `local`.
pub struct NodeOverlays {
    local: Ipv4Addr,
    state: Mutex<State>,
    directory: watch::Sender<Arc<Vec<ServiceRecord>>>,
    /// Where the containers' resolvers send names that are not the cluster's.
    upstream: Arc<Vec<SocketAddr>>,
    mesh: Mesh,
}

/// How this node builds the network of attachment `a`, and the address `a` holds there.
fn spec_of(a: &NetworkAttachment, local: Ipv4Addr) -> Result<(OverlaySpec, Ipv4Addr, u8), OverlayError> {
    let name = &a.network.spec.name;
    let options = a.network.driver_state.options.clone().unwrap_or_default();
    let vni = options
        .get(VXLAN_ID_OPTION)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| OverlayError::Missing(format!("network {name} has no VXLAN ID")))?;
    let mtu = match options.get(MTU_OPTION) {
        None => DEFAULT_MTU,
        Some(v) => v
            .parse()
            .ok()
            .filter(|m| (576..=9000).contains(m))
            .ok_or_else(|| OverlayError::Missing(format!("network {name}: MTU {v:?} is not 576 to 9000")))?,
    };
    let cidr = a.addresses.first().map(String::as_str).unwrap_or_default();
    let (addr, prefix) = cidr
        .split_once('/')
        .and_then(|(a, p)| Some((a.parse().ok()?, p.parse().ok()?)))
        .ok_or_else(|| OverlayError::Missing(format!("network {name}: no address for the task")))?;
    Ok((OverlaySpec { vni, mtu, local }, addr, prefix))
}

/// The networks `task` joins, as this node builds them; errors name the network.
fn networks_of(task: &Task, local: Ipv4Addr) -> Result<Vec<Joined>, OverlayError> {
    let mut out = Vec::new();
    // `eth0` is the engine's default network, unless the task has none.
    let first = if NodeOverlays::isolated(task) { 0 } else { 1 };
    for (i, a) in task.networks_attachments.iter().flatten().enumerate() {
        let (spec, addr, prefix) = spec_of(a, local)?;
        let mtu = spec.mtu;
        out.push(Joined {
            spec,
            endpoint: Endpoint {
                // Unique on the node: the task ID's start and the attachment's place.
                name: format!("{}{i}", task.id.chars().take(9).collect::<String>()),
                ifname: format!("eth{}", i + first),
                addr,
                prefix,
                mtu,
            },
        });
    }
    Ok(out)
}

/// How often the node checks that the kernel still holds every overlay peer it was given.
const PEER_REPAIR_PERIOD: Duration = Duration::from_secs(2);

/// Who holds a network on the node besides its tasks: the routing mesh, on ingress.
const MESH_USER: &str = "routing-mesh";

impl NodeOverlays {
    /// The node's overlays; must be called inside the runtime, which runs their upkeep.
    pub fn new(local: Ipv4Addr, upstream: Vec<SocketAddr>) -> Arc<Self> {
        let overlays = Arc::new(NodeOverlays {
            local,
            state: Mutex::new(State::default()),
            directory: watch::Sender::new(Arc::new(Vec::new())),
            upstream: Arc::new(upstream),
            mesh: Mesh::new(Ipv4Addr::UNSPECIFIED),
        });
        let weak = Arc::downgrade(&overlays);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PEER_REPAIR_PERIOD).await;
                let Some(o) = weak.upgrade() else { return };
                if let Err(e) = o.repair_peers().await {
                    tracing::warn!(error = %e, "cannot check the overlay peers");
                }
            }
        });
        overlays
    }

    /// Puts back the peers' neighbour entries the kernel dropped. A VXLAN device that went down
    /// and up again loses them (its FDB entries stay), and with them the answers to ARP for
    /// other nodes' tasks: containers that had not cached a task's MAC could not reach it.
    pub async fn repair_peers(&self) -> Result<(), OverlayError> {
        let mut state = self.state.lock().await;
        if state.applied.is_empty() {
            return Ok(());
        }
        let h = Self::handle(&mut state)?;
        let vnis: BTreeSet<u32> = state.applied.iter().map(|p| p.vni).collect();
        for vni in vnis {
            let Some(present) = overlay::peer_neighbours(&h, vni).await? else {
                continue;
            };
            for p in state
                .applied
                .iter()
                .filter(|p| p.vni == vni && !present.contains(&p.addr))
            {
                tracing::info!(vni, addr = %p.addr, "putting back a lost overlay peer");
                // One that cannot be put back does not keep the others out.
                if let Err(e) = overlay::add_peer(&h, p.vni, p.addr, p.node).await {
                    tracing::warn!(vni, addr = %p.addr, error = %e, "cannot put back an overlay peer");
                }
            }
        }
        Ok(())
    }

    /// Whether `task`'s container is joined to overlays here.
    pub fn wants(task: &Task) -> bool {
        task.networks_attachments.as_ref().is_some_and(|a| !a.is_empty())
    }

    /// Whether `task` joins only `--internal` networks, so its container gets no Docker
    /// network and no way out.
    pub fn isolated(task: &Task) -> bool {
        Self::wants(task)
            && task
                .networks_attachments
                .iter()
                .flatten()
                .all(|a| a.network.spec.internal)
    }

    fn handle(state: &mut State) -> Result<rtnetlink::Handle, OverlayError> {
        if let Some(h) = &state.handle {
            return Ok(h.clone());
        }
        let h = overlay::connect()?;
        state.handle = Some(h.clone());
        Ok(h)
    }

    /// Joins the started container of `task` (process `pid`) to each of its networks,
    /// building a network on first use.
    pub async fn join(&self, task: &Task, pid: i64) -> Result<(), OverlayError> {
        let joined = networks_of(task, self.local)?;
        let ns = PathBuf::from(format!("/proc/{pid}/ns/net"));
        let mut state = self.state.lock().await;
        let h = Self::handle(&mut state)?;
        for j in &joined {
            overlay::ensure_network(&h, &j.spec).await?;
            state.users.entry(j.spec.vni).or_default().insert(task.id.clone());
            overlay::attach(&h, j.spec.vni, &ns, &j.endpoint).await?;
        }
        Self::apply_peers(&h, &mut state).await?;
        let sandbox = self.open_sandbox(task, &ns).await?;
        state.sandboxes.insert(task.id.clone(), sandbox);
        Ok(())
    }

    /// Starts the container's resolver inside its namespace and sets its VIP rules.
    async fn open_sandbox(&self, task: &Task, ns: &Path) -> Result<Sandbox, OverlayError> {
        let networks: Vec<String> = task
            .networks_attachments
            .iter()
            .flatten()
            .map(|a| a.network.id.clone())
            .collect();
        let shown = ns.display().to_string();
        let opening = move |source| OverlayError::Resolver {
            netns: shown.clone(),
            source,
        };
        let thread = overlay::spawn_in_netns(ns, {
            let opening = opening.clone();
            move || {
                let udp = std::net::UdpSocket::bind((RESOLVER_ADDR, 53)).map_err(&opening)?;
                let tcp = std::net::TcpListener::bind((RESOLVER_ADDR, 53)).map_err(&opening)?;
                udp.set_nonblocking(true).map_err(&opening)?;
                tcp.set_nonblocking(true).map_err(&opening)?;
                Ok((udp, tcp))
            }
        });
        let (udp, tcp) = tokio::task::spawn_blocking(move || thread.join())
            .await
            .ok()
            .and_then(|joined| joined.ok())
            .ok_or_else(|| OverlayError::Missing("the thread opening the resolver's sockets failed".to_string()))??;
        let udp = tokio::net::UdpSocket::from_std(udp).map_err(&opening)?;
        let tcp = tokio::net::TcpListener::from_std(tcp).map_err(&opening)?;
        let mut resolver = Server::new(ContainerResolver::new(
            self.directory.subscribe(),
            networks.clone(),
            self.upstream.clone(),
        ));
        resolver.register_socket(udp);
        resolver.register_listener(tcp, Duration::from_secs(5), 64);
        let vips = overlay::vip_script(&self.directory.borrow(), &networks);
        overlay::apply_nft(ns, &vips).await?;
        Ok(Sandbox {
            netns: ns.to_path_buf(),
            networks,
            _resolver: resolver,
            vips,
        })
    }

    /// Takes the managers' latest service directory: the resolvers read it as they answer,
    /// each container's VIP rules follow its rotations, and the routing mesh publishes its
    /// ports once the node is on ingress at `ingress`'s address.
    pub async fn set_directory(&self, records: Vec<ServiceRecord>, ingress: Option<NetworkAttachment>) {
        self.directory.send_replace(Arc::new(records));
        let records = self.directory.borrow().clone();
        let mut state = self.state.lock().await;
        let on_ingress = match self.set_mesh_address(&mut state, ingress.as_ref()).await {
            Ok(on) => on,
            Err(e) => {
                tracing::warn!(error = %e, "cannot put this node on the ingress network; its routing mesh is off");
                false
            }
        };
        let published = if on_ingress {
            mesh_targets(&records)
        } else {
            Default::default()
        };
        self.mesh.set(published).await;
        for (task_id, sandbox) in state.sandboxes.iter_mut() {
            let script = overlay::vip_script(&records, &sandbox.networks);
            if script == sandbox.vips {
                continue;
            }
            match overlay::apply_nft(&sandbox.netns, &script).await {
                Ok(()) => sandbox.vips = script,
                Err(e) => tracing::warn!(%task_id, error = %e, "cannot update the container's virtual IPs"),
            }
        }
    }

    /// Puts the node on ingress with its own address (or takes it off); whether it is on.
    async fn set_mesh_address(
        &self,
        state: &mut State,
        ingress: Option<&NetworkAttachment>,
    ) -> Result<bool, OverlayError> {
        let wanted = ingress.map(|a| spec_of(a, self.local)).transpose()?;
        let now = wanted.as_ref().map(|(spec, addr, _)| (spec.vni, *addr));
        if now == state.mesh_address {
            return Ok(now.is_some());
        }
        let h = Self::handle(state)?;
        if let Some((vni, addr)) = state.mesh_address.take() {
            overlay::clear_node_address(&h, vni, addr).await?;
            let users = state.users.entry(vni).or_default();
            if users.remove(MESH_USER) && users.is_empty() {
                Self::drop_network(&h, state, vni).await?;
            }
        }
        if let Some((spec, addr, prefix)) = wanted {
            overlay::ensure_network(&h, &spec).await?;
            state.users.entry(spec.vni).or_default().insert(MESH_USER.to_string());
            overlay::set_node_address(&h, spec.vni, addr, prefix).await?;
            state.mesh_address = Some((spec.vni, addr));
            Self::apply_peers(&h, state).await?;
        }
        Ok(state.mesh_address.is_some())
    }

    /// Counts a container that was already running (after a restart of swarmd) as a user of
    /// its networks, which are built again if missing.
    pub async fn adopt(&self, task: &Task, pid: i64) -> Result<(), OverlayError> {
        let joined = networks_of(task, self.local)?;
        let mut state = self.state.lock().await;
        let h = Self::handle(&mut state)?;
        for j in &joined {
            overlay::ensure_network(&h, &j.spec).await?;
            state.users.entry(j.spec.vni).or_default().insert(task.id.clone());
        }
        Self::apply_peers(&h, &mut state).await?;
        // The resolver's sockets went with the previous swarmd process.
        let ns = PathBuf::from(format!("/proc/{pid}/ns/net"));
        let sandbox = self.open_sandbox(task, &ns).await?;
        state.sandboxes.insert(task.id.clone(), sandbox);
        Ok(())
    }

    /// Takes task `task_id` off its networks, once its container is gone (its veth pair went
    /// with the container's namespace); a network no task here uses any more is removed.
    pub async fn leave(&self, task_id: &str) -> Result<(), OverlayError> {
        let mut state = self.state.lock().await;
        state.sandboxes.remove(task_id);
        let mut emptied = Vec::new();
        for (vni, users) in state.users.iter_mut() {
            if users.remove(task_id) && users.is_empty() {
                emptied.push(*vni);
            }
        }
        if emptied.is_empty() {
            return Ok(());
        }
        let h = Self::handle(&mut state)?;
        for vni in emptied {
            Self::drop_network(&h, &mut state, vni).await?;
        }
        Ok(())
    }

    /// Removes network `vni` from the node, once nothing here uses it any more.
    async fn drop_network(h: &rtnetlink::Handle, state: &mut State, vni: u32) -> Result<(), OverlayError> {
        state.users.remove(&vni);
        overlay::remove_network(h, vni).await?;
        state.applied.retain(|p| p.vni != vni);
        Ok(())
    }

    /// Removes every overlay network device on the node, whoever made it: when the node
    /// leaves the swarm.
    pub async fn remove_all(&self) -> Result<(), OverlayError> {
        let mut state = self.state.lock().await;
        let h = Self::handle(&mut state)?;
        overlay::remove_all_networks(&h).await?;
        self.mesh.set(Default::default()).await;
        state.mesh_address = None;
        state.sandboxes.clear();
        state.users.clear();
        state.applied.clear();
        Ok(())
    }

    /// Takes the managers' latest peer set and applies it to the networks this node has.
    pub async fn set_peers(&self, peers: Vec<OverlayPeer>) -> Result<(), OverlayError> {
        let mut state = self.state.lock().await;
        state.wanted = peers.into_iter().collect();
        if state.users.is_empty() {
            return Ok(());
        }
        let h = Self::handle(&mut state)?;
        Self::apply_peers(&h, &mut state).await
    }

    /// Adds the wanted peers of the networks present and removes the others.
    async fn apply_peers(h: &rtnetlink::Handle, state: &mut State) -> Result<(), OverlayError> {
        let want: BTreeSet<OverlayPeer> = state
            .wanted
            .iter()
            .filter(|p| state.users.contains_key(&p.vni))
            .cloned()
            .collect();
        for gone in state.applied.difference(&want).cloned().collect::<Vec<_>>() {
            overlay::remove_peer(h, gone.vni, gone.addr, gone.node).await?;
            state.applied.remove(&gone);
        }
        for new in want.difference(&state.applied).cloned().collect::<Vec<_>>() {
            overlay::add_peer(h, new.vni, new.addr, new.node).await?;
            state.applied.insert(new);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use swarm_model::SwarmNetwork;

    use super::*;

    fn task(options: &[(&str, &str)], addr: &str) -> Task {
        let mut network = SwarmNetwork::default();
        network.spec.name = "back".to_string();
        network.driver_state.options = Some(options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        Task {
            id: "abcdefghijklmnop".to_string(),
            networks_attachments: Some(vec![NetworkAttachment {
                network,
                addresses: vec![addr.to_string()],
                aliases: None,
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn a_tasks_networks_come_from_its_attachments_or_say_what_is_missing() {
        let local = Ipv4Addr::new(198, 18, 0, 1);
        let j = networks_of(&task(&[(VXLAN_ID_OPTION, "4097")], "10.0.1.3/24"), local).unwrap();
        assert_eq!(
            j[0].spec,
            OverlaySpec {
                vni: 4097,
                mtu: 1450,
                local
            }
        );
        assert_eq!(j[0].endpoint.name, "abcdefghi0");
        assert_eq!(
            j[0].endpoint.ifname, "eth1",
            "eth0 is the engine's network, for the way out"
        );
        let mut internal = task(&[(VXLAN_ID_OPTION, "4097")], "10.0.1.3/24");
        if let Some(a) = internal.networks_attachments.as_mut() {
            a[0].network.spec.internal = true;
        }
        assert!(NodeOverlays::isolated(&internal));
        assert_eq!(networks_of(&internal, local).unwrap()[0].endpoint.ifname, "eth0");
        assert_eq!(
            (j[0].endpoint.addr, j[0].endpoint.prefix),
            (Ipv4Addr::new(10, 0, 1, 3), 24)
        );
        let j = networks_of(
            &task(&[(VXLAN_ID_OPTION, "4097"), (MTU_OPTION, "1400")], "10.0.1.3/24"),
            local,
        )
        .unwrap();
        assert_eq!(j[0].spec.mtu, 1400);
        let err = |t: Task| networks_of(&t, local).unwrap_err().to_string();
        assert_eq!(err(task(&[], "10.0.1.3/24")), "network back has no VXLAN ID");
        assert_eq!(
            err(task(&[(VXLAN_ID_OPTION, "1"), (MTU_OPTION, "70000")], "10.0.1.3/24")),
            "network back: MTU \"70000\" is not 576 to 9000"
        );
        assert_eq!(
            err(task(&[(VXLAN_ID_OPTION, "1")], "")),
            "network back: no address for the task"
        );
    }
}
