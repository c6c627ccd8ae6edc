//! The IPMI commands this plugin sends, as [`Request`]s, and the parsers of their responses:
//! channel capabilities, cipher suites, session privilege, chassis status/control and boot options.

use super::CodecError;
use super::message::{NETFN_APP, NETFN_CHASSIS, Request};
use super::rakp::PRIV_ADMIN;
use super::suite::Suite;

/// Get Channel Authentication Capabilities (App 0x38) on the current channel, asking for IPMI 2.0
/// extended data, at Administrator.
pub fn get_channel_auth_caps() -> Request {
    Request::new(NETFN_APP, 0x38, [0x8e, PRIV_ADMIN])
}

/// Whether the channel supports IPMI 2.0 (RMCP+), from Get Channel Auth Caps' data.
pub fn supports_ipmi20(data: &[u8]) -> Result<bool, CodecError> {
    let caps = data.get(..4).ok_or_else(|| CodecError::new("Get Channel Authentication Capabilities answer is too short"))?;
    Ok(caps[1] & 0x80 != 0 && caps[3] & 0x02 != 0)
}

/// Get Channel Cipher Suites (App 0x54), IPMI payload, list by cipher suite, 16-byte chunk `index`.
pub fn get_channel_cipher_suites(index: u8) -> Request {
    Request::new(NETFN_APP, 0x54, [0x0e, 0x00, 0x80 | (index & 0x3f)])
}

/// The record bytes of one Get Channel Cipher Suites answer (after the channel number).
pub fn cipher_suite_chunk(data: &[u8]) -> Result<&[u8], CodecError> {
    data.get(1..).ok_or_else(|| CodecError::new("Get Channel Cipher Suites answer is too short"))
}

/// The suites this plugin speaks among the records a BMC listed (§22.15.2, table 22-18): a
/// standard record is 0xC0, the suite id, then algorithm bytes tagged 00/01/10 in their top bits.
/// A suite id we know by number counts only if its algorithms are the ones we implement.
pub fn parse_cipher_suites(records: &[u8]) -> Vec<Suite> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < records.len() {
        let start = records[i];
        let head = match start {
            0xc0 => 2,
            0xc1 => 5, // OEM: suite id, then the IANA number
            _ => {
                i += 1;
                continue;
            }
        };
        let algs_at = i + head;
        let mut end = algs_at;
        while end < records.len() && records[end] & 0xc0 != 0xc0 {
            end += 1;
        }
        let algs = records.get(algs_at..end).unwrap_or(&[]);
        if start == 0xc0 {
            let pick = |tag: u8| algs.iter().find(|a| *a & 0xc0 == tag).map(|a| a & 0x3f);
            if let (Some(a), Some(n), Some(c)) = (pick(0x00), pick(0x40), pick(0x80))
                && let Some(suite) = Suite::from_algorithms(a, n, c)
                && records.get(i + 1).copied() == Some(suite.id())
                && !found.contains(&suite)
            {
                found.push(suite);
            }
        }
        i = end.max(i + 1);
    }
    found
}

/// Set Session Privilege Level (App 0x3B) to Administrator: a fresh session runs at User.
pub fn set_session_privilege() -> Request {
    Request::new(NETFN_APP, 0x3b, [PRIV_ADMIN])
}

/// Close Session (App 0x3C) for the BMC's session id.
pub fn close_session(bmc_session_id: u32) -> Request {
    Request::new(NETFN_APP, 0x3c, bmc_session_id.to_le_bytes())
}

/// Deactivate Payload (App 0x49) for Serial over LAN (payload type 1), instance 1: frees a console
/// a dead session left active, so the next `sol activate` is not refused as "already active on
/// another session" (`ipmitool sol deactivate` sends the same). Completion code 0x80 answers that
/// it was not active.
pub fn deactivate_sol() -> Request {
    Request::new(NETFN_APP, 0x49, [0x01, 0x01, 0, 0, 0, 0])
}

/// Deactivate Payload's "payload already deactivated".
pub const SOL_NOT_ACTIVE: u8 = 0x80;
/// The completion code of a command the BMC does not know.
pub const INVALID_COMMAND: u8 = 0xc1;

/// Get Chassis Status (Chassis 0x01).
pub fn chassis_status() -> Request {
    Request::new(NETFN_CHASSIS, 0x01, [])
}

/// Whether the chassis is powered, from Get Chassis Status' data (current power state, bit 0).
pub fn power_is_on(data: &[u8]) -> Result<bool, CodecError> {
    let state = data.first().ok_or_else(|| CodecError::new("Get Chassis Status answered without data"))?;
    Ok(state & 0x01 != 0)
}

/// Chassis Control (Chassis 0x02) actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Off = 0x00,
    On = 0x01,
    Cycle = 0x02,
    HardReset = 0x03,
    /// ACPI soft shutdown (the power button).
    SoftOff = 0x05,
}

pub fn chassis_control(action: Control) -> Request {
    Request::new(NETFN_CHASSIS, 0x02, [action as u8])
}

/// Boot device for boot flags parameter 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootTarget {
    Pxe,
    Disk,
}

/// Set System Boot Options (Chassis 0x08), parameter 5 (boot flags), marked valid: the device,
/// whether it persists, and `efi` for the EFI boot type bit (§28.13 table 28-14). The bit has
/// no "unchanged" value, so keeping the BMC's mode means reading it first ([`get_boot_flags`]).
pub fn set_boot_flags(target: BootTarget, persistent: bool, efi: bool) -> Request {
    let mut flags = 0x80; // valid
    if persistent {
        flags |= 0x40;
    }
    if efi {
        flags |= 0x20;
    }
    let device = match target {
        BootTarget::Pxe => 0x04,
        BootTarget::Disk => 0x08,
    };
    Request::new(NETFN_CHASSIS, 0x08, [0x05, flags, device, 0x00, 0x00, 0x00])
}

/// Get System Boot Options (Chassis 0x09), parameter 5.
pub fn get_boot_flags() -> Request {
    Request::new(NETFN_CHASSIS, 0x09, [0x05, 0x00, 0x00])
}

/// The EFI bit of a Get System Boot Options parameter 5 answer (version, selector, 5 data bytes).
pub fn boot_flags_efi(data: &[u8]) -> Result<bool, CodecError> {
    let flags = data.get(2).ok_or_else(|| CodecError::new("Get System Boot Options answer is too short"))?;
    Ok(flags & 0x20 != 0)
}

/// Names a command's completion code (IPMI 2.0 table 5-2) for `command-failed` messages.
pub fn completion_text(code: u8) -> &'static str {
    match code {
        0xc0 => "node busy",
        0xc1 => "invalid command",
        0xc2 => "invalid command for this LUN",
        0xc3 => "timeout while processing",
        0xc4 => "out of space",
        0xc5 => "reservation cancelled or invalid",
        0xc6 => "request data truncated",
        0xc7 => "request data length invalid",
        0xc8 => "request data field length limit exceeded",
        0xc9 => "parameter out of range",
        0xca => "cannot return the number of requested bytes",
        0xcb => "requested sensor, data or record not present",
        0xcc => "invalid data field in request",
        0xcd => "command illegal for this sensor or record type",
        0xce => "response could not be provided",
        0xcf => "duplicated request",
        0xd0 => "SDR repository in update mode",
        0xd1 => "device in firmware update mode",
        0xd2 => "BMC initialization in progress",
        0xd3 => "destination unavailable",
        0xd4 => "insufficient privilege level",
        0xd5 => "not supported in present state",
        0xd6 => "parameter is illegal because a sub-function is disabled",
        0xff => "unspecified error",
        0x80 => "parameter not supported",
        0x81 => "parameter locked",
        _ => "device-specific error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deactivate_sol_names_payload_type_1_instance_1() {
        let req = deactivate_sol();
        assert_eq!((req.netfn, req.cmd, req.data.as_slice()), (NETFN_APP, 0x49, &[1u8, 1, 0, 0, 0, 0][..]));
    }

    #[test]
    fn cipher_suites_as_openbmc_lists_them() {
        // Suites 1, 2, 3, 17 (an OpenBMC-like answer), and an OEM record in between.
        let records = [
            0xc0, 0x01, 0x01, 0x40, 0x80, //
            0xc0, 0x02, 0x01, 0x41, 0x80, //
            0xc1, 0x80, 0x00, 0x00, 0x00, 0x01, 0x41, 0x81, //
            0xc0, 0x03, 0x01, 0x41, 0x81, //
            0xc0, 0x11, 0x03, 0x44, 0x81,
        ];
        assert_eq!(parse_cipher_suites(&records), [Suite::Three, Suite::Seventeen]);
    }

    #[test]
    fn only_17_is_only_17() {
        assert_eq!(parse_cipher_suites(&[0xc0, 0x11, 0x03, 0x44, 0x81]), [Suite::Seventeen]);
        assert_eq!(parse_cipher_suites(&[]), []);
    }

    #[test]
    fn boot_flags_bytes() {
        // ipmitool chassis bootdev pxe options=efiboot: 05 a0 04 00 00 00
        assert_eq!(set_boot_flags(BootTarget::Pxe, false, true).data, [0x05, 0xa0, 0x04, 0, 0, 0]);
        assert_eq!(set_boot_flags(BootTarget::Disk, true, false).data, [0x05, 0xc0, 0x08, 0, 0, 0]);
    }

    #[test]
    fn chassis_status_power_bit() {
        assert!(power_is_on(&[0x01, 0x00, 0x00]).expect("on"));
        assert!(!power_is_on(&[0x60, 0x00, 0x00]).expect("off"));
    }

    #[test]
    fn auth_caps_ipmi20_bit() {
        // ipmi_sim's answer: channel 1, v2.0 extended, none/md5/straight, extended caps 0x02.
        assert!(supports_ipmi20(&[0x01, 0x96, 0x14, 0x02, 0, 0, 0, 0]).expect("caps"));
        assert!(!supports_ipmi20(&[0x01, 0x16, 0x14, 0x00, 0, 0, 0, 0]).expect("caps"));
    }
}
