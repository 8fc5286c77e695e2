//! The original client of a request that came through proxies: RFC 7239 `Forwarded` (`for=`)
//! and the de-facto `X-Forwarded-For`. Both arrive from the network and may say anything: a
//! value that is not an address (`unknown`, an obfuscated `_id`, garbage) yields nothing, and
//! nothing here panics or allocates more than the value's length.

use std::net::IpAddr;

/// The longest header value looked at (a proxy chain is short; a longer value is ignored).
const MAX_VALUE: usize = 1024;

/// The client address (and port, when the proxy gave one) that the first proxy saw: from
/// `Forwarded` if present, else `X-Forwarded-For`.
pub(crate) fn original_client(headers: &http::HeaderMap) -> Option<(IpAddr, Option<u16>)> {
    let value = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() <= MAX_VALUE)
    };
    if let Some(forwarded) = value("forwarded") {
        return forwarded_for(forwarded);
    }
    value("x-forwarded-for").and_then(x_forwarded_for)
}

/// The `for` parameter of the first element of a `Forwarded` value.
pub(crate) fn forwarded_for(value: &str) -> Option<(IpAddr, Option<u16>)> {
    let first = value.split(',').next()?;
    let node = first.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim().eq_ignore_ascii_case("for").then_some(value.trim())
    })?;
    let node = node.strip_prefix('"').and_then(|n| n.strip_suffix('"')).unwrap_or(node);
    node_address(node)
}

/// The first entry of an `X-Forwarded-For` value.
pub(crate) fn x_forwarded_for(value: &str) -> Option<(IpAddr, Option<u16>)> {
    node_address(value.split(',').next()?.trim())
}

/// `192.0.2.60`, `192.0.2.60:4711`, `[2001:db8::17]`, `[2001:db8::17]:4711` or a bare IPv6
/// address.
fn node_address(node: &str) -> Option<(IpAddr, Option<u16>)> {
    if let Some(rest) = node.strip_prefix('[') {
        let (address, after) = rest.split_once(']')?;
        let ip: IpAddr = address.parse().ok()?;
        let port = match after {
            "" => None,
            port => Some(port.strip_prefix(':')?.parse().ok()?),
        };
        return Some((ip, port));
    }
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some((ip, None)); // IPv4, or IPv6 without brackets (no port then)
    }
    let (address, port) = node.rsplit_once(':')?;
    let ip: std::net::Ipv4Addr = address.parse().ok()?;
    Some((IpAddr::V4(ip), Some(port.parse().ok()?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn forwarded_elements_as_rfc_7239_writes_them() {
        let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 60));
        let v6: IpAddr = "2001:db8:cafe::17".parse().unwrap();
        assert_eq!(
            forwarded_for("for=192.0.2.60;proto=http;by=203.0.113.43"),
            Some((v4, None))
        );
        assert_eq!(
            forwarded_for("For=\"[2001:db8:cafe::17]:4711\""),
            Some((v6, Some(4711)))
        );
        assert_eq!(
            forwarded_for("for=192.0.2.60:8080, for=198.51.100.17"),
            Some((v4, Some(8080)))
        );
        assert_eq!(
            forwarded_for("proto=https;for=\"[2001:db8:cafe::17]\""),
            Some((v6, None))
        );
        assert_eq!(forwarded_for("for=unknown"), None);
        assert_eq!(
            forwarded_for("for=_hidden, for=192.0.2.60"),
            None,
            "only the first element counts"
        );
        assert_eq!(forwarded_for("by=203.0.113.43"), None);
        assert_eq!(forwarded_for("for=\"[2001:db8::1\""), None);
        assert_eq!(forwarded_for("for=192.0.2.60:99999"), None);
    }

    #[test]
    fn x_forwarded_for_takes_the_first_entry() {
        let v4 = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 195));
        assert_eq!(
            x_forwarded_for("203.0.113.195, 70.41.3.18, 150.172.238.178"),
            Some((v4, None))
        );
        assert_eq!(x_forwarded_for(" 203.0.113.195:51234 "), Some((v4, Some(51234))));
        assert_eq!(
            x_forwarded_for("2001:db8::1"),
            Some((IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)), None))
        );
        assert_eq!(x_forwarded_for("not-an-ip, 203.0.113.195"), None);
        assert_eq!(x_forwarded_for(""), None);
    }

    #[test]
    fn forwarded_wins_over_x_forwarded_for_and_long_values_are_ignored() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-forwarded-for", "198.51.100.1".parse().unwrap());
        headers.insert(http::header::FORWARDED, "for=192.0.2.60".parse().unwrap());
        assert_eq!(original_client(&headers).unwrap().0.to_string(), "192.0.2.60");
        headers.remove(http::header::FORWARDED);
        assert_eq!(original_client(&headers).unwrap().0.to_string(), "198.51.100.1");
        let long = format!("198.51.100.1,{}", "10.0.0.1,".repeat(200));
        headers.insert("x-forwarded-for", long.parse().unwrap());
        assert_eq!(original_client(&headers), None);
    }

    proptest! {
        #[test]
        fn any_value_parses_without_panicking(value in "\\PC{0,200}") {
            let _ = forwarded_for(&value);
            let _ = x_forwarded_for(&value);
        }

        #[test]
        fn every_address_and_port_comes_back(ip in any::<IpAddr>(), port in proptest::option::of(any::<u16>()), quoted in any::<bool>()) {
            let node = match (ip, port) {
                (IpAddr::V4(v4), Some(p)) => format!("{v4}:{p}"),
                (IpAddr::V4(v4), None) => v4.to_string(),
                (IpAddr::V6(v6), Some(p)) => format!("[{v6}]:{p}"),
                (IpAddr::V6(v6), None) => format!("[{v6}]"),
            };
            let element = if quoted || matches!(ip, IpAddr::V6(_)) { format!("for=\"{node}\"") } else { format!("for={node}") };
            prop_assert_eq!(forwarded_for(&format!("proto=https;{element};by=_proxy, for=10.0.0.1")), Some((ip, port)));
            prop_assert_eq!(x_forwarded_for(&format!("{node}, 10.0.0.1")), Some((ip, port)));
        }
    }
}
