//! Our contract ABI against PROTOCOL.md §5: every selector and event topic must equal Livepeer's.

use alloy::primitives::{B256, b256};
use alloy::sol_types::{SolCall, SolEvent};
use protocol::chain::bindings::{ServiceRegistry, TicketBroker as TB};

#[test]
fn function_selectors_match_livepeer() {
    let table: [(&str, [u8; 4], [u8; 4]); 13] = [
        ("fundDeposit()", TB::fundDepositCall::SELECTOR, [0x6c, 0xaa, 0x73, 0x6b]),
        ("fundReserve()", TB::fundReserveCall::SELECTOR, [0x6f, 0x9c, 0x3c, 0x8f]),
        ("fundDepositAndReserve", TB::fundDepositAndReserveCall::SELECTOR, [0x51, 0x1f, 0x40, 0x73]),
        ("redeemWinningTicket", TB::redeemWinningTicketCall::SELECTOR, [0xec, 0x8b, 0x3c, 0xb6]),
        ("batchRedeemWinningTickets", TB::batchRedeemWinningTicketsCall::SELECTOR, [0xd0, 0x1b, 0x80, 0x8e]),
        ("unlock()", TB::unlockCall::SELECTOR, [0xa6, 0x9d, 0xf4, 0xb5]),
        ("cancelUnlock()", TB::cancelUnlockCall::SELECTOR, [0xc2, 0xc4, 0xc2, 0xc8]),
        ("withdraw()", TB::withdrawCall::SELECTOR, [0x3c, 0xcf, 0xd6, 0x0b]),
        ("getSenderInfo(address)", TB::getSenderInfoCall::SELECTOR, [0xe1, 0xa5, 0x89, 0xda]),
        ("usedTickets(bytes32)", TB::usedTicketsCall::SELECTOR, [0x59, 0xa5, 0x15, 0xba]),
        ("getTicketHash", TB::getTicketHashCall::SELECTOR, [0xb0, 0x3f, 0xa8, 0x64]),
        // Derived from the signature text, as a cross-check of the table itself.
        (
            "redeemWinningTicket signature",
            alloy::primitives::keccak256(
                "redeemWinningTicket((address,address,uint256,uint256,uint256,bytes32,bytes),bytes,uint256)",
            )[..4]
                .try_into()
                .unwrap(),
            [0xec, 0x8b, 0x3c, 0xb6],
        ),
        // go-livepeer eth/contracts/serviceRegistry.go: "binding the contract method 0x214c2a4b".
        (
            "getServiceURI(address)",
            ServiceRegistry::getServiceURICall::SELECTOR,
            [0x21, 0x4c, 0x2a, 0x4b],
        ),
    ];
    for (name, ours, livepeer) in table {
        assert_eq!(ours, livepeer, "{name}");
    }
    assert_eq!(
        TB::redeemWinningTicketCall::SIGNATURE,
        "redeemWinningTicket((address,address,uint256,uint256,uint256,bytes32,bytes),bytes,uint256)"
    );
}

#[test]
fn event_topics_match_livepeer() {
    let table: [(&str, B256, B256); 7] = [
        (
            "WinningTicketRedeemed",
            TB::WinningTicketRedeemed::SIGNATURE_HASH,
            b256!("c389eb51ed006dbf2528507f010efdf5225ea596e1e1741d74f550dab1925ee7"),
        ),
        (
            "WinningTicketTransfer",
            TB::WinningTicketTransfer::SIGNATURE_HASH,
            b256!("8b87351a208c06e3ceee59d80725fd77a23b4129e1b51ca231fc89b40712649c"),
        ),
        (
            "DepositFunded",
            TB::DepositFunded::SIGNATURE_HASH,
            b256!("5159e237d952190e68d5215430f305831be7c9c8776d1377c76679ae4773413f"),
        ),
        (
            "ReserveFunded",
            TB::ReserveFunded::SIGNATURE_HASH,
            b256!("b52b99b9e83551fcbd069b559cc3e823e2a1a3bad8ece46561ea77524394c850"),
        ),
        (
            "Unlock",
            TB::Unlock::SIGNATURE_HASH,
            b256!("f7870c5b224cbc19873599e46ccfc7103934650509b1af0c3ce90138377c2004"),
        ),
        (
            "Withdrawal",
            TB::Withdrawal::SIGNATURE_HASH,
            b256!("df273cb619d95419a9cd0ec88123a0538c85064229baa6363788f743fff90deb"),
        ),
        // go-livepeer eth/contracts/serviceRegistry.go: "binding the contract event 0xfbb6…3a4c".
        (
            "ServiceURIUpdate",
            ServiceRegistry::ServiceURIUpdate::SIGNATURE_HASH,
            b256!("fbb63068732c85741c9f8e61caffaabe038d577bfafd2d2dcc0e352a4f653a4c"),
        ),
    ];
    for (name, ours, livepeer) in table {
        assert_eq!(ours, livepeer, "{name}");
    }
    assert_eq!(protocol::chain::BrokerEvent::TOPICS.len(), 6);
}
