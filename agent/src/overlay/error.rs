//! Why a piece of the overlay could not be built, in words that say what to do.

/// Netlink's "operation not permitted" and "not supported", as negative errno values.
const EPERM: i32 = -1;
const EOPNOTSUPP: i32 = -95;

#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("cannot {what}: not permitted; swarmd must run as root to build overlay networks")]
    NotPermitted { what: String },
    #[error("cannot create VXLAN device {name}: this kernel has no VXLAN support (module vxlan)")]
    NoVxlan { name: String },
    #[error("cannot {what}: {source}")]
    Netlink {
        what: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("cannot enter network namespace {path}: {source}")]
    Namespace {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set the virtual IPs in {netns}: {detail}")]
    Nft { netns: String, detail: String },
    #[error("cannot open the container's resolver at 127.0.0.11:53 in {netns}: {source}")]
    Resolver {
        netns: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Missing(String),
}

impl OverlayError {
    /// Sorts a netlink failure of `what` into what the user can act on.
    pub(crate) fn netlink(what: impl Into<String>, source: rtnetlink::Error) -> Self {
        let what = what.into();
        let code = match &source {
            rtnetlink::Error::NetlinkError(e) => e.raw_code(),
            _ => 0,
        };
        match code {
            EPERM => OverlayError::NotPermitted { what },
            EOPNOTSUPP if what.contains("VXLAN") => OverlayError::NoVxlan {
                name: what.rsplit(' ').next().unwrap_or_default().to_string(),
            },
            _ => OverlayError::Netlink { what, source },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroI32;

    use rtnetlink::packet_core::ErrorMessage;

    use super::*;

    fn failed(code: i32) -> rtnetlink::Error {
        let mut e = ErrorMessage::default();
        e.code = NonZeroI32::new(code);
        rtnetlink::Error::NetlinkError(e)
    }

    #[test]
    fn missing_root_and_missing_vxlan_say_so() {
        let e = OverlayError::netlink("create bridge swbr4097", failed(EPERM));
        assert_eq!(
            e.to_string(),
            "cannot create bridge swbr4097: not permitted; swarmd must run as root to build overlay networks"
        );
        let e = OverlayError::netlink("create VXLAN device swvx4097", failed(EOPNOTSUPP));
        assert_eq!(
            e.to_string(),
            "cannot create VXLAN device swvx4097: this kernel has no VXLAN support (module vxlan)"
        );
        let e = OverlayError::netlink("create bridge swbr4097", failed(EOPNOTSUPP));
        assert!(matches!(e, OverlayError::Netlink { .. }), "{e}");
    }
}
