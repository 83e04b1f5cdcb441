//! Address and port expressions of rule headers, with Suricata's default variables.

use std::collections::HashMap;
use std::net::IpAddr;

#[derive(Clone, Debug)]
pub struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    fn parse(s: &str) -> Option<Net> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => {
                let p = p.trim();
                if let Ok(n) = p.parse::<u8>() {
                    n
                } else if let Ok(IpAddr::V4(m)) = p.parse::<IpAddr>() {
                    u32::from(m).count_ones() as u8
                } else {
                    return None;
                }
            }
        };
        if prefix > max {
            return None;
        }
        Some(Net { addr, prefix })
    }
    pub fn contains(&self, ip: &IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                if self.prefix == 0 {
                    return true;
                }
                let m = u32::MAX << (32 - self.prefix as u32);
                (u32::from(n) & m) == (u32::from(*a) & m)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                if self.prefix == 0 {
                    return true;
                }
                let m = u128::MAX << (128 - self.prefix as u32);
                (u128::from(n) & m) == (u128::from(*a) & m)
            }
            _ => false,
        }
    }
}

/// A set of addresses: `any`, or includes minus excludes.
#[derive(Clone, Debug, Default)]
pub struct AddrSet {
    any: bool,
    include: Vec<Net>,
    exclude: Vec<Net>,
    /// IPv4 includes/excludes as sorted, merged ranges (binary search: IP lists of hundreds
    /// of addresses are common in rule sets).
    inc4: Vec<(u32, u32)>,
    exc4: Vec<(u32, u32)>,
}

fn v4_ranges(nets: &[Net]) -> Vec<(u32, u32)> {
    let mut v: Vec<(u32, u32)> = nets
        .iter()
        .filter_map(|n| match n.addr {
            IpAddr::V4(a) => {
                let host = 32 - n.prefix as u32;
                let lo = if host == 32 { 0 } else { u32::from(a) >> host << host };
                let hi = if host == 32 { u32::MAX } else { lo | ((1u32 << host) - 1) };
                Some((lo, hi))
            }
            IpAddr::V6(_) => None,
        })
        .collect();
    v.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(v.len());
    for (lo, hi) in v {
        match out.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

fn in_ranges(r: &[(u32, u32)], x: u32) -> bool {
    let i = r.partition_point(|&(lo, _)| lo <= x);
    i > 0 && r[i - 1].1 >= x
}

impl AddrSet {
    pub fn is_any(&self) -> bool {
        self.any
    }
    /// The included networks as inclusive ranges, IPv4 and IPv6 apart (exclusions ignored:
    /// callers use this to index candidates and verify with `matches`).
    pub fn include_ranges(&self) -> (Vec<(u128, u128)>, Vec<(u128, u128)>) {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for n in &self.include {
            match n.addr {
                IpAddr::V4(a) => {
                    let host = 32 - n.prefix as u32;
                    let lo = (u32::from(a) as u128) >> host << host;
                    v4.push((lo, lo + ((1u128 << host) - 1)));
                }
                IpAddr::V6(a) => {
                    let host = 128 - n.prefix as u32;
                    let lo = if host == 128 { 0 } else { u128::from(a) >> host << host };
                    let span = if host == 128 { u128::MAX } else { (1u128 << host) - 1 };
                    v6.push((lo, lo.saturating_add(span)));
                }
            }
        }
        (v4, v6)
    }
    pub fn matches(&self, ip: &IpAddr) -> bool {
        if let IpAddr::V4(a) = ip {
            let x = u32::from(*a);
            return !in_ranges(&self.exc4, x) && (self.any || in_ranges(&self.inc4, x));
        }
        if self.exclude.iter().any(|n| n.contains(ip)) {
            return false;
        }
        self.any || self.include.iter().any(|n| n.contains(ip))
    }
}

#[derive(Clone, Debug, Default)]
pub struct PortSet {
    any: bool,
    include: Vec<(u16, u16)>,
    exclude: Vec<(u16, u16)>,
}

impl PortSet {
    /// Whether some port outside `hot` may match (exclusions ignored: an over-approximation
    /// used to place rules into port groups).
    pub fn may_match_other_than(&self, hot: &[u16]) -> bool {
        let all = [(0u16, 65535u16)];
        let ranges: &[(u16, u16)] = if self.any { &all } else { &self.include };
        ranges.iter().any(|&(a, b)| (b as u32 - a as u32 + 1) > hot.iter().filter(|&&h| h >= a && h <= b).count() as u32)
    }
    pub fn matches(&self, p: u16) -> bool {
        if self.exclude.iter().any(|&(a, b)| p >= a && p <= b) {
            return false;
        }
        self.any || self.include.iter().any(|&(a, b)| p >= a && p <= b)
    }
}

pub struct Vars {
    addr: HashMap<String, String>,
    port: HashMap<String, String>,
}

impl Default for Vars {
    fn default() -> Self {
        let mut addr = HashMap::new();
        addr.insert("HOME_NET".into(), "[192.168.0.0/16,10.0.0.0/8,172.16.0.0/12]".into());
        addr.insert("EXTERNAL_NET".into(), "!$HOME_NET".into());
        for v in [
            "HTTP_SERVERS", "SMTP_SERVERS", "SQL_SERVERS", "DNS_SERVERS", "TELNET_SERVERS", "AIM_SERVERS", "DC_SERVERS",
            "DNP3_SERVER", "DNP3_CLIENT", "MODBUS_CLIENT", "MODBUS_SERVER", "ENIP_CLIENT", "ENIP_SERVER",
        ] {
            addr.insert(v.into(), "$HOME_NET".into());
        }
        let mut port = HashMap::new();
        for (k, v) in [
            ("HTTP_PORTS", "80"),
            ("SHELLCODE_PORTS", "!80"),
            ("ORACLE_PORTS", "1521"),
            ("SSH_PORTS", "22"),
            ("DNP3_PORTS", "20000"),
            ("MODBUS_PORTS", "502"),
            ("FILE_DATA_PORTS", "[$HTTP_PORTS,110,143]"),
            ("FTP_PORTS", "21"),
            ("GENEVE_PORTS", "6081"),
            ("VXLAN_PORTS", "4789"),
            ("TEREDO_PORTS", "3544"),
        ] {
            port.insert(k.into(), v.into());
        }
        Vars { addr, port }
    }
}

/// Split a bracketed list at top-level commas.
fn split_top(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for ch in s.chars() {
        match ch {
            '[' => {
                depth += 1;
                cur.push(ch);
            }
            ']' => {
                depth -= 1;
                cur.push(ch);
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur)),
            _ => cur.push(ch),
        }
    }
    out.push(cur);
    out.into_iter().map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect()
}

impl Vars {
    pub fn parse_addr(&self, s: &str) -> Result<AddrSet, String> {
        let mut set = AddrSet::default();
        self.addr_into(s.trim(), false, &mut set, 0)?;
        if set.include.is_empty() && !set.any {
            // Only exclusions: everything else.
            set.any = true;
        }
        set.inc4 = v4_ranges(&set.include);
        set.exc4 = v4_ranges(&set.exclude);
        Ok(set)
    }

    fn addr_into(&self, s: &str, neg: bool, set: &mut AddrSet, depth: u32) -> Result<(), String> {
        if depth > 16 {
            return Err("address variable recursion too deep".into());
        }
        let s = s.trim();
        if let Some(r) = s.strip_prefix('!') {
            return self.addr_into(r, !neg, set, depth + 1);
        }
        if s.starts_with('[') {
            let inner = s.strip_prefix('[').and_then(|x| x.strip_suffix(']')).ok_or_else(|| format!("unbalanced brackets in address \"{s}\""))?;
            for part in split_top(inner) {
                self.addr_into(&part, neg, set, depth + 1)?;
            }
            return Ok(());
        }
        if let Some(v) = s.strip_prefix('$') {
            let val = self.addr.get(v).ok_or_else(|| format!("unknown address variable ${v}"))?.clone();
            return self.addr_into(&val, neg, set, depth + 1);
        }
        if s.eq_ignore_ascii_case("any") {
            if neg {
                return Err("negated \"any\" address matches nothing".into());
            }
            set.any = true;
            return Ok(());
        }
        let net = Net::parse(s).ok_or_else(|| format!("invalid address \"{s}\""))?;
        if neg {
            set.exclude.push(net);
        } else {
            set.include.push(net);
        }
        Ok(())
    }

    pub fn parse_ports(&self, s: &str) -> Result<PortSet, String> {
        let mut set = PortSet::default();
        self.port_into(s.trim(), false, &mut set, 0)?;
        if set.include.is_empty() && !set.any {
            set.any = true;
        }
        Ok(set)
    }

    fn port_into(&self, s: &str, neg: bool, set: &mut PortSet, depth: u32) -> Result<(), String> {
        if depth > 16 {
            return Err("port variable recursion too deep".into());
        }
        let s = s.trim();
        if let Some(r) = s.strip_prefix('!') {
            return self.port_into(r, !neg, set, depth + 1);
        }
        if s.starts_with('[') {
            let inner = s.strip_prefix('[').and_then(|x| x.strip_suffix(']')).ok_or_else(|| format!("unbalanced brackets in ports \"{s}\""))?;
            for part in split_top(inner) {
                self.port_into(&part, neg, set, depth + 1)?;
            }
            return Ok(());
        }
        if let Some(v) = s.strip_prefix('$') {
            let val = self.port.get(v).ok_or_else(|| format!("unknown port variable ${v}"))?.clone();
            return self.port_into(&val, neg, set, depth + 1);
        }
        if s.eq_ignore_ascii_case("any") {
            if neg {
                return Err("negated \"any\" port matches nothing".into());
            }
            set.any = true;
            return Ok(());
        }
        let range = if let Some((a, b)) = s.split_once(':') {
            let a = if a.trim().is_empty() { 0 } else { a.trim().parse::<u16>().map_err(|_| format!("invalid port \"{s}\""))? };
            let b = if b.trim().is_empty() { 65535 } else { b.trim().parse::<u16>().map_err(|_| format!("invalid port \"{s}\""))? };
            if a > b {
                return Err(format!("invalid port range \"{s}\""));
            }
            (a, b)
        } else {
            let p = s.parse::<u16>().map_err(|_| format!("invalid port \"{s}\""))?;
            (p, p)
        };
        if neg {
            set.exclude.push(range);
        } else {
            set.include.push(range);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn default_vars() {
        let v = Vars::default();
        let ext = v.parse_addr("$EXTERNAL_NET").unwrap();
        assert!(!ext.matches(&"10.1.2.3".parse().unwrap()));
        assert!(ext.matches(&"8.8.8.8".parse().unwrap()));
        let p = v.parse_ports("$FILE_DATA_PORTS").unwrap();
        assert!(p.matches(80) && p.matches(143) && !p.matches(81));
        let p = v.parse_ports("[1024:,!2000]").unwrap();
        assert!(p.matches(1500) && !p.matches(2000) && !p.matches(80));
        let a = v.parse_addr("[1.2.3.4,1.2.3.5,10.0.0.0/8,!10.1.0.0/16,0.0.0.0/32]").unwrap();
        for (ip, want) in [("1.2.3.4", true), ("1.2.3.5", true), ("1.2.3.6", false), ("10.2.0.1", true), ("10.1.2.3", false), ("0.0.0.0", true), ("0.0.0.1", false)] {
            assert_eq!(a.matches(&ip.parse().unwrap()), want, "{ip}");
        }
        assert!(v.parse_addr("0.0.0.0/0").unwrap().matches(&"255.255.255.255".parse().unwrap()));
    }
}
