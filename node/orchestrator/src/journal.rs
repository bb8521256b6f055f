//! The ticket journal: an opt-in audit trail of every ticket the orchestrator received, one JSON
//! line per ticket with its fields, the sender's signature, the recipientRand this node derived
//! for it and its verdict (`payments.ticket_journal`).
//!
//! It lets an operator, or another implementation, re-check the node's ticket decisions without
//! its secret: go-livepeer's `pm.Validator` takes exactly (recipient, ticket, signature,
//! recipientRand). recipientRand tells which tickets of a live params set win, so the file is
//! created owner-only and must stay private to the operator while those params are in use.
//!
//! It is also the node's memory of its winners across a restart: a line holds everything
//! `redeemWinningTicket` takes, so [`read_winners`] gives a restarted node the winners it
//! accepted, and the ones not used on chain are redeemed (go-livepeer keeps them in its sqlite
//! `ticketQueue` table for the same reason, `common/db.go`). `received_ms` (unix ms) dates each
//! ticket, from which a run measures how long redemption took.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, Write};
use std::path::Path;
use std::str::FromStr;
use std::sync::Mutex;

use alloy::primitives::{Address, B256, U256, keccak256};
use protocol::ticket::{
    PricePerPixel, SignedTicket, Ticket, TicketExpirationParams, WinningTicket, is_winning,
};
use serde::{Deserialize, Serialize};

/// One journal line.
#[derive(Debug, Serialize, Deserialize)]
struct Line {
    recipient: String,
    sender: String,
    face_value: String,
    win_prob: String,
    sender_nonce: u32,
    recipient_rand_hash: String,
    creation_round: u64,
    creation_round_block_hash: String,
    params_expiration_block: u64,
    price_per_unit: u64,
    pixels_per_unit: u64,
    sig: String,
    recipient_rand: String,
    accepted: bool,
    winning: bool,
    reason: Option<String>,
    /// Absent from journals written before it was recorded.
    #[serde(default)]
    received_ms: Option<u64>,
}

impl Line {
    /// The winning ticket this line records, if it is an accepted winner whose recipientRand
    /// still matches its commitment and still wins (a line that does not is not redeemable).
    fn winner(&self) -> Result<Option<WinningTicket>, String> {
        if !(self.accepted && self.winning) {
            return Ok(None);
        }
        let address = |what: &str, text: &str| {
            Address::from_str(text).map_err(|e| format!("{what} {text:?}: {e}"))
        };
        let hash = |what: &str, text: &str| {
            B256::from_str(text).map_err(|e| format!("{what} {text:?}: {e}"))
        };
        let wei = |what: &str, text: &str| {
            U256::from_str_radix(text, 10).map_err(|e| format!("{what} {text:?}: {e}"))
        };
        let ticket = Ticket {
            recipient: address("recipient", &self.recipient)?,
            sender: address("sender", &self.sender)?,
            face_value: wei("face_value", &self.face_value)?,
            win_prob: wei("win_prob", &self.win_prob)?,
            sender_nonce: self.sender_nonce,
            recipient_rand_hash: hash("recipient_rand_hash", &self.recipient_rand_hash)?,
            expiration: TicketExpirationParams {
                creation_round: self.creation_round,
                creation_round_block_hash: hash(
                    "creation_round_block_hash",
                    &self.creation_round_block_hash,
                )?,
            },
            params_expiration_block: self.params_expiration_block,
            price: PricePerPixel {
                price_per_unit: self.price_per_unit,
                pixels_per_unit: self.pixels_per_unit,
            },
        };
        let sig = alloy::hex::decode(&self.sig).map_err(|e| format!("sig: {e}"))?;
        let rand = hash("recipient_rand", &self.recipient_rand)?;
        if keccak256(rand) != ticket.recipient_rand_hash {
            return Err("recipient_rand does not match recipient_rand_hash".into());
        }
        let recipient_rand = U256::from_be_bytes(rand.0);
        if !is_winning(&sig, recipient_rand, ticket.win_prob) {
            return Err("the ticket does not win with its recipient_rand".into());
        }
        Ok(Some(WinningTicket {
            ticket,
            sig,
            recipient_rand,
        }))
    }
}

/// An accepted winning ticket read back from a journal.
#[derive(Debug, Clone)]
pub struct JournaledWinner {
    /// The ticket, its signature and recipientRand.
    pub winner: WinningTicket,
    /// When it was received (unix ms), if the line says.
    pub received_ms: Option<u64>,
}

/// What [`read_winners`] found.
#[derive(Debug, Default)]
pub struct JournalWinners {
    /// Each accepted winner once, in journal order.
    pub winners: Vec<JournaledWinner>,
    /// Lines that are not a readable ticket (a line cut short by a crash, a corrupt one), with
    /// their 1-based number and what is wrong.
    pub unreadable: Vec<(usize, String)>,
}

/// The accepted winning tickets of the journal at `path` (none if it does not exist yet).
pub fn read_winners(path: &Path) -> std::io::Result<JournalWinners> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Ok(JournalWinners::default());
        }
        Err(err) => return Err(err),
    };
    let mut found = JournalWinners::default();
    let mut seen = HashSet::new();
    for (index, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed = serde_json::from_str::<Line>(&line)
            .map_err(|e| e.to_string())
            .and_then(|line| Ok((line.winner()?, line.received_ms)));
        match parsed {
            Ok((Some(winner), received_ms)) => {
                if seen.insert(winner.ticket.hash()) {
                    found.winners.push(JournaledWinner {
                        winner,
                        received_ms,
                    });
                }
            }
            Ok((None, _)) => {}
            Err(reason) => found.unreadable.push((index + 1, reason)),
        }
    }
    Ok(found)
}

/// An append-only JSON-lines file of received tickets.
#[derive(Debug)]
pub struct TicketJournal {
    file: Mutex<File>,
}

impl TicketJournal {
    /// Opens (creating it owner-only, or appending to it) the journal at `path`.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        Ok(Self {
            file: Mutex::new(file),
        })
    }

    /// Appends `ticket`, the recipientRand derived for it, the verdict (`reason` is the
    /// rejection, `None` when accepted) and when it was received (unix ms). Each line is one
    /// write, so a killed node leaves whole lines only.
    pub fn record(
        &self,
        signed: &SignedTicket,
        recipient_rand: U256,
        reason: Option<&str>,
        received_ms: u64,
    ) -> std::io::Result<()> {
        let t = &signed.ticket;
        let line = Line {
            recipient: t.recipient.to_string(),
            sender: t.sender.to_string(),
            face_value: t.face_value.to_string(),
            win_prob: t.win_prob.to_string(),
            sender_nonce: t.sender_nonce,
            recipient_rand_hash: t.recipient_rand_hash.to_string(),
            creation_round: t.expiration.creation_round,
            creation_round_block_hash: t.expiration.creation_round_block_hash.to_string(),
            params_expiration_block: t.params_expiration_block,
            price_per_unit: t.price.price_per_unit,
            pixels_per_unit: t.price.pixels_per_unit,
            sig: format!("0x{}", alloy::hex::encode(&signed.sig)),
            recipient_rand: format!(
                "0x{}",
                alloy::hex::encode(recipient_rand.to_be_bytes::<32>())
            ),
            accepted: reason.is_none(),
            winning: reason.is_none() && is_winning(&signed.sig, recipient_rand, t.win_prob),
            reason: reason.map(str::to_owned),
            received_ms: Some(received_ms),
        };
        let mut text = serde_json::to_string(&line).map_err(std::io::Error::other)?;
        text.push('\n');
        self.file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_all(text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use alloy::signers::local::PrivateKeySigner;
    use protocol::ticket::{ChainView, SenderLimits, TicketSender};

    use super::*;

    const RAND: u64 = 0x5eed;

    fn view() -> ChainView {
        ChainView {
            block: 100,
            round: 3,
            round_block_hash: B256::repeat_byte(7),
            gas_price: U256::from(1),
        }
    }

    fn sender() -> TicketSender {
        let key = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x11)).unwrap();
        TicketSender::new(key, SenderLimits::default())
    }

    fn signed(winner: &WinningTicket) -> SignedTicket {
        SignedTicket {
            ticket: winner.ticket.clone(),
            sig: winner.sig.clone(),
        }
    }

    #[test]
    fn accepted_winners_read_back_whole_once_and_bad_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tickets.jsonl");
        let journal = TicketJournal::open(&path).unwrap();
        let mut sender = sender();
        let recipient = Address::repeat_byte(1);
        let rand = U256::from(RAND);
        let winner =
            testkit::tickets::winner(&mut sender, &view(), recipient, U256::from(1000), rand);
        let second =
            testkit::tickets::winner(&mut sender, &view(), recipient, U256::from(1000), rand);
        // A ticket that cannot win (winProb 0), accepted.
        let params = testkit::tickets::params(&view(), recipient, U256::from(9), U256::ZERO, rand);
        let loser = sender.sign_tickets(&params, 1).unwrap().remove(0);

        journal.record(&signed(&winner), rand, None, 1_000).unwrap();
        journal.record(&signed(&winner), rand, None, 1_001).unwrap();
        journal.record(&loser, rand, None, 1_002).unwrap();
        journal
            .record(&signed(&second), rand, Some("nonce reused"), 1_003)
            .unwrap();
        journal.record(&signed(&second), rand, None, 1_004).unwrap();
        // A winner (winProb is the maximum) journaled with a rand that is not the one committed
        // to, and a line a crash cut short.
        let mut bad = signed(&second);
        bad.ticket.sender_nonce = 99;
        journal
            .record(&bad, U256::from(RAND + 1), None, 1_005)
            .unwrap();
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"recipient\":\"0x01");
        std::fs::write(&path, text).unwrap();

        let found = read_winners(&path).unwrap();
        let winners: Vec<_> = found
            .winners
            .iter()
            .map(|w| (w.winner.clone(), w.received_ms))
            .collect();
        assert_eq!(winners, [(winner, Some(1_000)), (second, Some(1_004))]);
        let lines: Vec<usize> = found.unreadable.iter().map(|(n, _)| *n).collect();
        assert_eq!(lines, [6, 7], "{:?}", found.unreadable);
        assert!(found.unreadable[0].1.contains("recipient_rand"));
    }

    #[test]
    fn lines_without_received_ms_still_read_and_no_journal_is_no_winners() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tickets.jsonl");
        assert!(read_winners(&path).unwrap().winners.is_empty());
        let journal = TicketJournal::open(&path).unwrap();
        let rand = U256::from(RAND);
        let winner = testkit::tickets::winner(
            &mut sender(),
            &view(),
            Address::repeat_byte(1),
            U256::from(1000),
            rand,
        );
        journal.record(&signed(&winner), rand, None, 5).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"accepted\":true") && text.contains("\"received_ms\":5"));
        std::fs::write(&path, text.replace(",\"received_ms\":5", "")).unwrap();
        let found = read_winners(&path).unwrap();
        assert_eq!(found.winners.len(), 1);
        assert_eq!(found.winners[0].received_ms, None);
        assert_eq!(found.winners[0].winner, winner);
    }
}
