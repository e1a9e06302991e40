//! Bridges, VXLAN devices, veth pairs and peer entries.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::Path;

use futures_util::TryStreamExt;
use rtnetlink::Handle;
use rtnetlink::LinkBridge;
use rtnetlink::LinkUnspec;
use rtnetlink::LinkVeth;
use rtnetlink::LinkVxlan;
use rtnetlink::packet_route::neighbour::NeighbourAddress;
use rtnetlink::packet_route::neighbour::NeighbourAttribute;
use rtnetlink::packet_route::neighbour::NeighbourFlags;
use rtnetlink::packet_route::neighbour::NeighbourState;

use super::OverlayError;
use super::in_netns;

/// Netlink's "no such device", as a negative errno value.
const ENODEV: i32 = -19;
/// Netlink's "no such file or directory", which deleting a missing neighbour gives.
const ENOENT: i32 = -2;
/// "File exists", from netlink, for an address the link already has.
const EEXIST: i32 = -17;

/// The VXLAN port libnetwork and Swarm use.
pub const VXLAN_PORT: u16 = 4789;

/// One overlay network as a node builds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverlaySpec {
    /// The network's VXLAN ID, from the managers.
    pub vni: u32,
    pub mtu: u32,
    /// This node's address on the underlay, which VXLAN packets leave from.
    pub local: Ipv4Addr,
}

/// A container's interface on an overlay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Up to 11 characters naming the pair on the node (`swh<name>`), e.g. from the task ID.
    pub name: String,
    /// The interface's name inside the container.
    pub ifname: String,
    pub addr: Ipv4Addr,
    pub prefix: u8,
    pub mtu: u32,
}

pub fn bridge_name(vni: u32) -> String {
    format!("swbr{vni}")
}

pub fn vxlan_name(vni: u32) -> String {
    format!("swvx{vni}")
}

/// The MAC of an overlay address: `02:42` and the address's four bytes, as Docker derives
/// them, so that a peer is known by its address alone.
pub fn mac_for(addr: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = addr.octets();
    [0x02, 0x42, a, b, c, d]
}

fn host_end(ep: &Endpoint) -> String {
    format!("swh{}", ep.name)
}

fn container_end(ep: &Endpoint) -> String {
    format!("swc{}", ep.name)
}

/// The index of link `name`, if it exists.
async fn index_of(h: &Handle, name: &str) -> Result<Option<u32>, OverlayError> {
    let mut links = h.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(link) => Ok(link.map(|l| l.header.index)),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == ENODEV => Ok(None),
        Err(e) => Err(OverlayError::netlink(format!("look up link {name}"), e)),
    }
}

/// Deletes link `name` (at `index`) if it still exists.
async fn delete_link(h: &Handle, index: u32, name: &str) -> Result<(), OverlayError> {
    match h.link().del(index).execute().await {
        Ok(()) => Ok(()),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == ENODEV => Ok(()),
        Err(e) => Err(OverlayError::netlink(format!("remove {name}"), e)),
    }
}

/// Puts link `name` (at `index`) on the bridge at `bridge_index` and brings it up.
async fn attach_up(h: &Handle, index: u32, bridge_index: u32, name: &str) -> Result<(), OverlayError> {
    let msg = LinkUnspec::new_with_index(index).controller(bridge_index).up().build();
    h.link()
        .set(msg)
        .execute()
        .await
        .map_err(|e| OverlayError::netlink(format!("attach {name} to its bridge"), e))
}

/// Every link in this namespace, as (index, name).
pub async fn links(h: &Handle) -> Result<Vec<(u32, String)>, OverlayError> {
    let mut out = Vec::new();
    let mut stream = h.link().get().execute();
    while let Some(link) = stream
        .try_next()
        .await
        .map_err(|e| OverlayError::netlink("list links", e))?
    {
        for attr in link.attributes {
            if let rtnetlink::packet_route::link::LinkAttribute::IfName(name) = attr {
                out.push((link.header.index, name));
            }
        }
    }
    Ok(out)
}

async fn index_or_missing(h: &Handle, name: &str) -> Result<u32, OverlayError> {
    index_of(h, name)
        .await?
        .ok_or_else(|| OverlayError::Missing(format!("link {name} does not exist")))
}

/// Makes sure the network's bridge and VXLAN device exist and are up; returns the bridge's
/// index. Safe to call again: what exists is kept.
pub async fn ensure_network(h: &Handle, spec: &OverlaySpec) -> Result<u32, OverlayError> {
    let (bridge, vxlan) = (bridge_name(spec.vni), vxlan_name(spec.vni));
    if index_of(h, &bridge).await?.is_none() {
        let msg = LinkBridge::new(&bridge).mtu(spec.mtu).up().build();
        h.link()
            .add(msg)
            .execute()
            .await
            .map_err(|e| OverlayError::netlink(format!("create bridge {bridge}"), e))?;
    }
    let bridge_index = index_or_missing(h, &bridge).await?;
    if index_of(h, &vxlan).await?.is_none() {
        // Proxy ARP: the device answers for peers from its neighbour entries, so ARP never
        // has to cross the overlay.
        let msg = LinkVxlan::new(&vxlan, spec.vni)
            .local(spec.local)
            .port(VXLAN_PORT)
            .learning(false)
            .proxy(true)
            .mtu(spec.mtu)
            .build();
        h.link()
            .add(msg)
            .execute()
            .await
            .map_err(|e| OverlayError::netlink(format!("create VXLAN device {vxlan}"), e))?;
    }
    let vxlan_index = index_or_missing(h, &vxlan).await?;
    attach_up(h, vxlan_index, bridge_index, &vxlan).await?;
    Ok(bridge_index)
}

/// Removes the network's VXLAN device and bridge from the node, with every FDB and neighbour
/// entry on them. Missing ones are fine.
pub async fn remove_network(h: &Handle, vni: u32) -> Result<(), OverlayError> {
    for name in [vxlan_name(vni), bridge_name(vni)] {
        if let Some(index) = index_of(h, &name).await? {
            delete_link(h, index, &name).await?;
        }
    }
    Ok(())
}

/// Removes every overlay network's bridge and VXLAN device in this namespace (what a node
/// leaving the swarm leaves behind: nothing).
pub async fn remove_all_networks(h: &Handle) -> Result<(), OverlayError> {
    for (index, name) in links(h).await? {
        if name.starts_with("swbr") || name.starts_with("swvx") {
            delete_link(h, index, &name).await?;
        }
    }
    Ok(())
}

/// Gives the node itself the address `addr` on the network's bridge, with the MAC its peers
/// derive from that address, so the node reaches the network's tasks (the routing mesh
/// connects from there) and their answers come back to it across the overlay.
pub async fn set_node_address(h: &Handle, vni: u32, addr: Ipv4Addr, prefix: u8) -> Result<(), OverlayError> {
    let bridge = bridge_name(vni);
    let index = index_or_missing(h, &bridge).await?;
    let msg = LinkUnspec::new_with_index(index)
        .address(mac_for(addr).to_vec())
        .build();
    h.link()
        .set(msg)
        .execute()
        .await
        .map_err(|e| OverlayError::netlink(format!("set the MAC of {bridge}"), e))?;
    match h.address().add(index, IpAddr::V4(addr), prefix).execute().await {
        Ok(()) => Ok(()),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == EEXIST => Ok(()),
        Err(e) => Err(OverlayError::netlink(format!("give {bridge} the address {addr}"), e)),
    }
}

/// Takes the node's own address off the network's bridge. Gone already is fine.
pub async fn clear_node_address(h: &Handle, vni: u32, addr: Ipv4Addr) -> Result<(), OverlayError> {
    let bridge = bridge_name(vni);
    let Some(index) = index_of(h, &bridge).await? else {
        return Ok(());
    };
    let held: Vec<_> = h
        .address()
        .get()
        .set_link_index_filter(index)
        .execute()
        .try_collect()
        .await
        .map_err(|e| OverlayError::netlink(format!("list the addresses of {bridge}"), e))?;
    for msg in held {
        let ours = msg.attributes.iter().any(
            |a| matches!(a, rtnetlink::packet_route::address::AddressAttribute::Address(IpAddr::V4(a)) if *a == addr),
        );
        if ours {
            h.address()
                .del(msg)
                .execute()
                .await
                .map_err(|e| OverlayError::netlink(format!("remove {addr} from {bridge}"), e))?;
        }
    }
    Ok(())
}

/// Sends traffic for the task at `addr` to the node at `node`: an FDB entry for its MAC and a
/// neighbour entry for its address, both on the network's VXLAN device.
pub async fn add_peer(h: &Handle, vni: u32, addr: Ipv4Addr, node: Ipv4Addr) -> Result<(), OverlayError> {
    let vxlan = vxlan_name(vni);
    let index = index_or_missing(h, &vxlan).await?;
    let mac = mac_for(addr);
    h.neighbours()
        .add_bridge(index, &mac)
        .destination(IpAddr::V4(node))
        .flags(NeighbourFlags::Own)
        .replace()
        .execute()
        .await
        .map_err(|e| OverlayError::netlink(format!("add FDB entry for {addr} on {vxlan}"), e))?;
    h.neighbours()
        .add(index, IpAddr::V4(addr))
        .link_layer_address(&mac)
        .replace()
        .execute()
        .await
        .map_err(|e| OverlayError::netlink(format!("add neighbour {addr} on {vxlan}"), e))?;
    Ok(())
}

/// The addresses the VXLAN device of network `vni` holds permanent neighbour entries for (it
/// answers ARP for them); None when the device is missing.
pub async fn peer_neighbours(h: &Handle, vni: u32) -> Result<Option<BTreeSet<Ipv4Addr>>, OverlayError> {
    let vxlan = vxlan_name(vni);
    let Some(index) = index_of(h, &vxlan).await? else {
        return Ok(None);
    };
    let mut out = BTreeSet::new();
    let mut dump = h.neighbours().get().execute();
    while let Some(msg) = dump
        .try_next()
        .await
        .map_err(|e| OverlayError::netlink(format!("list the neighbours of {vxlan}"), e))?
    {
        if msg.header.ifindex != index || msg.header.state != NeighbourState::Permanent {
            continue;
        }
        for a in &msg.attributes {
            if let NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) = a {
                out.insert(*ip);
            }
        }
    }
    Ok(Some(out))
}

/// Forgets the task at `addr` on node `node`. Entries already gone are fine.
pub async fn remove_peer(h: &Handle, vni: u32, addr: Ipv4Addr, node: Ipv4Addr) -> Result<(), OverlayError> {
    let vxlan = vxlan_name(vni);
    let Some(index) = index_of(h, &vxlan).await? else {
        return Ok(());
    };
    let mac = mac_for(addr);
    let mut fdb = h
        .neighbours()
        .add_bridge(index, &mac)
        .destination(IpAddr::V4(node))
        .flags(NeighbourFlags::Own);
    let mut neighbour = h.neighbours().add(index, IpAddr::V4(addr));
    for (what, message) in [
        ("FDB entry", fdb.message_mut().clone()),
        ("neighbour", neighbour.message_mut().clone()),
    ] {
        match h.neighbours().del(message).execute().await {
            Ok(()) => {}
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == ENOENT => {}
            Err(e) => return Err(OverlayError::netlink(format!("remove {what} for {addr} on {vxlan}"), e)),
        }
    }
    Ok(())
}

/// Joins the container whose network namespace is at `container_ns` to the network: a veth
/// pair from the bridge, its other end renamed to `ep.ifname` inside the container with the
/// task's address and MAC. `h` is a handle in the node's namespace. Nothing is left behind on
/// failure.
pub async fn attach(h: &Handle, vni: u32, container_ns: &Path, ep: &Endpoint) -> Result<(), OverlayError> {
    let bridge = bridge_name(vni);
    let bridge_index = index_or_missing(h, &bridge).await?;
    let (host, peer) = (host_end(ep), container_end(ep));
    let msg = LinkVeth::new(&host, &peer).mtu(ep.mtu).build();
    h.link()
        .add(msg)
        .execute()
        .await
        .map_err(|e| OverlayError::netlink(format!("create veth pair {host}"), e))?;
    let result = plumb(h, bridge_index, container_ns, ep).await;
    if result.is_err()
        && let Ok(Some(index)) = index_of(h, &host).await
    {
        // Deleting one end deletes both, wherever the other end is.
        let _ = h.link().del(index).execute().await;
    }
    result
}

/// Takes the container off the network: deletes the pair's node end, and with it the other.
/// Gone already (the container's namespace went with it) is fine.
pub async fn detach(h: &Handle, ep: &Endpoint) -> Result<(), OverlayError> {
    let host = host_end(ep);
    if let Some(index) = index_of(h, &host).await? {
        delete_link(h, index, &host).await?;
    }
    Ok(())
}

async fn plumb(h: &Handle, bridge_index: u32, container_ns: &Path, ep: &Endpoint) -> Result<(), OverlayError> {
    let (host, peer) = (host_end(ep), container_end(ep));
    let host_index = index_or_missing(h, &host).await?;
    attach_up(h, host_index, bridge_index, &host).await?;
    // The bridge may still have learned the task's MAC (derived from its address) behind the
    // VXLAN port, from a task on another node that held the address before; until the new
    // container sent a frame, traffic for it would go there. A static entry on its own port
    // takes the MAC over at once.
    h.neighbours()
        .add_bridge(host_index, &mac_for(ep.addr))
        .flags(NeighbourFlags::Controller)
        .state(NeighbourState::Noarp)
        .replace()
        .execute()
        .await
        .map_err(|e| OverlayError::netlink(format!("add the bridge FDB entry for {}", ep.addr), e))?;
    let peer_index = index_or_missing(h, &peer).await?;
    let ns = std::fs::File::open(container_ns).map_err(|source| OverlayError::Namespace {
        path: container_ns.display().to_string(),
        source,
    })?;
    let msg = LinkUnspec::new_with_index(peer_index)
        .setns_by_fd(ns.as_raw_fd())
        .build();
    h.link()
        .set(msg)
        .execute()
        .await
        .map_err(|e| OverlayError::netlink(format!("move {peer} into the container"), e))?;
    let ep = ep.clone();
    in_netns(container_ns, move |c| async move {
        let index = index_or_missing(&c, &peer).await?;
        let msg = LinkUnspec::new_with_index(index)
            .name(ep.ifname.clone())
            .address(mac_for(ep.addr).to_vec())
            // The veth's MTU is set on the node's end only when the pair is made.
            .mtu(ep.mtu)
            .build();
        c.link()
            .set(msg)
            .execute()
            .await
            .map_err(|e| OverlayError::netlink(format!("rename {peer} to {}", ep.ifname), e))?;
        c.address()
            .add(index, IpAddr::V4(ep.addr), ep.prefix)
            .execute()
            .await
            .map_err(|e| OverlayError::netlink(format!("give {} the address {}", ep.ifname, ep.addr), e))?;
        for link in [Some(index), index_of(&c, "lo").await?].into_iter().flatten() {
            c.link()
                .set(LinkUnspec::new_with_index(link).up().build())
                .execute()
                .await
                .map_err(|e| OverlayError::netlink(format!("bring up {}", ep.ifname), e))?;
        }
        Ok(())
    })
    .await
}
