//! A 0.2.0 console description checked against the call's BMC before anything runs
//! (ARCHITECTURE.md, "plugin-host"): the plugin names the program and its arguments, and the host
//! refuses arguments that aim the program at another host or port, hand it a file, put a secret
//! on its command line, or (for ipmitool) run anything but `sol activate`. The network scope
//! (`netscope/`) holds whatever this misses; this check turns an attempt into a clear error.
//! Also: the arguments as the daemon logs them, with secrets removed.

use std::net::{IpAddr, SocketAddr};

/// The call's BMC as the description must name it.
pub(crate) struct Target<'a> {
    pub host: &'a str,
    pub port: u16,
    /// The addresses `host` resolved to.
    pub addrs: &'a [SocketAddr],
}

impl Target<'_> {
    fn is_host(&self, named: &str) -> bool {
        let bare = named.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(named);
        named.eq_ignore_ascii_case(self.host) || bare.parse::<IpAddr>().is_ok_and(|ip| self.addrs.iter().any(|a| same_ip(a.ip(), ip)))
    }
}

fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

/// ipmitool's options that take a value (its getopt string), and the ones among them that read
/// a file or carry a secret.
const IPMITOOL_VALUED: &str = "IHdPfUpCLAtTmzSlbBekyORNDo";
const IPMITOOL_FLAGS: &str = "46hVvcgsEKYaZ";
const IPMITOOL_FILES: &str = "fOS";
const IPMITOOL_SECRETS: &str = "Pky";

/// Why a description is refused: one sentence naming the argument.
pub(crate) fn check(program: &str, args: &[String], target: &Target<'_>, secrets: &[&str]) -> Result<(), String> {
    if args.iter().any(|a| secrets.iter().any(|s| !s.is_empty() && a.contains(s))) {
        return Err("an argument carries the BMC password: it belongs in the program's environment".into());
    }
    if program == "ipmitool" { check_ipmitool(args, target) } else { check_generic(args, target) }
}

fn check_ipmitool(args: &[String], target: &Target<'_>) -> Result<(), String> {
    let mut host = None;
    let mut port = None;
    let mut interface = None;
    let mut rest = args.iter();
    let mut command = Vec::new();
    while let Some(arg) = rest.next() {
        let Some(flags) = arg.strip_prefix('-').filter(|f| !f.is_empty() && command.is_empty()) else {
            command.push(arg.as_str());
            continue;
        };
        for (i, letter) in flags.char_indices() {
            if IPMITOOL_FLAGS.contains(letter) {
                continue;
            }
            if !IPMITOOL_VALUED.contains(letter) {
                return Err(format!("ipmitool option -{letter} is not one a console needs"));
            }
            let inline = &flags[i + letter.len_utf8()..];
            let value = if inline.is_empty() { rest.next().map(String::as_str).unwrap_or_default() } else { inline };
            if IPMITOOL_FILES.contains(letter) {
                return Err(format!("ipmitool option -{letter} names a file; a console reads none"));
            }
            if IPMITOOL_SECRETS.contains(letter) {
                return Err(format!("ipmitool option -{letter} puts a secret on the command line; use -E and the environment"));
            }
            match letter {
                'H' => host = Some(value),
                'p' => port = Some(value),
                'I' => interface = Some(value),
                _ => {}
            }
            break;
        }
    }
    match host {
        Some(h) if target.is_host(h) => {}
        Some(h) => return Err(format!("the console names host {h:?}, not the node's BMC {}", target.host)),
        None => return Err(format!("the console names no host (-H); it must name the node's BMC {}", target.host)),
    }
    let port = match port {
        Some(p) => p.parse::<u16>().map_err(|_| format!("the console's port {p:?} is not a port"))?,
        None => 623,
    };
    if port != target.port {
        return Err(format!("the console names port {port}, not the node's BMC port {}", target.port));
    }
    if !matches!(interface, Some("lan" | "lanplus")) {
        return Err(format!("the console's interface {:?} is not lan or lanplus", interface.unwrap_or("(default: local)")));
    }
    match command.as_slice() {
        ["sol", "activate", options @ ..]
            if options.iter().all(|o| matches!(*o, "usesolkeepalive" | "nokeepalive") || o.starts_with("instance=")) =>
        {
            Ok(())
        }
        _ => Err(format!("the console runs ipmitool {:?}; only \"sol activate\" is a console", command.join(" "))),
    }
}

/// Any other program: options named for a host must name the BMC (`host` or `host:port`), no
/// argument may be a path, and any address literal must be the BMC's.
fn check_generic(args: &[String], target: &Target<'_>) -> Result<(), String> {
    let host_options = ["-h", "-H", "--host", "--hostname"];
    let mut expect_host = false;
    for arg in args {
        let (name, value) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with('-') => (n, Some(v)),
            _ => (arg.as_str(), None),
        };
        let value_is_host = std::mem::take(&mut expect_host);
        if value_is_host || (value.is_some() && host_options.contains(&name)) {
            let named = if value_is_host { arg.as_str() } else { value.unwrap_or_default() };
            check_host_port(named, target)?;
            continue;
        }
        if host_options.contains(&name) {
            expect_host = true;
            continue;
        }
        let value = value.unwrap_or(arg);
        if value.starts_with('/') || value.starts_with("./") || value.starts_with("../") || value.starts_with('~') {
            return Err(format!("the console's argument {arg:?} names a file; a console reads none"));
        }
        if let Ok(ip) = value.parse::<IpAddr>().or_else(|_| value.parse::<SocketAddr>().map(|a| a.ip()))
            && !target.addrs.iter().any(|a| same_ip(a.ip(), ip))
        {
            return Err(format!("the console's argument {arg:?} names another host than the node's BMC {}", target.host));
        }
    }
    Ok(())
}

fn check_host_port(named: &str, target: &Target<'_>) -> Result<(), String> {
    if target.is_host(named) {
        return Ok(());
    }
    // host:port (FreeIPMI's spelling), or [v6]:port.
    if let Some((host, port)) = named.rsplit_once(':')
        && target.is_host(host)
        && port.parse::<u16>() == Ok(target.port)
    {
        return Ok(());
    }
    Err(format!("the console names host {named:?}, not the node's BMC {}:{}", target.host, target.port))
}

/// The arguments as the daemon may log them: anything holding a secret, and the value of an
/// option that carries one, replaced.
pub(crate) fn redacted(args: &[String], secrets: &[&str]) -> Vec<String> {
    const SECRET_OPTIONS: [&str; 5] = ["-P", "-k", "-y", "--password", "--k-g"];
    let mut hide_next = false;
    args.iter()
        .map(|arg| {
            if std::mem::take(&mut hide_next) || secrets.iter().any(|s| !s.is_empty() && arg.contains(s)) {
                return "<redacted>".to_owned();
            }
            if let Some((name, _)) = arg.split_once('=')
                && SECRET_OPTIONS.contains(&name)
            {
                return format!("{name}=<redacted>");
            }
            hide_next = SECRET_OPTIONS.contains(&arg.as_str());
            arg.clone()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    fn target() -> (Vec<SocketAddr>, u16) {
        (vec!["127.0.0.1:9001".parse().expect("addr")], 9001)
    }

    fn check_ipmi(line: &str) -> Result<(), String> {
        let (addrs, port) = target();
        check("ipmitool", &args(line), &Target { host: "127.0.0.1", port, addrs: &addrs }, &["s3cret"])
    }

    #[test]
    fn the_honest_ipmitool_console_passes() {
        check_ipmi("-I lanplus -H 127.0.0.1 -p 9001 -U admin -E -C 3 sol activate").expect("honest");
        // Another spelling of the same address is the same host.
        check_ipmi("-I lanplus -H ::ffff:127.0.0.1 -p 9001 -U admin -E -C3 sol activate").expect("mapped");
    }

    #[test]
    fn another_host_port_file_secret_or_command_is_refused() {
        for (line, says) in [
            ("-I lanplus -H 127.0.0.2 -p 9001 -U admin -E sol activate", "127.0.0.2"),
            ("-I lanplus -H 127.0.0.1 -p 9002 -U admin -E sol activate", "port 9002"),
            ("-I lanplus -H127.0.0.1 -p9001 -U admin -f /etc/shadow sol activate", "file"),
            ("-I lanplus -H 127.0.0.1 -p 9001 -U admin -P s3cret sol activate", "password"),
            ("-I lanplus -H 127.0.0.1 -p 9001 -U admin -E exec /etc/shadow", "only \"sol activate\""),
            ("-H 127.0.0.1 -p 9001 -U admin -E sol activate", "interface"),
            ("-I lan -A PASSWORD -p 9001 -U admin -E sol activate", "no host"),
        ] {
            let err = check_ipmi(line).expect_err(line);
            assert!(err.contains(says), "{line}: {err}");
        }
    }

    #[test]
    fn other_programs_must_name_the_bmc_and_no_file() {
        let (addrs, port) = target();
        let t = Target { host: "127.0.0.1", port, addrs: &addrs };
        check("ipmiconsole", &args("-h 127.0.0.1:9001 -u admin"), &t, &[]).expect("honest");
        assert!(check("ipmiconsole", &args("-h 127.0.0.2 -u admin"), &t, &[]).is_err());
        assert!(check("ipmiconsole", &args("--hostname=10.0.0.1 -u admin"), &t, &[]).is_err());
        assert!(check("ipmiconsole", &args("--config-file=/etc/shadow"), &t, &[]).is_err());
        assert!(check("somecon", &args("connect 10.1.1.1"), &t, &[]).is_err());
    }

    #[test]
    fn logged_arguments_hold_no_secret() {
        let shown = redacted(&args("-I lanplus -H h -P s3cret -U admin --password=x -k kg sol activate"), &["s3cret"]);
        assert_eq!(shown.join(" "), "-I lanplus -H h -P <redacted> -U admin --password=<redacted> -k <redacted> sol activate");
    }
}
