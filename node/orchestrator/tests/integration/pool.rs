//! The pool of remote transcoders seen from outside: `/pool` (behind the status token) and
//! `/metrics` name each transcoder with the pixels it claimed and the pixels the orchestrator
//! counted and billed, every answer checked; a transcoder answering with another segment's
//! renditions is refused, its segments redone by the honest one, and dropped by name.

use std::time::Duration;

use node_orchestrator::TranscoderConfig;
use node_orchestrator::config::TranscodeMode;
use node_orchestrator::start_transcoder;
use node_orchestrator::transcoder_faults::TranscoderFaults;

use crate::common::*;

const SECRET: &str = "pool-secret";
const WAIT: Duration = Duration::from_secs(30);

fn transcoder(uri: &str, name: &str, faults: TranscoderFaults) -> TranscoderConfig {
    TranscoderConfig {
        x264_preset: "ultrafast".into(),
        name: Some(name.into()),
        faults,
        ..TranscoderConfig::new(uri, SECRET)
    }
}

async fn pool(session: &Session, token: Option<&str>) -> (u16, String) {
    let mut request = session
        .client
        .http()
        .get(format!("{}/pool?entries=true", session.client.uri()));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_names_each_transcoders_claims_counts_and_checks_and_drops_a_cheat() {
    let mut config = offchain_config();
    config.transcode.mode = TranscodeMode::Remote;
    config.transcoder_secret = Some(SECRET.into());
    config.pool.check_fraction = 1.0;
    config.pool.drop_after_failures = 2;
    let orchestrator = node_orchestrator::start(config).await.unwrap();
    let uri = orchestrator.service_uri().to_string();
    let mut session = Session::offchain(&uri).await;
    session.ladder.truncate(1);

    let inflating = TranscoderFaults {
        inflate_pixels: 3.0,
        ..TranscoderFaults::default()
    };
    let inflater = start_transcoder(transcoder(&uri, "inflater", inflating));
    wait_status(&session.client, WAIT, "the inflater", |s| {
        s["transcoders"].as_array().unwrap().len() == 1
    })
    .await;
    for seq in 0..3 {
        let reply = session.send(seq).await.unwrap();
        // Billed by the frames counted in the rendition, not by the claim.
        assert_eq!(reply.renditions().unwrap()[0].pixels, 256 * 144 * 30);
    }
    inflater.kill();
    wait_status(&session.client, WAIT, "the inflater gone", |s| {
        s["transcoders"].as_array().unwrap().is_empty()
    })
    .await;

    let cheating = TranscoderFaults {
        wrong_stream: true,
        ..TranscoderFaults::default()
    };
    let cheat = start_transcoder(transcoder(&uri, "cheat", cheating));
    let honest = start_transcoder(transcoder(&uri, "honest", TranscoderFaults::default()));
    wait_status(&session.client, WAIT, "two transcoders", |s| {
        s["transcoders"].as_array().unwrap().len() == 2
    })
    .await;
    // Until the cheat is dropped: every segment is answered all the same.
    let mut sent = 0;
    for seq in 3..30 {
        let reply = session.send(seq).await.unwrap();
        assert_eq!(reply.renditions().unwrap().len(), 1, "segment {seq}");
        sent += 1;
        if status(&session.client).await["transcoders"]
            .as_array()
            .unwrap()
            .len()
            == 1
        {
            break;
        }
    }

    let (code, text) = pool(&session, None).await;
    assert_eq!(code, 401, "{text}");
    let (code, text) = pool(&session, Some("admin-secret")).await;
    assert_eq!(code, 200, "{text}");
    let pool: serde_json::Value = serde_json::from_str(&text).unwrap();
    let totals = &pool["totals"];
    let honest_pixels = 256 * 144 * 30u64;
    let inflater_totals = &totals["inflater"];
    assert_eq!(inflater_totals["segments"], 3, "{pool:#}");
    assert_eq!(
        inflater_totals["counted_pixels"],
        3 * honest_pixels,
        "{pool:#}"
    );
    assert_eq!(
        inflater_totals["claimed_pixels"],
        3 * 3 * honest_pixels,
        "{pool:#}"
    );
    assert_eq!(inflater_totals["misreported_segments"], 3, "{pool:#}");
    assert_eq!(inflater_totals["checks_passed"], 3, "{pool:#}");
    // The cheat's first answer is honest (it has no earlier one to send); its next two are
    // another segment's and are refused, which drops it.
    let cheat_totals = &totals["cheat"];
    assert_eq!(cheat_totals["checks_failed"], 2, "{pool:#}");
    assert_eq!(pool["dropped"]["cheat"], 2, "{pool:#}");
    let honest_totals = &totals["honest"];
    assert_eq!(
        honest_totals["claimed_pixels"], honest_totals["counted_pixels"],
        "{pool:#}"
    );
    let answered = |t: &serde_json::Value| t["segments"].as_u64().unwrap();
    let accepted = |t: &serde_json::Value| answered(t) - t["checks_failed"].as_u64().unwrap();
    assert_eq!(
        accepted(cheat_totals) + accepted(honest_totals),
        sent,
        "{pool:#}"
    );
    let entries = pool["entries"].as_array().unwrap();
    assert_eq!(
        entries.len() as u64,
        3 + answered(cheat_totals) + answered(honest_totals),
        "{pool:#}"
    );
    let attached: Vec<&str> = pool["attached"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(attached, ["honest"], "{pool:#}");
    assert!(
        pool["attached"][0]["realtime_ratio"].as_f64().unwrap() > 0.0,
        "{pool:#}"
    );

    // A dropped name is refused when it comes back.
    let cheating = TranscoderFaults {
        wrong_stream: true,
        ..TranscoderFaults::default()
    };
    let err = start_transcoder(transcoder(&uri, "cheat", cheating))
        .wait()
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("dropped from the pool after 2 failed checks"),
        "{err:#}"
    );

    let metrics = session
        .client
        .http()
        .get(format!("{uri}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        format!(
            "lpt_orchestrator_pool_pixels_total{{transcoder=\"inflater\",kind=\"claimed\"}} {}\n",
            9 * honest_pixels
        ),
        format!(
            "lpt_orchestrator_pool_pixels_total{{transcoder=\"inflater\",kind=\"counted\"}} {}\n",
            3 * honest_pixels
        ),
        "lpt_orchestrator_pool_checks_total{transcoder=\"cheat\",outcome=\"failed\"} 2\n".into(),
    ] {
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
    assert!(
        metrics.contains("lpt_orchestrator_transcoder_realtime_ratio{transcoder=\"honest\"}"),
        "{metrics}"
    );

    cheat.kill();
    honest.kill();
    orchestrator.shutdown().await;
}
