//! On-chain discovery on a real anvil: registrations, a re-registration and a deregistration are
//! read back as exactly the set of (address, latest URI) that is registered now, whatever the
//! page size.

use protocol::chain::{DeployConfig, RegistryReader};
use testkit::chain::TestChain;

#[tokio::test]
async fn registry_reader_returns_current_registrations_only() {
    let TestChain { chain, contracts } = TestChain::deploy(DeployConfig::default()).await;
    let start = chain.block_number().await.unwrap();
    let registry = |i: usize| contracts.service_registry(chain.provider(chain.signer(i)));
    let (a, b, c) = (registry(1), registry(2), registry(3));
    a.set_service_uri("https://a.example:8935").await.unwrap();
    b.set_service_uri("https://b.example:8935").await.unwrap();
    c.set_service_uri("https://c.example:8935").await.unwrap();
    chain.mine(3).await.unwrap();
    // B moves, C leaves.
    let moved = b.set_service_uri("https://b2.example:8935").await.unwrap();
    c.set_service_uri("").await.unwrap();
    let end = chain.block_number().await.unwrap();

    let accounts = chain.accounts();
    let expected = vec![
        (accounts[1], "https://a.example:8935".to_string()),
        (accounts[2], "https://b2.example:8935".to_string()),
    ];
    let mut expected_sorted = expected.clone();
    expected_sorted.sort();
    for page in [1, 2, 1000] {
        let reader =
            RegistryReader::new(chain.reader(), contracts.service_registry).with_page_size(page);
        let found = reader.registered(start, end).await.unwrap();
        let pairs: Vec<_> = found
            .iter()
            .map(|o| (o.address, o.service_uri.clone()))
            .collect();
        assert_eq!(pairs, expected_sorted, "page size {page}");
        let b_entry = found.iter().find(|o| o.address == accounts[2]).unwrap();
        assert_eq!(
            b_entry.updated_block, moved.block_number,
            "page size {page}"
        );
        // Three addresses updated, one cleared: the raw event scan still sees all three.
        let updated = reader.updated_addresses(start, end).await.unwrap();
        assert_eq!(updated.len(), 3, "page size {page}");
    }
    let all = RegistryReader::connect(chain.url(), contracts.service_registry)
        .unwrap()
        .registered_now()
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    // A range that ends before any update finds nobody.
    let none = RegistryReader::new(chain.reader(), contracts.service_registry)
        .registered(0, start)
        .await
        .unwrap();
    assert!(none.is_empty(), "{none:?}");
}
