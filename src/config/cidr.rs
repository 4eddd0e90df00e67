//! IP networks in CIDR notation, for trunk source ACLs.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IP network: an address and a prefix length.
///
/// A bare address means just that host (`/32` or `/128`).
///
/// ```
/// use zentrale::config::Cidr;
/// let net: Cidr = "127.0.0.0/8".parse().unwrap();
/// assert!(net.contains("127.0.0.1".parse().unwrap()));
/// assert!(!net.contains("10.0.0.1".parse().unwrap()));
/// assert_eq!("10.1.2.3".parse::<Cidr>().unwrap().to_string(), "10.1.2.3/32");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    /// The network address (host bits are zero).
    pub addr: IpAddr,
    /// Prefix length: 0..=32 for IPv4, 0..=128 for IPv6.
    pub prefix: u8,
}

impl Cidr {
    /// Whether `ip` is inside this network. IPv4-mapped IPv6 addresses
    /// (`::ffff:10.0.0.1`, as dual-stack sockets report IPv4 peers) match IPv4
    /// networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = mask32(self.prefix);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = mask128(self.prefix);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(prefix.min(128)))
        .unwrap_or(0)
}

/// Why a string is not a CIDR network; the Display text says what to write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// The address part is not an IP address.
    #[error("`{0}` is not an IP address")]
    BadAddress(String),
    /// The prefix is not a number or too long for the address family.
    #[error("prefix `{prefix}` is not a number from 0 to {max}")]
    BadPrefix {
        /// The prefix as written.
        prefix: String,
        /// 32 or 128.
        max: u8,
    },
    /// Bits are set after the prefix; usually a typo for the network.
    #[error("`{written}` has host bits set; the network is {network}")]
    HostBits {
        /// As written.
        written: String,
        /// The network it probably means.
        network: Cidr,
    },
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (addr_s, prefix_s) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr_s
            .parse()
            .map_err(|_| CidrError::BadAddress(addr_s.to_string()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix =
            match prefix_s {
                None => max,
                Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| {
                    CidrError::BadPrefix {
                        prefix: p.to_string(),
                        max,
                    }
                })?,
            };
        let network = Cidr {
            addr: match addr {
                IpAddr::V4(a) => IpAddr::V4((u32::from(a) & mask32(prefix)).into()),
                IpAddr::V6(a) => IpAddr::V6((u128::from(a) & mask128(prefix)).into()),
            },
            prefix,
        };
        // An ACL entry like 10.1.2.3/8 is ambiguous (host or network?); refuse
        // it rather than silently open a /8.
        if network.addr != addr {
            return Err(CidrError::HostBits {
                written: s.to_string(),
                network,
            });
        }
        Ok(network)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test ip")
    }

    #[test]
    fn parses_and_matches() {
        let n: Cidr = "127.0.0.0/8".parse().expect("cidr");
        assert!(n.contains(ip("127.1.2.3")));
        assert!(n.contains(ip("::ffff:127.0.0.1")));
        assert!(!n.contains(ip("128.0.0.1")));
        assert!(!n.contains(ip("::1")));
        let host: Cidr = "10.1.2.3".parse().expect("cidr");
        assert_eq!(host.prefix, 32);
        assert!(host.contains(ip("10.1.2.3")));
        assert!(!host.contains(ip("10.1.2.4")));
        let all: Cidr = "0.0.0.0/0".parse().expect("cidr");
        assert!(all.contains(ip("203.0.113.9")));
        let v6: Cidr = "2001:db8::/32".parse().expect("cidr");
        assert!(v6.contains(ip("2001:db8:1::5")));
        assert_eq!(v6.to_string(), "2001:db8::/32");
        assert_eq!("::1".parse::<Cidr>().expect("cidr").to_string(), "::1/128");
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(
            "10.0.0.0/33".parse::<Cidr>(),
            Err(CidrError::BadPrefix { max: 32, .. })
        ));
        assert!(matches!(
            "10.0.0/8".parse::<Cidr>(),
            Err(CidrError::BadAddress(_))
        ));
        let e = "10.1.2.3/8".parse::<Cidr>().expect_err("host bits");
        assert_eq!(
            e.to_string(),
            "`10.1.2.3/8` has host bits set; the network is 10.0.0.0/8"
        );
    }
}
