//! The payment probe against a real anvil chain with the TicketBroker deployed: a funded
//! broadcaster, orchestrators redeeming real winning tickets, and the probe reading only the
//! chain. Honest pay is consistent; the same redemptions for far fewer pixels are overcharging;
//! an orchestrator owed much and paid nothing is missing redemptions; a stranger paid by a
//! sender is an unknown recipient.

use std::collections::HashMap;
use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;
use probes::payments::POOLED_RECIPIENT;
use probes::{OrchestratorPrice, PaymentProbe, PaymentProbeConfig, reconcile::PaymentVerdict};
use protocol::chain::{Contracts, DeployConfig, LocalChain, TicketBrokerClient};
use protocol::ticket::{SenderLimits, TicketSender, WinningTicket};
use protocol::{Address, U256};
use testkit::chain::{ETH, TestChain};

const FACE_VALUE: u64 = 1_000_000_000_000_000; // 1e15 wei
/// Advertised price: 1000 wei per pixel, so one ticket's face value pays 1e12 pixels.
const PRICE_PER_PIXEL: u128 = 1000;
const PIXELS_PER_TICKET: u128 = FACE_VALUE as u128 / PRICE_PER_PIXEL;
/// Winners redeemed by the honest orchestrator.
const WINNERS: u64 = 12;

struct World {
    chain: LocalChain,
    contracts: Contracts,
}

impl World {
    async fn new() -> World {
        let TestChain { chain, contracts } = TestChain::deploy(DeployConfig::default()).await;
        World { chain, contracts }
    }

    fn broker(&self, who: &PrivateKeySigner) -> TicketBrokerClient {
        self.contracts
            .ticket_broker(self.chain.provider(who.clone()))
    }

    /// `count` winning tickets (winProb at the maximum) from `sender` to `recipient`, each on
    /// its own recipientRand so each carries nonce 1.
    async fn winners(
        &self,
        sender: &PrivateKeySigner,
        recipient: Address,
        first_rand: u64,
        count: u64,
    ) -> Vec<WinningTicket> {
        let rounds = self.contracts.rounds(self.chain.reader());
        let view = rounds.chain_view().await.unwrap();
        let mut signer = TicketSender::new(sender.clone(), SenderLimits::default());
        let face_value = U256::from(FACE_VALUE);
        (first_rand..first_rand + count)
            .map(|rand| {
                let rand = U256::from(rand);
                testkit::tickets::winner(&mut signer, &view, recipient, face_value, rand)
            })
            .collect()
    }

    fn config(
        &self,
        sender: Address,
        orchestrators: &[Address],
        from_block: u64,
    ) -> PaymentProbeConfig {
        let mut config = PaymentProbeConfig::new(
            self.chain.url(),
            self.contracts.ticket_broker,
            sender,
            orchestrators
                .iter()
                .map(|a| OrchestratorPrice {
                    address: *a,
                    price_per_unit: PRICE_PER_PIXEL,
                    pixels_per_unit: 1,
                })
                .collect(),
            from_block,
        );
        config.poll_interval = Duration::from_millis(100);
        config.settle_timeout = Duration::from_secs(20);
        config
    }
}

fn hex(a: Address) -> String {
    format!("{a:#x}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_probe_reconciles_real_redemptions_and_flags_each_fault() {
    let world = World::new().await;
    let (broadcaster, orchestrator, absent, stranger, other_sender) = (
        world.chain.signer(1),
        world.chain.signer(2),
        world.chain.signer(3),
        world.chain.signer(4),
        world.chain.signer(5),
    );
    let (o, o2) = (orchestrator.address(), absent.address());
    let from_block = world.chain.block_number().await.unwrap();
    world
        .broker(&broadcaster)
        .fund_deposit_and_reserve(U256::from(ETH), U256::from(ETH / 2))
        .await
        .unwrap();

    // Honest: pixels worth WINNERS face values. The probe starts polling before the
    // orchestrator redeems and must wait for the redemptions (a count below the interval's
    // low bound is not settled).
    let honest_pixels = HashMap::from([(o, WINNERS as u128 * PIXELS_PER_TICKET)]);
    let probe = PaymentProbe::new(world.config(broadcaster.address(), &[o], from_block)).unwrap();
    let winners = world.winners(&broadcaster, o, 100, WINNERS).await;
    let redeem = async {
        world
            .broker(&orchestrator)
            .batch_redeem_winning_tickets(&winners)
            .await
            .unwrap();
    };
    let (report, ()) = tokio::join!(probe.settle(&honest_pixels), redeem);
    let report = report.unwrap();
    eprintln!("honest: {}", serde_json::to_string(&report).unwrap());
    assert!(report.settled, "{report:?}");
    assert!(report.consistent(), "{report:?}");
    assert_eq!(report.tickets_redeemed, WINNERS);
    assert_eq!(report.redeemed_wei, (WINNERS * FACE_VALUE) as f64);
    assert_eq!(report.transferred_wei, (WINNERS * FACE_VALUE) as f64);
    assert_eq!(report.deposit_funded_wei, ETH as f64);
    assert_eq!(report.reserve_funded_wei, (ETH / 2) as f64);
    assert_eq!(report.expected_wei, (WINNERS * FACE_VALUE) as f64);
    assert_eq!(report.orchestrators.len(), 1);
    let r = &report.orchestrators[0];
    assert_eq!(
        (r.recipient.as_str(), r.verdict),
        (hex(o).as_str(), PaymentVerdict::Consistent)
    );
    assert_eq!(r.expected_winners, Some(WINNERS as f64));
    assert!(report.payment_ev_error.unwrap() < 1e-9, "{report:?}");
    let honest_end = report.to_block;

    // Pooled: only the run's total pixels known, two orchestrators at one price; the honest
    // redemptions cover the total.
    let pooled = PaymentProbe::new(world.config(broadcaster.address(), &[o, o2], from_block))
        .unwrap()
        .settle_total(WINNERS as u128 * PIXELS_PER_TICKET)
        .await
        .unwrap();
    assert!(pooled.settled && pooled.consistent(), "{pooled:?}");
    assert_eq!(pooled.orchestrators.len(), 1);
    assert_eq!(pooled.orchestrators[0].recipient, POOLED_RECIPIENT);
    assert_eq!(pooled.orchestrators[0].winners, WINNERS);
    let mut mixed = world.config(broadcaster.address(), &[o, o2], from_block);
    mixed.orchestrators[1].price_per_unit *= 2;
    let err = PaymentProbe::new(mixed)
        .unwrap()
        .settle_total(1)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("different prices"), "{err}");

    // Overcharged: the same redemptions for a tenth of one ticket's worth of pixels.
    let few_pixels = HashMap::from([(o, PIXELS_PER_TICKET / 10)]);
    let report = probe.settle(&few_pixels).await.unwrap();
    assert!(report.overcharged, "{report:?}");
    assert_eq!(report.orchestrators[0].verdict, PaymentVerdict::Overcharged);
    assert!(
        (report.payment_ev_error.unwrap() - (WINNERS as f64 * 10.0 - 1.0)).abs() < 1e-6,
        "{report:?}"
    );

    // Missing redemptions: a second orchestrator owed 50 tickets' worth got nothing. The probe
    // waits until its deadline and says so.
    let mut config = world.config(broadcaster.address(), &[o, o2], from_block);
    config.settle_timeout = Duration::from_millis(1500);
    let probe2 = PaymentProbe::new(config).unwrap();
    let owed = HashMap::from([
        (o, WINNERS as u128 * PIXELS_PER_TICKET),
        (o2, 50 * PIXELS_PER_TICKET),
    ]);
    let report = probe2.settle(&owed).await.unwrap();
    assert!(!report.settled && report.missing_redemptions, "{report:?}");
    assert!(!report.overcharged);
    let verdicts: Vec<(String, PaymentVerdict)> = report
        .orchestrators
        .iter()
        .map(|r| (r.recipient.clone(), r.verdict))
        .collect();
    assert_eq!(
        verdicts,
        vec![
            (hex(o), PaymentVerdict::Consistent),
            (hex(o2), PaymentVerdict::MissingRedemptions)
        ]
    );
    assert!(report.payment_ev_error == Some(1.0), "{report:?}");
    assert!(report.waited_ms >= 1000.0, "{report:?}");

    // A caller that knows every winner is due by now makes the shortfall final after a few quiet
    // polls: the same verdicts, settled long before the (20 s) deadline.
    let mut config = world.config(broadcaster.address(), &[o, o2], from_block);
    config.shortfall_final_polls = Some(3);
    let report = PaymentProbe::new(config)
        .unwrap()
        .settle(&owed)
        .await
        .unwrap();
    assert!(report.settled && report.missing_redemptions, "{report:?}");
    assert_eq!(
        report.orchestrators[1].verdict,
        PaymentVerdict::MissingRedemptions
    );

    // Unknown recipient: another sender pays a stranger the run never used.
    let window = world.chain.block_number().await.unwrap();
    assert!(window >= honest_end);
    world
        .broker(&other_sender)
        .fund_deposit(U256::from(ETH))
        .await
        .unwrap();
    let paid = world
        .winners(&other_sender, stranger.address(), 500, 2)
        .await;
    world
        .broker(&stranger)
        .batch_redeem_winning_tickets(&paid)
        .await
        .unwrap();
    let probe3 = PaymentProbe::new(world.config(other_sender.address(), &[o], window)).unwrap();
    let report = probe3.settle(&HashMap::new()).await.unwrap();
    assert_eq!(report.unknown_recipients, vec![hex(stranger.address())]);
    assert_eq!(report.tickets_redeemed, 2);
    assert_eq!(report.deposit_funded_wei, ETH as f64);
    let last = report.orchestrators.last().unwrap();
    assert_eq!(last.verdict, PaymentVerdict::UnknownRecipient);
    assert_eq!(last.redeemed_wei, 2.0 * FACE_VALUE as f64);
    assert_eq!(report.orchestrators[0].verdict, PaymentVerdict::NothingOwed);
    assert!(!report.consistent());
    // The window starts after the first sender's activity: none of it leaks in.
    assert!(
        report
            .orchestrators
            .iter()
            .all(|r| r.recipient != hex(o) || r.winners == 0)
    );

    // A pixel count for an address the probe was not told about is a caller error.
    let err = probe3.settle(&HashMap::from([(o2, 1)])).await.unwrap_err();
    assert!(err.to_string().contains(&hex(o2)), "{err}");
}
