//! The `exec` capability as a builder: run a program the operator granted, with secrets passed in
//! the child's environment or in a 0600 file in its private working dir, never on its argv (where
//! any local user could read them in /proc/PID/cmdline).

use crate::DriverError;
use crate::bindings::power::metalhost::drivers::exec;

pub use exec::ExecError;

/// What the program printed and how it ended.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit status; -1 when killed by a signal.
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == 0
    }
}

/// One run of a granted program. The host adds nothing but a fixed `PATH` to `env`.
#[derive(Clone)]
pub struct Command {
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    files: Vec<(String, String)>,
    timeout_ms: u32,
}

impl Command {
    /// `program` is a name the operator granted in `exec = [...]`, not a path.
    pub fn new(program: &str) -> Command {
        Command { program: program.to_owned(), args: Vec::new(), env: Vec::new(), files: Vec::new(), timeout_ms: 30_000 }
    }

    /// One argument. Never a secret: argv is world-readable while the child runs.
    pub fn arg(mut self, arg: impl Into<String>) -> Command {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// An environment variable of the child: the place for a password the tool reads from env.
    pub fn env(mut self, key: &str, value: &str) -> Command {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// A file (mode 0600) in the child's private working dir, by plain name: the place for a
    /// credentials file. The dir is deleted after the run.
    pub fn file(mut self, name: &str, contents: &str) -> Command {
        self.files.push((name.to_owned(), contents.to_owned()));
        self
    }

    /// The host clamps it to what is left of the call's own deadline.
    pub fn timeout_ms(mut self, ms: u32) -> Command {
        self.timeout_ms = ms;
        self
    }

    /// Runs it, with the host's error as it is.
    pub fn output(&self) -> Result<Output, ExecError> {
        exec::run(&self.program, &self.args, &self.env, &self.files, self.timeout_ms).map(|o| Output {
            status: o.status,
            stdout: o.stdout,
            stderr: o.stderr,
        })
    }

    /// Runs it; a timeout is `unreachable` (the device did not answer in time), a refused or
    /// failed start is `command-failed` carrying the host's message, which names the program.
    pub fn run(&self) -> Result<Output, DriverError> {
        self.output().map_err(|e| match e {
            ExecError::TimedOut(m) => DriverError::Unreachable(m),
            ExecError::NotPermitted(m) | ExecError::SpawnFailed(m) => DriverError::CommandFailed(m),
        })
    }
}
