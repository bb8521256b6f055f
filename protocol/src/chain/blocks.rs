//! The block number ticket expiry is counted in: the last seen **L1** block.
//!
//! Arbitrum has two block numbers. `eth_blockNumber` returns the L2 block number, which moves
//! several times a second; Solidity's `block.number` on Arbitrum (and so the RoundsManager's
//! rounds) and go-livepeer's ticket expiry use the L1 block number, which Arbitrum nodes add to
//! every block header as the `l1BlockNumber` field. A ticket's `paramsExpirationBlock` is the
//! last seen L1 block + 40 (PROTOCOL.md §4), and B checks params expiry against the L1 block too:
//! mixing the two would make O's params look expired to B at once (L1 issued, L2 checked) or
//! never expire (L2 issued, L1 checked). On a one-layer chain (anvil, Ethereum) the header has no
//! such field and the L1 block is the block's own `number`, as in go-livepeer's block watcher.
//!
//! Block ranges for `eth_getLogs` stay L2 numbers (`eth_blockNumber`): logs are indexed by the
//! chain's own blocks, and so are confirmations: [`latest_head`] gives both numbers of the latest
//! block with its hash, which changes whenever a reorg replaces the head.

use alloy::primitives::B256;
use alloy::providers::{DynProvider, Provider};
use serde_json::Value;

use super::ChainError;

/// The RPC method [`latest_l1_block`] calls.
const METHOD: &str = "eth_getBlockByNumber";

/// The last seen L1 block: `l1BlockNumber` of the latest block header when the chain reports one
/// (Arbitrum), its `number` otherwise (one-layer chains).
///
/// Calls `eth_getBlockByNumber("latest", false)`. Both fields must be hex quantities (`0x`
/// followed by hex digits, fitting in 64 bits); a malformed value, a missing `number` or a null
/// block is a [`ChainError::BadBlock`] naming the field.
pub async fn latest_l1_block(provider: &DynProvider) -> Result<u64, ChainError> {
    l1_block_of(&latest_block(provider).await?)
}

/// `eth_getBlockByNumber("latest", false)`.
async fn latest_block(provider: &DynProvider) -> Result<Value, ChainError> {
    provider
        .raw_request(METHOD.into(), ("latest", false))
        .await
        .map_err(|source| ChainError::from_rpc(METHOD, source))
}

/// The latest block of a chain as one `eth_getBlockByNumber("latest")` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChainHead {
    /// The block's own number (L2 on Arbitrum): what confirmations count.
    pub number: u64,
    /// The last seen L1 block ([`latest_l1_block`]): what ticket expiry counts.
    pub l1_block: u64,
    /// The block's hash: a reorg that replaces the head changes it even at the same height.
    pub hash: B256,
}

/// The latest block's number, L1 block number and hash, from one `eth_getBlockByNumber("latest",
/// false)`.
pub async fn latest_head(provider: &DynProvider) -> Result<ChainHead, ChainError> {
    head_of(&latest_block(provider).await?)
}

/// The head a block object as `eth_getBlockByNumber` returns it describes.
fn head_of(block: &Value) -> Result<ChainHead, ChainError> {
    let l1_block = l1_block_of(block)?;
    let number = quantity(block.get("number"), "number")?;
    let hash = match block.get("hash") {
        Some(Value::String(text)) => text.parse().map_err(|_| ChainError::BadBlock {
            field: "hash",
            reason: format!("{text:?} is not a 32-byte hex hash"),
        })?,
        other => {
            return Err(ChainError::BadBlock {
                field: "hash",
                reason: format!("expected a hash string, got {other:?}"),
            });
        }
    };
    Ok(ChainHead {
        number,
        l1_block,
        hash,
    })
}

/// The L1 block number of a block object as `eth_getBlockByNumber` returns it.
fn l1_block_of(block: &Value) -> Result<u64, ChainError> {
    let Value::Object(fields) = block else {
        return Err(ChainError::BadBlock {
            field: "block",
            reason: format!("expected a block object, got {block}"),
        });
    };
    match fields.get("l1BlockNumber") {
        // go-livepeer reads an absent field as "this is L1"; JSON null is as absent.
        None | Some(Value::Null) => quantity(fields.get("number"), "number"),
        present => quantity(present, "l1BlockNumber"),
    }
}

/// A JSON-RPC hex quantity (`"0x1a"`) as a u64, strictly: the `0x` prefix, at least one hex
/// digit, nothing else, no overflow.
fn quantity(value: Option<&Value>, field: &'static str) -> Result<u64, ChainError> {
    let bad = |reason: String| ChainError::BadBlock { field, reason };
    let text = match value {
        Some(Value::String(text)) => text,
        Some(other) => return Err(bad(format!("expected a hex quantity string, got {other}"))),
        None => return Err(bad("missing".to_string())),
    };
    let digits = text
        .strip_prefix("0x")
        .ok_or_else(|| bad(format!("{text:?} is not a hex quantity (no 0x prefix)")))?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad(format!("{text:?} is not a hex quantity")));
    }
    u64::from_str_radix(digits, 16).map_err(|_| bad(format!("{text:?} does not fit in 64 bits")))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn field_of(err: ChainError) -> &'static str {
        match err {
            ChainError::BadBlock { field, .. } => field,
            other => panic!("expected BadBlock, got {other:?}"),
        }
    }

    #[test]
    fn l1_field_wins_over_number() {
        let block = json!({"number": "0x10000000", "l1BlockNumber": "0x1234567"});
        assert_eq!(l1_block_of(&block).unwrap(), 0x1234567);
    }

    #[test]
    fn without_l1_field_the_number_is_l1() {
        assert_eq!(l1_block_of(&json!({"number": "0x2a"})).unwrap(), 42);
        let null = json!({"number": "0x2a", "l1BlockNumber": null});
        assert_eq!(l1_block_of(&null).unwrap(), 42);
        assert_eq!(l1_block_of(&json!({"number": "0x0"})).unwrap(), 0);
    }

    #[test]
    fn malformed_quantities_are_errors_naming_the_field() {
        for bad in [
            json!("1234"),
            json!("0x"),
            json!("0xg1"),
            json!("0x+1"),
            json!("0x-1"),
            json!(" 0x1"),
            json!("0X1"),
            json!("0x10000000000000000"),
            json!(""),
            json!(12),
            json!(true),
        ] {
            let block = json!({"number": "0x1", "l1BlockNumber": bad});
            assert_eq!(field_of(l1_block_of(&block).unwrap_err()), "l1BlockNumber");
            let block = json!({"number": bad});
            assert_eq!(field_of(l1_block_of(&block).unwrap_err()), "number");
        }
        assert_eq!(
            l1_block_of(&json!({"number": "0xffffffffffffffff"})).unwrap(),
            u64::MAX
        );
    }

    #[test]
    fn the_head_has_both_numbers_and_the_hash() {
        let hash = format!("0x{}", "ab".repeat(32));
        let block = json!({"number": "0x10", "l1BlockNumber": "0x7", "hash": hash});
        let head = head_of(&block).unwrap();
        assert_eq!((head.number, head.l1_block), (16, 7));
        assert_eq!(head.hash, B256::repeat_byte(0xab));
        assert_eq!(
            field_of(head_of(&json!({"number": "0x10"})).unwrap_err()),
            "hash"
        );
        let short = json!({"number": "0x10", "hash": "0xabcd"});
        assert_eq!(field_of(head_of(&short).unwrap_err()), "hash");
    }

    #[test]
    fn missing_number_or_block_is_an_error() {
        assert_eq!(field_of(l1_block_of(&json!({})).unwrap_err()), "number");
        assert_eq!(field_of(l1_block_of(&Value::Null).unwrap_err()), "block");
    }
}
