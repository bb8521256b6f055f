//! `lpt stack up` as an operator uses it: it comes up, its endpoints answer, and Ctrl-C stops
//! every process it started (no orphans), with exit code 0. Even SIGKILL, which it cannot catch,
//! leaves nothing running: every child dies with it.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::golivepeer::go_test;
use testkit::procfs::{assert_all_exit, descendants};

fn port_of(url: &str) -> u16 {
    let authority = url.split("://").nth(1).unwrap().split('/').next().unwrap();
    authority.rsplit_once(':').unwrap().1.parse().unwrap()
}

/// A running `lpt stack up`: the process, what it announced, and every process under it.
struct StackUp {
    child: std::process::Child,
    announced: Value,
    started: BTreeSet<u32>,
    dir: tempfile::TempDir,
}

/// A test that fails part-way must not leave the stack running: SIGKILL takes its children
/// with it (tested below).
impl Drop for StackUp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `lpt stack up` with 2 orchestrators of 1 transcoder each and waits for its JSON line.
fn stack_up() -> StackUp {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lpt"))
        .args([
            "stack",
            "up",
            "--orchestrators",
            "2",
            "--transcoders-per-orchestrator",
            "1",
            "--dir",
        ])
        .arg(dir.path())
        .env_remove("LPT_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("lpt runs");
    let pid = child.id();

    // The JSON line announces the stack; wait for it with a deadline.
    let stdout = child.stdout.take().unwrap();
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let announced: Value = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = received
            .recv_timeout(left)
            .expect("lpt stack up announced its endpoints within 120 s");
        if let Ok(value) = serde_json::from_str::<Value>(&line)
            && value["event"] == "stack_up"
        {
            break value;
        }
    };
    // anvil, 2 orchestrators, 2 transcoders and a broadcaster.
    let started = descendants(pid);
    assert!(started.len() >= 6, "only {started:?} under lpt");
    StackUp {
        child,
        announced,
        started,
        dir,
    }
}

#[test]
fn stack_up_serves_its_endpoints_and_ctrl_c_leaves_no_process_behind() {
    let mut stack = stack_up();
    let endpoints = &stack.announced["endpoints"];
    assert_eq!(endpoints["orchestrators"].as_array().unwrap().len(), 2);
    assert!(
        endpoints["chain_rpc"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
    assert!(
        endpoints["service_registry"]
            .as_str()
            .unwrap()
            .starts_with("0x")
    );
    for url in [
        endpoints["rtmp_url"].as_str().unwrap(),
        endpoints["playback_url"].as_str().unwrap(),
        endpoints["orchestrators"][0].as_str().unwrap(),
        endpoints["orchestrators"][1].as_str().unwrap(),
        endpoints["chain_rpc"].as_str().unwrap(),
    ] {
        TcpStream::connect(("127.0.0.1", port_of(url)))
            .unwrap_or_else(|e| panic!("{url} does not accept connections: {e}"));
    }

    unsafe { libc::kill(stack.child.id() as i32, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = stack.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "lpt stack up did not exit within 60 s of Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert_all_exit(&stack.started, "lpt stack up stopped");
}

#[test]
fn sigkill_of_stack_up_takes_every_child_with_it() {
    let mut stack = stack_up();
    let chain = stack.announced["endpoints"]["chain_rpc"]
        .as_str()
        .unwrap()
        .to_owned();
    stack.child.kill().unwrap();
    stack.child.wait().unwrap();
    assert_all_exit(&stack.started, "lpt stack up was killed");
    assert!(
        TcpStream::connect(("127.0.0.1", port_of(&chain))).is_err(),
        "the chain at {chain} still answers"
    );
}

/// anvil's well-known account 0, which the embedded stack funds as its broadcaster: a public
/// test key, for local use only.
const ANVIL_ACCOUNT_0_KEY: &str =
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

/// Runs direct scenario `name` against `orchestrators` (the workload's TOML value, and keys after
/// it; `payment` is the `[target.payment]` table or nothing) in a run directory of its own, and returns the exit code, stdout with stderr, and
/// the summary (null when none was written).
fn run_direct(
    dir: &std::path::Path,
    name: &str,
    orchestrators: &str,
    payment: &str,
) -> (i32, String, Value) {
    let scenario = dir.join(format!("{name}.toml"));
    std::fs::write(
        &scenario,
        format!(
            r#"name = "direct-{name}"
[target]
kind = "direct"
{payment}
[source]
width = 640
height = 360
clip = "4s"

[ladder]
profiles = ["P144p30fps16x9"]

[workloads.direct]
executor = "direct-orchestrator"
orchestrators = {orchestrators}
duration = "4s"

[quality]
enabled = false

[thresholds]
"orchestrator_success" = ["rate >= 0.99"]
"#
        ),
    )
    .unwrap();
    run_scenario(&scenario, &dir.join(name))
}

/// `lpt run SCENARIO --out RUN_DIR` with the sender key in the environment only; returns the exit
/// code, stdout with stderr (checked not to hold the key), and the summary (null when none).
fn run_scenario(scenario: &std::path::Path, run_dir: &std::path::Path) -> (i32, String, Value) {
    let output = Command::new(env!("CARGO_BIN_EXE_lpt"))
        .arg("run")
        .arg(scenario)
        .arg("--out")
        .arg(run_dir)
        .env("LPT_LOG", "warn")
        .env("LPT_TEST_SENDER_KEY", ANVIL_ACCOUNT_0_KEY)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(
        !stdout.contains(&ANVIL_ACCOUNT_0_KEY[2..]),
        "the key was printed:\n{stdout}"
    );
    let summary = std::fs::read_to_string(run_dir.join("summary.json"))
        .map(|text| serde_json::from_str(&text).unwrap())
        .unwrap_or(Value::Null);
    (output.status.code().unwrap_or(-1), stdout, summary)
}

/// `scenarios/orchestrator-selftest.toml` as an operator edits it: their orchestrator's URI, the
/// `[target.payment]` table uncommented with this chain, and a shorter run.
fn selftest_scenario(orchestrator: &str, chain_rpc: &str, ticket_broker: &str) -> String {
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scenarios/orchestrator-selftest.toml"
    ))
    .unwrap();
    let edits = [
        (
            "orchestrators = [\"https://127.0.0.1:8935\"]".to_owned(),
            format!("orchestrators = [\"{orchestrator}\"]"),
        ),
        (
            "# [target.payment]".to_owned(),
            "[target.payment]".to_owned(),
        ),
        (
            "# chain_rpc = \"https://arb1.arbitrum.io/rpc\"".to_owned(),
            format!("chain_rpc = \"{chain_rpc}\""),
        ),
        (
            "# ticket_broker = \"0xa8bB618B1520E284046F3dFc448851A1Ff26e41B\"".to_owned(),
            format!("ticket_broker = \"{ticket_broker}\""),
        ),
        (
            "# key_env = \"LPT_SENDER_KEY\"".to_owned(),
            "key_env = \"LPT_TEST_SENDER_KEY\"".to_owned(),
        ),
        (
            "duration = \"30s\"".to_owned(),
            "duration = \"8s\"".to_owned(),
        ),
    ];
    edits.iter().fold(shipped, |text, (from, to)| {
        assert!(
            text.contains(from.as_str()),
            "the shipped self-test no longer has {from}"
        );
        text.replacen(from.as_str(), to, 1)
    })
}

/// The orchestrators whose segments a run's journal records.
fn tested_orchestrators(run_dir: &std::path::Path) -> BTreeSet<String> {
    let journal = std::fs::read_to_string(run_dir.join("records.jsonl")).unwrap();
    journal
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|record| record["type"] == "segment")
        .map(|record| record["orchestrator"].as_str().unwrap().to_owned())
        .collect()
}

fn orchestrator_success(summary: &Value) -> &Value {
    &summary["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["metric"] == "orchestrator_success")
        .unwrap_or_else(|| panic!("no orchestrator_success threshold: {summary}"))["observed"]
}

#[test]
fn a_direct_target_pays_priced_orchestrators_from_a_key_in_the_environment() {
    let mut stack = stack_up();
    let endpoints = stack.announced["endpoints"].clone();
    let orchestrators: Vec<String> = endpoints["orchestrators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap().to_owned())
        .collect();
    let listed = format!("{orchestrators:?}");
    let dir = tempfile::tempdir().unwrap();

    // The stack's orchestrators charge: unpaid segments are refused, so the threshold fails.
    let (code, stdout, summary) = run_direct(dir.path(), "unpaid", &listed, "");
    assert_eq!(code, 99, "{stdout}");
    assert_eq!(orchestrator_success(&summary), 0.0, "{summary}");

    // Paying from the stack's funded broadcaster account, whose key only the environment holds.
    let payment = format!(
        "[target.payment]\nchain_rpc = \"{}\"\nticket_broker = \"{}\"\nkey_env = \"LPT_TEST_SENDER_KEY\"\n",
        endpoints["chain_rpc"].as_str().unwrap(),
        endpoints["ticket_broker"].as_str().unwrap()
    );
    let (code, stdout, summary) = run_direct(dir.path(), "paid", &listed, &payment);
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(orchestrator_success(&summary), 1.0, "{summary}");

    // The same orchestrators discovered on chain, from the ServiceRegistry's events and its
    // current URIs, as a run against the real network finds them.
    let discovered = format!(
        "\"chain\"\nchain_rpc = \"{}\"\nservice_registry = \"{}\"",
        endpoints["chain_rpc"].as_str().unwrap(),
        endpoints["service_registry"].as_str().unwrap()
    );
    let (code, stdout, summary) = run_direct(dir.path(), "discovered", &discovered, &payment);
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(orchestrator_success(&summary), 1.0, "{summary}");
    let listed_run = tested_orchestrators(&dir.path().join("paid"));
    assert_eq!(listed_run.len(), 2, "{listed_run:?}");
    assert_eq!(
        tested_orchestrators(&dir.path().join("discovered")),
        listed_run
    );

    // The shipped operator self-test, pointed at the first orchestrator and paying as its
    // comment says, passes as shipped (shorter).
    let selftest = selftest_scenario(
        &orchestrators[0],
        endpoints["chain_rpc"].as_str().unwrap(),
        endpoints["ticket_broker"].as_str().unwrap(),
    );
    let scenario = dir.path().join("selftest.toml");
    std::fs::write(&scenario, selftest).unwrap();
    let (code, stdout, summary) = run_scenario(&scenario, &dir.path().join("selftest"));
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(orchestrator_success(&summary), 1.0, "{summary}");

    // A go-livepeer broadcaster (go's net client and pm sender, interop/golivepeer) pays the
    // second orchestrator over the wire, and is credited.
    let config = std::fs::read_to_string(stack.dir.path().join("orchestrator-1.toml")).unwrap();
    let config: toml_edit::Document<String> = config.parse().unwrap();
    let status_token = config["status_token"].as_str().unwrap().to_owned();
    go_test(
        &["TestGoBroadcasterPaysLptOrchestratorOverTheWire"],
        [
            ("LPT_ORCHESTRATOR", orchestrators[1].as_str()),
            ("LPT_SENDER_KEY", ANVIL_ACCOUNT_0_KEY),
            ("LPT_STATUS_TOKEN", status_token.as_str()),
        ],
    );

    // The tickets of those live runs, as the orchestrators' journals recorded them, pass
    // go-livepeer's own pm.Validator (interop/golivepeer).
    let journaled: usize = (0..2)
        .map(|i| {
            let path = stack
                .dir
                .path()
                .join(format!("orchestrator-{i}/tickets.jsonl"));
            std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .lines()
                .filter(|line| line.contains("\"accepted\":true"))
                .count()
        })
        .sum();
    assert!(
        journaled >= 2,
        "only {journaled} accepted tickets journaled"
    );
    let journals = stack.dir.path().display().to_string();
    let log = go_test(
        &["TestLiveTicketsPassGoLivepeerValidator"],
        [("LPT_TICKET_JOURNALS", journals.as_str())],
    );
    assert!(
        log.contains(&format!(
            "go-livepeer's validator accepted {journaled} live tickets"
        )),
        "{log}"
    );

    // A variable that is not set is named, and the run could not run (107).
    let unset = payment.replace("LPT_TEST_SENDER_KEY", "LPT_TEST_UNSET_KEY");
    let (code, stdout, _) = run_direct(dir.path(), "unset-key", &listed, &unset);
    assert_eq!(code, 107, "{stdout}");
    assert!(stdout.contains("LPT_TEST_UNSET_KEY"), "{stdout}");

    stack.child.kill().unwrap();
    stack.child.wait().unwrap();
    assert_all_exit(&stack.started, "lpt stack up was killed");
}
