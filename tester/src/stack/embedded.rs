//! The embedded stack for `lpt run`: a local chain, orchestrators (each with its transcoders) and a
//! broadcaster, every node a child process (`lpt node …`) on loopback ports of its own choosing.
//!
//! The chain lives in this process (anvil is itself a child of ours, killed with the stack): the
//! contracts are deployed, the broadcaster's deposit and reserve funded, and a block ticker mines a
//! block a second and initialises rounds, because ticket parameters expire by block and anvil only
//! mines on demand. Keys are anvil's well-known test accounts (account 0 the broadcaster, 1… the
//! orchestrators): for local use only. Node configs are the nodes' own config structs, serialised
//! into the run directory, where the nodes' logs also go.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow};
use node_broadcaster::config::{BroadcasterConfig, PaymentConfig};
use node_orchestrator::config::{
    ChainConfig, OrchestratorConfig, PaymentsConfig, TranscodeConfig, TranscodeMode,
};
use tokio::task::JoinHandle;
use tracing::info;

use super::Child;
use crate::scenario::{EmbeddedTarget, Profile, StackNode};

/// What to start.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// The nodes, their prices and faults, as a scenario's embedded target names them.
    pub nodes: EmbeddedTarget,
    pub ladder: Vec<Profile>,
    pub deposit_wei: u128,
    pub reserve_wei: u128,
    /// Segments each transcoder works on at once (at least the streams that may share one).
    pub transcoder_capacity: u32,
    /// Where configs and logs go.
    pub dir: PathBuf,
    /// The `lpt` binary to start nodes with.
    pub lpt: PathBuf,
    /// How long each node may take to announce itself ready.
    pub ready_deadline: Duration,
    /// Keep anvil's state in a file so that a chaos event can restart the chain.
    pub keep_chain_state: bool,
    /// Nodes whose data directory ([`data_dir`]) is a filesystem of its own, so that a
    /// `disk_full` chaos event can fill it ([`super::storage`]).
    pub own_filesystems: Vec<StackNode>,
    /// Orchestrators whose path from the broadcaster runs over a link of its own, so that a
    /// `network` chaos event can impair it ([`super::link`]).
    pub impaired_paths: Vec<StackNode>,
}

/// Where `node` keeps its data under the stack's `dir`: the broadcaster its segment files, an
/// orchestrator its ticket journal; `None` for a node that keeps nothing on disk.
pub fn data_dir(dir: &Path, node: StackNode) -> Option<PathBuf> {
    match node {
        StackNode::Broadcaster => Some(dir.join("hls")),
        StackNode::Orchestrator(index) => Some(dir.join(format!("orchestrator-{index}"))),
        StackNode::Transcoder(..) | StackNode::Chain => None,
    }
}

impl StackOptions {
    /// The price orchestrator `index` asks, wei per `pixels_per_unit` pixels.
    pub fn price_of(&self, index: u32) -> u64 {
        self.nodes
            .prices
            .get(index as usize)
            .copied()
            .unwrap_or(self.nodes.price_per_unit)
    }
}

/// Where the probes find the stack.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Endpoints {
    pub rtmp_url: String,
    pub playback_url: String,
    pub orchestrators: Vec<String>,
    /// Each orchestrator's chain address (`None` off-chain).
    pub orchestrator_addresses: Vec<Option<String>>,
    pub chain_rpc: Option<String>,
    pub ticket_broker: Option<String>,
    /// Where the orchestrators registered their service URIs (on-chain discovery).
    pub service_registry: Option<String>,
    pub broadcaster_address: Option<String>,
}

/// A node process of the stack and the ports it listens on.
struct Node {
    name: StackNode,
    child: Child,
    ports: Vec<u16>,
    /// While the node is down: its ports, held so that nothing else takes them before it
    /// comes back.
    held: Vec<protocol::chain::PortHold>,
}

impl Node {
    fn new(name: StackNode, child: Child, listens_on: &[SocketAddr]) -> Node {
        Node {
            name,
            child,
            ports: listens_on.iter().map(SocketAddr::port).collect(),
            held: Vec::new(),
        }
    }
}

fn find(nodes: &mut [Node], name: StackNode) -> anyhow::Result<&mut Node> {
    nodes
        .iter_mut()
        .find(|n| n.name == name)
        .ok_or_else(|| anyhow!("this stack has no {name}"))
}

/// A running embedded stack; dropping it stops every part.
pub struct EmbeddedStack {
    pub endpoints: Endpoints,
    /// Every node process by name, in start order; a chaos event may kill and restart any.
    nodes: tokio::sync::Mutex<Vec<Node>>,
    ticker: Option<JoinHandle<()>>,
    chain: Option<protocol::chain::LocalChain>,
    /// What the nodes reach the chain through, so a chaos event can take their RPC away while
    /// the chain itself (and the probes' view of it) goes on.
    chain_gate: Option<protocol::chain::RpcGate>,
    ticket_journals: Vec<PathBuf>,
    /// The orchestrators' pool ledgers (none without remote transcoders), in orchestrator order.
    pool_ledgers: Vec<PathBuf>,
    /// The bearer token that shows each orchestrator's `/status` in full and its `/pool`.
    status_token: String,
    /// The data directories that are filesystems of their own, with the nodes that own them.
    filesystems: Option<(super::storage::OwnFilesystems, Vec<(StackNode, PathBuf)>)>,
    /// The paths from the broadcaster that run over links of their own, by orchestrator.
    links: Vec<(StackNode, std::sync::Arc<super::link::ImpairedLink>)>,
}

const TRANSCODER_SECRET_ENV: &str = "LPT_TRANSCODER_SECRET";
const BROADCASTER_KEY_ENV: &str = "LPT_BROADCASTER_KEY";

/// The socket address in a URL the stack announced (`https://127.0.0.1:8935`, `rtmp://…`).
fn bound_address(url: &str) -> anyhow::Result<SocketAddr> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or_default();
    authority
        .parse()
        .with_context(|| format!("no address in the announced URL {url}"))
}

fn hex_key(signer: &alloy::signers::local::PrivateKeySigner) -> String {
    format!("0x{}", alloy::hex::encode(signer.to_bytes()))
}

impl EmbeddedStack {
    pub async fn start(options: &StackOptions) -> anyhow::Result<EmbeddedStack> {
        // Absolute, so every path the stack derives names one place for lpt and for the nodes
        // alike, inside a data directory's mount namespace too (where lpt looks up a path by
        // its prefix, `storage::OwnFilesystems::holds`).
        let options = &StackOptions {
            dir: std::path::absolute(&options.dir)
                .with_context(|| format!("cannot resolve {}", options.dir.display()))?,
            ..options.clone()
        };
        std::fs::create_dir_all(&options.dir)
            .with_context(|| format!("cannot create {}", options.dir.display()))?;
        let mut stack = EmbeddedStack {
            endpoints: Endpoints {
                rtmp_url: String::new(),
                playback_url: String::new(),
                orchestrators: Vec::new(),
                orchestrator_addresses: Vec::new(),
                chain_rpc: None,
                ticket_broker: None,
                service_registry: None,
                broadcaster_address: None,
            },
            nodes: tokio::sync::Mutex::new(Vec::new()),
            ticker: None,
            chain: None,
            chain_gate: None,
            ticket_journals: Vec::new(),
            pool_ledgers: Vec::new(),
            status_token: String::new(),
            filesystems: None,
            links: Vec::new(),
        };
        let mut nodes = Vec::new();
        if !options.own_filesystems.is_empty() {
            let mut owners: Vec<StackNode> = Vec::new();
            for node in &options.own_filesystems {
                if !owners.contains(node) {
                    owners.push(*node);
                }
            }
            let dirs: Vec<(StackNode, PathBuf)> = owners
                .iter()
                .map(|node| {
                    let dir = data_dir(&options.dir, *node)
                        .ok_or_else(|| anyhow!("{node} keeps nothing on disk"))?;
                    Ok((*node, dir))
                })
                .collect::<anyhow::Result<_>>()?;
            let paths: Vec<PathBuf> = dirs.iter().map(|(_, dir)| dir.clone()).collect();
            let filesystems =
                super::storage::OwnFilesystems::mount(&paths, super::storage::FILESYSTEM_BYTES)?;
            stack.filesystems = Some((filesystems, dirs));
        }

        let contracts = if options.nodes.offline {
            None
        } else {
            Some(stack.start_chain(options).await?)
        };

        // 128 random bits: the orchestrators' ports are reachable by anything on this machine,
        // and a secret derived from the pid would be guessed by any of it.
        let secret = node_orchestrator::auth::random_secret();
        // Unlocks each orchestrator's per-sender balances and redemptions on /status; it stays
        // in the owner-only config, where the operator of the stack can read it.
        let status_token = node_orchestrator::auth::random_secret();
        stack.status_token.clone_from(&status_token);
        let nodes_rpc = stack.chain_gate.as_ref().map(|gate| gate.url());
        // Where the broadcaster reaches each orchestrator: its own address, or the entry of the
        // link its path runs over.
        let mut broadcaster_routes = Vec::new();
        for index in 0..options.nodes.orchestrators {
            let mut config = orchestrator_config(
                options,
                index,
                contracts.as_ref(),
                stack.chain.as_ref(),
                &secret,
                &status_token,
            );
            if let (Some(chain), Some(rpc)) = (config.chain.as_mut(), &nodes_rpc) {
                chain.rpc_url.clone_from(rpc);
            }
            if options
                .impaired_paths
                .contains(&StackNode::Orchestrator(index))
            {
                // Its address is needed before it starts: the link relays to it.
                let direct = SocketAddr::from((
                    [127, 0, 0, 1],
                    super::link::free_port().context("no free port for an orchestrator")?,
                ));
                let link = super::link::ImpairedLink::start(direct)
                    .await
                    .with_context(|| {
                        format!(
                            "cannot run the path to orchestrator-{index} over a link of its own"
                        )
                    })?;
                config.listen = direct;
                // Broadcasters are told the link's entry; the transcoders keep the direct way.
                config.service_uri = Some(format!("https://{}", link.entry));
                config.source_uri = Some(format!("https://{direct}"));
                stack
                    .links
                    .push((StackNode::Orchestrator(index), std::sync::Arc::new(link)));
            }
            if let Some(ledger) = &config.pool.ledger_file {
                let dir = ledger.parent().expect("a file in the data directory");
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                stack.pool_ledgers.push(ledger.clone());
            }
            if let Some(journal) = &config.payments.ticket_journal {
                let dir = journal.parent().expect("a file in the data directory");
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                stack.ticket_journals.push(journal.clone());
            }
            let path = options.dir.join(format!("orchestrator-{index}.toml"));
            // It holds the orchestrator's chain key and the transcoder secret.
            write_private(&path, &config_text(&config)?)
                .with_context(|| format!("cannot write {}", path.display()))?;
            let name = format!("orchestrator-{index}");
            let child = Child::spawn_in(
                stack.mount_namespace(StackNode::Orchestrator(index)),
                &name,
                &options.lpt,
                [
                    std::ffi::OsStr::new("node"),
                    "orchestrator".as_ref(),
                    "--config".as_ref(),
                    path.as_os_str(),
                ],
                &[],
                &options.dir,
                options.ready_deadline,
            )
            .await?;
            let service_uri = child.ready_str("service_uri")?.to_owned();
            broadcaster_routes.push(service_uri.clone());
            let uri = match &config.source_uri {
                Some(direct) => direct.clone(),
                None => service_uri.clone(),
            };
            // A restart must come back where the broadcaster and transcoders look for it.
            config.listen = bound_address(&uri)?;
            write_private(&path, &config_text(&config)?)
                .with_context(|| format!("cannot write {}", path.display()))?;
            if let (Some(contracts), Some(chain)) = (&contracts, &stack.chain) {
                // As an operator does once with livepeer_cli, so on-chain discovery finds it.
                contracts
                    .service_registry(chain.provider(chain.signer(index as usize + 1)))
                    .set_service_uri(&service_uri)
                    .await
                    .with_context(|| format!("{name} could not register its service URI"))?;
            }
            stack.endpoints.orchestrators.push(uri.clone());
            stack
                .endpoints
                .orchestrator_addresses
                .push(child.ready["eth_address"].as_str().map(str::to_owned));
            nodes.push(Node::new(
                StackNode::Orchestrator(index),
                child,
                &[config.listen],
            ));
            for t in 0..options.nodes.transcoders_per_orchestrator {
                let command_env = [(TRANSCODER_SECRET_ENV, secret.clone())];
                let name = StackNode::Transcoder(index, t).to_string();
                let capacity = options.transcoder_capacity.max(1).to_string();
                let mut args = vec![
                    "node",
                    "transcoder",
                    "--orchestrator",
                    uri.as_str(),
                    "--capacity",
                    &capacity,
                    // Its name in the orchestrator's pool ledger is its name in the stack.
                    "--name",
                    &name,
                ];
                let faults = options
                    .nodes
                    .transcoder_faults
                    .get(&(index, t))
                    .map(serde_json::to_string)
                    .transpose()
                    .context("transcoder fault switches")?;
                if let Some(faults) = &faults {
                    args.extend(["--faults", faults.as_str()]);
                }
                let transcoder = Child::spawn(
                    &name,
                    &options.lpt,
                    args,
                    &command_env,
                    &options.dir,
                    options.ready_deadline,
                )
                .await?;
                nodes.push(Node::new(StackNode::Transcoder(index, t), transcoder, &[]));
            }
        }

        let mut broadcaster_config = broadcaster_config(
            options,
            &Endpoints {
                orchestrators: broadcaster_routes,
                ..stack.endpoints.clone()
            },
            contracts.as_ref(),
            &data_dir(&options.dir, StackNode::Broadcaster).expect("the broadcaster keeps data"),
        );
        if let Some(rpc) = &nodes_rpc {
            broadcaster_config.payment.eth_url = Some(rpc.clone());
        }
        let path = options.dir.join("broadcaster.toml");
        std::fs::write(&path, config_text(&broadcaster_config)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        let key_env: Vec<(&str, String)> = match &stack.chain {
            Some(chain) => vec![(BROADCASTER_KEY_ENV, hex_key(&chain.signer(0)))],
            None => vec![],
        };
        let broadcaster = Child::spawn_in(
            stack.mount_namespace(StackNode::Broadcaster),
            "broadcaster",
            &options.lpt,
            [
                std::ffi::OsStr::new("node"),
                "broadcaster".as_ref(),
                "--config".as_ref(),
                path.as_os_str(),
            ],
            &key_env,
            &options.dir,
            options.ready_deadline,
        )
        .await?;
        stack.endpoints.rtmp_url = broadcaster.ready_str("rtmp_url")?.to_owned();
        stack.endpoints.playback_url = broadcaster.ready_str("playback_url")?.to_owned();
        stack.endpoints.broadcaster_address =
            broadcaster.ready["eth_address"].as_str().map(str::to_owned);
        // A restart must come back on the ports the publishers and players use.
        broadcaster_config.rtmp_addr = bound_address(&stack.endpoints.rtmp_url)?;
        broadcaster_config.http_addr = bound_address(&stack.endpoints.playback_url)?;
        std::fs::write(&path, config_text(&broadcaster_config)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        nodes.push(Node::new(
            StackNode::Broadcaster,
            broadcaster,
            &[broadcaster_config.rtmp_addr, broadcaster_config.http_addr],
        ));
        stack.nodes = tokio::sync::Mutex::new(nodes);
        info!(
            orchestrators = ?stack.endpoints.orchestrators,
            rtmp = %stack.endpoints.rtmp_url,
            playback = %stack.endpoints.playback_url,
            chain = ?stack.endpoints.chain_rpc,
            "embedded stack ready"
        );
        Ok(stack)
    }

    async fn start_chain(
        &mut self,
        options: &StackOptions,
    ) -> anyhow::Result<protocol::chain::Contracts> {
        use alloy::primitives::U256;
        use protocol::chain::{Contracts, LocalChain};
        // Its state is kept in a file, so that a chaos restart brings the same chain back.
        let chain = if options.keep_chain_state {
            LocalChain::start_keeping_state(&options.dir.join("anvil-state.json"))
        } else {
            LocalChain::start()
        }
        .context("cannot start the local chain (anvil)")?;
        if chain.accounts().len() <= options.nodes.orchestrators as usize {
            return Err(anyhow!(
                "anvil has {} test accounts; {} orchestrators and a broadcaster need {}",
                chain.accounts().len(),
                options.nodes.orchestrators,
                options.nodes.orchestrators + 1
            ));
        }
        let deployer = chain.provider(chain.signer(0));
        let contracts = Contracts::deploy(&deployer, embedded_deploy_config())
            .await
            .context("cannot deploy the contracts")?;
        contracts
            .ticket_broker(deployer.clone())
            .fund_deposit_and_reserve(
                U256::from(options.deposit_wei),
                U256::from(options.reserve_wei),
            )
            .await
            .context("cannot fund the broadcaster's deposit and reserve")?;
        self.endpoints.chain_rpc = Some(chain.url().to_owned());
        let anvil = bound_address(chain.url())?;
        self.chain_gate = Some(
            protocol::chain::RpcGate::start(anvil)
                .await
                .context("cannot start the nodes' gate to the chain")?,
        );
        self.endpoints.ticket_broker = Some(contracts.ticket_broker.to_string());
        self.endpoints.service_registry = Some(contracts.service_registry.to_string());
        // Parameters expire by block and rounds by blocks: keep blocks coming, one a second.
        let url = chain.url().to_owned();
        let rounds = contracts.rounds(chain.provider(chain.signer(0)));
        // A live network is never in round 0, and go-livepeer's broadcaster reads creation
        // round 0 as "the orchestrator sent no expiration params": it signs its own round and
        // block hash instead, which the orchestrator's recipientRand does not cover, and every
        // ticket is refused. Start in round 1.
        rounds
            .advance_rounds(1)
            .await
            .context("cannot start the local chain in round 1")?;
        use alloy::providers::Provider;
        let miner = protocol::chain::read_provider(&url).context("cannot read the local chain")?;
        self.ticker = Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let _ = miner
                    .raw_request::<_, serde_json::Value>("anvil_mine".into(), (U256::from(1),))
                    .await;
                let _ = rounds.initialize_round_if_needed().await;
            }
        }));
        self.chain = Some(chain);
        Ok(contracts)
    }

    /// The broadcaster's funded chain account (anvil's account 0), which direct tests pay from.
    pub fn sender_signer(&self) -> Option<alloy::signers::local::PrivateKeySigner> {
        self.chain.as_ref().map(|chain| chain.signer(0))
    }

    /// Stops every part, broadcaster first, then transcoders, then orchestrators, gracefully.
    pub async fn stop(&self) {
        let mut nodes = std::mem::take(&mut *self.nodes.lock().await);
        let rank = |node: &StackNode| match node {
            StackNode::Broadcaster => 0,
            StackNode::Transcoder(..) => 1,
            _ => 2,
        };
        nodes.sort_by_key(|node| rank(&node.name));
        for node in nodes {
            node.child.stop().await;
        }
        if let Some(ticker) = &self.ticker {
            ticker.abort();
        }
        if let Some((filesystems, _)) = &self.filesystems
            && let Err(error) = filesystems.copy_out()
        {
            tracing::warn!("the nodes' data stays behind in their filesystems: {error:#}");
        }
    }

    /// The orchestrators' pool ledgers (none without remote transcoders), in orchestrator order,
    /// where lpt reads them while the stack runs.
    pub fn pool_ledgers(&self) -> Vec<PathBuf> {
        self.seen_from_here(&self.pool_ledgers)
    }

    /// The bearer token of the orchestrators' `/status` in full and `/pool`.
    pub fn status_token(&self) -> &str {
        &self.status_token
    }

    /// The orchestrators' ticket journals (none off-chain), in orchestrator order, where lpt
    /// reads them while the stack runs.
    pub fn ticket_journals(&self) -> Vec<PathBuf> {
        self.seen_from_here(&self.ticket_journals)
    }

    /// Where lpt reads `paths` of the nodes' data directories while the stack runs.
    fn seen_from_here(&self, paths: &[PathBuf]) -> Vec<PathBuf> {
        paths
            .iter()
            .map(|path| match &self.filesystems {
                Some((filesystems, _)) if filesystems.holds(path) => filesystems.inside(path),
                _ => path.clone(),
            })
            .collect()
    }

    /// The mount namespace `node` runs in: the one of the data directories when its own is
    /// among them, else lpt's.
    fn mount_namespace(&self, node: StackNode) -> Option<std::sync::Arc<std::os::fd::OwnedFd>> {
        let (filesystems, dirs) = self.filesystems.as_ref()?;
        dirs.iter()
            .any(|(owner, _)| *owner == node)
            .then(|| filesystems.namespace())
    }

    /// Fills `node`'s data directory, a filesystem of its own, to its last block, until the
    /// returned filler is dropped.
    pub async fn fill_disk(&self, node: StackNode) -> anyhow::Result<super::storage::Filler> {
        let (filesystems, dirs) = self
            .filesystems
            .as_ref()
            .ok_or_else(|| anyhow!("no data directory of this stack is a filesystem of its own"))?;
        let (_, dir) = dirs
            .iter()
            .find(|(owner, _)| *owner == node)
            .ok_or_else(|| {
                anyhow!("the data directory of {node} is not a filesystem of its own")
            })?;
        let path = filesystems.filler_path(dir)?;
        tokio::task::spawn_blocking(move || super::storage::Filler::fill(path))
            .await
            .context("the filler stopped")?
    }

    /// Takes `node` down: SIGKILL, as a crash would end it; the chain is stopped with SIGTERM
    /// instead, so that anvil writes the state it comes back with. Its ports stay reserved
    /// until [`restart`](Self::restart).
    pub async fn kill(&self, node: StackNode) -> anyhow::Result<()> {
        if node == StackNode::Chain {
            return Ok(self.local_chain()?.stop_keeping_state()?);
        }
        let mut nodes = self.nodes.lock().await;
        let node = find(&mut nodes, node)?;
        node.child.kill().await;
        node.held = node
            .ports
            .iter()
            .map(|port| protocol::chain::PortHold::new(*port))
            .collect::<std::io::Result<_>>()
            .with_context(|| format!("cannot hold the ports of {} while it is down", node.name))?;
        Ok(())
    }

    /// Starts a killed `node` again with the same config, ports and keys (the chain from the
    /// state it wrote), and waits until it announces itself ready.
    pub async fn restart(&self, node: StackNode) -> anyhow::Result<()> {
        if node == StackNode::Chain {
            return Ok(self.local_chain()?.start_again()?);
        }
        let mut nodes = self.nodes.lock().await;
        let node = find(&mut nodes, node)?;
        node.held.clear();
        node.child.restart().await
    }

    fn local_chain(&self) -> anyhow::Result<&protocol::chain::LocalChain> {
        self.chain
            .as_ref()
            .ok_or_else(|| anyhow!("this stack has no chain"))
    }

    /// Stops the chain answering the nodes (connections held silent) until [`chain_resume`].
    pub fn chain_outage(&self) -> anyhow::Result<()> {
        self.chain_gate
            .as_ref()
            .ok_or_else(|| anyhow!("this stack has no chain"))?
            .close();
        Ok(())
    }

    /// Impairs the path between the broadcaster and `node` (an orchestrator) as `impairment`
    /// says, until [`clear_path`](Self::clear_path).
    pub async fn impair_path(
        &self,
        node: StackNode,
        impairment: &crate::scenario::Impairment,
    ) -> anyhow::Result<()> {
        self.link(node)?.impair(impairment).await
    }

    /// Ends the impairment of the path to `node`; says what it dropped.
    pub async fn clear_path(&self, node: StackNode) -> anyhow::Result<String> {
        self.link(node)?.clear().await
    }

    fn link(&self, node: StackNode) -> anyhow::Result<&std::sync::Arc<super::link::ImpairedLink>> {
        self.links
            .iter()
            .find(|(owner, _)| *owner == node)
            .map(|(_, link)| link)
            .ok_or_else(|| anyhow!("the path to {node} does not run over a link of its own"))
    }

    /// Lets the nodes reach the chain again.
    pub fn chain_resume(&self) -> anyhow::Result<()> {
        self.chain_gate
            .as_ref()
            .ok_or_else(|| anyhow!("this stack has no chain"))?
            .open();
        Ok(())
    }
}

impl Drop for EmbeddedStack {
    fn drop(&mut self) {
        if let Some(ticker) = self.ticker.take() {
            ticker.abort();
        }
    }
}

fn orchestrator_config(
    options: &StackOptions,
    index: u32,
    contracts: Option<&protocol::chain::Contracts>,
    chain: Option<&protocol::chain::LocalChain>,
    secret: &str,
    status_token: &str,
) -> OrchestratorConfig {
    let mut payments = PaymentsConfig {
        price_per_unit: if options.nodes.offline {
            0
        } else {
            options.price_of(index)
        },
        pixels_per_unit: options.nodes.pixels_per_unit,
        ..PaymentsConfig::default()
    };
    if !options.nodes.offline {
        let (face_value, ticket_ev) = ticket_economics(options, options.price_of(index));
        payments.face_value = Some(face_value.to_string());
        payments.ticket_ev = ticket_ev.to_string();
        payments.expiration_blocks = PARAMS_EXPIRATION_BLOCKS;
        // Every ticket the stack's orchestrators receive, with the recipientRand they derived,
        // so a run's payments can be re-checked by another implementation (go-livepeer's pm).
        payments.ticket_journal = Some(
            data_dir(&options.dir, StackNode::Orchestrator(index))
                .expect("an orchestrator keeps data")
                .join("tickets.jsonl"),
        );
    }
    let faults = options
        .nodes
        .faults
        .as_ref()
        .filter(|f| f.orchestrators.is_empty() || f.orchestrators.contains(&index))
        .map(|f| f.switches.clone())
        .unwrap_or_default();
    OrchestratorConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        offchain: options.nodes.offline,
        chain: contracts.zip(chain).map(|(contracts, chain)| ChainConfig {
            rpc_url: chain.url().to_owned(),
            private_key: hex_key(&chain.signer(index as usize + 1)).into(),
            ticket_broker: contracts.ticket_broker.to_string(),
            rounds_manager: contracts.rounds_manager.to_string(),
            poll_ms: ORCHESTRATOR_CHAIN_POLL_MS,
        }),
        payments,
        transcode: TranscodeConfig {
            mode: if options.nodes.transcoders_per_orchestrator > 0 {
                TranscodeMode::Remote
            } else {
                TranscodeMode::Local
            },
            ..TranscodeConfig::default()
        },
        faults,
        pool: node_orchestrator::pool::PoolConfig {
            // The pool's record of the run, beside the orchestrator's ticket journal.
            ledger_file: (options.nodes.transcoders_per_orchestrator > 0).then(|| {
                data_dir(&options.dir, StackNode::Orchestrator(index))
                    .expect("an orchestrator keeps data")
                    .join("pool-ledger.jsonl")
            }),
            ..options.nodes.pool.clone().unwrap_or_default()
        },
        // The transcoder secret is made fresh (random) for each run and only guards loopback
        // ports.
        transcoder_secret: Some(secret.into()),
        status_token: Some(status_token.into()),
        ..OrchestratorConfig::default()
    }
}

/// Blocks after which the embedded orchestrators' ticket params expire (and winners become due).
/// Redemptions mine blocks of their own, so blocks come faster than the ticker's one a second
/// while winners are being redeemed: the window must outlast such a burst.
pub const PARAMS_EXPIRATION_BLOCKS: u64 = 30;

/// How often the embedded orchestrators refresh their view of the chain (ms): params are issued
/// from that view, so it must keep up with redemption bursts.
const ORCHESTRATOR_CHAIN_POLL_MS: u64 = 250;

/// The embedded chain's contracts. Every redemption mines a block on top of the ticker's one a
/// second, so a short round would let a queue of winners expire on chain (a ticket is valid for
/// its creation round and the next) while it waits its turn; 1,000-block rounds keep every
/// winner of a run redeemable.
fn embedded_deploy_config() -> protocol::chain::DeployConfig {
    protocol::chain::DeployConfig {
        round_length: 1000,
        ..protocol::chain::DeployConfig::default()
    }
}

/// Seconds of the ladder's output one winning ticket pays for.
const SECONDS_PER_WINNER: f64 = 1.0;
/// Face value ÷ EV of each ticket: tickets win with probability 100/101 (≈ 0.99), so what is
/// redeemed follows from the work billed almost without chance (senders require EV below the
/// face value, so 1 is not allowed), and a billing error of a few percent shows.
const FACE_VALUE_PER_EV: (u128, u128) = (101, 100);

/// Face value and EV of the embedded orchestrators' tickets, in wei.
///
/// go-livepeer derives the face value from the gas price so that redeeming is worth its gas; on a
/// short local run that leaves fractions of a winning ticket to expect, and the payment probe
/// could not tell a correct orchestrator from one that never redeems. Here a winning ticket pays
/// for a second of the ladder's output, so a 30 s smoke run expects about 30 winners per stream,
/// few enough that the blocks their redemptions mine do not outrun the params' expiry window.
/// Each ticket wins with probability ≈ 0.99, so chance adds about ±1.3 % to what 60 winners
/// redeem, and credit left unspent at the end at most one ticket per stream and orchestrator:
/// smoke measured +3.3 % honest and +13.3 % with every orchestrator overcharging 10 %, so its
/// `payment_ev_error max < 0.1` catches a 10 % overcharge (at probability 1/5, chance alone
/// would move 60 winners by ±40 %).
fn ticket_economics(options: &StackOptions, price_per_unit: u64) -> (u128, u128) {
    let pixels_per_second: f64 = options
        .ladder
        .iter()
        .map(|p| {
            let fps = p
                .fps()
                .filter(|(_, den)| *den > 0)
                .map_or(30.0, |(num, den)| f64::from(num) / f64::from(den));
            f64::from(p.width) * f64::from(p.height) * fps
        })
        .sum();
    let wei_per_pixel = price_per_unit as f64 / options.nodes.pixels_per_unit.max(1) as f64;
    let face_value = (pixels_per_second * SECONDS_PER_WINNER * wei_per_pixel).max(1e9) as u128;
    let (face_parts, ev_parts) = FACE_VALUE_PER_EV;
    (face_value, (face_value * ev_parts / face_parts).max(1))
}

/// How long the broadcaster leaves a failed orchestrator out of rotation. go-livepeer's default
/// suits a network of many orchestrators; a local stack has two or three, and a run lasts
/// seconds, so one transient failure must not sideline an orchestrator for most of it.
const FAILURE_COOLDOWN_SECS: u64 = 5;

fn broadcaster_config(
    options: &StackOptions,
    endpoints: &Endpoints,
    contracts: Option<&protocol::chain::Contracts>,
    hls_dir: &Path,
) -> BroadcasterConfig {
    let ladder: Vec<&str> = options.ladder.iter().map(|p| p.name.as_str()).collect();
    // Every publisher of a run comes from this machine, so the per-client cap that guards a public
    // broadcaster would cut a large capacity run short: allow as many as a scenario may ask for.
    let streams = crate::scenario::MAX_STREAMS as usize;
    let payment = match (contracts, &endpoints.chain_rpc) {
        (Some(contracts), Some(rpc)) => PaymentConfig {
            eth_url: Some(rpc.clone()),
            ticket_broker: Some(contracts.ticket_broker.to_string()),
            key_env: Some(BROADCASTER_KEY_ENV.to_owned()),
            ..PaymentConfig::default()
        },
        _ => PaymentConfig::default(),
    };
    BroadcasterConfig {
        rtmp_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        ladder: ladder.join(","),
        orchestrators: endpoints.orchestrators.clone(),
        pixels_per_unit: options.nodes.pixels_per_unit,
        failure_cooldown_secs: FAILURE_COOLDOWN_SECS,
        max_live_streams: streams,
        max_live_streams_per_ip: streams,
        // The window's segments go to files, as nginx-rtmp's do: they sit in the page cache
        // rather than in the broadcaster's memory.
        hls_dir: Some(hls_dir.to_owned()),
        payment,
        ..BroadcasterConfig::default()
    }
}

/// A node config as the file the node reads.
fn config_text(config: &impl serde::Serialize) -> anyhow::Result<String> {
    toml::to_string(config).context("cannot write a node config as TOML")
}

/// Writes `text` to `path` readable and writable by the owner only (0600), also when the file
/// was already there with wider permissions: node configs hold chain keys and secrets.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// The path of the running `lpt` binary, to start nodes with.
pub fn current_lpt() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("cannot find the lpt binary to start the stack's nodes")
}

pub fn stack_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("stack")
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::scenario::Faults;

    #[test]
    fn configs_holding_keys_are_written_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orchestrator-0.toml");
        // Already there and world-readable: rewritten, and narrowed.
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&path, "private_key = \"0x01\"\n").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "private_key = \"0x01\"\n"
        );
        let fresh = dir.path().join("fresh.toml");
        write_private(&fresh, "x").unwrap();
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn node_configs_read_back_with_the_nodes_own_parsers() {
        use crate::scenario::FaultConfig;
        let dir = tempfile::tempdir().unwrap();
        let switches = FaultConfig {
            drop_fraction: 0.5,
            delay_ms: 250,
            crash_after_segments: Some(7),
            ..FaultConfig::default()
        };
        let options = StackOptions {
            nodes: EmbeddedTarget {
                orchestrators: 2,
                transcoders_per_orchestrator: 1,
                offline: true,
                price_per_unit: 1000,
                pixels_per_unit: 1,
                prices: Vec::new(),
                faults: Some(Faults {
                    orchestrators: vec![1],
                    switches: switches.clone(),
                }),
                pool: None,
                transcoder_faults: Default::default(),
            },
            ladder: vec![Profile::preset("P240p30fps16x9").unwrap()],
            deposit_wei: 1,
            reserve_wei: 1,
            transcoder_capacity: 1,
            dir: dir.path().to_owned(),
            lpt: PathBuf::from("lpt"),
            ready_deadline: Duration::from_secs(1),
            keep_chain_state: false,
            own_filesystems: Vec::new(),
            impaired_paths: Vec::new(),
        };
        let read = |index| {
            let config =
                orchestrator_config(&options, index, None, None, "secret-text", "token-text");
            assert!(!format!("{config:?}").contains("secret-text"));
            let text = config_text(&config).unwrap();
            OrchestratorConfig::from_toml(&text, "orchestrator.toml").unwrap()
        };
        let honest = read(0);
        assert!(!honest.faults.any());
        assert!(honest.offchain);
        assert_eq!(honest.payments.price_per_unit, 0);
        assert_eq!(honest.transcode.mode, TranscodeMode::Remote);
        assert!(honest.transcoder_secret.unwrap().matches(b"secret-text"));
        assert!(honest.status_token.unwrap().matches(b"token-text"));
        assert_eq!(read(1).faults, switches);

        let endpoints = Endpoints {
            rtmp_url: String::new(),
            playback_url: String::new(),
            orchestrators: vec!["https://127.0.0.1:8935".into()],
            orchestrator_addresses: Vec::new(),
            chain_rpc: None,
            ticket_broker: None,
            service_registry: None,
            broadcaster_address: None,
        };
        let hls = dir.path().join("hls \"quoted\"");
        let config = broadcaster_config(&options, &endpoints, None, &hls);
        let back = BroadcasterConfig::from_toml_str(&config_text(&config).unwrap()).unwrap();
        assert_eq!(back.orchestrators, endpoints.orchestrators);
        assert_eq!(back.ladder, "P240p30fps16x9");
        assert_eq!(back.hls_dir.as_deref(), Some(hls.as_path()));
        assert_eq!(back.failure_cooldown_secs, FAILURE_COOLDOWN_SECS);
        assert_eq!(
            back.max_live_streams_per_ip,
            crate::scenario::MAX_STREAMS as usize
        );
        assert_eq!(back.payment, PaymentConfig::default());
    }
}
