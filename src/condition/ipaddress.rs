//! OpenFGA's `ipaddress` CEL type (`internal/condition/types/ipaddress.go`): a value of type
//! `IPAddress`, the member function `in_cidr(string) -> bool` and the function
//! `ipaddress(string) -> IPAddress`. Addresses and prefixes are read as Go's `netip.ParseAddr` and
//! `netip.ParsePrefix` read them, and `in_cidr` is `netip.Prefix.Contains`: an IPv4 address never
//! matches an IPv6 prefix nor the reverse (an IPv4-mapped IPv6 address is IPv6), and an address
//! with a zone matches no prefix.

use std::any::Any;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use cel::common::types::{self, CelBool, CelString, Type};
use cel::common::value::{CowVal, StaticVal, Val};
use cel::{DeclarationError, Env, ExecutionError};

/// The CEL type of an IP address, named as OpenFGA names it.
pub(crate) static IP_TYPE: Type = Type::new_unspecified_type("IPAddress");

/// An IP address, with the IPv6 zone (`fe80::1%eth0`) if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IpAddress {
    addr: IpAddr,
    zone: Option<String>,
}

impl IpAddress {
    /// Parses `s` as Go's `netip.ParseAddr` does: dotted-quad IPv4 without leading zeros, or IPv6
    /// with an optional `%zone`.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        if s.contains(':') {
            let (addr, zone) = match s.split_once('%') {
                Some((addr, zone)) if !zone.is_empty() => (addr, Some(zone.to_owned())),
                Some(_) => return None,
                None => (s, None),
            };
            let addr: Ipv6Addr = addr.parse().ok()?;
            Some(Self {
                addr: IpAddr::V6(addr),
                zone,
            })
        } else {
            let addr: Ipv4Addr = s.parse().ok()?;
            Some(Self {
                addr: IpAddr::V4(addr),
                zone: None,
            })
        }
    }

    /// Whether `cidr` (`10.0.0.0/8`) includes this address, or why `cidr` is no prefix.
    pub(crate) fn in_cidr(&self, cidr: &str) -> Result<bool, String> {
        let malformed = || format!("'{cidr}' is a malformed CIDR string");
        let (addr, bits) = cidr.rsplit_once('/').ok_or_else(malformed)?;
        if addr.contains('%') {
            return Err(malformed());
        }
        let network = Self::parse(addr).ok_or_else(malformed)?;
        let valid_bits = !bits.is_empty()
            && bits.bytes().all(|b| b.is_ascii_digit())
            && (bits == "0" || !bits.starts_with('0'));
        let bits: u32 = if valid_bits {
            bits.parse().map_err(|_| malformed())?
        } else {
            return Err(malformed());
        };
        if self.zone.is_some() {
            return Ok(false);
        }
        match (network.addr, self.addr) {
            (IpAddr::V4(net), IpAddr::V4(ip)) if bits <= 32 => {
                let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                Ok(u32::from(net) & mask == u32::from(ip) & mask)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) if bits <= 128 => {
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                Ok(u128::from(net) & mask == u128::from(ip) & mask)
            }
            (IpAddr::V4(_), _) if bits > 32 => Err(malformed()),
            (IpAddr::V6(_), _) if bits > 128 => Err(malformed()),
            _ => Ok(false),
        }
    }
}

impl Val for IpAddress {
    fn get_type(&self) -> &Type {
        &IP_TYPE
    }

    fn cel_type() -> &'static Type {
        &IP_TYPE
    }

    fn equals(&self, other: &dyn Val) -> bool {
        other.downcast_ref::<IpAddress>().is_some_and(|o| o == self)
    }

    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v> {
        Box::new(self.clone())
    }

    fn as_any(&self) -> Option<&dyn Any> {
        Some(self)
    }
}

impl StaticVal for IpAddress {}

fn arg<'a, 'b, 'v, T: cel::common::value::FromVal<'a, 'v>>(
    args: &'a [CowVal<'b, 'v>],
    index: usize,
    function: &str,
) -> Result<&'a T, ExecutionError> {
    args.get(index)
        .and_then(|a| a.downcast_ref::<T>())
        .ok_or_else(|| ExecutionError::function_error(function, "unexpected argument type"))
}

fn in_cidr<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let ip = arg::<IpAddress>(&args, 0, "in_cidr")?;
    let cidr = arg::<CelString>(&args, 1, "in_cidr")?;
    let contained = ip
        .in_cidr(cidr.inner())
        .map_err(|e| ExecutionError::function_error("in_cidr", e))?;
    Ok(CowVal::owned(CelBool::from(contained)))
}

fn ipaddress<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let s = arg::<CelString>(&args, 0, "ipaddress")?;
    let ip = IpAddress::parse(s.inner()).ok_or_else(|| {
        ExecutionError::function_error(
            "ipaddress",
            format!("ParseAddr({:?}): unable to parse IP", s.inner()),
        )
    })?;
    Ok(CowVal::owned(ip))
}

/// Declares `in_cidr` and `ipaddress` on `env`.
pub(crate) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_member_overload(
        "in_cidr",
        "ipaddr_in_cidr",
        IP_TYPE.to_owned(),
        vec![types::STRING_TYPE],
        in_cidr,
    )?;
    env.add_overload(
        "ipaddress",
        "string_to_ipaddress",
        vec![types::STRING_TYPE],
        ipaddress,
    )
}
