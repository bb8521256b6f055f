//! Reading the TicketBroker's six settlement events over a block range from any JSON-RPC node.
//!
//! The range is read in pages (see [`super::logs`]); logs are filtered on the broker address and
//! the six topic0 values in one request per page and decoded into [`BrokerEvent`].

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::DynProvider;
use alloy::rpc::types::Log;
use alloy::sol_types::SolEvent;

use super::bindings::TicketBroker;
use super::logs::LogPages;
use super::{ChainError, read_provider};

/// A decoded TicketBroker event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerEvent {
    /// `WinningTicketRedeemed`.
    WinningTicketRedeemed {
        /// Ticket sender.
        sender: Address,
        /// Ticket recipient.
        recipient: Address,
        /// Face value, wei.
        face_value: U256,
        /// Win probability numerator.
        win_prob: U256,
        /// Sender nonce.
        sender_nonce: U256,
        /// Revealed recipientRand.
        recipient_rand: U256,
        /// auxData (creation round ‖ block hash).
        aux_data: Bytes,
    },
    /// `WinningTicketTransfer`.
    WinningTicketTransfer {
        /// Ticket sender.
        sender: Address,
        /// Ticket recipient.
        recipient: Address,
        /// Amount paid, wei.
        amount: U256,
    },
    /// `DepositFunded`.
    DepositFunded {
        /// Sender.
        sender: Address,
        /// Amount, wei.
        amount: U256,
    },
    /// `ReserveFunded`.
    ReserveFunded {
        /// Reserve holder.
        reserve_holder: Address,
        /// Amount, wei.
        amount: U256,
    },
    /// `Unlock`.
    Unlock {
        /// Sender.
        sender: Address,
        /// Round the unlock started.
        start_round: U256,
        /// Round from which withdrawal is possible.
        end_round: U256,
    },
    /// `Withdrawal`.
    Withdrawal {
        /// Sender.
        sender: Address,
        /// Deposit withdrawn, wei.
        deposit: U256,
        /// Reserve withdrawn, wei.
        reserve: U256,
    },
}

impl BrokerEvent {
    /// topic0 of the six events, in declaration order.
    pub const TOPICS: [B256; 6] = [
        TicketBroker::WinningTicketRedeemed::SIGNATURE_HASH,
        TicketBroker::WinningTicketTransfer::SIGNATURE_HASH,
        TicketBroker::DepositFunded::SIGNATURE_HASH,
        TicketBroker::ReserveFunded::SIGNATURE_HASH,
        TicketBroker::Unlock::SIGNATURE_HASH,
        TicketBroker::Withdrawal::SIGNATURE_HASH,
    ];

    /// Decodes a log whose topic0 is one of [`Self::TOPICS`]; `Ok(None)` for other logs.
    pub fn decode(log: &Log) -> Result<Option<Self>, ChainError> {
        let Some(topic0) = log.topic0().copied() else {
            return Ok(None);
        };
        let inner = &log.inner;
        let block = log.block_number;
        fn bad(event: &'static str, block: Option<u64>, e: alloy::sol_types::Error) -> ChainError {
            ChainError::BadLog {
                event,
                block,
                reason: e.to_string(),
            }
        }
        let event = match topic0 {
            TicketBroker::WinningTicketRedeemed::SIGNATURE_HASH => {
                let e = TicketBroker::WinningTicketRedeemed::decode_log(inner)
                    .map_err(|e| bad("WinningTicketRedeemed", block, e))?
                    .data;
                Self::WinningTicketRedeemed {
                    sender: e.sender,
                    recipient: e.recipient,
                    face_value: e.faceValue,
                    win_prob: e.winProb,
                    sender_nonce: e.senderNonce,
                    recipient_rand: e.recipientRand,
                    aux_data: e.auxData,
                }
            }
            TicketBroker::WinningTicketTransfer::SIGNATURE_HASH => {
                let e = TicketBroker::WinningTicketTransfer::decode_log(inner)
                    .map_err(|e| bad("WinningTicketTransfer", block, e))?
                    .data;
                Self::WinningTicketTransfer {
                    sender: e.sender,
                    recipient: e.recipient,
                    amount: e.amount,
                }
            }
            TicketBroker::DepositFunded::SIGNATURE_HASH => {
                let e = TicketBroker::DepositFunded::decode_log(inner)
                    .map_err(|e| bad("DepositFunded", block, e))?
                    .data;
                Self::DepositFunded {
                    sender: e.sender,
                    amount: e.amount,
                }
            }
            TicketBroker::ReserveFunded::SIGNATURE_HASH => {
                let e = TicketBroker::ReserveFunded::decode_log(inner)
                    .map_err(|e| bad("ReserveFunded", block, e))?
                    .data;
                Self::ReserveFunded {
                    reserve_holder: e.reserveHolder,
                    amount: e.amount,
                }
            }
            TicketBroker::Unlock::SIGNATURE_HASH => {
                let e = TicketBroker::Unlock::decode_log(inner)
                    .map_err(|e| bad("Unlock", block, e))?
                    .data;
                Self::Unlock {
                    sender: e.sender,
                    start_round: e.startRound,
                    end_round: e.endRound,
                }
            }
            TicketBroker::Withdrawal::SIGNATURE_HASH => {
                let e = TicketBroker::Withdrawal::decode_log(inner)
                    .map_err(|e| bad("Withdrawal", block, e))?
                    .data;
                Self::Withdrawal {
                    sender: e.sender,
                    deposit: e.deposit,
                    reserve: e.reserve,
                }
            }
            _ => return Ok(None),
        };
        Ok(Some(event))
    }
}

/// An event with where it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// Block number.
    pub block_number: u64,
    /// Transaction hash.
    pub tx_hash: B256,
    /// Index of the log in its block.
    pub log_index: u64,
    /// The event.
    pub event: BrokerEvent,
}

/// Reads TicketBroker events from any RPC endpoint.
#[derive(Debug, Clone)]
pub struct EventReader {
    logs: LogPages,
}

impl EventReader {
    /// A reader of the broker at `broker` through `provider`.
    pub fn new(provider: DynProvider, broker: Address) -> Self {
        Self {
            logs: LogPages::new(provider, broker),
        }
    }

    /// A reader over the JSON-RPC endpoint `url` (e.g. an Arbitrum One node with
    /// [`super::ARBITRUM_ONE`]`.ticket_broker`).
    pub fn connect(url: &str, broker: Address) -> Result<Self, ChainError> {
        Ok(Self::new(read_provider(url)?, broker))
    }

    /// Blocks per request (at least 1).
    pub fn with_page_size(self, blocks: u64) -> Self {
        Self {
            logs: self.logs.with_page_size(blocks),
        }
    }

    /// The latest block of the endpoint (`eth_blockNumber`: the L2 block on Arbitrum, which is
    /// what log ranges count; ticket expiry counts [`super::latest_l1_block`] instead).
    pub async fn latest_block(&self) -> Result<u64, ChainError> {
        self.logs.latest_block().await
    }

    /// All six events emitted in blocks `from..=to`, in chain order.
    pub async fn read(&self, from: u64, to: u64) -> Result<Vec<EventRecord>, ChainError> {
        let mut records = Vec::new();
        self.logs
            .for_each(&BrokerEvent::TOPICS, from, to, |log| {
                if let Some(event) = BrokerEvent::decode(log)? {
                    records.push(EventRecord {
                        block_number: log.block_number.unwrap_or_default(),
                        tx_hash: log.transaction_hash.unwrap_or_default(),
                        log_index: log.log_index.unwrap_or_default(),
                        event,
                    });
                }
                Ok(())
            })
            .await?;
        Ok(records)
    }
}
