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
//!
//! So a full disk must not cost a line: a line that cannot be written leaves no partial line
//! behind (one the next line would be glued onto, making [`read_winners`] skip both) and waits in
//! memory, within a bound that gives winners priority, for the next append ([`TicketJournal`]).

use std::collections::{HashSet, VecDeque};
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

/// At most this many lines wait in memory for a journal that cannot be written (a full disk):
/// about 8 MB at some 800 bytes a line.
pub const MAX_PENDING_LINES: usize = 10_000;

/// A line that could not be written yet.
#[derive(Debug)]
struct PendingLine {
    text: String,
    /// An accepted winner: kept over the other lines when the queue is full, since a lost winner
    /// is a lost payment for a restarted node.
    winner: bool,
}

/// The lines waiting, in journal order, for the next append to succeed, bounded to `capacity`.
#[derive(Debug)]
struct Pending {
    lines: VecDeque<PendingLine>,
    capacity: usize,
    /// Lines dropped because the queue was full, since the journal was last caught up.
    dropped: u64,
    /// How many of `dropped` were accepted winners.
    dropped_winners: u64,
}

impl Pending {
    fn new(capacity: usize) -> Self {
        Self {
            lines: VecDeque::new(),
            capacity,
            dropped: 0,
            dropped_winners: 0,
        }
    }

    /// Queues `line` after the others; when that is one too many, drops the oldest line that is
    /// not an accepted winner (`line` itself if it is the only one), or else the oldest.
    fn push(&mut self, line: PendingLine) {
        self.lines.push_back(line);
        if self.lines.len() <= self.capacity {
            return;
        }
        let index = self.lines.iter().position(|l| !l.winner).unwrap_or(0);
        let dropped = self
            .lines
            .remove(index)
            .expect("the queue is over its capacity");
        self.dropped += 1;
        self.dropped_winners += u64::from(dropped.winner);
    }

    fn winners(&self) -> usize {
        self.lines.iter().filter(|l| l.winner).count()
    }

    /// `err` with what waits in memory and what was dropped, for the caller's warning.
    fn explain(&self, err: std::io::Error) -> std::io::Error {
        let mut text = format!(
            "{err}; {} journal lines ({} accepted winners) wait in memory for the next append",
            self.lines.len(),
            self.winners(),
        );
        if self.dropped > 0 {
            text.push_str(&format!(
                ", {} dropped as more than {} waited ({} of them accepted winners)",
                self.dropped, self.capacity, self.dropped_winners
            ));
        }
        std::io::Error::new(err.kind(), text)
    }
}

/// The journal file.
#[derive(Debug)]
struct Sink {
    file: File,
    /// The length to cut the file back to before the next write: a failed write left a partial
    /// line that could not be cut off at the time.
    cut_to: Option<u64>,
}

impl Sink {
    /// Appends `text` whole, or leaves the file as it was: a write cut short (ENOSPC) would
    /// otherwise leave a partial line that the next line is glued onto, and [`read_winners`]
    /// would skip both.
    fn append(&mut self, text: &str) -> std::io::Result<()> {
        if let Some(len) = self.cut_to {
            self.file.set_len(len)?;
            self.cut_to = None;
        }
        // The file is opened to append, so its length is where this line starts.
        let len = self.file.metadata()?.len();
        let Err(err) = self.file.write_all(text.as_bytes()) else {
            return Ok(());
        };
        if let Err(cut) = self.file.set_len(len) {
            self.cut_to = Some(len);
            return Err(std::io::Error::new(
                err.kind(),
                format!("{err}; cutting off the partial line failed too: {cut}"),
            ));
        }
        Err(err)
    }
}

/// The file and what could not be written to it yet.
#[derive(Debug)]
struct Inner {
    sink: Sink,
    pending: Pending,
}

impl Inner {
    /// Appends the pending lines in order, then `line`; what cannot be written stays pending.
    fn write(&mut self, line: Option<PendingLine>) -> std::io::Result<()> {
        let waiting = self.pending.lines.len();
        while let Some(first) = self.pending.lines.front() {
            if let Err(err) = self.sink.append(&first.text) {
                if let Some(line) = line {
                    self.pending.push(line);
                }
                return Err(self.pending.explain(err));
            }
            self.pending.lines.pop_front();
        }
        if let Some(line) = line
            && let Err(err) = self.sink.append(&line.text)
        {
            self.pending.push(line);
            return Err(self.pending.explain(err));
        }
        if waiting > 0 || self.pending.dropped > 0 {
            if self.pending.dropped > 0 {
                tracing::warn!(
                    written = waiting,
                    dropped = self.pending.dropped,
                    dropped_winners = self.pending.dropped_winners,
                    "the ticket journal is written again; lines were dropped while it could not be"
                );
            } else {
                tracing::info!(
                    written = waiting,
                    "the ticket journal is written again, no line lost"
                );
            }
            self.pending.dropped = 0;
            self.pending.dropped_winners = 0;
        }
        Ok(())
    }
}

/// An append-only JSON-lines file of received tickets.
///
/// A line that cannot be written (a full disk) leaves no partial line behind and waits in
/// memory, in order, to be written before the next line; so does every line after it until an
/// append succeeds. The lines waiting are written by the next [`record`](Self::record) or
/// [`flush_pending`](Self::flush_pending), which the orchestrator's chain loop calls at each poll;
/// a node that stops while they wait loses them. At most [`MAX_PENDING_LINES`] wait;
/// beyond that the oldest line that is not an accepted winner is dropped first, the oldest winner
/// only when all that wait are winners, and the errors returned count them.
#[derive(Debug)]
pub struct TicketJournal {
    inner: Mutex<Inner>,
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
            inner: Mutex::new(Inner {
                sink: Sink { file, cut_to: None },
                pending: Pending::new(MAX_PENDING_LINES),
            }),
        })
    }

    /// Appends `ticket`, the recipientRand derived for it, the verdict (`reason` is the
    /// rejection, `None` when accepted) and when it was received (unix ms), after any lines still
    /// waiting. Each line is one write, so a killed node leaves whole lines only.
    ///
    /// An error means the line, and any before it still waiting, are kept in memory for the next
    /// call (see [`TicketJournal`]); its message says how many wait and how many were dropped.
    pub fn record(
        &self,
        signed: &SignedTicket,
        recipient_rand: U256,
        reason: Option<&str>,
        received_ms: u64,
    ) -> std::io::Result<()> {
        let t = &signed.ticket;
        let winning = reason.is_none() && is_winning(&signed.sig, recipient_rand, t.win_prob);
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
            winning,
            reason: reason.map(str::to_owned),
            received_ms: Some(received_ms),
        };
        let mut text = serde_json::to_string(&line).map_err(std::io::Error::other)?;
        text.push('\n');
        self.lock().write(Some(PendingLine {
            text,
            winner: winning,
        }))
    }

    /// Writes the lines still waiting in memory, if any (see [`TicketJournal`]).
    pub fn flush_pending(&self) -> std::io::Result<()> {
        self.lock().write(None)
    }

    /// How many lines wait in memory.
    pub fn pending_lines(&self) -> usize {
        self.lock().pending.lines.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
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

    #[test]
    fn a_full_pending_queue_drops_the_oldest_line_that_is_not_a_winner_first() {
        let line = |text: &str, winner| PendingLine {
            text: text.into(),
            winner,
        };
        let texts = |pending: &Pending| -> Vec<String> {
            pending.lines.iter().map(|l| l.text.clone()).collect()
        };
        let mut pending = Pending::new(3);
        pending.push(line("w1", true));
        pending.push(line("l1", false));
        pending.push(line("w2", true));
        assert_eq!(texts(&pending), ["w1", "l1", "w2"]);
        assert_eq!(pending.dropped, 0);
        pending.push(line("l2", false));
        assert_eq!(texts(&pending), ["w1", "w2", "l2"]);
        pending.push(line("w3", true));
        assert_eq!(texts(&pending), ["w1", "w2", "w3"]);
        // The new line is the only one that is not a winner.
        pending.push(line("l3", false));
        assert_eq!(texts(&pending), ["w1", "w2", "w3"]);
        assert_eq!((pending.dropped, pending.dropped_winners), (3, 0));
        pending.push(line("w4", true));
        assert_eq!(texts(&pending), ["w2", "w3", "w4"]);
        assert_eq!((pending.dropped, pending.dropped_winners), (4, 1));
        let err = pending.explain(std::io::ErrorKind::StorageFull.into());
        assert_eq!(err.kind(), std::io::ErrorKind::StorageFull);
        let text = err.to_string();
        assert!(
            text.contains("3 journal lines (3 accepted winners) wait in memory")
                && text.contains("4 dropped as more than 3 waited (1 of them accepted winners)"),
            "{text}"
        );
    }

    /// The journal's directory, for [`full_disk_child`].
    const FULL_DISK_DIR_ENV: &str = "LPT_JOURNAL_FULL_DISK_DIR";
    /// What [`full_disk_child`] prints once its checks passed.
    const FULL_DISK_DONE: &str = "journal full-disk checks passed";
    const FULL_DISK_SETUP: &str = "this test needs util-linux `unshare` and root (or \
        CAP_SYS_ADMIN) to mount a 64k tmpfs in a mount namespace of its own; in a container, \
        run it with --cap-add SYS_ADMIN (or --privileged)";

    /// The journal on a real full filesystem: a 64k tmpfs mounted by a child process of this test
    /// binary ([`full_disk_child`]) in its own mount namespace, so the host's mounts are untouched.
    #[test]
    fn a_full_disk_leaves_no_partial_line_and_the_lines_it_refused_follow_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let test = format!(
            "{}::full_disk_child",
            module_path!().split_once("::").unwrap().1
        );
        let output = std::process::Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--"])
            .arg(std::env::current_exe().unwrap())
            .args([
                &test,
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(FULL_DISK_DIR_ENV, dir.path())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run `unshare` ({e}): {FULL_DISK_SETUP}"));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains(FULL_DISK_DONE),
            "{test} under `unshare --mount` failed ({}); if it is the mount or unshare, \
             {FULL_DISK_SETUP}\n--- stdout\n{stdout}\n--- stderr\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Fills the filesystem with a file at `path` until a write fails with ENOSPC.
    fn fill(path: &Path) {
        let mut file = File::create(path).unwrap();
        for _ in 0..1024 {
            if let Err(err) = file.write_all(&[0; 4096]) {
                assert_eq!(err.kind(), std::io::ErrorKind::StorageFull, "{err}");
                return;
            }
        }
        panic!("4 MiB written to {} without filling it", path.display());
    }

    /// The `received_ms` of each line of the journal at `path`, which must all be whole.
    fn received(path: &Path) -> Vec<u64> {
        let text = std::fs::read_to_string(path).unwrap();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "a partial line: {text:?}"
        );
        text.lines()
            .map(|line| {
                serde_json::from_str::<Line>(line)
                    .unwrap()
                    .received_ms
                    .unwrap()
            })
            .collect()
    }

    /// The child process of
    /// [`a_full_disk_leaves_no_partial_line_and_the_lines_it_refused_follow_in_order`]: mounts
    /// a 64k tmpfs on `$LPT_JOURNAL_FULL_DISK_DIR` (in the mount namespace `unshare` made) and
    /// journals tickets while a filler file leaves it no space, then once the filler is gone.
    #[test]
    #[ignore = "the child process of \
        a_full_disk_leaves_no_partial_line_and_the_lines_it_refused_follow_in_order"]
    fn full_disk_child() {
        let Some(dir) = std::env::var_os(FULL_DISK_DIR_ENV) else {
            return;
        };
        let dir = std::path::PathBuf::from(dir);
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(&dir)
            .status()
            .unwrap_or_else(|e| panic!("cannot run `mount` ({e}): {FULL_DISK_SETUP}"));
        assert!(
            status.success(),
            "mount -t tmpfs: {status}: {FULL_DISK_SETUP}"
        );
        let path = dir.join("tickets.jsonl");
        let filler = dir.join("filler");
        let journal = TicketJournal::open(&path).unwrap();

        // Accepted winners, accepted tickets that cannot win (winProb 0) and rejected winners
        // in turn; received_ms numbers them from 1.
        let mut sender = sender();
        let recipient = Address::repeat_byte(1);
        let rand = U256::from(RAND);
        let tickets: Vec<(SignedTicket, Option<&str>, Option<WinningTicket>)> = (0..24)
            .map(|i| {
                let winner = testkit::tickets::winner(
                    &mut sender,
                    &view(),
                    recipient,
                    U256::from(1000),
                    rand,
                );
                match i % 3 {
                    0 => (signed(&winner), None, Some(winner)),
                    1 => {
                        let params = testkit::tickets::params(
                            &view(),
                            recipient,
                            U256::from(9),
                            U256::ZERO,
                            rand,
                        );
                        (
                            sender.sign_tickets(&params, 1).unwrap().remove(0),
                            None,
                            None,
                        )
                    }
                    _ => (signed(&winner), Some("nonce reused"), None),
                }
            })
            .collect();
        let winners_to = |n: usize| -> Vec<WinningTicket> {
            tickets[..n].iter().filter_map(|t| t.2.clone()).collect()
        };
        let read = |path: &Path| -> Vec<WinningTicket> {
            let found = read_winners(path).unwrap();
            assert!(found.unreadable.is_empty(), "{:?}", found.unreadable);
            found.winners.into_iter().map(|w| w.winner).collect()
        };
        let record = |n: usize| {
            let (signed, reason, _) = &tickets[n - 1];
            journal.record(signed, rand, *reason, n as u64)
        };

        for n in 1..=2 {
            record(n).unwrap();
        }
        fill(&filler);
        // The journal's last page has room for part of a line, so a line that does not fit is
        // first written in part: the page's room is taken, then ENOSPC.
        let mut first_failed = None;
        let mut cut_short = 0;
        for n in 3..=12 {
            let before = std::fs::metadata(&path).unwrap().len();
            match record(n) {
                Ok(()) => {
                    assert_eq!(
                        first_failed, None,
                        "ticket {n} written after an earlier failed"
                    );
                }
                Err(err) => {
                    assert_eq!(err.kind(), std::io::ErrorKind::StorageFull, "{err}");
                    assert!(err.to_string().contains("wait in memory"), "{err}");
                    first_failed.get_or_insert(n);
                    assert_eq!(std::fs::metadata(&path).unwrap().len(), before);
                    cut_short += usize::from(before % 4096 != 0);
                }
            }
        }
        let first_failed = first_failed.expect("the full filesystem refused a line");
        assert!(cut_short > 0, "no write was cut short, only refused whole");
        assert!(
            winners_to(12).len() > winners_to(first_failed - 1).len(),
            "no accepted winner among the refused lines"
        );
        assert_eq!(journal.pending_lines(), 12 - first_failed + 1);
        assert_eq!(
            received(&path),
            (1..first_failed as u64).collect::<Vec<_>>()
        );
        assert_eq!(read(&path), winners_to(first_failed - 1));
        println!("tickets {first_failed}..=12 refused, {cut_short} of them cut short");

        std::fs::remove_file(&filler).unwrap();
        record(13).unwrap();
        assert_eq!(journal.pending_lines(), 0);
        assert_eq!(received(&path), (1..=13).collect::<Vec<_>>());
        assert_eq!(read(&path), winners_to(13));

        // Full again: what is refused waits for flush_pending as well.
        fill(&filler);
        let refused = (14..=24)
            .find(|&n| record(n).is_err())
            .expect("the full filesystem refused a line");
        assert_eq!(journal.pending_lines(), 1);
        std::fs::remove_file(&filler).unwrap();
        journal.flush_pending().unwrap();
        assert_eq!(journal.pending_lines(), 0);
        assert_eq!(received(&path), (1..=refused as u64).collect::<Vec<_>>());
        assert_eq!(read(&path), winners_to(refused));
        println!("{FULL_DISK_DONE}");
    }
}
