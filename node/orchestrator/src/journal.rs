//! The ticket journal: an opt-in audit trail of every ticket the orchestrator received, one JSON
//! line per ticket with its fields, the sender's signature, the recipientRand this node derived
//! for it and its verdict (`payments.ticket_journal`).
//!
//! It lets an operator, or another implementation, re-check the node's ticket decisions without
//! its secret: go-livepeer's `pm.Validator` takes exactly (recipient, ticket, signature,
//! recipientRand). recipientRand tells which tickets of a live params set win, so the file is
//! created owner-only and must stay private to the operator while those params are in use.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use alloy::primitives::U256;
use protocol::ticket::{SignedTicket, is_winning};
use serde::Serialize;

/// One journal line.
#[derive(Debug, Serialize)]
struct Line<'a> {
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
    reason: Option<&'a str>,
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

    /// Appends `ticket`, the recipientRand derived for it and the verdict (`reason` is the
    /// rejection, `None` when accepted). Each line is one write, so a killed node leaves whole
    /// lines only.
    pub fn record(
        &self,
        signed: &SignedTicket,
        recipient_rand: U256,
        reason: Option<&str>,
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
            reason,
        };
        let mut text = serde_json::to_string(&line).map_err(std::io::Error::other)?;
        text.push('\n');
        self.file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_all(text.as_bytes())
    }
}
