//! The transcoder pool scenarios (`scenarios/pools/`), run end to end on the embedded stack: an
//! honest pool of four reconciles exactly and pays out what its orchestrator redeemed on chain,
//! and each transcoder fault fails exactly the threshold written to catch it, with the pool probe
//! naming the transcoder.

use std::collections::BTreeMap;

use serde_json::Value;
use testkit::lpt_run::{LptRun, run_scenario};

fn run(scenario: &str) -> LptRun {
    run_scenario(env!("CARGO_BIN_EXE_lpt").as_ref(), scenario)
}

/// The run's `pool` records by transcoder.
fn pool(run: &LptRun) -> BTreeMap<String, Value> {
    run.records("pool")
        .into_iter()
        .map(|r| (r["transcoder"].as_str().unwrap().to_owned(), r))
        .collect()
}

fn wei(value: &Value) -> u128 {
    value
        .as_str()
        .unwrap_or_else(|| panic!("wei as a decimal string, not {value}"))
        .parse()
        .unwrap()
}

#[test]
fn an_honest_pool_reconciles_exactly_pays_out_what_was_redeemed_and_starves_the_slow_one() {
    let run = run("scenarios/pools/honest.toml");
    assert_eq!(run.code, 0, "{}", run.output);
    let pool = pool(&run);
    let names: Vec<&str> = pool.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "transcoder-0-0",
            "transcoder-0-1",
            "transcoder-0-2",
            "transcoder-0-3"
        ]
    );
    for (name, record) in &pool {
        assert_eq!(record["accounting_error"], 0.0, "{name}: {record:#}");
        assert_eq!(record["claim_error"], 0.0, "{name}: {record:#}");
        assert_eq!(record["refused"], 0, "{name}: {record:#}");
        assert_eq!(record["bad_segments_delivered"], 0, "{name}: {record:#}");
        assert_eq!(record["checked"], record["segments"], "{name}: {record:#}");
    }
    let segments = |name: &str| pool[name]["segments"].as_u64().unwrap();
    let fast = ["transcoder-0-0", "transcoder-0-1", "transcoder-0-2"];
    let slowest_fast = fast.iter().map(|n| segments(n)).min().unwrap();
    eprintln!(
        "segment split: {:?}, slow transcoder-0-3 {}",
        fast.map(segments),
        segments("transcoder-0-3")
    );
    assert!(
        segments("transcoder-0-3") * 2 <= slowest_fast,
        "the slow transcoder got {} segments, the fast ones at least {slowest_fast}",
        segments("transcoder-0-3")
    );
    let slow_ratio = pool["transcoder-0-3"]["realtime_ratio"].as_f64().unwrap();
    assert!((0.3..0.6).contains(&slow_ratio), "{slow_ratio}");

    // The payouts share exactly what the orchestrator redeemed on chain, less its commission and
    // the payout transactions.
    let kept: Value = serde_json::from_slice(
        &std::fs::read(run.dir.join("stack/orchestrator-0/pool.json")).unwrap(),
    )
    .unwrap();
    let plan = &kept["payout"];
    let redeemed = wei(&plan["redeemed_wei"]);
    // The payment probe's reading of the chain: every redemption from the broadcaster's deposit
    // (one orchestrator, so all of them its).
    let payments: Value =
        serde_json::from_slice(&std::fs::read(run.dir.join("payments.json")).unwrap()).unwrap();
    assert_eq!(payments["settled"], true, "{payments:#}");
    let on_chain = payments["redeemed_wei"].as_f64().unwrap();
    assert!(redeemed > 0, "{plan:#}");
    assert!(
        (redeemed as f64 - on_chain).abs() <= on_chain * 1e-12,
        "the orchestrator shares {redeemed} wei, the chain shows {on_chain}"
    );
    assert_eq!(wei(&plan["commission_wei"]), redeemed / 10);
    let payouts = plan["payouts"].as_array().unwrap();
    let paid: u128 = payouts.iter().map(|p| wei(&p["amount_wei"])).sum();
    let costs: u128 = payouts.iter().map(|p| wei(&p["tx_cost_wei"])).sum();
    assert_eq!(
        paid + costs + wei(&plan["carried_wei"]) + wei(&plan["remainder_wei"]),
        redeemed - redeemed / 10,
        "{plan:#}"
    );
    assert_eq!(costs, 1000 * payouts.len() as u128, "{plan:#}");
    let shares: f64 = payouts.iter().map(|p| p["share"].as_f64().unwrap()).sum();
    assert!((shares - 1.0).abs() < 1e-9, "{plan:#}");
    for payout in payouts {
        let name = payout["transcoder"].as_str().unwrap();
        assert_eq!(pool[name]["payout_wei"], payout["amount_wei"], "{name}");
    }
}

#[test]
fn a_pixel_inflating_transcoder_is_paid_for_real_pixels_and_named_by_its_claim() {
    let run = run("scenarios/pools/inflate.toml");
    run.assert_fails_only("pool_claim_error");
    let pool = pool(&run);
    let inflater = &pool["transcoder-0-1"];
    let claim = inflater["claim_error"].as_f64().unwrap();
    assert!((claim - 2.0).abs() < 1e-6, "{inflater:#}");
    assert_eq!(inflater["accounting_error"], 0.0, "{inflater:#}");
    assert_eq!(pool["transcoder-0-0"]["claim_error"], 0.0, "{pool:#?}");
}

#[test]
fn a_transcoder_answering_with_another_segment_is_refused_and_none_of_its_answers_delivered() {
    let run = run("scenarios/pools/wrong-stream.toml");
    run.assert_fails_only("refused_segments");
    let pool = pool(&run);
    let cheat = &pool["transcoder-0-1"];
    // Its first answer is honest (it has no earlier one to send); the second is caught.
    assert_eq!(cheat["cheater_detected_after"], 2, "{cheat:#}");
    assert!(cheat["refused"].as_u64().unwrap() >= 1, "{cheat:#}");
    for (name, record) in &pool {
        assert_eq!(record["bad_segments_delivered"], 0, "{name}: {record:#}");
    }
}

#[test]
fn a_transcoder_degrading_quality_is_refused_from_its_first_answer() {
    let run = run("scenarios/pools/degrade.toml");
    run.assert_fails_only("refused_segments");
    let pool = pool(&run);
    let cheat = &pool["transcoder-0-1"];
    assert_eq!(cheat["cheater_detected_after"], 1, "{cheat:#}");
    assert_eq!(cheat["segments"], 0, "{cheat:#}");
    for (name, record) in &pool {
        assert_eq!(record["bad_segments_delivered"], 0, "{name}: {record:#}");
    }
}

#[test]
fn a_slow_transcoder_is_measured_and_given_fewer_segments() {
    let run = run("scenarios/pools/slow.toml");
    run.assert_fails_only("realtime_ratio");
    let pool = pool(&run);
    let slow = pool["transcoder-0-1"]["realtime_ratio"].as_f64().unwrap();
    assert!((0.3..0.6).contains(&slow), "{pool:#?}");
    let (fast, slow) = (
        pool["transcoder-0-0"]["segments"].as_u64().unwrap(),
        pool["transcoder-0-1"]["segments"].as_u64().unwrap(),
    );
    eprintln!("segment split: fast {fast}, slow {slow}");
    assert!(slow * 2 <= fast, "fast {fast}, slow {slow}");
}

#[test]
fn a_transcoder_disconnecting_mid_segment_is_counted_and_its_segments_redone() {
    let run = run("scenarios/pools/disconnect.toml");
    run.assert_fails_only("transcoder_lost_segments");
    let pool = pool(&run);
    let lost = pool["transcoder-0-1"]["lost"].as_u64().unwrap();
    assert!(lost >= 1, "{pool:#?}");
    assert_eq!(pool["transcoder-0-0"]["lost"], 0, "{pool:#?}");
}
