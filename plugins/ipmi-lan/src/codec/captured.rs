//! The codec against packets captured from a real exchange: `ipmitool -I lanplus -C 17` and
//! `-C 3` (1.8.19) running `chassis power status` against the lab responder (tests/lab/ipmi_bmc.py
//! `--trace`, password "pw17"). ipmitool is an independent client: its requests must match ours
//! byte for byte where the protocol leaves no choice, and the keys we derive must open its packets.

use super::message::Response;
use super::rakp::{Handshake, parse_open_session_response};
use super::rmcp::{PayloadType, decode_v15, decode_v20, encode_v15};
use super::suite::Suite;
use super::{commands, message::Request};

fn packets(trace: &str) -> Vec<Vec<u8>> {
    trace
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(_, hex)| (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex")).collect())
        .collect()
}

fn replay(trace: &str, suite: Suite) {
    let p = packets(trace);
    // Get Channel Authentication Capabilities, sessionless: the same bytes as ours.
    assert_eq!(p[0], encode_v15(&commands::get_channel_auth_caps().encode(0)));
    let caps = Response::decode(decode_v15(&p[1]).expect("v1.5")).expect("caps");
    assert!(commands::supports_ipmi20(&caps.data).expect("caps data"));

    // Open Session: ipmitool asks for privilege 0 ("highest matching"), we for Administrator;
    // the algorithm records are the same.
    let open = decode_v20(&p[2], None).expect("open session");
    assert_eq!(open.payload_type, PayloadType::OpenSessionRequest);
    let tag = open.payload[0];
    let console_session_id = u32::from_le_bytes(open.payload[4..8].try_into().expect("sid"));
    assert_eq!(open.payload[8..], super::rakp::open_session_request(tag, console_session_id, suite)[8..]);
    let opened = decode_v20(&p[3], None).expect("open session response");
    let bmc_session_id = parse_open_session_response(&opened.payload, tag, console_session_id).expect("parse").expect("accepted");

    // RAKP 1: with ipmitool's random number, our message is its message.
    let rakp1 = decode_v20(&p[4], None).expect("rakp1").payload;
    let mut hs = Handshake {
        suite,
        console_session_id,
        bmc_session_id,
        console_random: rakp1[8..24].try_into().expect("rm"),
        bmc_random: [0; 16],
        bmc_guid: [0; 16],
        username: b"admin".to_vec(),
        key: Handshake::key_from_password("pw17"),
    };
    let tag = rakp1[0];
    assert_eq!(hs.rakp1(tag), rakp1);
    hs.accept_rakp2(&decode_v20(&p[5], None).expect("rakp2").payload, tag).expect("rakp2 parses").expect("rakp2 accepted");
    // RAKP 3: ipmitool's key exchange code is ours.
    assert_eq!(decode_v20(&p[6], None).expect("rakp3").payload, hs.rakp3(tag));
    let keys = hs.accept_rakp4(&decode_v20(&p[7], None).expect("rakp4").payload, tag).expect("rakp4 parses").expect("rakp4 accepted");

    // ipmitool's session packets verify and decrypt with our keys: Set Session Privilege Level,
    // then Get Chassis Status.
    let set_priv = decode_v20(&p[8], Some(&keys)).expect("ipmitool's first session packet");
    assert_eq!(set_priv.session_id, bmc_session_id);
    let msg = &set_priv.payload;
    assert_eq!((msg[1] >> 2, msg[5]), (0x06, 0x3b));
    let answer = Response::decode(&decode_v20(&p[9], Some(&keys)).expect("answer").payload).expect("response");
    assert_eq!((answer.cmd, answer.completion), (0x3b, 0));
    // Between them ipmitool probes DCMI (netfn 0x2c), answered "invalid command".
    let at = (10..p.len())
        .step_by(2)
        .find(|i| decode_v20(&p[*i], Some(&keys)).expect("session packet").payload[1] >> 2 == 0x00)
        .expect("a chassis request");
    let status = decode_v20(&p[at], Some(&keys)).expect("status request").payload;
    let seq = status[4] >> 2;
    assert_eq!(status, Request::new(0x00, 0x01, []).encode(seq));
    let answer = Response::decode(&decode_v20(&p[at + 1], Some(&keys)).expect("status answer").payload).expect("response");
    assert!(answer.answers(&Request::new(0x00, 0x01, []), seq));
    assert!(!commands::power_is_on(&answer.data).expect("power bit"));
    // Close Session, last, names the BMC's session id.
    let close = decode_v20(&p[p.len() - 2], Some(&keys)).expect("close").payload;
    assert_eq!(close[5], 0x3c);
    assert_eq!(close[6..10], bmc_session_id.to_le_bytes());
}

#[test]
fn ipmitool_suite_17_exchange() {
    replay(include_str!("testdata/ipmitool-c17.trace"), Suite::Seventeen);
}

#[test]
fn ipmitool_suite_3_exchange() {
    replay(include_str!("testdata/ipmitool-c3.trace"), Suite::Three);
}
