//! Conversion of JSON parameter values to CEL values of a declared [`ParamType`], following
//! OpenFGA's `internal/condition/types` converters:
//!
//! * `int` / `uint` / `double` accept a JSON number or a string holding a decimal number
//!   (`"42"`, `"1e3"`); `int` and `uint` need an integral value in range, `uint` a non-negative
//!   one, `double` a finite one (`"1.8e309"` is refused). OpenFGA saturates an out-of-range
//!   integer; this module refuses it instead.
//! * `bool` and `string` accept only a JSON bool and a JSON string.
//! * `duration` accepts a Go duration string (`"1h30m"`, `"1.5h"`, `"300ms"`, `"-2µs"`), parsed
//!   exactly as Go's `time.ParseDuration` does.
//! * `timestamp` accepts an RFC 3339 string (Go's `time.RFC3339` layout, fractional seconds
//!   allowed); the instant is kept in UTC, so `getHours()` and friends answer in UTC as cel-go's do.
//! * `ipaddress` accepts a string Go's `netip.ParseAddr` accepts.
//! * `list<T>` / `map<T>` accept a JSON array / object whose every item converts to `T`.
//! * `any` accepts every JSON value, with numbers as `double`, as OpenFGA's (protobuf `Struct`)
//!   values are.
//!
//! JSON `null` converts only to `any`.

use std::collections::HashMap;

use cel::common::types::{
    CelBool, CelDouble, CelDuration, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString,
    CelTimestamp, CelUInt,
};
use cel::common::value::Val;
use serde_json::Value as Json;

use super::ParamType;
use super::ipaddress::IpAddress;

/// A CEL value bound to a parameter.
pub(crate) type CelVal = Box<dyn Val>;

/// Converts `value` to a CEL value of type `ty`; the error says why not (without the parameter's
/// name, which the caller adds).
pub(crate) fn to_cel(ty: &ParamType, value: &Json) -> Result<CelVal, String> {
    Ok(match ty {
        ParamType::Int => Box::new(CelInt::from(to_int(value)?)),
        ParamType::Uint => Box::new(CelUInt::from(to_uint(value)?)),
        ParamType::Double => Box::new(CelDouble::from(to_double(value)?)),
        ParamType::Bool => match value {
            Json::Bool(b) => Box::new(CelBool::from(*b)),
            other => return Err(expected("bool", other)),
        },
        ParamType::String => match value {
            Json::String(s) => Box::new(CelString::from(s.clone())),
            other => return Err(expected("string", other)),
        },
        ParamType::Duration => match value {
            Json::String(s) => {
                let nanos = parse_go_duration(s)
                    .ok_or_else(|| format!("expected a valid duration string, but found: '{s}'"))?;
                Box::new(CelDuration::from(chrono::Duration::nanoseconds(nanos)))
            }
            other => {
                return Err(format!(
                    "expected a duration string, but found: {}",
                    kind(other)
                ));
            }
        },
        ParamType::Timestamp => match value {
            Json::String(s) => Box::new(CelTimestamp::from(parse_rfc3339(s).ok_or_else(|| {
                format!("expected RFC 3339 formatted timestamp string, but found '{s}'")
            })?)),
            other => {
                return Err(format!(
                    "expected RFC 3339 formatted timestamp string, but found: {}",
                    kind(other)
                ));
            }
        },
        ParamType::IpAddress => {
            match value {
                Json::String(s) => Box::new(IpAddress::parse(s).ok_or_else(|| {
                    format!("expected a well-formed IP address, but found: '{s}'")
                })?),
                other => {
                    return Err(format!(
                        "expected an ipaddress string, but found: {}",
                        kind(other)
                    ));
                }
            }
        }
        ParamType::Any => any_to_cel(value),
        ParamType::List(item) => match value {
            Json::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (index, item_value) in items.iter().enumerate() {
                    out.push(to_cel(item, item_value).map_err(|e| {
                        format!("found an invalid list item at index `{index}`: {e}")
                    })?);
                }
                Box::new(CelList::from(out))
            }
            other => return Err(format!("list requires a list, found: {}", kind(other))),
        },
        ParamType::Map(item) => match value {
            Json::Object(entries) => {
                let mut out = HashMap::with_capacity(entries.len());
                for (key, item_value) in entries {
                    let converted = to_cel(item, item_value)
                        .map_err(|e| format!("found an invalid value for key `{key}`: {e}"))?;
                    out.insert(CelMapKey::from(key.clone()), converted);
                }
                Box::new(CelMap::from(out))
            }
            other => return Err(format!("map requires a map, found: {}", kind(other))),
        },
    })
}

/// An `any` value: JSON as a protobuf `Struct` holds it, every number a double.
fn any_to_cel(value: &Json) -> CelVal {
    match value {
        Json::Null => Box::new(CelNull),
        Json::Bool(b) => Box::new(CelBool::from(*b)),
        // `as_f64` is `Some` for every JSON number serde_json holds.
        Json::Number(n) => Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN))),
        Json::String(s) => Box::new(CelString::from(s.clone())),
        Json::Array(items) => Box::new(CelList::from(
            items.iter().map(any_to_cel).collect::<Vec<_>>(),
        )),
        Json::Object(entries) => Box::new(CelMap::from(
            entries
                .iter()
                .map(|(k, v)| (CelMapKey::from(k.clone()), any_to_cel(v)))
                .collect::<HashMap<_, _>>(),
        )),
    }
}

fn kind(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "bool",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "list",
        Json::Object(_) => "map",
    }
}

fn expected(what: &str, found: &Json) -> String {
    format!("expected type value '{what}', but found '{}'", kind(found))
}

/// A JSON number or numeric string as an exact integer, if it is one; `Err` if it is no number.
enum Numeric {
    Int(i128),
    Fractional(f64),
}

fn numeric(value: &Json, type_name: &str) -> Result<Numeric, String> {
    match value {
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(Numeric::Int(i128::from(i)))
            } else if let Some(u) = n.as_u64() {
                Ok(Numeric::Int(i128::from(u)))
            } else {
                Ok(float_numeric(n.as_f64().unwrap_or(f64::NAN)))
            }
        }
        Json::String(s) => {
            if let Ok(i) = s.parse::<i128>() {
                return Ok(Numeric::Int(i));
            }
            match parse_decimal(s) {
                Some(f) => Ok(float_numeric(f)),
                None => Err(format!(
                    "expected a {type_name} value, but found invalid string value '{s}'"
                )),
            }
        }
        other => Err(expected(type_name, other)),
    }
}

fn float_numeric(f: f64) -> Numeric {
    // Every integral f64 within ±2^127 is an exact i128.
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1.7e38 {
        #[allow(clippy::cast_possible_truncation)]
        Numeric::Int(f as i128)
    } else {
        Numeric::Fractional(f)
    }
}

/// A decimal number as Go's `big.ParseFloat(s, 10, ...)` reads it: an optional sign, digits with
/// an optional point, an optional exponent. Also `Inf`, which converts to no type here.
fn parse_decimal(s: &str) -> Option<f64> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let digits = mantissa.chars().filter(char::is_ascii_digit).count();
    let points = mantissa.chars().filter(|c| *c == '.').count();
    let mantissa_ok = digits > 0 && points <= 1 && digits + points == mantissa.len();
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && e.chars().all(|c| c.is_ascii_digit())
    });
    if !(mantissa_ok && exponent_ok) {
        return None;
    }
    s.parse::<f64>().ok()
}

fn to_int(value: &Json) -> Result<i64, String> {
    match numeric(value, "int")? {
        Numeric::Int(i) => {
            i64::try_from(i).map_err(|_| format!("expected an int value, but {i} is out of range"))
        }
        Numeric::Fractional(f) => Err(format!(
            "expected an int value, but found numeric value '{f}'"
        )),
    }
}

fn to_uint(value: &Json) -> Result<u64, String> {
    match numeric(value, "uint")? {
        Numeric::Int(i) if i < 0 => Err(format!(
            "expected a uint value, but found int64 value '{i}'"
        )),
        Numeric::Int(i) => {
            u64::try_from(i).map_err(|_| format!("expected a uint value, but {i} is out of range"))
        }
        Numeric::Fractional(f) => Err(format!(
            "expected a uint value, but found numeric value '{f}'"
        )),
    }
}

fn to_double(value: &Json) -> Result<f64, String> {
    let f = match value {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => parse_decimal(s),
        other => return Err(expected("double", other)),
    };
    match f {
        Some(f) if f.is_finite() => Ok(f),
        Some(_) => Err(format!(
            "expected a double value, but {value} is out of the range of a double"
        )),
        None => Err(format!(
            "expected a double value, but found invalid string value {value}"
        )),
    }
}

/// Go's `time.ParseDuration`, in nanoseconds: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, units `ns`,
/// `us`, `µs`, `μs`, `ms`, `s`, `m`, `h`; `"0"` alone needs no unit. `None` when Go refuses it,
/// overflow of ±2^63-1 ns included.
pub(crate) fn parse_go_duration(input: &str) -> Option<i64> {
    const LIMIT: u64 = 1 << 63;
    let mut s = input;
    let mut neg = false;
    if let Some(rest) = s.strip_prefix('-') {
        neg = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Some(0);
    }
    if s.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        let first = s.as_bytes().first().copied()?;
        if !(first == b'.' || first.is_ascii_digit()) {
            return None;
        }
        // The integer part.
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let mut whole: u64 = 0;
        for b in s[..int_len].bytes() {
            whole = whole.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
            if whole > LIMIT {
                return None;
            }
        }
        let pre = int_len > 0;
        s = &s[int_len..];
        // The fraction.
        let mut frac: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut post = false;
        if let Some(rest) = s.strip_prefix('.') {
            s = rest;
            let frac_len = s.bytes().take_while(u8::is_ascii_digit).count();
            let mut overflow = false;
            for b in s[..frac_len].bytes() {
                if overflow {
                    continue;
                }
                match frac
                    .checked_mul(10)
                    .and_then(|f| f.checked_add(u64::from(b - b'0')))
                {
                    Some(f) if f <= LIMIT => {
                        frac = f;
                        scale *= 10.0;
                    }
                    _ => overflow = true,
                }
            }
            post = frac_len > 0;
            s = &s[frac_len..];
        }
        if !pre && !post {
            return None;
        }
        // The unit.
        let unit_len = s
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(s.len(), |(i, _)| i);
        if unit_len == 0 {
            return None;
        }
        let unit: u64 = match &s[..unit_len] {
            "ns" => 1,
            "us" | "\u{00b5}s" | "\u{03bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            _ => return None,
        };
        s = &s[unit_len..];
        if whole > LIMIT / unit {
            return None;
        }
        let mut v = whole * unit;
        if frac > 0 {
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            let extra = (frac as f64 * (unit as f64 / scale)) as u64;
            v = v.checked_add(extra)?;
            if v > LIMIT {
                return None;
            }
        }
        total = total.checked_add(v)?;
        if total > LIMIT {
            return None;
        }
    }
    if neg {
        // -2^63 is representable.
        Some(0i64.checked_sub_unsigned(total)?)
    } else {
        i64::try_from(total).ok()
    }
}

/// An RFC 3339 timestamp as Go's `time.Parse(time.RFC3339, s)` accepts it (`T` and `Z`
/// upper-case, fractional seconds optional), in UTC.
pub(crate) fn parse_rfc3339(s: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    let bytes = s.as_bytes();
    if bytes.len() < 20 || bytes.get(10) != Some(&b'T') || s.contains(['t', 'z', ' ']) {
        return None;
    }
    let parsed = chrono::DateTime::parse_from_rfc3339(s).ok()?;
    Some(parsed.with_timezone(&chrono::FixedOffset::east_opt(0)?))
}
