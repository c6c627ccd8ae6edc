//! An RMCP+ session with one BMC: channel discovery, cipher suite choice, Open Session, RAKP 1-4,
//! then authenticated, encrypted requests with retransmission, and Close Session. It talks through a
//! [`Transport`] so the whole exchange runs on the host target in tests as in the plugin.

use crate::codec::CodecError;
use crate::codec::commands::{self, completion_text};
use crate::codec::message::{Request, Response};
use crate::codec::rakp::{self, Handshake, status_text};
use crate::codec::rmcp::{self, Packet, PayloadType, SessionKeys};
use crate::codec::suite::Suite;

/// What a session needs from outside: one datagram exchange with the BMC, and random bytes.
pub trait Transport {
    /// Sends `payload` and returns the first reply within `timeout_ms`, or `None`.
    fn exchange(&mut self, payload: &[u8], timeout_ms: u32) -> Result<Option<Vec<u8>>, SessionError>;
    fn fill_random(&mut self, buf: &mut [u8]) -> Result<(), SessionError>;
}

/// Why a session or a command failed; the plugin maps each case to the contract's `driver-error`.
/// No case ever carries the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    AuthFailed(String),
    #[error("{0}")]
    CommandFailed(String),
    #[error("{0}")]
    Parse(String),
    #[error("{0}")]
    Unsupported(String),
}

/// How long a command that must not run twice waits for its answer before a copy is sent.
pub const AT_MOST_ONCE_WAIT_MS: u32 = 5000;

/// How hard to try: each request waits `timeout_ms` for its answer and is sent `retries` more
/// times before the BMC counts as unreachable.
#[derive(Debug, Clone)]
pub struct Options {
    pub timeout_ms: u32,
    pub retries: u32,
    /// Suites in order of preference; the first the BMC offers wins.
    pub prefer: Vec<Suite>,
}

/// An open session: keys, ids and sequence numbers.
pub struct Session<'t, T: Transport> {
    transport: &'t mut T,
    options: Options,
    keys: SessionKeys,
    bmc_session_id: u32,
    out_seq: u32,
    rq_seq: u8,
}

fn parse(step: &str) -> impl Fn(CodecError) -> SessionError + '_ {
    move |e| {
        if e.integrity { SessionError::AuthFailed(format!("{step}: {e}")) } else { SessionError::Parse(format!("{step}: {e}")) }
    }
}

/// Sends `packet` until an answer comes or the tries run out.
fn exchange<T: Transport>(t: &mut T, options: &Options, step: &str, packet: &[u8]) -> Result<Vec<u8>, SessionError> {
    for _ in 0..=options.retries {
        if let Some(reply) = t.exchange(packet, options.timeout_ms)? {
            return Ok(reply);
        }
    }
    Err(SessionError::Unreachable(format!("no answer to {step} after {} tries of {} ms", options.retries + 1, options.timeout_ms)))
}

/// A request before any session exists, in an IPMI 1.5 sessionless packet.
fn sessionless<T: Transport>(t: &mut T, options: &Options, step: &str, req: &Request) -> Result<Response, SessionError> {
    let reply = exchange(t, options, step, &rmcp::encode_v15(&req.encode(0)))?;
    let message = rmcp::decode_v15(&reply).map_err(parse(step))?;
    let resp = Response::decode(message).map_err(parse(step))?;
    if !resp.answers(req, 0) {
        return Err(SessionError::Parse(format!("{step}: the answer is for another command")));
    }
    Ok(resp)
}

/// The suites the BMC lists, or `None` if it does not answer Get Channel Cipher Suites.
fn offered_suites<T: Transport>(t: &mut T, options: &Options) -> Result<Option<Vec<Suite>>, SessionError> {
    let mut records = Vec::new();
    for index in 0..8 {
        let resp = sessionless(t, options, "Get Channel Cipher Suites", &commands::get_channel_cipher_suites(index))?;
        if resp.completion != 0 {
            return Ok(None);
        }
        let chunk = commands::cipher_suite_chunk(&resp.data).map_err(parse("Get Channel Cipher Suites"))?;
        records.extend_from_slice(chunk);
        if chunk.len() < 16 {
            break;
        }
    }
    Ok(Some(commands::parse_cipher_suites(&records)))
}

fn refused(step: &str, status: u8) -> SessionError {
    let text = format!("the BMC refused {step}: {} (RMCP+ status {status:#04x})", status_text(status));
    match status {
        0x09 | 0x0a | 0x0d | 0x0e | 0x0f => SessionError::AuthFailed(text),
        0x04..=0x07 | 0x10 | 0x11 => SessionError::Unsupported(text),
        _ => SessionError::CommandFailed(text),
    }
}

fn suite_mismatch(status: u8) -> bool {
    matches!(status, 0x04..=0x07 | 0x10 | 0x11)
}

impl<'t, T: Transport> Session<'t, T> {
    /// Discovers the channel's suites, picks one, authenticates and raises the session to
    /// Administrator. `password` only keys HMACs; it never appears in an error.
    pub fn open(transport: &'t mut T, options: Options, username: &str, password: &str) -> Result<Session<'t, T>, SessionError> {
        let step = "Get Channel Authentication Capabilities";
        let caps = sessionless(transport, &options, step, &commands::get_channel_auth_caps())?;
        if caps.completion != 0 {
            return Err(SessionError::CommandFailed(format!(
                "{step} failed: completion code {:#04x} ({})",
                caps.completion,
                completion_text(caps.completion)
            )));
        }
        if !commands::supports_ipmi20(&caps.data).map_err(parse(step))? {
            return Err(SessionError::Unsupported("the BMC's channel does not support IPMI 2.0 (RMCP+)".into()));
        }
        let candidates: Vec<Suite> = match offered_suites(transport, &options)? {
            Some(offered) => {
                let common: Vec<Suite> = options.prefer.iter().copied().filter(|s| offered.contains(s)).collect();
                if common.is_empty() {
                    let ids: Vec<u8> = offered.iter().map(|s| s.id()).collect();
                    let wanted: Vec<u8> = options.prefer.iter().map(|s| s.id()).collect();
                    return Err(SessionError::Unsupported(format!(
                        "the BMC offers none of cipher suites {wanted:?} (of those this plugin speaks it offers {ids:?})"
                    )));
                }
                common
            }
            None => options.prefer.clone(),
        };
        if username.len() > 16 {
            return Err(SessionError::AuthFailed("an IPMI user name has at most 16 bytes".into()));
        }
        let mut last = None;
        for suite in candidates {
            match Self::authenticate(transport, &options, suite, username, password)? {
                Ok((keys, bmc_session_id)) => {
                    let mut session = Session { transport, options, keys, bmc_session_id, out_seq: 0, rq_seq: 0 };
                    session.call("Set Session Privilege Level", &commands::set_session_privilege())?;
                    return Ok(session);
                }
                Err(status) if suite_mismatch(status) => last = Some(refused(&format!("Open Session with cipher suite {}", suite.id()), status)),
                Err(status) => return Err(refused("Open Session", status)),
            }
        }
        Err(last.unwrap_or_else(|| SessionError::Unsupported("no cipher suite to try".into())))
    }

    /// Open Session and RAKP 1-4 with one suite. `Ok(Err(status))`: Open Session refused it.
    fn authenticate(
        t: &mut T,
        options: &Options,
        suite: Suite,
        username: &str,
        password: &str,
    ) -> Result<Result<(SessionKeys, u32), u8>, SessionError> {
        let mut random = [0u8; 20];
        t.fill_random(&mut random)?;
        // Never 0: session id 0 means "no session".
        let console_session_id = u32::from_le_bytes([random[16], random[17], random[18], random[19]]) | 1;
        let tag = random[0] & 0x3f;
        let clear = |payload_type, payload| rmcp::encode_v20(&Packet { payload_type, session_id: 0, seq: 0, payload }, None, [0; 16]);

        let step = "Open Session";
        let reply = exchange(t, options, step, &clear(PayloadType::OpenSessionRequest, rakp::open_session_request(tag, console_session_id, suite)))?;
        let packet = rmcp::decode_v20(&reply, None).map_err(parse(step))?;
        let bmc_session_id = match rakp::parse_open_session_response(&packet.payload, tag, console_session_id).map_err(parse(step))? {
            Ok(id) => id,
            Err(status) => return Ok(Err(status)),
        };

        let mut console_random = [0u8; 16];
        t.fill_random(&mut console_random)?;
        let mut hs = Handshake {
            suite,
            console_session_id,
            bmc_session_id,
            console_random,
            bmc_random: [0; 16],
            bmc_guid: [0; 16],
            username: username.as_bytes().to_vec(),
            key: Handshake::key_from_password(password),
        };
        let step = "RAKP 1";
        let reply = exchange(t, options, step, &clear(PayloadType::Rakp1, hs.rakp1(tag)))?;
        let packet = rmcp::decode_v20(&reply, None).map_err(parse("RAKP 2"))?;
        match hs.accept_rakp2(&packet.payload, tag) {
            Ok(Ok(())) => {}
            Ok(Err(status)) => return Err(refused("RAKP 1", status)),
            Err(e) if e.integrity => {
                return Err(SessionError::AuthFailed(format!(
                    "the BMC's RAKP 2 key exchange code does not match this user's password (cipher suite {}): wrong password",
                    suite.id()
                )));
            }
            Err(e) => return Err(parse("RAKP 2")(e)),
        }
        let step = "RAKP 3";
        let reply = exchange(t, options, step, &clear(PayloadType::Rakp3, hs.rakp3(tag)))?;
        let packet = rmcp::decode_v20(&reply, None).map_err(parse("RAKP 4"))?;
        match hs.accept_rakp4(&packet.payload, tag).map_err(parse("RAKP 4"))? {
            Ok(keys) => Ok(Ok((keys, bmc_session_id))),
            Err(status) => Err(refused("RAKP 3", status)),
        }
    }

    pub fn suite(&self) -> Suite {
        self.keys.suite
    }

    /// Sends one command inside the session and returns its data; a non-zero completion code is
    /// `command-failed` naming it. A lost packet is sent again with the next session sequence
    /// number (BMCs refuse a repeated one) and the same request sequence number.
    pub fn call(&mut self, name: &str, req: &Request) -> Result<Vec<u8>, SessionError> {
        self.call_tolerating(name, req, &[]).map(|(_, data)| data)
    }

    /// As [`Session::call`], with completion codes in `tolerated` taken as answers: returns the
    /// completion code with the data.
    pub fn call_tolerating(&mut self, name: &str, req: &Request, tolerated: &[u8]) -> Result<(u8, Vec<u8>), SessionError> {
        self.rq_seq = (self.rq_seq + 1) & 0x3f;
        let message = req.encode(self.rq_seq);
        for _ in 0..=self.options.retries {
            let bytes = self.seal(&message)?;
            let Some(reply) = self.transport.exchange(&bytes, self.options.timeout_ms)? else { continue };
            return self.answer(name, req, &reply, tolerated);
        }
        Err(SessionError::Unreachable(format!("no answer to {name} after {} tries of {} ms", self.options.retries + 1, self.options.timeout_ms)))
    }

    /// For a command that must not run twice (a reset): a lost packet is sent again byte for byte,
    /// with the same session sequence number, which a BMC discards once it has accepted it (the
    /// RMCP+ replay check). So when only the reply was lost the copy does nothing, and the command
    /// runs at most once. `Ok(None)`: no copy was answered, and whether it ran is unknown.
    ///
    /// Each copy waits at least [`AT_MOST_ONCE_WAIT_MS`] for the answer: not every BMC keeps the
    /// replay check (OpenIPMI's `ipmi_sim` ran a reset once per copy), and one that runs the
    /// command before it answers (a chassis hook restarting a machine) must answer first.
    pub fn call_at_most_once(&mut self, name: &str, req: &Request) -> Result<Option<Vec<u8>>, SessionError> {
        self.rq_seq = (self.rq_seq + 1) & 0x3f;
        let bytes = self.seal(&req.encode(self.rq_seq))?;
        let wait = self.options.timeout_ms.max(AT_MOST_ONCE_WAIT_MS);
        for _ in 0..=self.options.retries {
            if let Some(reply) = self.transport.exchange(&bytes, wait)? {
                return self.answer(name, req, &reply, &[]).map(|(_, data)| Some(data));
            }
        }
        Ok(None)
    }

    /// The next authenticated, encrypted packet carrying `message`.
    fn seal(&mut self, message: &[u8]) -> Result<Vec<u8>, SessionError> {
        self.out_seq = self.out_seq.wrapping_add(1).max(1);
        let mut iv = [0u8; 16];
        self.transport.fill_random(&mut iv)?;
        let packet = Packet { payload_type: PayloadType::Ipmi, session_id: self.bmc_session_id, seq: self.out_seq, payload: message.to_vec() };
        Ok(rmcp::encode_v20(&packet, Some(&self.keys), iv))
    }

    fn answer(&self, name: &str, req: &Request, reply: &[u8], tolerated: &[u8]) -> Result<(u8, Vec<u8>), SessionError> {
        let packet = rmcp::decode_v20(reply, Some(&self.keys)).map_err(parse(name))?;
        let resp = Response::decode(&packet.payload).map_err(parse(name))?;
        if !resp.answers(req, self.rq_seq) {
            return Err(SessionError::Parse(format!("{name}: the answer is for another request")));
        }
        if resp.completion != 0 && !tolerated.contains(&resp.completion) {
            return Err(SessionError::CommandFailed(format!(
                "{name} failed: completion code {:#04x} ({})",
                resp.completion,
                completion_text(resp.completion)
            )));
        }
        Ok((resp.completion, resp.data))
    }
}

impl<T: Transport> Drop for Session<'_, T> {
    /// Close Session, once, without retries (a BMC that misses it times the session out), on every
    /// path, errors included, so a failed call does not hold one of the BMC's few session slots.
    fn drop(&mut self) {
        self.options.retries = 0;
        let _ = self.call("Close Session", &commands::close_session(self.bmc_session_id));
    }
}
