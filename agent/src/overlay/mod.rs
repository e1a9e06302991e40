//! The overlay data plane on a node, built through netlink (no `ip` subprocesses).
//!
//! Each overlay network on a node is a Linux bridge (`swbr<VNI>`) with a VXLAN device
//! (`swvx<VNI>`, UDP 4789 from the node's address, learning off) attached to it, as
//! libnetwork builds them. A container joins through a veth pair: one end on the bridge, the
//! other moved into the container's network namespace as `eth0`-style interface with the
//! task's address. Other nodes' tasks are static entries pushed by the managers, so nothing
//! floods: an FDB entry (task MAC → node address) on the VXLAN device and, in each container,
//! a permanent neighbour entry (task address → task MAC). MACs are derived from addresses
//! (`02:42` and the four address bytes, as Docker does), so peers need only an address and a
//! node.
//!
//! Namespaces are entered on dedicated OS threads (`setns` through `nix`), never by the
//! runtime's own threads, so no `unsafe` code and no thread of the agent changes namespace.

mod error;
mod links;
mod netns;
#[cfg(test)]
mod tests;
mod vip;

pub use error::OverlayError;
pub use links::Endpoint;
pub use links::OverlaySpec;
pub use links::add_peer;
pub use links::attach;
pub use links::bridge_name;
pub use links::clear_node_address;
pub use links::detach;
pub use links::ensure_network;
pub use links::links;
pub use links::mac_for;
pub use links::peer_neighbours;
pub use links::remove_all_networks;
pub use links::remove_network;
pub use links::remove_peer;
pub use links::set_node_address;
pub use links::vxlan_name;
pub use netns::call_in_netns;
pub use netns::connect;
pub use netns::in_netns;
pub use netns::spawn_in_netns;
pub use vip::apply_nft;
pub use vip::vip_script;
