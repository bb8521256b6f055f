//! Winning tickets through what a chain does to a node: an RPC endpoint that accepts connections
//! and stops answering for 10 s (a `protocol::chain::RpcGate` between the orchestrator and
//! anvil), answers lost after the chain took the request (a proxy that swallows them), a reorg
//! that drops a redemption (`anvil_reorg`), and a SIGKILLed orchestrator restarted from the same
//! config and ticket journal. In each, every winner ends redeemed on
//! chain exactly once, or failed with a reason: none is lost.
//!
//! Every ticket wins (the EV is the face value), so the winners are known in advance; segments
//! are passed through rather than transcoded, since payments are what is under test.

use std::net::SocketAddr;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy::primitives::B256;
use node_orchestrator::TranscodeMode;
use node_orchestrator::config::OrchestratorConfig;
use protocol::chain::{DeployConfig, RpcGate};
use protocol::client::{OrchestratorClient, SegmentReply};
use protocol::ticket::{TicketParams, payment_message};
use testkit::chain::DEPLOYER;

use crate::common::*;

/// The test chain's face value (`Chain::config`); as the EV too, every ticket wins.
const FACE_VALUE: &str = "1000000000000";
/// Environment variable carrying the config path to [`orchestrator_process`].
const CHILD_CONFIG_ENV: &str = "LPT_CHAOS_ORCHESTRATOR_CONFIG";

/// The chain's config for an orchestrator whose every ticket wins, passing segments through.
fn every_ticket_wins(chain: &Chain) -> OrchestratorConfig {
    let mut config = chain.config();
    config.payments.ticket_ev = FACE_VALUE.into();
    config.transcode.mode = TranscodeMode::PassThrough;
    config
}

/// Pays segment `seq` with `tickets` tickets on the session's current params and keeps the
/// refreshed params of the reply. B's own policy refuses EV == face value, so they are signed
/// by hand.
async fn pay(session: &mut Session, seq: usize, tickets: u64) -> SegmentReply {
    let params = TicketParams::from_orchestrator_info(&session.info).unwrap();
    let payment = {
        let sender = session.sender.as_mut().unwrap();
        let signed = sender.sign_tickets(&params, tickets).unwrap();
        payment_message(&params, sender.address(), &signed)
    };
    let body = segments()[seq % segments().len()].clone();
    let seg = session.segment(seq as i64, &body);
    let reply = session.submit(&seg, Some(&payment), body).await.unwrap();
    reply.renditions().expect("the segment is transcoded");
    if let Some(info) = reply.info() {
        session.info = info.clone();
    }
    reply
}

/// A gate in front of `chain`'s anvil, and the config of an orchestrator whose every ticket wins
/// that reaches the chain through it.
async fn behind_a_gate(chain: &Chain) -> (RpcGate, OrchestratorConfig) {
    let anvil: SocketAddr = chain
        .chain
        .url()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let gate = RpcGate::start(anvil).await.unwrap();
    let mut config = every_ticket_wins(chain);
    config.chain.as_mut().unwrap().rpc_url = gate.url();
    (gate, config)
}

fn records(status: &serde_json::Value) -> &Vec<serde_json::Value> {
    status["redemptions"].as_array().unwrap()
}

fn ticket_hash(record: &serde_json::Value) -> B256 {
    record["ticket_hash"].as_str().unwrap().parse().unwrap()
}

/// The statuses of a record's history, oldest first.
fn history(record: &serde_json::Value) -> Vec<&str> {
    record["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect()
}

async fn metrics(session: &Session) -> String {
    session
        .client
        .http()
        .get(format!("{}/metrics", session.client.uri()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The winners before the outage wait, due, behind the stop-redeeming switch; the gate closes
/// and the switch is cleared, so the node meets the dead endpoint while redeeming. For 10 s
/// paid work goes on from the cached chain view, no winner is dropped or failed, and the chain
/// loop keeps its pace (every call times out). Once the endpoint answers again, all eight are
/// redeemed with one attempt each: the unreachable tries spent none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_second_rpc_outage_loses_no_winner_and_spends_no_attempt() {
    let chain = Chain::start().await;
    let (gate, mut config) = behind_a_gate(&chain).await;
    config.payments.chain_timeout_ms = 1000;
    config.faults.stop_redeeming = true;
    let orchestrator = node_orchestrator::start(config).await.unwrap();
    let mut session = Session::onchain(orchestrator.service_uri(), chain.broadcaster.clone()).await;
    session.ladder.truncate(1);

    pay(&mut session, 0, 2).await;
    pay(&mut session, 1, 2).await;
    chain.chain.mine(10).await.unwrap();
    let block = chain.chain.block_number().await.unwrap();
    wait_status(
        &session.client,
        Duration::from_secs(30),
        "the mined blocks",
        |s| s["chain"]["block"].as_u64().unwrap() >= block,
    )
    .await;

    gate.close();
    let outage = Instant::now();
    set_faults(&session.client, serde_json::json!({})).await;
    let s = wait_status(
        &session.client,
        Duration::from_secs(30),
        "a redemption try against the dead endpoint",
        |s| {
            s["redemption"]["unreachable"].as_u64().unwrap() >= 1
                && s["chain"]["reachable"] == false
        },
    )
    .await;
    let passes = s["redemption_passes"].as_u64().unwrap();
    // Paid work goes on: params are issued and tickets checked against the last chain view and
    // the sender's cached funds (the params of the last reply expired with the mined blocks).
    session.info = session
        .client
        .get_orchestrator(&session.key, None)
        .await
        .unwrap();
    pay(&mut session, 2, 2).await;
    pay(&mut session, 3, 2).await;
    let s = status(&session.client).await;
    assert_eq!(s["tickets"]["won"], 8, "{s:#}");
    assert_eq!(s["tickets"]["accepted"], 8, "{s:#}");
    // The outage lasts 10 s in all: the scenario's length, not a wait for an event.
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(outage.elapsed())).await;
    let s = status(&session.client).await;
    assert!(
        s["redemption_passes"].as_u64().unwrap() >= passes + 2,
        "the chain loop stalled on the dead endpoint: {s:#}"
    );
    assert_eq!(s["pending_redemptions"], 8, "{s:#}");
    assert_eq!(s["redemption"]["failed"], 0, "{s:#}");
    assert_eq!(s["redemption"]["refused"], 0, "{s:#}");
    assert!(records(&s).is_empty(), "{s:#}");

    gate.open();
    chain.chain.mine(10).await.unwrap();
    let s = wait_status(
        &session.client,
        Duration::from_secs(60),
        "all winners redeemed after the outage",
        |s| s["redemption"]["redeemed"] == 8,
    )
    .await;
    let broker = chain.broker();
    let mut unreachable = 0;
    for record in records(&s) {
        assert_eq!(record["status"], "redeemed", "{record:#}");
        assert_eq!(record["attempts"], 1, "{record:#}");
        assert!(record["received_ms"].as_u64().unwrap() > 0, "{record:#}");
        assert!(broker.is_ticket_used(ticket_hash(record)).await.unwrap());
        unreachable += record["unreachable"].as_u64().unwrap();
    }
    assert_eq!(records(&s).len(), 8);
    assert!(unreachable >= 1, "{s:#}");
    assert_eq!(s["redemption"]["failed"], 0);
    assert_eq!(s["redemption"]["pending"], 0);
    assert_eq!(s["chain"]["reachable"], true);
    let text = metrics(&session).await;
    assert!(
        text.contains("lpt_orchestrator_redemption_failures_total 0\n"),
        "{text}"
    );
    assert!(
        text.contains("lpt_orchestrator_tickets_redeemed_total 8\n"),
        "{text}"
    );
    assert!(
        !text.contains("lpt_orchestrator_redemption_unreachable_total 0\n"),
        "{text}"
    );
    orchestrator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paid_work_right_after_a_redemption_does_not_wait_for_a_silent_chain() {
    let chain = Chain::start().await;
    let (gate, config) = behind_a_gate(&chain).await;
    let orchestrator = node_orchestrator::start(config).await.unwrap();
    let mut session = Session::onchain(orchestrator.service_uri(), chain.broadcaster.clone()).await;
    session.ladder.truncate(1);
    pay(&mut session, 0, 2).await;
    chain.chain.mine(40).await.unwrap();
    wait_status(
        &session.client,
        Duration::from_secs(60),
        "both winners redeemed",
        |s| s["redemption"]["redeemed"] == 2,
    )
    .await;

    // The redemptions changed the sender's funds; the chain goes silent before they are read
    // again. The next discovery and payment serve the cached funds, spent by the redemptions,
    // after one short try (`STALE_FUNDS_REFRESH_TIMEOUT`), not the 10 s wait of a sender with
    // none cached, which is past a broadcaster's 8 s result deadline.
    gate.close();
    let started = Instant::now();
    session.info = session
        .client
        .get_orchestrator(&session.key, None)
        .await
        .unwrap();
    pay(&mut session, 1, 2).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "{took:?}");
    let s = status(&session.client).await;
    assert_eq!(s["tickets"]["accepted"], 4, "{s:#}");
    gate.open();
    orchestrator.shutdown().await;
}

/// Waits for the single winner's record to read `done`.
async fn wait_record(
    session: &Session,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let s = wait_status(&session.client, Duration::from_secs(60), what, |s| {
        records(s).len() == 1 && done(&records(s)[0])
    })
    .await;
    records(&s)[0].clone()
}

/// A reorg of depth 3 right after the redemption drops its block: the node finds the ticket no
/// longer used at the new head, queues it again and redeems it in a new transaction, and the
/// record tells it all. Six blocks later the redemption is confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redemption_dropped_by_a_reorg_is_redeemed_again() {
    let chain = Chain::start().await;
    let orchestrator = node_orchestrator::start(every_ticket_wins(&chain))
        .await
        .unwrap();
    let mut session = Session::onchain(orchestrator.service_uri(), chain.broadcaster.clone()).await;
    session.ladder.truncate(1);
    pay(&mut session, 0, 1).await;
    chain.chain.mine(10).await.unwrap();
    let first = wait_record(&session, "the redemption", |r| r["status"] == "redeemed").await;
    let hash = ticket_hash(&first);
    let broker = chain.broker();
    assert!(broker.is_ticket_used(hash).await.unwrap());
    assert_eq!(first["confirmed"], false);

    reorg(&chain, 3).await;
    let again = wait_record(&session, "the redemption again", |r| {
        r["status"] == "redeemed" && r["reorgs"] == 1
    })
    .await;
    assert!(broker.is_ticket_used(hash).await.unwrap());
    assert_ne!(again["tx_hash"], first["tx_hash"], "{again:#}");
    assert_eq!(
        history(&again),
        ["redeemed", "reorged", "redeemed"],
        "{again:#}"
    );
    let s = status(&session.client).await;
    assert_eq!(s["redemption"]["reorged"], 1, "{s:#}");
    assert_eq!(s["redemption"]["unconfirmed"], 1, "{s:#}");
    assert!(
        metrics(&session)
            .await
            .contains("lpt_orchestrator_tickets_reorged_total 1\n")
    );

    chain.chain.mine(6).await.unwrap();
    let confirmed = wait_record(&session, "the confirmation", |r| r["confirmed"] == true).await;
    assert_eq!(
        history(&confirmed),
        ["redeemed", "reorged", "redeemed", "confirmed"]
    );
    assert_eq!(confirmed["tx_hash"], again["tx_hash"]);
    let s = status(&session.client).await;
    assert_eq!(s["redemption"]["confirmed"], 1, "{s:#}");
    assert_eq!(
        s["tickets"]["redeemed"], 2,
        "two redemptions were mined: {s:#}"
    );
    orchestrator.shutdown().await;
}

/// A reorg drops the redemption while redeeming is switched off, and by the time it is back on
/// the ticket's creation round is past its validity: the record says `failed`, and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorged_ticket_too_old_to_redeem_again_is_failed_with_the_reason() {
    // Rounds of 100 blocks, so that moving two rounds on mines few: the test's other blocks
    // (deployment, funding, 10 for the params to expire) stay within the first round.
    let chain = Chain::with_rounds(DeployConfig {
        round_length: 100,
        ..DeployConfig::default()
    })
    .await;
    let orchestrator = node_orchestrator::start(every_ticket_wins(&chain))
        .await
        .unwrap();
    let mut session = Session::onchain(orchestrator.service_uri(), chain.broadcaster.clone()).await;
    session.ladder.truncate(1);
    pay(&mut session, 0, 1).await;
    chain.chain.mine(10).await.unwrap();
    let first = wait_record(&session, "the redemption", |r| r["status"] == "redeemed").await;

    set_faults(&session.client, serde_json::json!({"stop_redeeming": true})).await;
    reorg(&chain, 3).await;
    wait_record(&session, "the reorg seen", |r| r["status"] == "reorged").await;
    assert_eq!(status(&session.client).await["pending_redemptions"], 1);
    let rounds = chain
        .contracts
        .rounds(chain.chain.provider(chain.chain.signer(DEPLOYER)));
    let round = rounds
        .advance_rounds(protocol::chain::TICKET_VALIDITY_PERIOD)
        .await
        .unwrap();
    wait_status(
        &session.client,
        Duration::from_secs(30),
        "the new round",
        |s| s["chain"]["round"].as_u64().unwrap() >= round,
    )
    .await;

    set_faults(&session.client, serde_json::json!({})).await;
    let failed = wait_record(&session, "the failure", |r| r["status"] == "failed").await;
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains("ticket is expired"), "{failed:#}");
    assert_eq!(history(&failed), ["redeemed", "reorged", "failed"]);
    assert!(
        !chain
            .broker()
            .is_ticket_used(ticket_hash(&first))
            .await
            .unwrap()
    );
    let s = status(&session.client).await;
    assert_eq!(s["redemption"]["failed"], 1, "{s:#}");
    assert_eq!(s["pending_redemptions"], 0, "{s:#}");
    orchestrator.shutdown().await;
}

/// A JSON-RPC proxy in front of anvil that forwards every request and, for the next `count`
/// requests of one method, never answers: the request reaches the chain and its answer is lost,
/// as when a connection dies after a request went out.
struct LosingProxy {
    url: String,
    lose: Arc<Mutex<Option<(&'static str, u32)>>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct ProxyState {
    upstream: String,
    client: reqwest::Client,
    lose: Arc<Mutex<Option<(&'static str, u32)>>>,
}

impl LosingProxy {
    async fn start(upstream: &str) -> Self {
        let lose = Arc::new(Mutex::new(None));
        let state = ProxyState {
            upstream: upstream.to_string(),
            client: reqwest::Client::new(),
            lose: lose.clone(),
        };
        let app = axum::Router::new()
            .route("/", axum::routing::post(forward))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, lose, task }
    }

    /// Loses the answers to the next `count` calls of `method`.
    fn lose(&self, method: &'static str, count: u32) {
        *self.lose.lock().unwrap() = Some((method, count));
    }
}

impl Drop for LosingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(
    axum::extract::State(state): axum::extract::State<ProxyState>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let method = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|request| request["method"].as_str().map(str::to_owned));
    let answer = state
        .client
        .post(&state.upstream)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let lost = {
        let mut lose = state.lose.lock().unwrap();
        match &mut *lose {
            Some((lost, count)) if Some(*lost) == method.as_deref() && *count > 0 => {
                *count -= 1;
                true
            }
            _ => false,
        }
    };
    if lost {
        std::future::pending::<()>().await;
    }
    ([("content-type", "application/json")], answer).into_response()
}

/// A redemption whose send was answered by nothing, though the chain took it, and one whose
/// receipt could not be read: each is found redeemed at the next try (by `usedTickets`, by its
/// receipt), with no second transaction, no "ticket is used" failure and no attempt spent on
/// the lost answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redemption_whose_answer_was_lost_is_found_not_sent_again() {
    use alloy::providers::Provider;
    let chain = Chain::start().await;
    let proxy = LosingProxy::start(chain.chain.url()).await;
    let mut config = every_ticket_wins(&chain);
    config.chain.as_mut().unwrap().rpc_url = proxy.url.clone();
    config.payments.chain_timeout_ms = 1000;
    let orchestrator = node_orchestrator::start(config).await.unwrap();
    let o_address = orchestrator.eth_address().unwrap();
    let sent = async || {
        chain
            .chain
            .reader()
            .get_transaction_count(o_address)
            .await
            .unwrap()
    };
    let mut session = Session::onchain(orchestrator.service_uri(), chain.broadcaster.clone()).await;
    session.ladder.truncate(1);

    proxy.lose("eth_sendRawTransaction", 1);
    pay(&mut session, 0, 1).await;
    chain.chain.mine(10).await.unwrap();
    let s = wait_status(&session.client, Duration::from_secs(60), "the first", |s| {
        s["redemption"]["redeemed"] == 1
    })
    .await;
    let first = &records(&s)[0];
    assert_eq!(first["status"], "redeemed", "{first:#}");
    assert_eq!(first["tx_hash"], serde_json::Value::Null, "{first:#}");
    assert!(first["unreachable"].as_u64().unwrap() >= 1, "{first:#}");
    assert_eq!(first["attempts"], 0, "{first:#}");
    assert!(
        chain
            .broker()
            .is_ticket_used(ticket_hash(first))
            .await
            .unwrap()
    );
    assert_eq!(sent().await, 1, "one transaction");

    proxy.lose("eth_getTransactionReceipt", 1);
    session.info = session
        .client
        .get_orchestrator(&session.key, None)
        .await
        .unwrap();
    pay(&mut session, 1, 1).await;
    chain.chain.mine(10).await.unwrap();
    let s = wait_status(
        &session.client,
        Duration::from_secs(60),
        "the second",
        |s| s["redemption"]["redeemed"] == 2,
    )
    .await;
    let second = records(&s)
        .iter()
        .find(|r| r["ticket_hash"] != first["ticket_hash"])
        .unwrap();
    assert_eq!(second["attempts"], 1, "{second:#}");
    assert!(second["unreachable"].as_u64().unwrap() >= 1, "{second:#}");
    let tx: B256 = second["tx_hash"].as_str().unwrap().parse().unwrap();
    let receipt = chain
        .chain
        .reader()
        .get_transaction_receipt(tx)
        .await
        .unwrap()
        .unwrap();
    assert!(receipt.status());
    assert_eq!(second["block"], receipt.block_number.unwrap());
    assert_eq!(sent().await, 2, "one transaction each");
    assert_eq!(s["redemption"]["refused"], 0, "{s:#}");
    assert_eq!(s["redemption"]["failed"], 0, "{s:#}");
    orchestrator.shutdown().await;
}

/// `anvil_reorg`: replaces the last `depth` blocks with as many empty ones.
async fn reorg(chain: &Chain, depth: u64) {
    use alloy::providers::Provider;
    chain
        .chain
        .reader()
        .raw_request::<_, serde_json::Value>(
            "anvil_reorg".into(),
            (depth, Vec::<serde_json::Value>::new()),
        )
        .await
        .unwrap();
}

/// An orchestrator run in a child process (this test binary again, running only
/// [`orchestrator_process`]), SIGKILLed when dropped.
struct OrchestratorProcess(testkit::test_process::TestProcess);

impl OrchestratorProcess {
    /// Starts the orchestrator of the config at `path` and waits until it serves `uri`.
    async fn start(path: &std::path::Path, uri: &str) -> Self {
        let process = Self(testkit::test_process::TestProcess::spawn(
            "chain_chaos::orchestrator_process",
            [(CHILD_CONFIG_ENV, path)],
        ));
        let client = OrchestratorClient::connect(uri).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while client
            .http()
            .get(format!("{uri}/status"))
            .send()
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "the orchestrator at {uri} did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        process
    }

    fn sigkill(mut self) {
        self.0.kill();
    }
}

/// The orchestrator of `$LPT_CHAOS_ORCHESTRATOR_CONFIG`, run until killed: the child process of
/// [`a_sigkilled_orchestrator_redeems_its_journaled_winners_after_a_restart`].
#[test]
#[ignore = "the child process of a_sigkilled_orchestrator_redeems_its_journaled_winners_after_a_restart"]
fn orchestrator_process() {
    let Some(path) = std::env::var_os(CHILD_CONFIG_ENV) else {
        return;
    };
    testkit::test_process::exit_with_parent();
    let config = OrchestratorConfig::from_file(std::path::Path::new(&path)).unwrap();
    config
        .runtime()
        .unwrap()
        .block_on(node_orchestrator::run_orchestrator(config))
        .unwrap();
}

/// Two winners are redeemed, two more accepted whose params have not expired when the node is
/// SIGKILLed. Restarted from the same config, it finds all four in its journal, leaves the two
/// already used on chain alone and redeems the other two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_orchestrator_redeems_its_journaled_winners_after_a_restart() {
    let chain = Chain::start().await;
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("tickets.jsonl");
    let mut config = every_ticket_wins(&chain);
    config.listen = SocketAddr::from(([127, 0, 0, 1], testkit::ports::free_port()));
    config.payments.ticket_journal = Some(journal.clone());
    config.payments.expiration_blocks = 20;
    let path = dir.path().join("orchestrator.toml");
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
    let uri = format!("https://{}", config.listen);

    let first = OrchestratorProcess::start(&path, &uri).await;
    let mut session = Session::onchain(&uri, chain.broadcaster.clone()).await;
    session.ladder.truncate(1);
    pay(&mut session, 0, 2).await;
    chain.chain.mine(21).await.unwrap();
    let before = wait_status(
        &session.client,
        Duration::from_secs(60),
        "the first two",
        |s| s["redemption"]["redeemed"] == 2,
    )
    .await;
    let redeemed: Vec<B256> = records(&before).iter().map(ticket_hash).collect();
    // Two more, on fresh params that expire 20 blocks from now.
    session.info = session
        .client
        .get_orchestrator(&session.key, None)
        .await
        .unwrap();
    pay(&mut session, 1, 2).await;
    let s = status(&session.client).await;
    assert_eq!(s["pending_redemptions"], 2, "{s:#}");
    first.sigkill();

    let journaled = node_orchestrator::journal::read_winners(&journal).unwrap();
    assert!(
        journaled.unreadable.is_empty(),
        "{:?}",
        journaled.unreadable
    );
    assert_eq!(journaled.winners.len(), 4);
    assert!(journaled.winners.iter().all(|w| w.received_ms.is_some()));
    let waiting: Vec<B256> = journaled
        .winners
        .iter()
        .map(|w| w.winner.ticket.hash())
        .filter(|hash| !redeemed.contains(hash))
        .collect();
    assert_eq!(waiting.len(), 2);
    let broker = chain.broker();
    for hash in &waiting {
        assert!(!broker.is_ticket_used(*hash).await.unwrap());
    }

    chain.chain.mine(21).await.unwrap();
    let _second = OrchestratorProcess::start(&path, &uri).await;
    let s = wait_status(
        &session.client,
        Duration::from_secs(60),
        "the journaled two",
        |s| s["redemption"]["redeemed"] == 2,
    )
    .await;
    let mut after: Vec<B256> = records(&s).iter().map(ticket_hash).collect();
    after.sort();
    let mut expected = waiting.clone();
    expected.sort();
    assert_eq!(after, expected, "{s:#}");
    for record in records(&s) {
        assert_eq!(record["status"], "redeemed", "{record:#}");
        assert_eq!(record["attempts"], 1, "{record:#}");
        assert!(record["received_ms"].as_u64().unwrap() > 0, "{record:#}");
    }
    for hash in journaled.winners.iter().map(|w| w.winner.ticket.hash()) {
        assert!(
            broker.is_ticket_used(hash).await.unwrap(),
            "{hash} not redeemed"
        );
    }
    assert_eq!(s["pending_redemptions"], 0, "{s:#}");
    assert_eq!(s["redemption"]["failed"], 0, "{s:#}");
}
