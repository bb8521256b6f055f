//! A broadcaster may send several streams through one session (the `lpt` broadcaster does, and
//! nothing in the protocol forbids it): their segments share sequence numbers, and each stream's
//! renditions must stay its own.

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_streams_in_one_session_keep_their_own_renditions_of_the_same_seq() {
    let orchestrator = node_orchestrator::start(offchain_config()).await.unwrap();
    let mut session = Session::offchain(orchestrator.service_uri()).await;
    session.ladder.truncate(1);

    session.manifest = b"stream-a".to_vec();
    let first = session.send(0).await.unwrap().renditions().unwrap()[0].clone();
    let first_bytes = session.client.download(&first.url).await.unwrap();

    session.manifest = b"stream-b".to_vec();
    let other_body = segments()[1].clone();
    let seg = session.segment(0, &other_body);
    let second = session
        .submit(&seg, None, other_body)
        .await
        .unwrap()
        .renditions()
        .unwrap()[0]
        .clone();
    assert_ne!(first.url, second.url);
    let second_bytes = session.client.download(&second.url).await.unwrap();
    assert_ne!(
        first_bytes, second_bytes,
        "two different sources, one rendition"
    );

    let first_again = session.client.download(&first.url).await.unwrap();
    assert_eq!(
        first_again, first_bytes,
        "stream-b's seq 0 replaced stream-a's"
    );
}
