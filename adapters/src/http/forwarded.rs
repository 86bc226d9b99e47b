//! The client's address behind load balancers (`TOLLGATE_TRUSTED_PROXIES`).

use std::net::IpAddr;

use ipnet::IpNet;

/// The address a request comes from. `X-Forwarded-For` is believed only when the peer is a
/// trusted proxy (anyone else can write the header); then the chain is read from the right,
/// passing over trusted proxies, and the first other address is the client. Entries that are
/// not IP addresses end the walk (the hop that appended them is the client as far as we can
/// tell). Without a trusted peer, the peer is the client.
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let Some(chain) = forwarded_for else {
        return peer;
    };
    let mut client = peer;
    for entry in chain.rsplit(',').map(str::trim) {
        let Ok(ip) = entry.parse::<IpAddr>() else {
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forwarded_for_counts_only_from_trusted_peers() {
        let trusted: Vec<IpNet> = vec![
            "127.0.0.1/32".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ];
        let local = ip("127.0.0.1");
        assert_eq!(
            client_ip(local, Some("203.0.113.9"), &trusted),
            ip("203.0.113.9")
        );
        // A spoofed left part does not matter: the last untrusted hop is the client.
        assert_eq!(
            client_ip(local, Some("1.1.1.1, 203.0.113.9, 10.1.2.3"), &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(client_ip(local, None, &trusted), local);
        assert_eq!(client_ip(local, Some("garbage"), &trusted), local);
        // An untrusted peer's header is ignored.
        let outsider = ip("198.51.100.7");
        assert_eq!(client_ip(outsider, Some("203.0.113.9"), &trusted), outsider);
        assert_eq!(client_ip(local, Some("203.0.113.9"), &[]), local);
    }
}
