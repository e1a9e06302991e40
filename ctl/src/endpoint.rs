//! `--network`, `--publish` and `--endpoint-mode` for `swarmctl service create`, in docker's
//! syntax.

use swarm_model::EndpointSpec;
use swarm_model::NetworkAttachmentConfig;
use swarm_model::PortConfig;

use super::CtlError;

/// `NAME` or `name=NAME[,alias=A]...[,driver-opt=K=V]...`. The manager resolves the name.
pub fn parse_network(text: &str) -> Result<NetworkAttachmentConfig, CtlError> {
    let bad = |why: &str| CtlError::Usage(format!("invalid --network {text:?}: {why}"));
    if !text.contains('=') {
        if text.is_empty() {
            return Err(bad("a network name is required"));
        }
        return Ok(NetworkAttachmentConfig {
            target: text.to_string(),
            ..Default::default()
        });
    }
    let mut out = NetworkAttachmentConfig::default();
    for field in text.split(',') {
        let (key, value) = field.split_once('=').ok_or_else(|| bad("expected key=value fields"))?;
        match key {
            "name" => out.target = value.to_string(),
            "alias" => out.aliases.get_or_insert_with(Vec::new).push(value.to_string()),
            "driver-opt" => {
                let (k, v) = value.split_once('=').ok_or_else(|| bad("driver-opt takes key=value"))?;
                out.driver_opts
                    .get_or_insert_with(Default::default)
                    .insert(k.to_string(), v.to_string());
            }
            other => return Err(bad(&format!("unknown field {other:?} (name, alias, driver-opt)"))),
        }
    }
    if out.target.is_empty() {
        return Err(bad("name= is required"));
    }
    Ok(out)
}

/// `[PUBLISHED:]TARGET[/PROTOCOL]` or
/// `target=T[,published=P][,protocol=tcp|udp|sctp][,mode=ingress|host]`.
pub fn parse_publish(text: &str) -> Result<PortConfig, CtlError> {
    let bad = |why: &str| CtlError::Usage(format!("invalid --publish {text:?}: {why}"));
    let port = |v: &str| {
        v.parse::<u32>()
            .ok()
            .filter(|p| (1..=65535).contains(p))
            .ok_or_else(|| bad(&format!("{v:?} is not a port from 1 to 65535")))
    };
    let mut out = PortConfig::default();
    if text.contains('=') {
        for field in text.split(',') {
            let (key, value) = field.split_once('=').ok_or_else(|| bad("expected key=value fields"))?;
            match key {
                "target" => out.target_port = port(value)?,
                "published" => out.published_port = Some(port(value)?),
                "protocol" => out.protocol = value.to_string(),
                "mode" => out.publish_mode = value.to_string(),
                other => {
                    return Err(bad(&format!(
                        "unknown field {other:?} (target, published, protocol, mode)"
                    )));
                }
            }
        }
    } else {
        let (ports, protocol) = text.split_once('/').unwrap_or((text, ""));
        out.protocol = protocol.to_string();
        match ports.split_once(':') {
            Some((published, target)) => {
                out.published_port = Some(port(published)?);
                out.target_port = port(target)?;
            }
            None => out.target_port = port(ports)?,
        }
    }
    if out.target_port == 0 {
        return Err(bad("target= is required"));
    }
    if !["", "tcp", "udp", "sctp"].contains(&out.protocol.as_str()) {
        return Err(bad(&format!("protocol {:?} is not tcp, udp or sctp", out.protocol)));
    }
    if out.protocol.is_empty() {
        out.protocol = "tcp".to_string();
    }
    if !["", "ingress", "host"].contains(&out.publish_mode.as_str()) {
        return Err(bad(&format!("mode {:?} is not ingress or host", out.publish_mode)));
    }
    if out.publish_mode.is_empty() {
        out.publish_mode = "ingress".to_string();
    }
    Ok(out)
}

/// The endpoint spec, if any flag asked for one.
pub fn endpoint_spec_of(mode: Option<&str>, publish: &[String]) -> Result<Option<EndpointSpec>, CtlError> {
    let ports = publish
        .iter()
        .map(|p| parse_publish(p))
        .collect::<Result<Vec<_>, _>>()?;
    if mode.is_none() && ports.is_empty() {
        return Ok(None);
    }
    Ok(Some(EndpointSpec {
        mode: mode.unwrap_or("vip").to_string(),
        ports: (!ports.is_empty()).then_some(ports),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_parse_in_both_forms() {
        assert_eq!(parse_network("back").unwrap().target, "back");
        let n = parse_network("name=back,alias=db,alias=store,driver-opt=k=v").unwrap();
        assert_eq!(n.target, "back");
        assert_eq!(n.aliases, Some(vec!["db".to_string(), "store".to_string()]));
        assert_eq!(n.driver_opts.unwrap()["k"], "v");
        let err = parse_network("alias=db").unwrap_err().to_string();
        assert!(err.contains("name= is required"), "{err}");
        let err = parse_network("name=a,colour=red").unwrap_err().to_string();
        assert!(err.contains("unknown field \"colour\""), "{err}");
    }

    #[test]
    fn ports_parse_in_both_forms_and_bad_ones_are_named() {
        let p = parse_publish("8080:80").unwrap();
        assert_eq!(
            (
                p.published_port,
                p.target_port,
                p.protocol.as_str(),
                p.publish_mode.as_str()
            ),
            (Some(8080), 80, "tcp", "ingress")
        );
        let p = parse_publish("53/udp").unwrap();
        assert_eq!(
            (p.published_port, p.target_port, p.protocol.as_str()),
            (None, 53, "udp")
        );
        let p = parse_publish("mode=host,target=80,published=8081,protocol=udp").unwrap();
        assert_eq!(
            (
                p.published_port,
                p.target_port,
                p.protocol.as_str(),
                p.publish_mode.as_str()
            ),
            (Some(8081), 80, "udp", "host")
        );
        for (bad, why) in [
            ("80:http", "\"http\" is not a port"),
            ("0:80", "\"0\" is not a port"),
            ("published=80", "target= is required"),
            ("8080:80/icmp", "protocol \"icmp\""),
            ("target=80,mode=mesh", "mode \"mesh\""),
        ] {
            let err = parse_publish(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
