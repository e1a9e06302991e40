//! Published-port allocation for service endpoints.
//!
//! Runs inside the state machine so that every manager assigns the same ports and two
//! concurrent creates can never take the same one. Swarm's rules: an ingress port asked for
//! explicitly must be free cluster-wide (per protocol); an ingress port published as 0 gets the
//! lowest free port of 30000–32767, and keeps it across updates; host-mode ports are passed
//! through (0 there means "any port on the node").

use std::collections::BTreeSet;

use swarm_model::Endpoint;
use swarm_model::PortConfig;
use swarm_model::Service;

/// Swarm's dynamic range for ingress ports published as 0.
pub const DYNAMIC_PORTS: std::ops::RangeInclusive<u32> = 30000..=32767;

/// Whether `p` is published through the routing mesh (the default mode).
pub(crate) fn is_ingress(p: &PortConfig) -> bool {
    p.publish_mode.is_empty() || p.publish_mode == "ingress"
}

fn protocol(p: &PortConfig) -> &str {
    if p.protocol.is_empty() { "tcp" } else { &p.protocol }
}

/// The ingress ports (port, protocol) that `svc` holds.
fn held(svc: &Service) -> impl Iterator<Item = (u32, String)> + '_ {
    svc.endpoint
        .ports
        .iter()
        .flatten()
        .filter(|p| is_ingress(p))
        .filter_map(|p| {
            p.published_port
                .filter(|pp| *pp != 0)
                .map(|pp| (pp, protocol(p).to_string()))
        })
}

/// Why a service's ports cannot be published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    #[error("port '{port}' is already in use by service '{service}' ({id}) as an ingress port")]
    InUse { port: u32, service: String, id: String },
    #[error("no free port left in the dynamic range 30000-32767")]
    Exhausted,
}

/// Computes `svc.endpoint` from its spec, given the other services in the store and the
/// service's previous version (whose dynamic ports it keeps).
pub fn allocate<'a>(
    svc: &mut Service,
    previous: Option<&Service>,
    others: impl Iterator<Item = &'a Service>,
) -> Result<(), PortError> {
    let mut taken: BTreeSet<(u32, String)> = BTreeSet::new();
    let mut owner = std::collections::BTreeMap::new();
    for other in others.filter(|o| o.id != svc.id) {
        for key in held(other) {
            owner.insert(key.clone(), (other.spec.name.clone(), other.id.clone()));
            taken.insert(key);
        }
    }
    let kept: Vec<PortConfig> = previous
        .map(|p| p.endpoint.ports.clone().unwrap_or_default())
        .unwrap_or_default();
    let spec = svc.spec.endpoint_spec.clone().unwrap_or_default();
    let mut resolved = Vec::new();
    // Explicit ingress ports first, so that a dynamic port never takes one asked for here.
    for p in spec.ports.iter().flatten() {
        if let Some(pp) = p.published_port.filter(|pp| *pp != 0 && is_ingress(p)) {
            let key = (pp, protocol(p).to_string());
            if let Some((name, id)) = owner.get(&key) {
                return Err(PortError::InUse {
                    port: pp,
                    service: name.clone(),
                    id: id.clone(),
                });
            }
            taken.insert(key);
        }
    }
    for p in spec.ports.iter().flatten() {
        let mut out = p.clone();
        if out.protocol.is_empty() {
            out.protocol = "tcp".to_string();
        }
        if out.publish_mode.is_empty() {
            out.publish_mode = "ingress".to_string();
        }
        if is_ingress(p) && p.published_port.unwrap_or(0) == 0 {
            let before = kept.iter().find(|k| {
                k.target_port == p.target_port && protocol(k) == protocol(p) && k.name == p.name && is_ingress(k)
            });
            let reuse = before
                .and_then(|k| k.published_port)
                .filter(|pp| !taken.contains(&(*pp, protocol(p).to_string())));
            let port = match reuse {
                Some(pp) => pp,
                None => DYNAMIC_PORTS
                    .clone()
                    .find(|pp| !taken.contains(&(*pp, protocol(p).to_string())))
                    .ok_or(PortError::Exhausted)?,
            };
            taken.insert((port, protocol(p).to_string()));
            out.published_port = Some(port);
        }
        resolved.push(out);
    }
    svc.endpoint = Endpoint {
        spec,
        ports: (!resolved.is_empty()).then_some(resolved),
        virtual_ips: svc.endpoint.virtual_ips.take(),
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use swarm_model::EndpointSpec;

    use super::*;

    fn port(target: u32, published: Option<u32>, mode: &str) -> PortConfig {
        PortConfig {
            target_port: target,
            published_port: published,
            publish_mode: mode.to_string(),
            ..Default::default()
        }
    }

    fn service(id: &str, ports: Vec<PortConfig>) -> Service {
        let mut s = Service {
            id: id.to_string(),
            ..Default::default()
        };
        s.spec.name = format!("svc-{id}");
        s.spec.endpoint_spec = Some(EndpointSpec {
            mode: String::new(),
            ports: Some(ports),
        });
        s
    }

    fn published(s: &Service) -> Vec<u32> {
        s.endpoint
            .ports
            .iter()
            .flatten()
            .map(|p| p.published_port.unwrap_or(0))
            .collect()
    }

    #[test]
    fn dynamic_ports_are_the_lowest_free_and_kept_on_update() {
        let mut a = service("a", vec![port(80, None, "")]);
        allocate(&mut a, None, std::iter::empty()).unwrap();
        assert_eq!(published(&a), vec![30000]);
        let p = &a.endpoint.ports.as_ref().unwrap()[0];
        assert_eq!((p.protocol.as_str(), p.publish_mode.as_str()), ("tcp", "ingress"));

        let mut b = service("b", vec![port(80, Some(0), "ingress"), port(81, None, "")]);
        allocate(&mut b, None, [&a].into_iter()).unwrap();
        assert_eq!(published(&b), vec![30001, 30002]);

        // An update of b keeps its ports even though 30000 is taken and lower ones are not.
        let old_b = b.clone();
        let mut b2 = old_b.clone();
        allocate(&mut b2, Some(&old_b), [&a].into_iter()).unwrap();
        assert_eq!(published(&b2), vec![30001, 30002]);
    }

    #[test]
    fn an_explicit_port_in_use_is_refused_with_the_owner() {
        let mut a = service("a", vec![port(80, Some(8080), "")]);
        allocate(&mut a, None, std::iter::empty()).unwrap();
        let mut b = service("b", vec![port(90, Some(8080), "ingress")]);
        let err = allocate(&mut b, None, [&a].into_iter()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "port '8080' is already in use by service 'svc-a' (a) as an ingress port"
        );
        // The same number over udp is free.
        let mut c = service(
            "c",
            vec![PortConfig {
                protocol: "udp".to_string(),
                ..port(90, Some(8080), "")
            }],
        );
        allocate(&mut c, None, [&a].into_iter()).unwrap();
    }

    #[test]
    fn host_ports_pass_through_and_do_not_conflict() {
        let mut a = service("a", vec![port(80, Some(8080), "host"), port(81, None, "host")]);
        allocate(&mut a, None, std::iter::empty()).unwrap();
        assert_eq!(published(&a), vec![8080, 0]);
        let mut b = service("b", vec![port(80, Some(8080), "host")]);
        allocate(&mut b, None, [&a].into_iter()).unwrap();
    }

    #[test]
    fn a_dynamic_port_never_takes_an_explicit_one_of_the_same_spec() {
        let mut a = service("a", vec![port(80, None, ""), port(81, Some(30000), "")]);
        allocate(&mut a, None, std::iter::empty()).unwrap();
        assert_eq!(published(&a), vec![30001, 30000]);
    }
}
