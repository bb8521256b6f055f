//! What a chaos event cost the orchestrators' payments: the winning tickets each received around
//! the event, from its ticket journal, against the redemptions the chain holds at the end.
//!
//! The orchestrators' ticket journals list every ticket they accepted with the recipientRand they
//! derived, so which tickets won is known without trusting the node's own redemption records; the
//! chain's `WinningTicketRedeemed` logs, read after the run from the canonical chain (a reorged
//! redemption is no longer there), say which were paid. A winner is matched to its redemption by
//! recipient, sender nonce and recipientRand, which the event reveals. Block timestamps have a
//! resolution of one second, and so has the delay.
//!
//! "Around the event" is from [`BEFORE`] before it started, because winners received then only
//! become due (their params expire) during it, to [`AFTER`] after it ended.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use alloy::primitives::{Address, U256};
use anyhow::Context;
use observation::record::RecoveryRecord;
use protocol::chain::BrokerEvent;
use serde::Deserialize;

use super::recovery::Occurrence;

/// How long before an event a winner counts as the event's: the embedded orchestrators' params
/// expire after 30 blocks, about 30 s, and a winner is redeemed only then.
pub const BEFORE: Duration = Duration::from_secs(40);
/// How long after an event a winner still counts as the event's.
pub const AFTER: Duration = Duration::from_secs(10);

/// One winning ticket an orchestrator accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Winner {
    pub recipient: Address,
    pub sender_nonce: u64,
    pub recipient_rand: U256,
    /// When the orchestrator received it (unix ms), where its journal says.
    pub received_ms: Option<i64>,
}

/// A journal line's fields this reading needs (the journal has more).
#[derive(Deserialize)]
struct JournalLine {
    recipient: String,
    sender_nonce: u32,
    recipient_rand: String,
    accepted: bool,
    winning: bool,
    #[serde(default)]
    received_ms: Option<i64>,
}

/// The accepted winners in one orchestrator ticket journal. A torn last line (the node was
/// killed mid-write) is skipped; any other unreadable line is an error naming it.
pub fn read_winners(path: &Path) -> anyhow::Result<Vec<Winner>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let lines: Vec<&str> = text.lines().collect();
    let mut winners = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let parsed: JournalLine = match serde_json::from_str(line) {
            Ok(parsed) => parsed,
            Err(_) if index + 1 == lines.len() && !text.ends_with('\n') => continue,
            Err(error) => {
                return Err(anyhow::anyhow!(
                    "{}:{}: not a ticket journal line: {error}",
                    path.display(),
                    index + 1
                ));
            }
        };
        if !(parsed.accepted && parsed.winning) {
            continue;
        }
        let at = |what: &str| format!("{}:{}: {what}", path.display(), index + 1);
        winners.push(Winner {
            recipient: parsed
                .recipient
                .parse()
                .with_context(|| at("recipient is not an address"))?,
            sender_nonce: u64::from(parsed.sender_nonce),
            recipient_rand: parsed
                .recipient_rand
                .parse()
                .with_context(|| at("recipient_rand is not a number"))?,
            received_ms: parsed.received_ms,
        });
    }
    Ok(winners)
}

/// A redemption on the canonical chain: when its block was mined (unix ms).
pub type Redeemed = HashMap<(Address, u64, U256), i64>;

/// Every `WinningTicketRedeemed` of the broker at `rpc` from `from_block` to the head, keyed as
/// [`Winner`]s are, with its block's timestamp.
pub async fn read_redeemed(
    rpc: &str,
    broker: Address,
    from_block: u64,
) -> anyhow::Result<Redeemed> {
    use alloy::eips::BlockNumberOrTag;
    use alloy::providers::Provider;
    let reader = protocol::chain::EventReader::connect(rpc, broker)?;
    let provider = protocol::chain::read_provider(rpc)?;
    let head = reader.latest_block().await?;
    let mut block_times: BTreeMap<u64, i64> = BTreeMap::new();
    let mut redeemed = Redeemed::new();
    for record in reader.read(from_block, head).await? {
        let BrokerEvent::WinningTicketRedeemed {
            recipient,
            sender_nonce,
            recipient_rand,
            ..
        } = record.event
        else {
            continue;
        };
        let at = match block_times.get(&record.block_number) {
            Some(at) => *at,
            None => {
                let block = provider
                    .get_block_by_number(BlockNumberOrTag::Number(record.block_number))
                    .await?
                    .with_context(|| format!("block {} is gone", record.block_number))?;
                let at = block.header.timestamp as i64 * 1000;
                block_times.insert(record.block_number, at);
                at
            }
        };
        let nonce = u64::try_from(sender_nonce).unwrap_or(u64::MAX);
        redeemed.insert((recipient, nonce, recipient_rand), at);
    }
    Ok(redeemed)
}

/// Per occurrence and orchestrator with winners around it: how many were never redeemed, and the
/// longest wait from receipt to redemption.
pub fn payment_recovery(
    winners: &[Winner],
    redeemed: &Redeemed,
    events: &[Occurrence],
) -> Vec<RecoveryRecord> {
    let mut out = Vec::new();
    for event in events {
        let from = event.start_ms - BEFORE.as_millis() as i64;
        let to = event.end_ms.max(event.start_ms) + AFTER.as_millis() as i64;
        let mut by_orchestrator: BTreeMap<Address, (u64, u64, Option<i64>)> = BTreeMap::new();
        for winner in winners {
            let Some(received) = winner.received_ms else {
                continue;
            };
            if received < from || received > to {
                continue;
            }
            let entry = by_orchestrator.entry(winner.recipient).or_default();
            entry.0 += 1;
            match redeemed.get(&(winner.recipient, winner.sender_nonce, winner.recipient_rand)) {
                Some(at) => entry.2 = Some(entry.2.unwrap_or(0).max(at - received)),
                None => entry.1 += 1,
            }
        }
        for (orchestrator, (count, lost, delay)) in by_orchestrator {
            out.push(RecoveryRecord {
                t_ms: event.start_ms,
                event: event.label.clone(),
                workload: None,
                stream: None,
                orchestrator: Some(orchestrator.to_string()),
                failover_time_ms: None,
                segments_lost: None,
                stall_time_ms: None,
                recovered: None,
                redemptions_lost: Some(lost),
                winners: Some(count),
                redemption_delay_ms: delay.map(|d| d.max(0) as f64),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const O: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

    fn line(nonce: u32, winning: bool, received_ms: i64) -> String {
        format!(
            r#"{{"recipient":"{O}","sender":"0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266","sender_nonce":{nonce},"recipient_rand":"0x{:064x}","accepted":true,"winning":{winning},"received_ms":{received_ms},"sig":"0x00"}}"#,
            nonce + 100
        )
    }

    #[test]
    fn winners_come_from_accepted_winning_lines_and_a_torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orchestrator-0.tickets.jsonl");
        let text = format!(
            "{}\n{}\n{}\n{{\"recipient\":\"0x7",
            line(1, true, 1000),
            line(2, false, 2000),
            line(3, true, 3000)
        );
        std::fs::write(&path, text).unwrap();
        let winners = read_winners(&path).unwrap();
        assert_eq!(winners.len(), 2);
        assert_eq!(winners[1].sender_nonce, 3);
        assert_eq!(winners[1].recipient_rand, U256::from(103));
        assert_eq!(winners[1].received_ms, Some(3000));

        std::fs::write(&path, format!("not json\n{}\n", line(1, true, 1))).unwrap();
        let error = read_winners(&path).unwrap_err().to_string();
        assert!(
            error.ends_with(":1: not a ticket journal line: expected ident at line 1 column 2"),
            "{error}"
        );
    }

    #[test]
    fn lost_winners_and_the_longest_delay_are_counted_per_event_and_orchestrator() {
        let o: Address = O.parse().unwrap();
        let winner = |nonce: u64, received_ms| Winner {
            recipient: o,
            sender_nonce: nonce,
            recipient_rand: U256::from(nonce + 100),
            received_ms: Some(received_ms),
        };
        let t = 1_000_000;
        let winners = [
            winner(1, t - 60_000), // before the window
            winner(2, t - 20_000), // redeemed 50 s later, after the outage
            winner(3, t + 5_000),  // never redeemed
            winner(4, t + 12_000), // redeemed 31 s later
        ];
        let mut redeemed = Redeemed::new();
        for (nonce, at) in [(1, t - 30_000), (2, t + 30_000), (4, t + 43_000)] {
            redeemed.insert((o, nonce, U256::from(nonce + 100)), at);
        }
        let outage = Occurrence {
            label: "chain_outage:chain@20s".into(),
            start_ms: t,
            end_ms: t + 10_000,
        };
        let records = payment_recovery(&winners, &redeemed, &[outage]);
        assert_eq!(records.len(), 1);
        let r = &records[0];
        assert_eq!(r.winners, Some(3));
        assert_eq!(r.redemptions_lost, Some(1));
        assert_eq!(r.redemption_delay_ms, Some(50_000.0));
        assert_eq!(r.orchestrator.as_deref(), Some(O));
        assert_eq!(r.event, "chain_outage:chain@20s");
    }
}
