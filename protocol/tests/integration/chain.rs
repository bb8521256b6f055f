//! Settlement on a real anvil chain: our ticket hash against the contract's, the full
//! fund → pay → validate → redeem flow, each redemption check as its own test, batch redemption,
//! unlock/withdraw, reserve claims and the paginated event reader.

use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use protocol::chain::{
    BrokerEvent, ChainError, Contracts, DeployConfig, EventReader, LocalChain, RoundsManagerClient,
    TicketBrokerClient,
};
use protocol::ticket::{
    MAX_WIN_PROB, PricePerPixel, RecipientConfig, SenderLimits, Ticket, TicketExpirationParams,
    TicketParams, TicketRecipient, TicketSender, WinningTicket,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use testkit::chain::{BROADCASTER, ETH, ORCHESTRATOR, TestChain};

use super::tickets::high_s_twin;

const FACE_VALUE: u64 = 1_000_000_000_000_000; // 1e15 wei

/// One chain with the contracts deployed, a funded broadcaster (account 1) and an orchestrator
/// (account 2), each with its own TicketBroker client.
struct World {
    chain: LocalChain,
    contracts: Contracts,
    broadcaster: PrivateKeySigner,
    orchestrator: PrivateKeySigner,
    b_broker: TicketBrokerClient,
    o_broker: TicketBrokerClient,
    rounds: RoundsManagerClient,
}

impl World {
    async fn new() -> Self {
        let TestChain { chain, contracts } = TestChain::deploy(DeployConfig::default()).await;
        let (broadcaster, orchestrator) = (chain.signer(BROADCASTER), chain.signer(ORCHESTRATOR));
        let b_broker = contracts.ticket_broker(chain.provider(broadcaster.clone()));
        let o_broker = contracts.ticket_broker(chain.provider(orchestrator.clone()));
        // Account 3 plays the keeper that initializes rounds.
        let rounds = contracts.rounds(chain.provider(chain.signer(3)));
        Self {
            chain,
            contracts,
            broadcaster,
            orchestrator,
            b_broker,
            o_broker,
            rounds,
        }
    }

    async fn funded() -> Self {
        let world = Self::new().await;
        world
            .b_broker
            .fund_deposit_and_reserve(U256::from(ETH), U256::from(ETH / 2))
            .await
            .unwrap();
        world
    }

    /// Hand-made params committed to a known `rand`, in the current round.
    async fn params(&self, rand: U256, win_prob: U256) -> TicketParams {
        let view = self.rounds.chain_view().await.unwrap();
        let face_value = U256::from(FACE_VALUE);
        testkit::tickets::params(
            &view,
            self.orchestrator.address(),
            face_value,
            win_prob,
            rand,
        )
    }

    fn sender(&self) -> TicketSender {
        TicketSender::new(self.broadcaster.clone(), SenderLimits::default())
    }

    /// A winning ticket (winProb at the maximum) built by hand, bypassing the recipient.
    async fn winner(&self, sender: &mut TicketSender, rand: u64) -> WinningTicket {
        let view = self.rounds.chain_view().await.unwrap();
        let (recipient, face_value) = (self.orchestrator.address(), U256::from(FACE_VALUE));
        testkit::tickets::winner(sender, &view, recipient, face_value, U256::from(rand))
    }

    /// Whether the TicketBroker has `ticket` as redeemed.
    async fn is_used(&self, ticket: &WinningTicket) -> bool {
        self.o_broker
            .is_ticket_used(ticket.ticket.hash())
            .await
            .unwrap()
    }

    async fn balance(&self, who: Address) -> U256 {
        self.chain.reader().get_balance(who).await.unwrap()
    }

    async fn events(&self) -> Vec<BrokerEvent> {
        let reader = EventReader::new(self.chain.reader(), self.contracts.ticket_broker);
        let latest = reader.latest_block().await.unwrap();
        reader
            .read(0, latest)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.event)
            .collect()
    }

    async fn advance_rounds(&self, rounds: u64) -> u64 {
        self.rounds.advance_rounds(rounds).await.unwrap()
    }
}

fn revert_reason(err: ChainError) -> String {
    match err {
        ChainError::Reverted {
            call: "redeemWinningTicket",
            reason,
        } => reason,
        other => panic!("expected a redeemWinningTicket revert, got {other:?}"),
    }
}

async fn expect_revert(world: &World, winner: &WinningTicket, reason: &str) {
    let err = world
        .o_broker
        .redeem_winning_ticket(winner)
        .await
        .unwrap_err();
    assert_eq!(revert_reason(err), reason);
    assert!(!world.is_used(winner).await);
}

#[tokio::test]
async fn contract_ticket_hash_equals_ours_for_200_random_tickets() {
    let world = World::new().await;
    let mut rng = StdRng::seed_from_u64(200);
    for i in 0..200 {
        let expiration = if i % 4 == 0 {
            TicketExpirationParams::default()
        } else {
            TicketExpirationParams {
                creation_round: rng.random(),
                creation_round_block_hash: B256::from(rng.random::<[u8; 32]>()),
            }
        };
        let ticket = Ticket {
            recipient: Address::from(rng.random::<[u8; 20]>()),
            sender: Address::from(rng.random::<[u8; 20]>()),
            face_value: U256::from_be_bytes(rng.random::<[u8; 32]>())
                >> (rng.random_range(0..256usize)),
            win_prob: U256::from_be_bytes(rng.random::<[u8; 32]>()),
            sender_nonce: rng.random(),
            recipient_rand_hash: B256::from(rng.random::<[u8; 32]>()),
            expiration,
            params_expiration_block: rng.random(),
            price: PricePerPixel::default(),
        };
        assert_eq!(
            world.b_broker.ticket_hash(&ticket).await.unwrap(),
            ticket.hash(),
            "{ticket:?}"
        );
    }
}

/// The whole loop: fund, B pays O with winProb at the maximum, O validates, queues, waits for the
/// params to expire and redeems; the event carries our values and the money moves by faceValue.
#[tokio::test]
async fn funded_sender_pays_and_recipient_redeems_a_winning_ticket() {
    let world = World::funded().await;
    let b = world.broadcaster.address();
    let o = world.orchestrator.address();
    let fv = U256::from(FACE_VALUE);
    let config = RecipientConfig {
        ticket_ev: fv,
        face_value: Some(fv),
        ..RecipientConfig::default()
    };
    let mut recipient = TicketRecipient::with_seed(o, config, 7);
    let mut sender = world.sender();

    let view = world.rounds.chain_view().await.unwrap();
    let params = recipient
        .issue_params(
            b,
            PricePerPixel {
                price_per_unit: 3,
                pixels_per_unit: 2,
            },
            &view,
        )
        .unwrap();
    assert_eq!(params.win_prob, MAX_WIN_PROB);
    let payment =
        protocol::ticket::payment_message(&params, b, &sender.sign_tickets(&params, 1).unwrap());
    let receipt = recipient.receive_payment(&payment, view.block).unwrap();
    assert_eq!((receipt.accepted, receipt.winners), (1, 1));

    assert!(recipient.take_redeemable(view.block + 1).is_empty());
    world.chain.mine(41).await.unwrap();
    world.rounds.initialize_round_if_needed().await.unwrap();
    let now = world.chain.block_number().await.unwrap();
    let winners = recipient.take_redeemable(now);
    assert_eq!(winners.len(), 1);
    let winner = &winners[0];

    let before_info = world.b_broker.sender_info(b).await.unwrap();
    let before_balance = world.balance(o).await;
    let tx = world.o_broker.redeem_winning_ticket(winner).await.unwrap();
    let after_info = world.b_broker.sender_info(b).await.unwrap();
    assert_eq!(before_info.deposit - after_info.deposit, fv);
    assert_eq!(after_info.reserve_funds_remaining, U256::from(ETH / 2));
    assert_eq!(world.balance(o).await + tx.fee() - before_balance, fv);
    assert!(world.is_used(winner).await);

    let events = world.events().await;
    assert!(events.contains(&BrokerEvent::WinningTicketRedeemed {
        sender: b,
        recipient: o,
        face_value: fv,
        win_prob: MAX_WIN_PROB,
        sender_nonce: U256::from(1),
        recipient_rand: winner.recipient_rand,
        aux_data: winner.ticket.aux_data().into(),
    }));
    assert!(events.contains(&BrokerEvent::WinningTicketTransfer {
        sender: b,
        recipient: o,
        amount: fv
    }));
    assert!(events.contains(&BrokerEvent::DepositFunded {
        sender: b,
        amount: U256::from(ETH)
    }));
    assert!(events.contains(&BrokerEvent::ReserveFunded {
        reserve_holder: b,
        amount: U256::from(ETH / 2)
    }));
}

#[tokio::test]
async fn rejects_replayed_ticket() {
    let world = World::funded().await;
    let winner = world.winner(&mut world.sender(), 11).await;
    world.o_broker.redeem_winning_ticket(&winner).await.unwrap();
    let err = world
        .o_broker
        .redeem_winning_ticket(&winner)
        .await
        .unwrap_err();
    assert_eq!(revert_reason(err), "ticket is used");
}

#[tokio::test]
async fn rejects_bad_signature() {
    let world = World::funded().await;
    let mut winner = world.winner(&mut world.sender(), 12).await;
    let other = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x55)).unwrap();
    winner.sig = protocol::sig::personal_sign(&other, winner.ticket.hash().as_slice())
        .unwrap()
        .to_vec();
    expect_revert(&world, &winner, "invalid signature over ticket hash").await;
}

#[tokio::test]
async fn rejects_high_s_signature() {
    let world = World::funded().await;
    let mut winner = world.winner(&mut world.sender(), 13).await;
    winner.sig = high_s_twin(&winner.sig);
    // The twin still recovers to the sender: only the low-s rule stops it.
    let twin = alloy::primitives::Signature::from_raw(&winner.sig).unwrap();
    let digest = alloy::primitives::eip191_hash_message(winner.ticket.hash());
    assert_eq!(
        twin.recover_address_from_prehash(&digest).unwrap(),
        world.broadcaster.address()
    );
    expect_revert(&world, &winner, "ECDSA: invalid signature 's' value").await;
}

#[tokio::test]
async fn rejects_non_winning_ticket() {
    let world = World::funded().await;
    let rand = U256::from(14);
    let params = world.params(rand, U256::ZERO).await;
    let signed = world.sender().sign_tickets(&params, 1).unwrap().remove(0);
    let loser = WinningTicket {
        ticket: signed.ticket,
        sig: signed.sig,
        recipient_rand: rand,
    };
    expect_revert(&world, &loser, "ticket did not win").await;
}

#[tokio::test]
async fn rejects_wrong_recipient_rand() {
    let world = World::funded().await;
    let mut winner = world.winner(&mut world.sender(), 15).await;
    winner.recipient_rand += U256::from(1);
    expect_revert(
        &world,
        &winner,
        "recipientRand does not match recipientRandHash",
    )
    .await;
}

#[tokio::test]
async fn rejects_ticket_from_an_expired_creation_round() {
    let world = World::funded().await;
    let winner = world.winner(&mut world.sender(), 16).await;
    let created = winner.ticket.expiration.creation_round;
    assert_eq!(world.advance_rounds(2).await, created + 2);
    expect_revert(&world, &winner, "ticket is expired").await;
}

#[tokio::test]
async fn accepts_ticket_one_round_after_creation() {
    let world = World::funded().await;
    let winner = world.winner(&mut world.sender(), 17).await;
    world.advance_rounds(1).await;
    let b = world.broadcaster.address();
    let before = world.b_broker.sender_info(b).await.unwrap();
    world.o_broker.redeem_winning_ticket(&winner).await.unwrap();
    let after = world.b_broker.sender_info(b).await.unwrap();
    assert_eq!(before.deposit - after.deposit, U256::from(FACE_VALUE));
    assert!(world.is_used(&winner).await);
}

#[tokio::test]
async fn rejects_sender_unlocked_past_its_withdraw_round() {
    let world = World::funded().await;
    world.b_broker.unlock().await.unwrap();
    let info = world
        .b_broker
        .sender_info(world.broadcaster.address())
        .await
        .unwrap();
    let start = world.rounds.current_round().await.unwrap();
    assert_eq!(info.withdraw_round, U256::from(start + 2));
    world.advance_rounds(2).await;
    let winner = world.winner(&mut world.sender(), 18).await;
    expect_revert(&world, &winner, "sender is unlocked").await;
}

#[tokio::test]
async fn rejects_sender_with_zero_funds() {
    let world = World::new().await;
    let winner = world.winner(&mut world.sender(), 19).await;
    expect_revert(&world, &winner, "sender deposit and reserve are zero").await;
}

#[tokio::test]
async fn batch_redeem_pays_every_ticket() {
    let world = World::funded().await;
    let mut sender = world.sender();
    let mut winners = Vec::new();
    for rand in 20..23 {
        winners.push(world.winner(&mut sender, rand).await);
    }
    let b = world.broadcaster.address();
    let before = world.b_broker.sender_info(b).await.unwrap().deposit;
    world
        .o_broker
        .batch_redeem_winning_tickets(&winners)
        .await
        .unwrap();
    let after = world.b_broker.sender_info(b).await.unwrap().deposit;
    assert_eq!(before - after, U256::from(3 * FACE_VALUE));
    let nonces: Vec<U256> = world
        .events()
        .await
        .into_iter()
        .filter_map(|e| match e {
            BrokerEvent::WinningTicketRedeemed { sender_nonce, .. } => Some(sender_nonce),
            _ => None,
        })
        .collect();
    assert_eq!(
        nonces,
        vec![U256::from(1); 3],
        "one ticket per params, each with nonce 1"
    );
    for w in &winners {
        assert!(world.is_used(w).await);
    }
}

#[tokio::test]
async fn batch_redeem_with_a_used_ticket_reverts_as_a_whole() {
    let world = World::funded().await;
    let mut sender = world.sender();
    let (first, second) = (
        world.winner(&mut sender, 25).await,
        world.winner(&mut sender, 26).await,
    );
    world.o_broker.redeem_winning_ticket(&first).await.unwrap();
    let err = world
        .o_broker
        .batch_redeem_winning_tickets(&[second.clone(), first])
        .await
        .unwrap_err();
    assert!(
        matches!(err, ChainError::Reverted { call: "batchRedeemWinningTickets", ref reason } if reason == "ticket is used"),
        "{err}"
    );
    assert!(!world.is_used(&second).await);
}

#[tokio::test]
async fn shortfall_is_paid_from_the_reserve() {
    let world = World::new().await;
    let b = world.broadcaster.address();
    world
        .b_broker
        .fund_deposit(U256::from(FACE_VALUE / 4))
        .await
        .unwrap();
    world
        .b_broker
        .fund_reserve(U256::from(FACE_VALUE))
        .await
        .unwrap();
    let winner = world.winner(&mut world.sender(), 24).await;
    world.o_broker.redeem_winning_ticket(&winner).await.unwrap();
    let info = world.b_broker.sender_info(b).await.unwrap();
    assert_eq!(info.deposit, U256::ZERO);
    assert_eq!(info.reserve_funds_remaining, U256::from(FACE_VALUE / 4));
    assert_eq!(
        info.reserve_claimed_in_current_round,
        U256::from(FACE_VALUE * 3 / 4)
    );
    let transfer = BrokerEvent::WinningTicketTransfer {
        sender: b,
        recipient: world.orchestrator.address(),
        amount: U256::from(FACE_VALUE),
    };
    assert!(world.events().await.contains(&transfer));
}

#[tokio::test]
async fn unlock_and_withdraw_return_the_funds() {
    let world = World::funded().await;
    let b = world.broadcaster.address();
    let start = world.rounds.current_round().await.unwrap();
    world.b_broker.unlock().await.unwrap();
    let err = world.b_broker.withdraw().await.unwrap_err();
    assert!(
        matches!(err, ChainError::Reverted { call: "withdraw", ref reason } if reason == "account is locked"),
        "{err}"
    );
    world.advance_rounds(2).await;
    let before = world.balance(b).await;
    let tx = world.b_broker.withdraw().await.unwrap();
    assert_eq!(
        world.balance(b).await + tx.fee() - before,
        U256::from(ETH + ETH / 2)
    );
    assert_eq!(
        world.b_broker.sender_info(b).await.unwrap(),
        Default::default()
    );
    let events = world.events().await;
    assert!(events.contains(&BrokerEvent::Unlock {
        sender: b,
        start_round: U256::from(start),
        end_round: U256::from(start + 2)
    }));
    assert!(events.contains(&BrokerEvent::Withdrawal {
        sender: b,
        deposit: U256::from(ETH),
        reserve: U256::from(ETH / 2)
    }));
}

#[tokio::test]
async fn event_reader_paginates_and_agrees_with_one_big_page() {
    let world = World::new().await;
    for i in 1..=6u64 {
        world.b_broker.fund_deposit(U256::from(i)).await.unwrap();
        world.chain.mine(4).await.unwrap();
    }
    let latest = world.chain.block_number().await.unwrap();
    let big = EventReader::connect(world.chain.url(), world.contracts.ticket_broker).unwrap();
    let small =
        EventReader::new(world.chain.reader(), world.contracts.ticket_broker).with_page_size(3);
    let all = big.read(0, latest).await.unwrap();
    assert_eq!(small.read(0, latest).await.unwrap(), all);
    let amounts: Vec<U256> = all
        .iter()
        .map(|r| match r.event {
            BrokerEvent::DepositFunded { amount, .. } => amount,
            ref other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(amounts, (1..=6u64).map(U256::from).collect::<Vec<_>>());
    assert!(
        all.windows(2)
            .all(|w| w[0].block_number < w[1].block_number)
    );
    // A sub-range sees only its own events.
    let middle = small
        .read(all[2].block_number, all[3].block_number)
        .await
        .unwrap();
    assert_eq!(middle, all[2..4].to_vec());
    // Another contract's address sees nothing.
    let elsewhere = EventReader::new(world.chain.reader(), world.contracts.rounds_manager);
    assert!(elsewhere.read(0, latest).await.unwrap().is_empty());
}

#[tokio::test]
async fn service_registry_maps_orchestrators_to_uris() {
    let world = World::new().await;
    let registry = world
        .contracts
        .service_registry(world.chain.provider(world.orchestrator.clone()));
    registry
        .set_service_uri("https://127.0.0.1:8935")
        .await
        .unwrap();
    let reader = world.contracts.service_registry(world.chain.reader());
    assert_eq!(
        reader
            .service_uri(world.orchestrator.address())
            .await
            .unwrap(),
        "https://127.0.0.1:8935"
    );
    assert_eq!(
        reader
            .service_uri(world.broadcaster.address())
            .await
            .unwrap(),
        ""
    );
}

/// Regression: alloy's cached nonces left a gap after a reverted (never sent) transaction, and
/// every later transaction of that account waited forever.
#[tokio::test]
async fn reverted_transaction_does_not_block_the_next_one() {
    let world = World::new().await;
    let winner = world.winner(&mut world.sender(), 30).await;
    expect_revert(&world, &winner, "sender deposit and reserve are zero").await;
    let next = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        world.o_broker.fund_deposit(U256::from(5)),
    );
    next.await.expect("the next transaction is mined").unwrap();
    let info = world
        .o_broker
        .sender_info(world.orchestrator.address())
        .await
        .unwrap();
    assert_eq!(info.deposit, U256::from(5));
}

#[test]
fn missing_anvil_is_a_typed_error() {
    let err = LocalChain::start_with(std::path::Path::new("/nonexistent/anvil")).unwrap_err();
    assert!(
        matches!(err, ChainError::AnvilMissing(ref p) if p.ends_with("anvil")),
        "{err}"
    );
    assert!(err.to_string().contains("LPT_ANVIL"));
}

#[tokio::test]
async fn a_chain_keeping_state_restarts_on_its_port_with_its_blocks_and_balances() {
    let dir = tempfile::tempdir().unwrap();
    let chain = LocalChain::start_keeping_state(&dir.path().join("anvil-state.json")).unwrap();
    chain.mine(7).await.unwrap();
    let stranger = Address::repeat_byte(0x42);
    chain
        .set_balance(stranger, U256::from(12345))
        .await
        .unwrap();
    let url = chain.url().to_owned();
    let first = chain.pid();

    chain.stop_keeping_state().unwrap();
    assert!(
        chain.block_number().await.is_err(),
        "the chain still answers"
    );
    chain.start_again().unwrap();

    assert_ne!(chain.pid(), first);
    assert_eq!(chain.url(), url);
    let block = chain.block_number().await.unwrap();
    assert!(
        block >= 7,
        "block {block} after the restart; state file: {:?}",
        std::fs::read_to_string(dir.path().join("anvil-state.json")).map(|s| s.len())
    );
    let balance = chain.reader().get_balance(stranger).await.unwrap();
    assert_eq!(balance, U256::from(12345));

    let plain = LocalChain::start().unwrap();
    let error = plain.stop_keeping_state().unwrap_err().to_string();
    assert!(error.contains("started without a state file"), "{error}");
}
