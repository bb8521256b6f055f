//! Ticket expiry in L1 blocks on a two-layer chain: a fake Arbitrum JSON-RPC node whose
//! `eth_blockNumber` (L2) is far ahead of the `l1BlockNumber` in its block headers. The L1 number
//! is what O's params expire in and what B checks them against (PROTOCOL.md §4).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use alloy::primitives::{Address, B256, U256};
use alloy::providers::DynProvider;
use alloy::sol_types::SolCall;
use protocol::chain::bindings::RoundsManager;
use protocol::chain::{ChainError, RoundsManagerClient, latest_l1_block, read_provider};
use protocol::ticket::{
    ParamsRejection, PricePerPixel, RecipientConfig, SenderError, SenderLimits, TicketRecipient,
    TicketSender,
};
use serde_json::{Value, json};

use super::tickets::key;

/// The L2 block number the fake node reports (`eth_blockNumber`, the header's `number`).
const L2_BLOCK: u64 = 0x1000_0000;
/// The L1 block number in its headers.
const L1_BLOCK: u64 = 0x123_4567;
const ROUND: u64 = 7;
const ROUND_HASH: B256 = B256::repeat_byte(0x77);
const GAS_PRICE: u64 = 100_000_000;

/// A JSON-RPC node on a loopback port: `eth_getBlockByNumber` answers `block`, `eth_blockNumber`
/// the L2 number, `eth_gasPrice` a fixed price, and `eth_call` the RoundsManager's
/// `currentRound()` and `blockHashForRound(round)`. Plain HTTP/1.1 on std threads, one per
/// connection, so the test needs no server dependency.
struct FakeNode {
    url: String,
    /// Methods called, in order.
    calls: Arc<Mutex<Vec<String>>>,
}

impl FakeNode {
    fn start(block: Value) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let calls = Arc::new(Mutex::new(Vec::new()));
        let log = calls.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (block, log) = (block.clone(), log.clone());
                std::thread::spawn(move || serve(stream, &block, &log));
            }
        });
        Self { url, calls }
    }

    fn provider(&self) -> DynProvider {
        read_provider(&self.url).unwrap()
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

/// Answers requests on one keep-alive connection until the client closes it.
fn serve(stream: TcpStream, block: &Value, log: &Mutex<Vec<String>>) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let request: Value = serde_json::from_slice(&body).unwrap();
        let reply = match &request {
            Value::Array(batch) => batch.iter().map(|r| answer(r, block, log)).collect(),
            single => answer(single, block, log),
        };
        let reply = serde_json::to_vec(&reply).unwrap();
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            reply.len()
        );
        if writer.write_all(head.as_bytes()).is_err() || writer.write_all(&reply).is_err() {
            return;
        }
    }
}

fn answer(request: &Value, block: &Value, log: &Mutex<Vec<String>>) -> Value {
    let method = request["method"].as_str().unwrap_or_default();
    log.lock().unwrap().push(method.to_string());
    let word = |value: B256| Value::String(format!("0x{}", alloy::hex::encode(value)));
    let result = match method {
        "eth_chainId" => json!("0xa4b1"),
        "eth_blockNumber" => json!(format!("{L2_BLOCK:#x}")),
        "eth_gasPrice" => json!(format!("{GAS_PRICE:#x}")),
        "eth_getBlockByNumber" => block.clone(),
        "eth_call" => {
            let call = &request["params"][0];
            let input = call["input"].as_str().or(call["data"].as_str()).unwrap();
            let input = alloy::hex::decode(input).unwrap();
            if input.starts_with(&RoundsManager::currentRoundCall::SELECTOR) {
                word(U256::from(ROUND).into())
            } else if input.starts_with(&RoundsManager::blockHashForRoundCall::SELECTOR) {
                word(ROUND_HASH)
            } else {
                panic!("unexpected eth_call {call}")
            }
        }
        other => panic!("unexpected method {other}"),
    };
    json!({"jsonrpc": "2.0", "id": request["id"], "result": result})
}

/// An Arbitrum-like latest block: `number` is L2, `l1BlockNumber` L1.
fn arbitrum_block() -> Value {
    json!({
        "number": format!("{L2_BLOCK:#x}"),
        "l1BlockNumber": format!("{L1_BLOCK:#x}"),
        "hash": format!("{:#x}", B256::repeat_byte(0x11)),
    })
}

#[tokio::test]
async fn latest_l1_block_is_the_headers_l1_block_number() {
    let node = FakeNode::start(arbitrum_block());
    assert_eq!(latest_l1_block(&node.provider()).await.unwrap(), L1_BLOCK);
    assert_eq!(node.calls(), ["eth_getBlockByNumber"]);
}

#[tokio::test]
async fn latest_l1_block_is_the_number_on_a_one_layer_chain() {
    let node = FakeNode::start(json!({"number": format!("{L2_BLOCK:#x}")}));
    assert_eq!(latest_l1_block(&node.provider()).await.unwrap(), L2_BLOCK);
}

#[tokio::test]
async fn malformed_l1_block_number_is_an_error_naming_the_field() {
    let node = FakeNode::start(json!({"number": "0x10", "l1BlockNumber": "0xnope"}));
    let err = latest_l1_block(&node.provider()).await.unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::BadBlock {
                field: "l1BlockNumber",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("l1BlockNumber"), "{err}");
    assert!(err.to_string().contains("0xnope"), "{err}");

    let node = FakeNode::start(json!({"hash": "0x00"}));
    let err = latest_l1_block(&node.provider()).await.unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::BadBlock {
                field: "number",
                ..
            }
        ),
        "{err:?}"
    );

    let node = FakeNode::start(Value::Null);
    let err = latest_l1_block(&node.provider()).await.unwrap_err();
    assert!(
        matches!(err, ChainError::BadBlock { field: "block", .. }),
        "{err:?}"
    );
}

/// O issues params from its chain view and B checks them against the L1 block: both count L1
/// blocks, so B accepts the params; against the L2 block they would look long expired.
#[tokio::test]
async fn params_issued_on_arbitrum_expire_in_l1_blocks_and_b_accepts_them() {
    let node = FakeNode::start(arbitrum_block());
    let provider = node.provider();
    let rounds = RoundsManagerClient::new(provider.clone(), Address::repeat_byte(0x42));
    let view = rounds.chain_view().await.unwrap();
    assert_eq!(view.block, L1_BLOCK, "O's view counts L1 blocks");
    assert_eq!(view.round, ROUND);
    assert_eq!(view.round_block_hash, ROUND_HASH);
    assert_eq!(view.gas_price, U256::from(GAS_PRICE));
    assert!(
        !node.calls().iter().any(|m| m == "eth_blockNumber"),
        "{:?}",
        node.calls()
    );

    let mut sender = TicketSender::new(key(0xb0), SenderLimits::default());
    let price = PricePerPixel {
        price_per_unit: 1,
        pixels_per_unit: 1,
    };
    let params = TicketRecipient::with_seed(key(0xa0).address(), RecipientConfig::default(), 1)
        .issue_params(sender.address(), price, &view)
        .unwrap();
    assert_eq!(params.expiration_block, L1_BLOCK + 40);

    let deposit = U256::from(10u64).pow(U256::from(18));
    let b_block = latest_l1_block(&provider).await.unwrap();
    let payment = sender
        .payment(&params, params.ev(), b_block, deposit)
        .unwrap();
    assert_eq!(payment.ticket_sender_params.len(), 1);

    // What mixing the two numbers would do: the L2 block is far past an L1 expiry.
    assert!(matches!(
        sender.payment(&params, params.ev(), L2_BLOCK, deposit),
        Err(SenderError::Rejected(
            ParamsRejection::ExpiresTooSoon { .. }
        ))
    ));
}
