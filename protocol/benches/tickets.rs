//! Ticket throughput on one core: how many tickets a broadcaster creates and signs per second,
//! and how many an orchestrator validates (commitment, signature recovery, nonce, win check) per
//! second. Goal: ≥ 10,000/s each. Plain `main` (harness = false): each phase runs a fixed number
//! of tickets after a warm-up and prints two rates: per wall-clock second, and per second of CPU
//! time of this (single) thread from `/proc/thread-self/schedstat`, which is the one-core figure
//! even when other processes share the machine. Run with `cargo bench -p protocol --bench tickets`.

use std::hint::black_box;
use std::time::Instant;

use alloy::primitives::{B256, U256};
use alloy::signers::local::PrivateKeySigner;
use protocol::ticket::{
    ChainView, PricePerPixel, RecipientConfig, SenderLimits, TicketRecipient, TicketSender,
};

const TICKETS: u64 = 20_000;
const PER_PARAMS: u64 = 500;

fn main() {
    let sender_key = PrivateKeySigner::from_bytes(&B256::repeat_byte(0xb0)).expect("valid key");
    let recipient_key = PrivateKeySigner::from_bytes(&B256::repeat_byte(0xa0)).expect("valid key");
    let mut recipient =
        TicketRecipient::with_seed(recipient_key.address(), RecipientConfig::default(), 1);
    let mut sender = TicketSender::new(sender_key, SenderLimits::default());
    let chain = ChainView {
        block: 100,
        round: 5,
        round_block_hash: B256::repeat_byte(5),
        gas_price: U256::from(100_000_000u64),
    };
    let price = PricePerPixel {
        price_per_unit: 1200,
        pixels_per_unit: 1,
    };

    let params: Vec<_> = (0..TICKETS / PER_PARAMS)
        .map(|_| {
            recipient
                .issue_params(sender.address(), price, &chain)
                .expect("valid config")
        })
        .collect();

    // Warm-up (caches, allocator) on throwaway params.
    let warm = recipient
        .issue_params(sender.address(), price, &chain)
        .expect("valid config");
    for t in sender.sign_tickets(&warm, 200).expect("signing works") {
        black_box(
            recipient
                .receive_ticket(&t.ticket, &t.sig, warm.seed, 101)
                .expect("valid ticket"),
        );
    }

    let (start, cpu_start) = (Instant::now(), thread_cpu_ns());
    let mut signed = Vec::with_capacity(TICKETS as usize);
    for p in &params {
        signed.push(sender.sign_tickets(p, PER_PARAMS).expect("signing works"));
    }
    let create = (start.elapsed(), thread_cpu_ns() - cpu_start);

    let (start, cpu_start) = (Instant::now(), thread_cpu_ns());
    let mut winners = 0u32;
    for (p, tickets) in params.iter().zip(&signed) {
        for t in tickets {
            let outcome = recipient
                .receive_ticket(&t.ticket, &t.sig, p.seed, 101)
                .expect("valid ticket");
            winners += u32::from(outcome.winning);
        }
    }
    let validate = (start.elapsed(), thread_cpu_ns() - cpu_start);

    // Where validation time goes: the secp256k1 recovery alone.
    let digests: Vec<_> = signed
        .iter()
        .flatten()
        .map(|t| {
            (
                alloy::primitives::eip191_hash_message(t.ticket.hash()),
                &t.sig,
            )
        })
        .collect();
    let (start, cpu_start) = (Instant::now(), thread_cpu_ns());
    for (digest, sig) in &digests {
        black_box(protocol::sig::recover_prehash(digest, sig).expect("valid signature"));
    }
    let recover = (start.elapsed(), thread_cpu_ns() - cpu_start);

    report("created+signed", create);
    report("validated", validate);
    report("recover only", recover);
    black_box(winners);
}

fn report(what: &str, (wall, cpu_ns): (std::time::Duration, u64)) {
    let per_wall = TICKETS as f64 / wall.as_secs_f64();
    let per_cpu = TICKETS as f64 / (cpu_ns as f64 / 1e9);
    println!(
        "tickets {what:<15} {TICKETS} in {wall:.2?} wall, {:.2} s CPU -> {per_wall:.0}/s wall, {per_cpu:.0}/s per CPU-second",
        cpu_ns as f64 / 1e9
    );
}

/// CPU time consumed by the calling thread, in nanoseconds (0 where procfs is unavailable).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}
