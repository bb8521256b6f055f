//! A throwaway local chain: anvil started from the npm package pinned in `ci/chain/`.
//!
//! The binary path is fixed at compile time relative to the workspace (so tests need no setup
//! beyond `npm ci`) and overridable at run time with `LPT_ANVIL`. anvil listens on port 0 of the
//! loopback interface and reports the port it got, so parallel tests never collide. It dies with
//! its owner however the owner ends: dropping the [`LocalChain`] kills it, and on Linux it also
//! gets `PR_SET_PDEATHSIG`, so even a SIGKILLed `lpt run` or `lpt stack up` leaves no anvil behind
//! (alloy's launcher has no hook for that, which is why anvil is spawned here). anvil's stdout is
//! drained by a thread so its per-transaction logging can never fill the pipe and stall the node.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::signers::Signer;
use alloy::signers::local::PrivateKeySigner;

use super::{ChainError, read_provider, wallet_provider};

/// Environment variable overriding the anvil binary.
pub const ANVIL_ENV: &str = "LPT_ANVIL";

const DEFAULT_ANVIL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../ci/chain/node_modules/.bin/anvil"
);

/// anvil's chain id (it is started without `--chain-id`).
const ANVIL_CHAIN_ID: u64 = 31337;

/// How long anvil gets to print its listening address (it starts in ~0.05 s).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running anvil node with its ten funded test accounts.
#[derive(Debug)]
pub struct LocalChain {
    process: std::sync::Mutex<Child>,
    /// The binary it runs, for a restart.
    binary: PathBuf,
    /// Where anvil writes its state when it stops and reads it when it starts, if it keeps one.
    state: Option<PathBuf>,
    /// The port, held while anvil is stopped so that nothing else takes it.
    held: std::sync::Mutex<Option<PortHold>>,
    url: String,
    chain_id: u64,
    /// The funded test accounts' keys, in anvil's order.
    keys: Vec<PrivateKeySigner>,
    addresses: Vec<Address>,
}

impl Drop for LocalChain {
    fn drop(&mut self) {
        let process = self.process.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = process.kill();
        let _ = process.wait();
    }
}

/// What anvil printed before it started listening.
#[derive(Debug, Default, PartialEq)]
struct Banner {
    keys: Vec<String>,
    listening: Option<String>,
}

impl Banner {
    /// Takes one line of anvil's start-up output; true once the listening address is known.
    fn take(&mut self, line: &str, in_keys: &mut bool) -> bool {
        let line = line.trim();
        if let Some(address) = line.strip_prefix("Listening on") {
            self.listening = Some(address.trim().to_owned());
            return true;
        }
        if line.starts_with("Private Keys") {
            *in_keys = true;
        } else if line.starts_with("Wallet") || line.starts_with("Base Fee") {
            *in_keys = false;
        }
        if *in_keys
            && line.starts_with('(')
            && let Some(key) = line.split("0x").nth(1)
        {
            self.keys.push(key.trim().to_owned());
        }
        false
    }
}

/// A `pre_exec` hook (Linux) that makes the child receive SIGTERM when the thread that spawned
/// it ends, so no child outlives its owner, even one killed with SIGKILL.
#[cfg(target_os = "linux")]
pub fn die_with_parent() -> std::io::Result<()> {
    // SAFETY: prctl with PR_SET_PDEATHSIG is async-signal-safe and touches no memory of ours.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl LocalChain {
    /// Where anvil is taken from: `$LPT_ANVIL`, else `ci/chain/node_modules/.bin/anvil`.
    pub fn anvil_path() -> PathBuf {
        std::env::var_os(ANVIL_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_ANVIL))
    }

    /// Starts anvil from [`anvil_path`](Self::anvil_path) on a free loopback port (chain id
    /// 31337, blocks mined on demand).
    pub fn start() -> Result<Self, ChainError> {
        Self::start_with(&Self::anvil_path())
    }

    /// Starts the anvil binary at `path`.
    ///
    /// On Linux anvil is sent SIGTERM when the thread that started it ends (that is how
    /// `PR_SET_PDEATHSIG` counts a parent), so start it from a thread that outlives the chain:
    /// the main thread, a runtime's worker, not a short-lived blocking-pool thread.
    pub fn start_with(path: &Path) -> Result<Self, ChainError> {
        Self::start_from(path, None)
    }

    /// Starts anvil from [`anvil_path`](Self::anvil_path) keeping its state in the file `state`,
    /// so that it can be stopped and started again with its blocks and accounts
    /// ([`stop_keeping_state`](Self::stop_keeping_state), [`start_again`](Self::start_again)).
    pub fn start_keeping_state(state: &Path) -> Result<Self, ChainError> {
        Self::start_from(&Self::anvil_path(), Some(state.to_owned()))
    }

    fn start_from(path: &Path, state: Option<PathBuf>) -> Result<Self, ChainError> {
        let (process, banner) = launch(path, 0, state.as_deref())?;
        let (url, chain_id, keys) =
            Self::from_banner(&banner).map_err(|reason| ChainError::AnvilStart {
                path: path.to_path_buf(),
                reason,
            })?;
        Ok(Self {
            process: std::sync::Mutex::new(process),
            binary: path.to_owned(),
            state,
            held: std::sync::Mutex::new(None),
            url,
            chain_id,
            addresses: keys.iter().map(|k| k.address()).collect(),
            keys,
        })
    }

    /// Stops anvil the way an operator does (SIGTERM), which makes it write its state; waits
    /// for it to exit. Only for a chain started with
    /// [`start_keeping_state`](Self::start_keeping_state).
    pub fn stop_keeping_state(&self) -> Result<(), ChainError> {
        if self.state.is_none() {
            return Err(self.restart_error("it was started without a state file".into()));
        }
        let mut process = self.process.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(process.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while Instant::now() < deadline {
            if process
                .try_wait()
                .map_err(|e| self.restart_error(e.to_string()))?
                .is_some()
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(self.restart_error(format!(
            "anvil did not exit within {STARTUP_TIMEOUT:?} of SIGTERM"
        )))
    }

    /// Starts anvil again on the same port from the state it wrote when it stopped.
    pub fn start_again(&self) -> Result<(), ChainError> {
        let (Some(state), Some(port)) = (&self.state, self.port()) else {
            return Err(self.restart_error("it was started without a state file".into()));
        };
        drop(self.held.lock().unwrap_or_else(|e| e.into_inner()).take());
        let (process, _) = launch(&self.binary, port, Some(state))?;
        *self.process.lock().unwrap_or_else(|e| e.into_inner()) = process;
        Ok(())
    }

    fn port(&self) -> Option<u16> {
        self.url.rsplit(':').next()?.parse().ok()
    }

    fn restart_error(&self, reason: String) -> ChainError {
        ChainError::AnvilStart {
            path: self.binary.clone(),
            reason: format!("cannot restart the chain: {reason}"),
        }
    }

    fn from_banner(banner: &Banner) -> Result<(String, u64, Vec<PrivateKeySigner>), String> {
        let listening = banner.listening.as_deref().unwrap_or_default();
        let address: std::net::SocketAddr = listening
            .parse()
            .map_err(|_| format!("unreadable listening address {listening:?}"))?;
        let chain_id = ANVIL_CHAIN_ID;
        let keys = banner
            .keys
            .iter()
            .map(|hex| {
                let mut key: PrivateKeySigner = hex
                    .parse()
                    .map_err(|e| format!("unreadable test account key: {e}"))?;
                key.set_chain_id(Some(chain_id));
                Ok(key)
            })
            .collect::<Result<Vec<_>, String>>()?;
        if keys.is_empty() {
            return Err("anvil listed no test accounts".into());
        }
        Ok((format!("http://{address}"), chain_id, keys))
    }

    /// HTTP JSON-RPC endpoint.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Chain id (31337).
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The `index`-th funded test account (0..10).
    pub fn signer(&self, index: usize) -> PrivateKeySigner {
        self.keys[index].clone()
    }

    /// Addresses of the funded accounts.
    pub fn accounts(&self) -> &[Address] {
        &self.addresses
    }

    /// anvil's process id.
    pub fn pid(&self) -> u32 {
        self.process.lock().unwrap_or_else(|e| e.into_inner()).id()
    }

    /// A provider sending transactions as `signer`.
    pub fn provider(&self, signer: PrivateKeySigner) -> DynProvider {
        wallet_provider(&self.url, signer).expect("anvil endpoint is a valid URL")
    }

    /// A read-only provider.
    pub fn reader(&self) -> DynProvider {
        read_provider(&self.url).expect("anvil endpoint is a valid URL")
    }

    /// Mines `blocks` empty blocks.
    pub async fn mine(&self, blocks: u64) -> Result<(), ChainError> {
        self.reader()
            .raw_request::<_, serde_json::Value>("anvil_mine".into(), (U256::from(blocks),))
            .await
            .map(drop)
            .map_err(|source| ChainError::Rpc {
                call: "anvil_mine",
                source,
            })
    }

    /// Current block number.
    pub async fn block_number(&self) -> Result<u64, ChainError> {
        self.reader()
            .get_block_number()
            .await
            .map_err(|source| ChainError::Rpc {
                call: "eth_blockNumber",
                source,
            })
    }

    /// Sets an account's ETH balance (e.g. to fund a fresh key).
    pub async fn set_balance(&self, account: Address, wei: U256) -> Result<(), ChainError> {
        self.reader()
            .raw_request::<_, serde_json::Value>("anvil_setBalance".into(), (account, wei))
            .await
            .map(drop)
            .map_err(|source| ChainError::Rpc {
                call: "anvil_setBalance",
                source,
            })
    }
}

/// A loopback port kept from other programs while its server is down: a socket bound to it and
/// not listening, so that connections are refused, as they are by a stopped server, and a
/// program asking the kernel for a free port is not given it. It sets `SO_REUSEADDR`, as the
/// server does, because the connections the server had leave the port in `TIME_WAIT`.
#[derive(Debug)]
pub struct PortHold {
    _socket: std::os::fd::OwnedFd,
}

impl PortHold {
    pub fn new(port: u16) -> std::io::Result<PortHold> {
        use std::os::fd::FromRawFd;
        // SAFETY: plain socket syscalls on a descriptor this function owns from creation.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let socket = std::os::fd::OwnedFd::from_raw_fd(fd);
            let on: libc::c_int = 1;
            if libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_REUSEADDR,
                (&raw const on).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            let address = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: port.to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
                },
                sin_zero: [0; 8],
            };
            let bound = libc::bind(
                fd,
                (&raw const address).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            );
            if bound != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(PortHold { _socket: socket })
        }
    }
}

/// Spawns anvil on `port` of the loopback interface (0: any free one), loading and dumping
/// `state` if given, and reads its banner up to the listening address.
fn launch(path: &Path, port: u16, state: Option<&Path>) -> Result<(Child, Banner), ChainError> {
    if !path.exists() {
        return Err(ChainError::AnvilMissing(path.to_path_buf()));
    }
    let failed = |reason: String| ChainError::AnvilStart {
        path: path.to_path_buf(),
        reason,
    };
    let mut command = Command::new(path);
    command
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .env("NO_COLOR", "1")
        .env("FOUNDRY_DISABLE_NIGHTLY_WARNING", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(state) = state {
        command.arg("--state").arg(state);
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: the hook only calls prctl, which is async-signal-safe.
        unsafe {
            command.pre_exec(die_with_parent);
        }
    }
    let mut process = command.spawn().map_err(|e| failed(e.to_string()))?;
    let stdout = process.stdout.take().expect("stdout is piped");
    // The banner is read on a thread so that a silent anvil cannot block past the deadline.
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
            if lines_tx.send(std::mem::take(&mut line)).is_err() {
                break;
            }
        }
        // Keep draining so anvil never blocks on a full pipe.
        let mut sink = [0u8; 8192];
        let mut stdout = reader.into_inner();
        while matches!(stdout.read(&mut sink), Ok(n) if n > 0) {}
    });
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    let mut banner = Banner::default();
    let mut in_keys = false;
    let outcome = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                if banner.take(&line, &mut in_keys) {
                    break Ok(());
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                break Err(format!("no listening address within {STARTUP_TIMEOUT:?}"));
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let status = process.wait().map(|s| s.to_string()).unwrap_or_default();
                break Err(format!("exited before listening ({status})"));
            }
        }
    };
    match outcome {
        Ok(()) => Ok((process, banner)),
        Err(reason) => {
            let _ = process.kill();
            let _ = process.wait();
            Err(failed(reason))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// anvil 1.7.1's start-up output, abridged.
    const BANNER: &str = "\
Available Accounts
==================

(0) 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266 (10000.000000000000000000 ETH)
(1) 0x70997970C51812dc3A010C7d01b50e0d17dc79C8 (10000.000000000000000000 ETH)

Private Keys
==================

(0) 0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80
(1) 0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d

Wallet
==================
Mnemonic:          test test test test test test test test test test test junk

Chain ID
==================

31337

Listening on 127.0.0.1:40513
";

    #[test]
    fn the_banner_gives_the_keys_in_order_and_the_port() {
        let mut banner = Banner::default();
        let mut in_keys = false;
        let done: Vec<bool> = BANNER
            .lines()
            .map(|line| banner.take(line, &mut in_keys))
            .collect();
        assert_eq!(done.iter().filter(|d| **d).count(), 1);
        assert!(done.last().copied().unwrap());
        let (url, chain_id, keys) = LocalChain::from_banner(&banner).unwrap();
        assert_eq!(url, "http://127.0.0.1:40513");
        assert_eq!(chain_id, 31337);
        let addresses: Vec<String> = keys.iter().map(|k| format!("{:#x}", k.address())).collect();
        assert_eq!(
            addresses,
            [
                "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266",
                "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
            ]
        );
        assert!(keys.iter().all(|k| k.chain_id() == Some(31337)));
    }

    #[test]
    fn a_banner_without_keys_or_address_is_an_error() {
        let mut banner = Banner::default();
        banner.take("Listening on 127.0.0.1:1", &mut false);
        assert!(
            LocalChain::from_banner(&banner)
                .unwrap_err()
                .contains("no test accounts")
        );
        let banner = Banner::default();
        assert!(
            LocalChain::from_banner(&banner)
                .unwrap_err()
                .contains("listening address")
        );
    }
}
