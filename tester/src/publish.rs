//! `lpt publish`: posts a run's leaderboard records to a leaderboard-serverless-compatible API and
//! says, record by record, what the server did with them.
//!
//! Design decisions:
//! - Each §7 record of `leaderboard.json` is posted as its own request to
//!   `{endpoint}/api/post_stats`, signed with `Authorization: hex(HMAC-SHA256(secret, body))` over
//!   the exact bytes sent (PROTOCOL.md §7). The records are parsed into their typed form first, so a
//!   damaged file is refused here with its path, not posted for the server to reject.
//! - The secret is read from an environment variable whose *name* the caller passes; only the name
//!   ever appears in errors and reports, and the value's `Debug` is redacted.
//! - Connection errors, timeouts, 5xx and 429 are retried with doubling backoff up to
//!   `attempts`; any other 4xx is final (the same body would be refused again). When the first
//!   record cannot reach the server at all, nothing was published and [`publish`] returns
//!   [`PublishError::Unreachable`]; when the server goes away later, that record is reported as
//!   unreachable and the rest as not sent, so the report still shows what was accepted.
//! - Every wait is bounded: each attempt has a total timeout (connect, send, answer and body), and
//!   at most 4 KiB of a server's answer is read (64 KiB of a region list).
//! - A record is posted as the public leaderboard keys it: its orchestrator address in lowercase
//!   (`leaderboard::orchestrator_id`; the server compares addresses as plain strings), whatever
//!   spelling an older `leaderboard.json` holds.
//! - Regions are checked before anything is posted: leaderboard-serverless refuses a record whose
//!   region it does not know (`400 invalid region`), so a run with such a region is refused here,
//!   naming the region and the accepted ones, and nothing is published. The accepted set is a
//!   parameter ([`AcceptedRegions`]) whose default is v1.0.0's fixed list, [`V1_REGIONS`] (MDW,
//!   FRA, SIN), the version the Go module proxy serves and our interop test runs. Later versions
//!   keep their regions in the database and list them at `GET /api/regions`;
//!   [`AcceptedRegions::Server`] asks that route and falls back to a fixed list where the server
//!   has none (v1.0.0 answers 404). Asking is opt-in so that publishing makes no request the
//!   caller did not ask for and stays one request per record.
//! - The report puts the public scores (computed locally with the public formula) beside what only
//!   we measure (VMAF against the reference transcoder, effective price per pixel) and the failure
//!   reasons, so one screen says both how the leaderboard will rank a node and why.
//! - AI records (`ai_records`, leaderboard-serverless's `models.Stats` AI form) are posted after
//!   the transcoding ones, the same way: same route, same signature, same retries, same region
//!   check and `--region` override, the orchestrator in lowercase. Their public score is the one
//!   the leaderboard gives the (orchestrator, region) for that pipeline and model
//!   (`ai_aggregated`, relative to the median round trip of the run's records), shown with ours.
//!   The headline counts both kinds. Servers without AI support (v1.0.0) accept such a record
//!   but drop its AI fields.

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use sha2::Sha256;

use reports::leaderboard::ai::{AiLeaderboardRecord, AiOurScore, WEIGHT_RTT, WEIGHT_SUCCESS};
use reports::leaderboard::{
    LEADERBOARD_FILE, Leaderboard, LeaderboardError, LeaderboardExtras, LeaderboardRecord,
    LeaderboardScore, orchestrator_id, score,
};
use reports::util::fmt_price;

/// Environment variable that holds the shared secret unless the caller names another.
pub const DEFAULT_SECRET_ENV: &str = "LPT_LEADERBOARD_SECRET";

/// Path of the record-posting route under the endpoint.
pub const POST_STATS_PATH: &str = "/api/post_stats";

/// Path of the region list under the endpoint (leaderboard-serverless after v1.0.0).
pub const REGIONS_PATH: &str = "/api/regions";

/// The regions leaderboard-serverless v1.0.0 accepts (`models.Regions`, fixed in its code).
pub const V1_REGIONS: [&str; 3] = ["MDW", "FRA", "SIN"];

/// Every region code leaderboard-serverless knows: v1.0.0's and those its later versions seed
/// into their regions table (assets/migrations/2_seed_ref_data.up.sql), which `lpt publish`
/// accepts unless told otherwise.
pub const KNOWN_REGIONS: [&str; 22] = [
    "GLOBAL", "ATL", "ATL2", "MDW", "FRA", "HOU", "LON", "LAX", "MAD", "MIA", "MOS2", "ASH", "NYC",
    "PRG", "SJO", "SAO", "SEA", "SIN", "STO", "SYD", "HND", "TOR",
];

/// Most bytes of a server's answer kept as its message.
const MAX_ANSWER_BYTES: usize = 4096;

/// Most bytes of a region list read (a few dozen regions take about 2 KiB).
const MAX_REGIONS_BYTES: usize = 64 * 1024;

/// Longest region code accepted by `--region`.
const MAX_REGION_LEN: usize = 32;

/// How and where to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishOptions {
    /// Base URL of the leaderboard API (`https://host[/prefix]`); `/api/post_stats` is appended
    /// unless the URL already ends with it.
    pub endpoint: String,
    /// Region code that replaces every record's region (`--region`).
    pub region: Option<String>,
    /// Name of the environment variable that holds the shared secret.
    pub secret_env: String,
    /// Bound on one attempt: connect, send, answer and body.
    pub timeout: Duration,
    /// Attempts per record (≥ 1) on connection errors, timeouts, 5xx and 429.
    pub attempts: u32,
    /// Wait before the first retry; doubled before each later one.
    pub backoff: Duration,
    /// Region codes the server accepts; a record with another region is refused before posting.
    pub regions: AcceptedRegions,
}

/// Which region codes the leaderboard accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcceptedRegions {
    /// Exactly these codes (default: [`V1_REGIONS`]).
    List(Vec<String>),
    /// The ids listed at `GET {endpoint}/api/regions` (any job type, as the server's own check);
    /// when the server has no usable list there (v1.0.0 answers 404), `fallback`.
    Server {
        /// The codes accepted when the server lists none.
        fallback: Vec<String>,
    },
}

impl AcceptedRegions {
    /// v1.0.0's fixed list, [`V1_REGIONS`].
    pub fn v1() -> Self {
        AcceptedRegions::List(V1_REGIONS.map(String::from).to_vec())
    }

    /// Every code leaderboard-serverless knows, [`KNOWN_REGIONS`].
    pub fn known() -> Self {
        AcceptedRegions::List(KNOWN_REGIONS.map(String::from).to_vec())
    }

    /// The `--accepted-regions` value: `known` ([`KNOWN_REGIONS`]), `server` (the server's
    /// list, else the known codes) or comma-separated codes.
    pub fn from_arg(arg: &str) -> Result<Self, PublishError> {
        match arg.trim() {
            "known" => Ok(Self::known()),
            "server" => Ok(AcceptedRegions::Server {
                fallback: KNOWN_REGIONS.map(String::from).to_vec(),
            }),
            list => {
                let codes: Vec<String> = list
                    .split(',')
                    .map(|c| c.trim().to_string())
                    .filter(|c| !c.is_empty())
                    .collect();
                if codes.is_empty() {
                    return Err(PublishError::InvalidRegion {
                        region: arg.to_string(),
                        why: "--accepted-regions takes known, server or comma-separated codes"
                            .into(),
                    });
                }
                for code in &codes {
                    validate_region(code)?;
                }
                Ok(AcceptedRegions::List(codes))
            }
        }
    }
}

impl Default for AcceptedRegions {
    fn default() -> Self {
        AcceptedRegions::v1()
    }
}

impl PublishOptions {
    /// Options with the defaults: secret in [`DEFAULT_SECRET_ENV`], 10 s per attempt, 3 attempts,
    /// 500 ms first backoff, records' own regions, accepted regions [`V1_REGIONS`].
    pub fn new(endpoint: impl Into<String>) -> Self {
        PublishOptions {
            endpoint: endpoint.into(),
            region: None,
            secret_env: DEFAULT_SECRET_ENV.to_string(),
            timeout: Duration::from_secs(10),
            attempts: 3,
            backoff: Duration::from_millis(500),
            regions: AcceptedRegions::default(),
        }
    }
}

/// Why nothing (or not everything) could be attempted.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The run directory has no `leaderboard.json`.
    #[error(
        "{path}: no leaderboard.json here (the run tested no orchestrator, or its report was never \
         rendered: try `lpt report` on the run directory first)"
    )]
    NoLeaderboard {
        /// The file looked for.
        path: PathBuf,
    },
    /// Reading `leaderboard.json` failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `leaderboard.json` is not a leaderboard.
    #[error("{path}: not a leaderboard file: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// `leaderboard.json` holds no record.
    #[error("{path}: holds no leaderboard record to publish")]
    NoRecords {
        /// The file.
        path: PathBuf,
    },
    /// The endpoint is not an http(s) base URL.
    #[error("invalid leaderboard endpoint {endpoint:?}: {why}")]
    InvalidEndpoint {
        /// The value given.
        endpoint: String,
        /// What is wrong with it.
        why: String,
    },
    /// The region override is not a region code.
    #[error("invalid region {region:?}: {why}")]
    InvalidRegion {
        /// The value given.
        region: String,
        /// What is allowed.
        why: String,
    },
    /// A record's region is not one the leaderboard accepts: nothing was posted.
    #[error(
        "{}: nothing was published{}",
        region_refusal(regions, accepted, listed_by),
        region_hint(regions)
    )]
    RegionNotAccepted {
        /// The refused regions (after `--region`), each once.
        regions: Vec<String>,
        /// The codes the leaderboard accepts.
        accepted: Vec<String>,
        /// Where that list came from.
        listed_by: String,
    },
    /// An option is out of range.
    #[error("invalid option {name} = {value}: {why}")]
    InvalidOption {
        /// Option name.
        name: &'static str,
        /// The value given.
        value: String,
        /// What is allowed.
        why: String,
    },
    /// The secret's environment variable is unset, empty or not Unicode.
    #[error("environment variable {name} {why}: it must hold the leaderboard's shared HMAC secret")]
    MissingSecret {
        /// The variable's name (never its value).
        name: String,
        /// `is not set`, `is empty`, …
        why: &'static str,
    },
    /// A record could not be serialized.
    #[error("could not serialize the record of {orchestrator} ({region}): {source}")]
    Serialize {
        /// The record's orchestrator.
        orchestrator: String,
        /// The record's region.
        region: String,
        /// The cause.
        source: serde_json::Error,
    },
    /// The HTTP client could not be set up.
    #[error("could not set up the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// The server never answered: nothing was published.
    #[error(
        "leaderboard endpoint {url} is unreachable: {cause} (gave up after {attempts} attempt(s) \
         in {:.1} s); nothing was published", elapsed.as_secs_f64()
    )]
    Unreachable {
        /// The URL posted to.
        url: String,
        /// The last connection error, with its causes.
        cause: String,
        /// Attempts made.
        attempts: u32,
        /// Time spent.
        elapsed: Duration,
    },
}

impl PublishError {
    /// Whether the caller's input (options, environment, run directory) is at fault rather than
    /// the network: a CLI maps this to its "invalid configuration" exit code.
    pub fn is_usage_error(&self) -> bool {
        !matches!(
            self,
            PublishError::Unreachable { .. } | PublishError::Client(_) | PublishError::Io { .. }
        )
    }
}

/// What happened to one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The server answered 2xx.
    Accepted,
    /// The server answered a final 4xx.
    Rejected,
    /// The server answered 5xx (or 429) on every attempt.
    ServerError,
    /// No answer on any attempt (connection error or timeout).
    Unreachable,
    /// Not attempted: an earlier record found the server unreachable.
    NotSent,
}

/// One record's outcome, with the scores and extras shown beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordOutcome {
    /// The record's orchestrator.
    pub orchestrator: String,
    /// The region it was posted with.
    pub region: String,
    /// What happened.
    pub delivery: Delivery,
    /// The last HTTP status, when the server answered.
    pub status: Option<u16>,
    /// Requests made for this record.
    pub attempts: u32,
    /// The server's answer (at most 4 KiB, trimmed), or the last connection error.
    pub message: String,
    /// The public scores, computed locally from the record.
    pub score: LeaderboardScore,
    /// Our extras (quality, price) for this record, when the run had them.
    pub extras: Option<LeaderboardExtras>,
    /// The record's failure reasons.
    pub errors: Vec<LeaderboardError>,
    /// For an AI record: what it measured and our score; `None` for a transcoding record.
    pub ai: Option<AiOutcome>,
}

/// What an AI record was about, and our score beside the public one.
#[derive(Debug, Clone, PartialEq)]
pub struct AiOutcome {
    /// The pipeline.
    pub pipeline: String,
    /// The model.
    pub model: String,
    /// Warm requests (false: cold starts).
    pub model_is_warm: bool,
    /// Our score of the (pipeline, model, orchestrator, region), when the run has it.
    pub ours: Option<AiOurScore>,
}

impl RecordOutcome {
    /// Whether the server accepted the record.
    pub fn accepted(&self) -> bool {
        self.delivery == Delivery::Accepted
    }
}

/// The outcome of [`publish`].
#[derive(Debug, Clone, PartialEq)]
pub struct PublishReport {
    /// The URL posted to.
    pub url: String,
    /// The secret's environment variable (for the hint on a refused HMAC).
    pub secret_env: String,
    /// One outcome per record, in file order.
    pub records: Vec<RecordOutcome>,
    /// Wall time spent.
    pub elapsed: Duration,
}

impl PublishReport {
    /// Records the server accepted.
    pub fn accepted(&self) -> usize {
        self.records.iter().filter(|r| r.accepted()).count()
    }

    /// Whether every record was accepted (the CLI exits 0 only then).
    pub fn all_accepted(&self) -> bool {
        self.accepted() == self.records.len()
    }

    /// AI records among [`records`](Self::records).
    pub fn ai_records(&self) -> usize {
        self.records.iter().filter(|r| r.ai.is_some()).count()
    }

    /// `"3 of 3 records accepted"`; with AI records, `"5 of 5 records accepted (3 transcoding,
    /// 2 AI)"`.
    pub fn headline(&self) -> String {
        let total = self.records.len();
        let ai = self.ai_records();
        let kinds = if ai == 0 {
            String::new()
        } else {
            format!(" ({} transcoding, {ai} AI)", total - ai)
        };
        format!(
            "{} of {total} record{} accepted{kinds}",
            self.accepted(),
            if total == 1 { "" } else { "s" }
        )
    }
}

impl fmt::Display for PublishReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Leaderboard {}: {} ({:.1} s)",
            self.url,
            self.headline(),
            self.elapsed.as_secs_f64()
        )?;
        for r in &self.records {
            let what = match &r.ai {
                Some(ai) => format!(
                    " {} {} {}",
                    ai.pipeline,
                    ai.model,
                    if ai.model_is_warm { "warm" } else { "cold" }
                ),
                None => String::new(),
            };
            writeln!(
                f,
                "  {} ({}){what}: {}",
                r.orchestrator,
                r.region,
                outcome_line(r, &self.secret_env)
            )?;
            writeln!(f, "      public score: {}", score_line(r))?;
            let ours = match &r.ai {
                Some(ai) => ai.ours.as_ref().map(ai_ours_line),
                None => extras_line(r.extras.as_ref()),
            };
            if let Some(ours) = ours {
                writeln!(f, "      ours: {ours}")?;
            }
            if !r.errors.is_empty() {
                writeln!(f, "      failures: {}", failures_line(&r.errors))?;
            }
        }
        Ok(())
    }
}

fn quoted_list(items: &[String]) -> String {
    items
        .iter()
        .map(|r| format!("{r:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn region_refusal(regions: &[String], accepted: &[String], listed_by: &str) -> String {
    let (noun, verb) = if regions.len() == 1 {
        ("region", "is not one")
    } else {
        ("regions", "are not ones")
    };
    format!(
        "{noun} {} {verb} the leaderboard accepts ({}; {listed_by})",
        quoted_list(regions),
        accepted.join(", ")
    )
}

fn region_hint(regions: &[String]) -> &'static str {
    if regions
        .iter()
        .any(|r| r == reports::aggregate::UNKNOWN_REGION)
    {
        "; the run recorded no region: pass --region CODE"
    } else {
        "; pass --region with an accepted code"
    }
}

fn status_text(status: Option<u16>) -> String {
    match status {
        Some(code) => {
            let reason = StatusCode::from_u16(code)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("");
            format!("{code} {reason}").trim_end().to_string()
        }
        None => "no answer".to_string(),
    }
}

/// `1 attempt`, `3 attempts`.
fn counted(n: u64, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

fn attempts_text(n: u32) -> String {
    counted(n.into(), "attempt")
}

fn outcome_line(r: &RecordOutcome, secret_env: &str) -> String {
    let status = status_text(r.status);
    let said = if r.message.is_empty() {
        String::new()
    } else {
        format!(": {}", r.message)
    };
    match r.delivery {
        Delivery::Accepted => format!("accepted ({status}, {})", attempts_text(r.attempts)),
        Delivery::Rejected if matches!(r.status, Some(401 | 403)) => format!(
            "rejected ({status}): the server did not accept the HMAC — check ${secret_env}{said}"
        ),
        Delivery::Rejected => format!("rejected ({status}){said}"),
        Delivery::ServerError => format!(
            "server error ({status}) on all {}{said}",
            attempts_text(r.attempts)
        ),
        Delivery::Unreachable => format!("unreachable after {}{said}", attempts_text(r.attempts)),
        Delivery::NotSent => "not sent: the server had become unreachable".to_string(),
    }
}

fn score_line(r: &RecordOutcome) -> String {
    let s = &r.score;
    if r.ai.is_some() {
        return format!(
            "{:.3} = {WEIGHT_SUCCESS} × success {:.3} + {WEIGHT_RTT} × round-trip score {:.3} \
             (of the node's records of this pipeline and model)",
            s.score, s.success_rate, s.round_trip_score
        );
    }
    format!(
        "{:.3} = success {:.3} × round-trip score {:.3}",
        s.score, s.success_rate, s.round_trip_score
    )
}

fn ai_ours_line(o: &AiOurScore) -> String {
    let p95 = match o.p95_latency_s {
        Some(s) => format!("p95 latency {s:.2} s"),
        None => "no successful request".to_string(),
    };
    format!(
        "{:.3} = success {:.3} × latency score {:.3} ({p95}; {}, {} cold)",
        o.score,
        o.success_rate,
        o.latency_score,
        counted(o.requests, "request"),
        o.cold_requests
    )
}

fn extras_line(extras: Option<&LeaderboardExtras>) -> Option<String> {
    let e = extras?;
    let mut parts = Vec::new();
    if let Some(q) = &e.quality {
        let mut s = format!(
            "VMAF {:.2} over {}",
            q.vmaf_mean,
            counted(q.samples, "segment")
        );
        if let (Some(reference), Some(deficit)) = (q.reference_vmaf_mean, q.vmaf_deficit) {
            let _ = write!(
                s,
                " (reference transcoder {reference:.2}, deficit {deficit:.2} over {} paired)",
                q.paired_samples
            );
        }
        parts.push(s);
    }
    if let Some(p) = &e.payments {
        let mut s = match p.effective_price_wei_per_pixel {
            Some(price) => format!("effective price {} wei/pixel", fmt_price(price)),
            None => "effective price unknown (tickets carry no pixel counts)".to_string(),
        };
        if let Some(quoted) = p.quoted_price_wei_per_pixel {
            let _ = write!(s, " (quoted {})", fmt_price(quoted));
        }
        let _ = write!(
            s,
            ", {} ({} winning)",
            counted(p.tickets, "ticket"),
            p.winning_tickets
        );
        if p.redemptions + p.failed_redemptions > 0 {
            let _ = write!(
                s,
                ", {} redeemed ({:.0} wei)",
                p.redemptions, p.redeemed_wei
            );
            if p.failed_redemptions > 0 {
                let _ = write!(s, ", {} failed redemptions", p.failed_redemptions);
            }
        }
        parts.push(s);
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

fn failures_line(errors: &[LeaderboardError]) -> String {
    errors
        .iter()
        .map(|e| {
            if e.message.is_empty() || e.message == e.error_code {
                format!("{} ×{}", e.error_code, e.count)
            } else {
                format!("{} ×{} ({})", e.error_code, e.count, e.message)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The shared secret; its `Debug` never shows the value.
struct Secret(Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Secret {
    fn from_env(name: &str) -> Result<Self, PublishError> {
        let missing = |why| PublishError::MissingSecret {
            name: name.to_string(),
            why,
        };
        match std::env::var(name) {
            Ok(v) if v.is_empty() => Err(missing("is empty")),
            Ok(v) => Ok(Secret(v.into_bytes())),
            Err(std::env::VarError::NotPresent) => Err(missing("is not set")),
            Err(std::env::VarError::NotUnicode(_)) => Err(missing("is not valid Unicode")),
        }
    }

    /// `hex(HMAC-SHA256(secret, body))`.
    fn sign(&self, body: &[u8]) -> String {
        // HMAC takes a key of any length; `new_from_slice` only fails for fixed-size-key MACs.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }
}

/// `hex(HMAC-SHA256(secret, body))`, the `Authorization` value the leaderboard checks.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    Secret(secret.to_vec()).sign(body)
}

/// The URL records are posted to: `endpoint` + `/api/post_stats` (kept as is when already there).
pub fn post_stats_url(endpoint: &str) -> Result<Url, PublishError> {
    api_url(endpoint, POST_STATS_PATH)
}

/// The URL of the region list: `endpoint` + `/api/regions` (an endpoint given with its
/// `/api/post_stats` route loses it first).
pub fn regions_url(endpoint: &str) -> Result<Url, PublishError> {
    api_url(endpoint, REGIONS_PATH)
}

/// `endpoint`'s base (without a trailing `/api/post_stats`) + `route`.
fn api_url(endpoint: &str, route: &str) -> Result<Url, PublishError> {
    let invalid = |why: String| PublishError::InvalidEndpoint {
        endpoint: endpoint.to_string(),
        why,
    };
    let mut url = Url::parse(endpoint.trim()).map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "scheme {:?} is not http or https",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host".into()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            "a base URL takes no query or fragment (the record goes in the body)".into(),
        ));
    }
    let path = url.path().trim_end_matches('/');
    let base = path
        .strip_suffix(POST_STATS_PATH)
        .unwrap_or(path)
        .to_string();
    url.set_path(&format!("{base}{route}"));
    Ok(url)
}

fn validate_region(region: &str) -> Result<(), PublishError> {
    let ok = !region.is_empty()
        && region.len() <= MAX_REGION_LEN
        && region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(PublishError::InvalidRegion {
            region: region.to_string(),
            why: format!(
                "a region code is 1 to {MAX_REGION_LEN} ASCII letters, digits, '-' or '_' \
                 (e.g. FRA, MDW)"
            ),
        })
    }
}

fn validate(opts: &PublishOptions) -> Result<Url, PublishError> {
    let url = post_stats_url(&opts.endpoint)?;
    if let Some(region) = &opts.region {
        validate_region(region)?;
    }
    if opts.attempts == 0 {
        return Err(PublishError::InvalidOption {
            name: "attempts",
            value: "0".into(),
            why: "at least 1".into(),
        });
    }
    if opts.timeout.is_zero() {
        return Err(PublishError::InvalidOption {
            name: "timeout",
            value: format!("{:?}", opts.timeout),
            why: "must be more than 0".into(),
        });
    }
    if let AcceptedRegions::List(codes) | AcceptedRegions::Server { fallback: codes } =
        &opts.regions
        && codes.is_empty()
    {
        return Err(PublishError::InvalidOption {
            name: "regions",
            value: "[]".into(),
            why: "at least one accepted region code".into(),
        });
    }
    if opts.secret_env.is_empty() || opts.secret_env.contains(['=', '\0']) {
        return Err(PublishError::InvalidOption {
            name: "secret_env",
            value: opts.secret_env.clone(),
            why: "the name of an environment variable".into(),
        });
    }
    Ok(url)
}

/// Reads `leaderboard.json` from a run directory.
pub fn read_leaderboard(run_dir: &Path) -> Result<Leaderboard, PublishError> {
    let path = run_dir.join(LEADERBOARD_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(PublishError::NoLeaderboard { path });
        }
        Err(source) => return Err(PublishError::Io { path, source }),
    };
    serde_json::from_slice(&bytes).map_err(|source| PublishError::Parse { path, source })
}

/// The error and all its causes, `: `-separated (reqwest's own message only names the URL).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Reads at most `limit` bytes of an answer; `Err` when not a byte of it could be read.
async fn read_bounded(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = limit - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if body.len() >= limit {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) if body.is_empty() => return Err(error_chain(&e)),
            Err(_) => break,
        }
    }
    Ok(body)
}

/// An answer's first [`MAX_ANSWER_BYTES`], as trimmed text.
fn answer_text(body: Result<&[u8], &str>) -> String {
    let body = match body {
        Ok(b) => b,
        Err(e) => return format!("(answer unreadable: {e})"),
    };
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX_ANSWER_BYTES)]);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if body.len() >= MAX_ANSWER_BYTES {
        format!("{text}…")
    } else {
        text
    }
}

fn retryable(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

struct Attempted {
    delivery: Delivery,
    status: Option<u16>,
    attempts: u32,
    /// The answer (at most 4 KiB, trimmed), or the last connection error.
    message: String,
    /// The answer's first `limit` bytes, when it was read.
    body: Vec<u8>,
}

/// Sends the request `request` builds, retrying connection errors, timeouts, 5xx and 429 as
/// `opts` says, and reads at most `limit` bytes of the last answer.
async fn send_with_retries(
    request: impl Fn() -> reqwest::RequestBuilder,
    opts: &PublishOptions,
    limit: usize,
) -> Attempted {
    let mut backoff = opts.backoff;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (delivery, status, message, body) = match request().send().await {
            Ok(response) => {
                let status = response.status();
                let read = read_bounded(response, limit.max(MAX_ANSWER_BYTES)).await;
                let message = answer_text(read.as_deref().map_err(String::as_str));
                let delivery = if status.is_success() {
                    Delivery::Accepted
                } else if retryable(status) {
                    Delivery::ServerError
                } else {
                    Delivery::Rejected
                };
                let mut body = read.unwrap_or_default();
                body.truncate(limit);
                (delivery, Some(status.as_u16()), message, body)
            }
            Err(e) if e.is_timeout() => (
                Delivery::Unreachable,
                None,
                format!(
                    "no answer within {:.1} s ({})",
                    opts.timeout.as_secs_f64(),
                    error_chain(&e)
                ),
                Vec::new(),
            ),
            Err(e) => (Delivery::Unreachable, None, error_chain(&e), Vec::new()),
        };
        let retry = matches!(delivery, Delivery::ServerError | Delivery::Unreachable);
        if !retry || attempt >= opts.attempts {
            return Attempted {
                delivery,
                status,
                attempts: attempt,
                message,
                body,
            };
        }
        tokio::time::sleep(backoff).await;
        backoff = backoff.saturating_mul(2);
    }
}

/// `GET /api/regions`'s answer (leaderboard-serverless after v1.0.0).
#[derive(serde::Deserialize)]
struct RegionList {
    regions: Vec<RegionEntry>,
}

#[derive(serde::Deserialize)]
struct RegionEntry {
    id: String,
}

/// The accepted region codes, and where they came from.
async fn accepted_regions(
    client: &reqwest::Client,
    opts: &PublishOptions,
    started: Instant,
) -> Result<(Vec<String>, String), PublishError> {
    let fallback = match &opts.regions {
        AcceptedRegions::List(codes) => {
            let listed_by = if codes.iter().eq(V1_REGIONS.iter()) {
                "leaderboard-serverless v1.0.0's fixed list"
            } else {
                "the accepted-regions option"
            };
            return Ok((codes.clone(), listed_by.into()));
        }
        AcceptedRegions::Server { fallback } => fallback,
    };
    let url = regions_url(&opts.endpoint)?;
    let done = send_with_retries(|| client.get(url.clone()), opts, MAX_REGIONS_BYTES).await;
    let why_not = match done.delivery {
        Delivery::Unreachable => {
            return Err(PublishError::Unreachable {
                url: url.to_string(),
                cause: done.message,
                attempts: done.attempts,
                elapsed: started.elapsed(),
            });
        }
        Delivery::Accepted => match serde_json::from_slice::<RegionList>(&done.body) {
            Ok(list) if !list.regions.is_empty() => {
                let mut codes: Vec<String> = Vec::new();
                for r in list.regions {
                    if !codes.contains(&r.id) {
                        codes.push(r.id);
                    }
                }
                return Ok((codes, format!("listed by {url}")));
            }
            Ok(_) => "an empty list".to_string(),
            Err(e) => format!("no region list ({e})"),
        },
        _ => status_text(done.status),
    };
    Ok((
        fallback.clone(),
        format!("the fallback list: {url} answered {why_not}"),
    ))
}

/// Refuses the records whose region (after `--region`) is not accepted, naming each once.
fn check_regions(
    regions: impl IntoIterator<Item = String>,
    accepted: Vec<String>,
    listed_by: String,
) -> Result<(), PublishError> {
    let mut refused: Vec<String> = Vec::new();
    for region in regions {
        if !accepted.contains(&region) && !refused.contains(&region) {
            refused.push(region);
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(PublishError::RegionNotAccepted {
            regions: refused,
            accepted,
            listed_by,
        })
    }
}

/// The record as posted: the `--region` override applied, the orchestrator as the leaderboard
/// keys it.
fn as_posted(original: &LeaderboardRecord, opts: &PublishOptions) -> LeaderboardRecord {
    let mut record = original.clone();
    if let Some(region) = &opts.region {
        record.region = region.clone();
    }
    record.orchestrator = orchestrator_id(&record.orchestrator).into_owned();
    record
}

/// An AI record as posted, like [`as_posted`].
fn ai_as_posted(original: &AiLeaderboardRecord, opts: &PublishOptions) -> AiLeaderboardRecord {
    let mut record = original.clone();
    if let Some(region) = &opts.region {
        record.region = region.clone();
    }
    record.orchestrator = orchestrator_id(&record.orchestrator).into_owned();
    record
}

/// The JSON body of a record.
fn body_of(
    record: &impl serde::Serialize,
    orchestrator: &str,
    region: &str,
) -> Result<Vec<u8>, PublishError> {
    serde_json::to_vec(record).map_err(|source| PublishError::Serialize {
        orchestrator: orchestrator.to_string(),
        region: region.to_string(),
        source,
    })
}

/// Every record of the board, transcoding then AI, as (body, outcome before posting).
fn to_post(
    board: &Leaderboard,
    opts: &PublishOptions,
) -> Result<Vec<(Vec<u8>, RecordOutcome)>, PublishError> {
    let mut out = Vec::with_capacity(board.records.len() + board.ai_records.len());
    for original in &board.records {
        let record = as_posted(original, opts);
        let extras = board
            .extras
            .get(&original.orchestrator)
            .and_then(|by_region| by_region.get(&original.region))
            .cloned();
        out.push((
            body_of(&record, &record.orchestrator, &record.region)?,
            RecordOutcome {
                orchestrator: record.orchestrator.clone(),
                region: record.region.clone(),
                delivery: Delivery::NotSent,
                status: None,
                attempts: 0,
                message: String::new(),
                score: score(&record),
                extras,
                errors: record.errors.clone(),
                ai: None,
            },
        ));
    }
    for original in &board.ai_records {
        let record = ai_as_posted(original, opts);
        let key = orchestrator_id(&original.orchestrator);
        let (pipeline, model) = (record.pipeline.clone(), record.model.clone());
        let public = board
            .ai_aggregated
            .get(&pipeline)
            .and_then(|m| m.get(&model))
            .and_then(|o| o.get(&original.orchestrator).or_else(|| o.get(&*key)))
            .and_then(|r| r.get(&original.region))
            .cloned();
        let median = board
            .ai_median_round_trip_time
            .get(&pipeline)
            .and_then(|m| m.get(&model))
            .copied()
            .unwrap_or(0.0);
        let ours = board
            .ai_ours
            .get(&pipeline)
            .and_then(|m| m.get(&model))
            .and_then(|o| o.get(&original.orchestrator).or_else(|| o.get(&*key)))
            .and_then(|r| r.get(&original.region))
            .cloned();
        out.push((
            body_of(&record, &record.orchestrator, &record.region)?,
            RecordOutcome {
                orchestrator: record.orchestrator.clone(),
                region: record.region.clone(),
                delivery: Delivery::NotSent,
                status: None,
                attempts: 0,
                message: String::new(),
                // An older file without `ai_aggregated`: this record alone against the median.
                score: public.unwrap_or_else(|| {
                    reports::leaderboard::ai::score_of(
                        record.success_rate,
                        record.round_trip_time,
                        median,
                    )
                }),
                extras: None,
                errors: record.errors.clone(),
                ai: Some(AiOutcome {
                    pipeline,
                    model,
                    model_is_warm: record.model_is_warm,
                    ours,
                }),
            },
        ));
    }
    Ok(out)
}

/// Posts every record of `run_dir/leaderboard.json` to `{endpoint}/api/post_stats`, signed with
/// the secret from the environment variable `opts.secret_env`.
///
/// Returns the per-record outcome even when some records were refused; returns an error only when
/// nothing could be attempted (bad options, no secret, no or damaged `leaderboard.json`, a region
/// the leaderboard does not accept) or when the server never answered
/// ([`PublishError::Unreachable`]).
pub async fn publish(run_dir: &Path, opts: &PublishOptions) -> Result<PublishReport, PublishError> {
    let url = validate(opts)?;
    let board = read_leaderboard(run_dir)?;
    if board.records.is_empty() && board.ai_records.is_empty() {
        return Err(PublishError::NoRecords {
            path: run_dir.join(LEADERBOARD_FILE),
        });
    }
    let secret = Secret::from_env(&opts.secret_env)?;
    let client = reqwest::Client::builder()
        .timeout(opts.timeout)
        .connect_timeout(opts.timeout)
        .user_agent(concat!("lpt-publish/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(PublishError::Client)?;

    let started = Instant::now();
    let (accepted, listed_by) = accepted_regions(&client, opts, started).await?;
    let to_post = to_post(&board, opts)?;
    check_regions(
        to_post.iter().map(|(_, o)| o.region.clone()),
        accepted,
        listed_by,
    )?;
    let mut outcomes = Vec::with_capacity(to_post.len());
    let mut server_gone = false;
    for (body, mut outcome) in to_post {
        if !server_gone {
            let signature = secret.sign(&body);
            let post = || {
                client
                    .post(url.clone())
                    .header(CONTENT_TYPE, "application/json")
                    .header(AUTHORIZATION, signature.as_str())
                    .body(body.clone())
            };
            let done = send_with_retries(post, opts, MAX_ANSWER_BYTES).await;
            if done.delivery == Delivery::Unreachable {
                if outcomes.is_empty() {
                    return Err(PublishError::Unreachable {
                        url: url.to_string(),
                        cause: done.message,
                        attempts: done.attempts,
                        elapsed: started.elapsed(),
                    });
                }
                server_gone = true;
            }
            outcome.delivery = done.delivery;
            outcome.status = done.status;
            outcome.attempts = done.attempts;
            outcome.message = done.message;
        }
        outcomes.push(outcome);
    }
    Ok(PublishReport {
        url: url.to_string(),
        secret_env: opts.secret_env.clone(),
        records: outcomes,
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_rfc_4231_vector() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn endpoint_gets_the_post_stats_path_once() {
        for (given, want) in [
            (
                "http://127.0.0.1:8080",
                "http://127.0.0.1:8080/api/post_stats",
            ),
            ("https://lb.example/", "https://lb.example/api/post_stats"),
            (
                "https://lb.example/v2/",
                "https://lb.example/v2/api/post_stats",
            ),
            (
                "https://lb.example/api/post_stats",
                "https://lb.example/api/post_stats",
            ),
        ] {
            assert_eq!(post_stats_url(given).unwrap().as_str(), want, "{given}");
        }
        for bad in [
            "ftp://lb.example",
            "lb.example",
            "https://lb.example/?x=1",
            "",
        ] {
            let e = post_stats_url(bad).unwrap_err();
            assert!(
                matches!(&e, PublishError::InvalidEndpoint { endpoint, .. } if endpoint == bad),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn accepted_regions_argument_reads_known_server_or_a_list() {
        assert_eq!(
            AcceptedRegions::from_arg("known").unwrap(),
            AcceptedRegions::known()
        );
        assert!(matches!(
            AcceptedRegions::from_arg("server").unwrap(),
            AcceptedRegions::Server { fallback } if fallback.len() == KNOWN_REGIONS.len()
        ));
        assert_eq!(
            AcceptedRegions::from_arg("LAX, FRA").unwrap(),
            AcceptedRegions::List(vec!["LAX".into(), "FRA".into()])
        );
        assert!(AcceptedRegions::from_arg(" , ").is_err());
        let err = AcceptedRegions::from_arg("LAX,bad region").unwrap_err();
        assert!(err.to_string().contains("\"bad region\""), "{err}");
        for code in V1_REGIONS {
            assert!(KNOWN_REGIONS.contains(&code));
        }
    }

    #[test]
    fn region_override_is_validated_with_the_value_named() {
        let mut opts = PublishOptions::new("http://127.0.0.1:1");
        for good in ["FRA", "us-east_1"] {
            opts.region = Some(good.into());
            assert!(validate(&opts).is_ok(), "{good}");
        }
        for bad in ["", "FR A", "FRA\n", &"X".repeat(33)] {
            opts.region = Some(bad.into());
            let e = validate(&opts).unwrap_err();
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
    }

    fn record(orchestrator: &str, region: &str) -> LeaderboardRecord {
        LeaderboardRecord {
            region: region.into(),
            orchestrator: orchestrator.into(),
            success_rate: 1.0,
            round_trip_time: 1.0,
            seg_duration: 2.0,
            segments_sent: 1,
            segments_received: 2,
            upload_time: 0.1,
            download_time: 0.1,
            transcode_time: 0.5,
            errors: Vec::new(),
            timestamp: 1_795_309_330,
        }
    }

    #[test]
    fn a_record_is_posted_with_its_orchestrator_address_in_lowercase() {
        let opts = PublishOptions::new("http://127.0.0.1:1");
        let posted = as_posted(
            &record("0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "FRA"),
            &opts,
        );
        assert_eq!(
            posted.orchestrator,
            "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
        );
        let overridden = as_posted(
            &record("0x70997970c51812dc3a010c7d01b50e0d17dc79c8", "unknown"),
            &PublishOptions {
                region: Some("SIN".into()),
                ..opts
            },
        );
        assert_eq!(overridden.region, "SIN");
    }

    #[test]
    fn a_region_v1_refuses_is_refused_before_posting_naming_it() {
        let v1 = || V1_REGIONS.map(String::from).to_vec();
        assert_eq!(AcceptedRegions::default(), AcceptedRegions::List(v1()));
        assert!(
            check_regions(
                ["FRA".into(), "SIN".into(), "FRA".into()],
                v1(),
                "v1".into()
            )
            .is_ok()
        );
        let err = check_regions(
            ["LAX".into(), "FRA".into(), "LAX".into()],
            v1(),
            "the accepted-regions option".into(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "region \"LAX\" is not one the leaderboard accepts (MDW, FRA, SIN; the \
             accepted-regions option): nothing was published; pass --region with an accepted code"
        );
        assert!(err.is_usage_error());
        let err = check_regions(["unknown".into(), "ams".into()], v1(), "v1".into()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "regions \"unknown\", \"ams\" are not ones the leaderboard accepts (MDW, FRA, SIN; \
             v1): nothing was published; the run recorded no region: pass --region CODE"
        );
        let none = PublishOptions {
            regions: AcceptedRegions::List(Vec::new()),
            ..PublishOptions::new("http://127.0.0.1:1")
        };
        assert!(validate(&none).unwrap_err().to_string().contains("regions"));
    }

    /// A server answering every request on its port with `status` and `body`, once per entry.
    fn answering(
        answers: Vec<(&'static str, &'static str)>,
    ) -> (String, std::thread::JoinHandle<Vec<String>>) {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let mut requests = Vec::new();
            for (status, body) in answers {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream);
                let mut first = String::new();
                reader.read_line(&mut first).unwrap();
                requests.push(first.trim_end().to_string());
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if line.trim_end().is_empty() {
                        break;
                    }
                }
                let reply = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                reader.get_mut().write_all(reply.as_bytes()).unwrap();
            }
            requests
        });
        (url, handle)
    }

    #[tokio::test]
    async fn accepted_regions_come_from_the_server_list_else_the_fallback() {
        let client = reqwest::Client::new();
        let server = |endpoint: String| PublishOptions {
            regions: AcceptedRegions::Server {
                fallback: V1_REGIONS.map(String::from).to_vec(),
            },
            backoff: Duration::from_millis(10),
            ..PublishOptions::new(endpoint)
        };
        // Master's shape: each region once per job type.
        let (url, handle) = answering(vec![(
            "200 OK",
            r#"{"regions":[{"id":"GLOBAL","name":"Global","type":"transcoding"},
               {"id":"LAX","name":"Los Angeles","type":"transcoding"},
               {"id":"LAX","name":"Los Angeles","type":"ai"}]}"#,
        )]);
        let (codes, from) = accepted_regions(
            &client,
            &server(format!("{url}/api/post_stats")),
            Instant::now(),
        )
        .await
        .unwrap();
        assert_eq!(codes, ["GLOBAL", "LAX"]);
        assert_eq!(from, format!("listed by {url}/api/regions"));
        assert_eq!(handle.join().unwrap(), ["GET /api/regions HTTP/1.1"]);

        // v1.0.0 has no such route.
        let (url, handle) = answering(vec![("404 Not Found", "404 page not found")]);
        let (codes, from) = accepted_regions(&client, &server(url.clone()), Instant::now())
            .await
            .unwrap();
        assert_eq!(codes, V1_REGIONS);
        assert_eq!(
            from,
            format!("the fallback list: {url}/api/regions answered 404 Not Found")
        );
        handle.join().unwrap();

        // A fixed list asks nothing.
        let fixed = PublishOptions {
            regions: AcceptedRegions::List(vec!["LOCAL".into()]),
            ..PublishOptions::new("http://127.0.0.1:9")
        };
        let (codes, _) = accepted_regions(&client, &fixed, Instant::now())
            .await
            .unwrap();
        assert_eq!(codes, ["LOCAL"]);
    }

    #[test]
    fn ai_records_are_posted_after_transcoding_ones_with_their_public_score() {
        use reports::leaderboard::ai::{self, AiLeaderboardRecord};
        let ai_record = |region: &str, warm: bool| AiLeaderboardRecord {
            region: region.into(),
            orchestrator: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8".into(),
            success_rate: 0.5,
            round_trip_time: 2.0,
            errors: vec![LeaderboardError {
                error_code: "http_status".into(),
                message: "503".into(),
                count: 1,
            }],
            timestamp: 1_795_309_330,
            model: "m".into(),
            model_is_warm: warm,
            pipeline: "text-to-image".into(),
            input_parameters: r#"{"prompt":"a bear"}"#.into(),
            response_payload: String::new(),
        };
        let mut board = Leaderboard {
            records: vec![record("0x1111", "FRA")],
            ai_records: vec![ai_record("FRA", false), ai_record("FRA", true)],
            ..Leaderboard::default()
        };
        (board.ai_aggregated, board.ai_median_round_trip_time) = ai::aggregate(&board.ai_records);
        let opts = PublishOptions {
            region: Some("SIN".into()),
            ..PublishOptions::new("http://127.0.0.1:1")
        };
        let posts = to_post(&board, &opts).unwrap();
        assert_eq!(posts.len(), 3);
        assert!(posts[0].1.ai.is_none());
        let (body, outcome) = &posts[2];
        let sent: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(
            sent["orchestrator"],
            "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
        );
        assert_eq!(sent["region"], "SIN");
        assert_eq!(sent["model_is_warm"], true);
        assert!(sent.get("response_payload").is_none(), "{sent}");
        assert_eq!(outcome.region, "SIN");
        assert_eq!(
            outcome.score,
            board.ai_aggregated["text-to-image"]["m"]["0x70997970C51812dc3A010C7d01b50e0d17dc79C8"]
                ["FRA"]
        );
        let ai = outcome.ai.as_ref().unwrap();
        assert_eq!(
            (ai.pipeline.as_str(), ai.model.as_str()),
            ("text-to-image", "m")
        );
        assert!(!posts[1].1.ai.as_ref().unwrap().model_is_warm);
        let report = PublishReport {
            url: "http://127.0.0.1:1/api/post_stats".into(),
            secret_env: DEFAULT_SECRET_ENV.into(),
            records: posts.into_iter().map(|(_, o)| o).collect(),
            elapsed: Duration::ZERO,
        };
        assert_eq!(
            report.headline(),
            "0 of 3 records accepted (1 transcoding, 2 AI)"
        );
        let text = report.to_string();
        assert!(
            text.contains("(SIN) text-to-image m warm: not sent"),
            "{text}"
        );
        assert!(
            text.contains(" = 0.65 × success 0.500 + 0.35 × round-trip score "),
            "{text}"
        );
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert_eq!(
            format!("{:?}", Secret(b"hunter2".to_vec())),
            "Secret(<redacted>)"
        );
    }
}
