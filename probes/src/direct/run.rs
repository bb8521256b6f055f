//! The run loop of a direct test (discovery → price → payment check → real-time sends) and of
//! many tests at once on one runtime.
//!
//! Design: the schedule is kept by one loop that sleeps until each segment's due time and hands
//! the segment to its own task, so a slow orchestrator makes segments overlap (as with a real
//! broadcaster) instead of pushing the schedule back; the lag is measured at hand-off. State the
//! segment tasks share — the latest `OrchestratorInfo` (fresh ticket params and auth token come
//! back with every result), the ticket sender's nonces, the stateful segment checker — sits in
//! one `Arc<Test>`. Decoding renditions is CPU work and runs on the blocking pool.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy::primitives::U256;
use alloy::providers::DynProvider;
use protocol::chain::{TicketBrokerClient, latest_l1_block, read_provider};
use protocol::client::{
    ClientError, ConnectStage, OrchestratorClient, SegmentRequest, check_reachable,
    orchestrator_address, segment_data,
};
use protocol::net::{self, OrchestratorInfo, TranscodedSegmentData, VideoProfile};
use protocol::sig::NodeKey;
use protocol::ticket::{PricePerPixel, SenderError, TicketParams, TicketSender, tickets_for_fee};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};

use super::{
    DirectRendition, DirectSegmentObservation, DirectSource, DirectTestConfig, DirectTestError,
    DirectTestSummary, FailureReason, SharedObserver, TestFacts,
};
use crate::checks::{CheckOptions, SegmentChecker};
use crate::clock::{UnixMs, now_unix_ms};
use crate::decode::decode_segment;
use crate::hls::PulledSegment;
use crate::observe::QualityObservation;
use crate::observe::{
    CheckObservation, ProbeObserver, PublishObservation, SegmentObservation, StallObservation,
};
use crate::quality::{QualitySample, QualitySampler, Submission};

/// Check verdicts that make a rendition wrong (the others are reported, not failed on).
const OUTPUT_CHECKS: &[&str] = &["decode", "codec", "resolution", "stamps"];

/// Runs one direct test of `config.uri` with `source`, reporting every segment to `observer`
/// as it completes and scoring sampled renditions with `quality` when given.
///
/// Errors only for the tester's own input (config, source, the sender's chain); everything the
/// orchestrator does is in the summary, with a [`FailureReason`] per failed segment.
pub async fn run_direct_test(
    config: DirectTestConfig,
    source: Arc<DirectSource>,
    observer: SharedObserver,
    quality: Option<Arc<QualitySampler>>,
) -> Result<DirectTestSummary, DirectTestError> {
    config.validate()?;
    let plan = plan(&source, config.duration);
    let payer = match &config.sender {
        Some(sender) => Some(Payer::connect(sender).await?),
        None => None,
    };
    let started_unix_ms = now_unix_ms();
    let mut test = Test {
        plan,
        source,
        observer,
        quality,
        client: None,
        key: match &config.sender {
            Some(s) => NodeKey::Account(s.signer.clone()),
            None => NodeKey::OffChain,
        },
        info: Mutex::new(OrchestratorInfo::default()),
        address: None,
        payer,
        paying: false,
        checker: checker(&config),
        quality_jobs: Mutex::new(Vec::new()),
        config,
    };
    let mut facts = TestFacts {
        started_unix_ms,
        ..TestFacts::default()
    };
    if let Err(reason) = test.start(&mut facts).await {
        let segments = test.fail_all(started_unix_ms, &reason);
        facts.finished_unix_ms = now_unix_ms();
        facts.orchestrator_address = test.address.clone();
        return Ok(DirectTestSummary::from_segments(
            &test.config,
            facts,
            segments,
            Vec::new(),
        ));
    }
    let test = Arc::new(test);
    let segments = test.clone().send_all().await;
    test.end_session().await;
    let jobs = std::mem::take(&mut *lock(&test.quality_jobs));
    let mut scores = Vec::new();
    for job in jobs {
        if let Ok(q) = job.await {
            scores.push(q);
        }
    }
    facts.finished_unix_ms = now_unix_ms();
    facts.orchestrator_address = test.address.clone();
    Ok(DirectTestSummary::from_segments(
        &test.config,
        facts,
        segments,
        scores,
    ))
}

/// Runs `configs` with at most `concurrency` tests at once on the current runtime; results in
/// the order of `configs`.
pub async fn run_direct_tests(
    configs: Vec<DirectTestConfig>,
    source: Arc<DirectSource>,
    observer: SharedObserver,
    quality: Option<Arc<QualitySampler>>,
    concurrency: usize,
) -> Vec<Result<DirectTestSummary, DirectTestError>> {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let count = configs.len();
    for (i, config) in configs.into_iter().enumerate() {
        let (permits, source, observer, quality) = (
            permits.clone(),
            source.clone(),
            observer.clone(),
            quality.clone(),
        );
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            (i, run_direct_test(config, source, observer, quality).await)
        });
    }
    let mut results: Vec<Option<Result<DirectTestSummary, DirectTestError>>> =
        (0..count).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((i, result)) => results[i] = Some(result),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    results
        .into_iter()
        .map(|r| r.expect("every test reported"))
        .collect()
}

/// One planned send.
#[derive(Debug, Clone, Copy)]
struct Planned {
    seq: u64,
    index: usize,
    offset: Duration,
}

/// The real-time schedule: the source's segments in order (looping) until `duration` of media.
fn plan(source: &DirectSource, duration: Option<Duration>) -> Vec<Planned> {
    let mut planned = Vec::new();
    let mut offset = Duration::ZERO;
    let n = source.segments.len();
    for seq in 0.. {
        let index = seq as usize % n;
        planned.push(Planned { seq, index, offset });
        offset += source.segments[index].duration;
        let done = match duration {
            None => planned.len() == n,
            Some(d) => offset >= d,
        };
        if done {
            break;
        }
    }
    planned
}

fn checker(config: &DirectTestConfig) -> SegmentChecker {
    let options = CheckOptions {
        // Stamps here prove the frames belong to this stream; how well they survived encoding
        // is the quality sampler's measure. A starved encode blurs many stamps (a 240p rendition
        // at a 20th of its bitrate kept 29 of 60 readable in CI), so only a rendition with
        // fewer than one readable stamp in five is wrong output.
        min_stamped_fraction: 0.2,
        resolutions: config
            .ladder
            .iter()
            .map(|p| (p.name.clone(), (p.width as u32, p.height as u32)))
            .collect(),
        ..CheckOptions::default()
    };
    SegmentChecker::new(&config.stream_key, None, options)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The broadcaster account's chain view for paying.
struct Payer {
    sender: Mutex<TicketSender>,
    provider: DynProvider,
    deposit: U256,
    last_block: AtomicU64,
}

impl Payer {
    async fn connect(sender: &super::DirectSender) -> Result<Self, DirectTestError> {
        let chain_error = |reason: String| DirectTestError::Chain {
            rpc_url: sender.rpc_url.clone(),
            reason,
        };
        let provider = read_provider(&sender.rpc_url).map_err(|e| chain_error(e.to_string()))?;
        let broker = TicketBrokerClient::new(provider.clone(), sender.ticket_broker);
        let address = sender.signer.address();
        let deadline = Duration::from_secs(10);
        let info = tokio::time::timeout(deadline, broker.sender_info(address))
            .await
            .map_err(|_| chain_error(format!("no answer within {deadline:?}")))?
            .map_err(|e| chain_error(e.to_string()))?;
        // Params expire in L1 blocks (the L2 block from eth_blockNumber on Arbitrum is far ahead).
        let block = tokio::time::timeout(deadline, latest_l1_block(&provider))
            .await
            .map_err(|_| chain_error(format!("no answer within {deadline:?}")))?
            .map_err(|e| chain_error(e.to_string()))?;
        Ok(Self {
            sender: Mutex::new(TicketSender::new(sender.signer.clone(), sender.limits)),
            provider,
            deposit: info.deposit,
            last_block: AtomicU64::new(block),
        })
    }

    /// The latest L1 block (what params expiry counts), or the last one known when the node does
    /// not answer quickly.
    async fn block(&self) -> u64 {
        if let Ok(Ok(block)) =
            tokio::time::timeout(Duration::from_secs(2), latest_l1_block(&self.provider)).await
        {
            self.last_block.fetch_max(block, Ordering::Relaxed);
        }
        self.last_block.load(Ordering::Relaxed)
    }
}

/// Output pixels the ladder makes of `duration` of media (what the orchestrator will bill).
fn ladder_pixels(ladder: &[VideoProfile], duration: Duration) -> u64 {
    ladder
        .iter()
        .map(|p| {
            let fps = if p.fps > 0 {
                f64::from(p.fps) / f64::from(p.fps_den.max(1))
            } else {
                30.0
            };
            let frames = (fps * duration.as_secs_f64()).ceil() as u64;
            (p.width.max(0) as u64) * (p.height.max(0) as u64) * frames
        })
        .sum()
}

fn ticket_params(info: &OrchestratorInfo) -> Result<TicketParams, FailureReason> {
    if info.ticket_params.is_none() {
        return Err(FailureReason::NoTicketParams);
    }
    TicketParams::from_orchestrator_info(info).map_err(|e| FailureReason::InvalidTicketParams {
        rule: e.to_string(),
    })
}

fn sender_reason(e: SenderError) -> FailureReason {
    FailureReason::InvalidTicketParams {
        rule: e.to_string(),
    }
}

/// A rendition's bytes and when they were fetched.
struct Downloaded {
    data: bytes::Bytes,
    started_unix_ms: UnixMs,
    finished_unix_ms: UnixMs,
}

/// A quality observation forwarder: the sampler reports to a `ProbeObserver`.
struct QualityForward(SharedObserver);

impl ProbeObserver for QualityForward {
    fn segment(&self, _: &SegmentObservation) {}
    fn check(&self, _: &CheckObservation) {}
    fn stall(&self, _: &StallObservation) {}
    fn publish_progress(&self, _: &PublishObservation) {}
    fn quality(&self, q: &QualityObservation) {
        self.0.quality(q);
    }
}

/// One test in progress.
struct Test {
    config: DirectTestConfig,
    plan: Vec<Planned>,
    source: Arc<DirectSource>,
    observer: SharedObserver,
    quality: Option<Arc<QualitySampler>>,
    client: Option<OrchestratorClient>,
    key: NodeKey,
    info: Mutex<OrchestratorInfo>,
    address: Option<String>,
    payer: Option<Payer>,
    paying: bool,
    checker: SegmentChecker,
    quality_jobs: Mutex<Vec<JoinHandle<QualityObservation>>>,
}

impl Test {
    /// Reachability, discovery, price cap and ticket params: the reason the test cannot start.
    async fn start(&mut self, facts: &mut TestFacts) -> Result<(), FailureReason> {
        let limits = self.config.limits;
        let client = OrchestratorClient::connect_with(&self.config.uri, limits).map_err(|e| {
            FailureReason::Unreachable {
                stage: "uri".into(),
                detail: e.to_string(),
            }
        })?;
        check_reachable(&self.config.uri, limits.connect_timeout)
            .await
            .map_err(|e| match e {
                ClientError::Unreachable { stage, reason, .. } => {
                    FailureReason::unreachable(stage, reason)
                }
                other => FailureReason::unreachable(ConnectStage::Tcp, other.to_string()),
            })?;
        let asked = Instant::now();
        let info = client
            .get_orchestrator(&self.key, None)
            .await
            .map_err(|e| FailureReason::from_discovery(&e))?;
        facts.discovery_ms = Some(ms(asked.elapsed()));
        self.address = orchestrator_address(&info).map(|a| a.to_string());
        let advertised =
            PricePerPixel::from_message(info.price_info.as_ref(), "OrchestratorInfo.price_info")
                .map_err(|e| FailureReason::DiscoveryRefused {
                    message: format!("unusable price: {e}"),
                })?;
        let per_pixel = advertised.price_per_unit as f64 / advertised.pixels_per_unit as f64;
        facts.price_wei_per_pixel = Some(per_pixel);
        if let Some(cap) = self.config.price_cap_wei_per_pixel
            && per_pixel > cap
        {
            return Err(FailureReason::PriceAboveCap {
                price_wei_per_pixel: per_pixel,
                cap_wei_per_pixel: cap,
                price_per_unit: advertised.price_per_unit as i64,
                pixels_per_unit: advertised.pixels_per_unit as i64,
            });
        }
        if advertised.price_per_unit > 0
            && let Some(payer) = &self.payer
        {
            let params = ticket_params(&info)?;
            let first = self.plan.first().map(|p| p.index).unwrap_or(0);
            let fee = params.price.fee(ladder_pixels(
                &self.config.ladder,
                self.source.segments[first].duration,
            ));
            let tickets = tickets_for_fee(fee, params.ev()).map_err(|e| {
                FailureReason::InvalidTicketParams {
                    rule: e.to_string(),
                }
            })?;
            let block = payer.block().await;
            lock(&payer.sender)
                .check_params(&params, tickets, block, payer.deposit)
                .map_err(|rule| FailureReason::InvalidTicketParams {
                    rule: rule.to_string(),
                })?;
            self.paying = true;
        }
        *lock(&self.info) = info;
        self.client = Some(client);
        Ok(())
    }

    /// One failed record per planned segment, all with `reason`.
    fn fail_all(
        &self,
        started_unix_ms: UnixMs,
        reason: &FailureReason,
    ) -> Vec<DirectSegmentObservation> {
        self.plan
            .iter()
            .map(|p| {
                let mut obs = self.observation(p, started_unix_ms + p.offset.as_millis() as i64);
                obs.reason = Some(reason.clone());
                self.observer.segment(&obs);
                obs
            })
            .collect()
    }

    fn observation(&self, p: &Planned, scheduled_unix_ms: UnixMs) -> DirectSegmentObservation {
        DirectSegmentObservation {
            orchestrator_uri: self.config.uri.clone(),
            orchestrator_address: self.address.clone(),
            region: self.config.region.clone(),
            stream_key: self.config.stream_key.clone(),
            seq: p.seq,
            duration_ms: ms(self.source.segments[p.index].duration),
            scheduled_unix_ms,
            sent_unix_ms: None,
            send_lag_ms: 0.0,
            ok: false,
            reason: None,
            upload_ms: None,
            transcode_ms: None,
            download_ms: None,
            round_trip_ms: None,
            bytes_sent: 0,
            tickets: 0,
            renditions: Vec::new(),
        }
    }

    /// Sends every planned segment on the real-time schedule; returns when all have finished.
    async fn send_all(self: Arc<Self>) -> Vec<DirectSegmentObservation> {
        let start = Instant::now();
        let start_unix = now_unix_ms();
        let mut tasks = JoinSet::new();
        for p in self.plan.clone() {
            let due = start + p.offset;
            tokio::time::sleep_until(due.into()).await;
            let lag = Instant::now().saturating_duration_since(due);
            let test = self.clone();
            let scheduled = start_unix + p.offset.as_millis() as i64;
            tasks.spawn(async move { test.send_segment(p, scheduled, ms(lag)).await });
        }
        let mut done = Vec::with_capacity(self.plan.len());
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(obs) => done.push(obs),
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        }
        done
    }

    async fn send_segment(
        self: Arc<Self>,
        p: Planned,
        scheduled_unix_ms: UnixMs,
        lag_ms: f64,
    ) -> DirectSegmentObservation {
        let mut obs = self.observation(&p, scheduled_unix_ms);
        obs.sent_unix_ms = Some(now_unix_ms());
        obs.send_lag_ms = lag_ms;
        let started = Instant::now();
        if let Err(reason) = self.exchange(&p, &mut obs, started).await {
            obs.reason = Some(reason);
        }
        obs.ok = obs.reason.is_none();
        self.observer.segment(&obs);
        obs
    }

    async fn exchange(
        &self,
        p: &Planned,
        obs: &mut DirectSegmentObservation,
        started: Instant,
    ) -> Result<(), FailureReason> {
        let client = self.client.as_ref().expect("started tests have a client");
        let segment = &self.source.segments[p.index];
        let duration_ms = segment.duration.as_millis() as u64;
        let info = lock(&self.info).clone();
        let seg = segment_data(
            &self.key,
            &info,
            self.config.stream_key.as_bytes(),
            p.seq as i64,
            &segment.data,
            duration_ms.min(i32::MAX as u64) as i32,
            &self.config.ladder,
        )
        .map_err(|e| FailureReason::UploadFailed {
            detail: format!("signing the segment: {e}"),
        })?;
        let payment = if self.paying {
            Some(self.pay(&info, segment.duration).await?)
        } else {
            None
        };
        obs.tickets = payment
            .as_ref()
            .map_or(0, |p| p.ticket_sender_params.len() as u64);
        obs.bytes_sent = segment.data.len() as u64;
        let reply = client
            .submit_segment(SegmentRequest::new(
                &seg,
                payment.as_ref(),
                segment.data.clone(),
                duration_ms,
            ))
            .await
            .map_err(|e| FailureReason::from_submit(&e))?;
        obs.upload_ms = Some(ms(reply.upload_time));
        obs.transcode_ms = Some(ms(reply.transcode_time));
        if let Some(fresh) = reply.info() {
            *lock(&self.info) = fresh.clone();
        }
        let renditions = reply
            .renditions()
            .map_err(|e| FailureReason::from_submit(&e))?;
        if renditions.len() != self.config.ladder.len() {
            return Err(FailureReason::WrongOutput {
                rendition: "ladder".into(),
                detail: format!(
                    "{} renditions for {} profiles",
                    renditions.len(),
                    self.config.ladder.len()
                ),
            });
        }
        // Renditions are fetched in parallel, as a broadcaster fetches them; the round trip
        // ends with the last byte, before this probe's own decoding and checks.
        let downloads = Instant::now();
        let fetched = futures_util::future::join_all(
            self.config
                .ladder
                .iter()
                .zip(renditions)
                .map(|(profile, rendition)| Self::download(client, profile, rendition)),
        )
        .await;
        obs.download_ms = Some(ms(downloads.elapsed()));
        obs.round_trip_ms = Some(ms(started.elapsed()));
        let mut first_failure = None;
        for (mut out, data) in fetched {
            if let Some(data) = data {
                self.check(p, segment.duration, &mut out, data).await;
            }
            if first_failure.is_none() {
                first_failure = out.reason.clone();
            }
            obs.renditions.push(out);
        }
        match first_failure {
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    }

    async fn pay(
        &self,
        info: &OrchestratorInfo,
        duration: Duration,
    ) -> Result<net::Payment, FailureReason> {
        let payer = self.payer.as_ref().expect("paying tests have a payer");
        let params = ticket_params(info)?;
        let fee = params
            .price
            .fee(ladder_pixels(&self.config.ladder, duration));
        let block = payer.block().await;
        lock(&payer.sender)
            .payment(&params, fee, block, payer.deposit)
            .map_err(sender_reason)
    }

    /// Downloads one rendition: its record so far and, when it arrived, its bytes.
    async fn download(
        client: &OrchestratorClient,
        profile: &VideoProfile,
        rendition: &TranscodedSegmentData,
    ) -> (DirectRendition, Option<Downloaded>) {
        let mut out = DirectRendition {
            name: profile.name.clone(),
            url: rendition.url.clone(),
            ok: false,
            reason: None,
            bytes: 0,
            download_ms: None,
            width: None,
            height: None,
            frames: None,
            pixels_reported: rendition.pixels,
            checks: Vec::new(),
        };
        let started_unix_ms = now_unix_ms();
        let started = Instant::now();
        match client.download(&rendition.url).await {
            Ok(data) => {
                out.download_ms = Some(ms(started.elapsed()));
                out.bytes = data.len() as u64;
                let downloaded = Downloaded {
                    data,
                    started_unix_ms,
                    finished_unix_ms: now_unix_ms(),
                };
                (out, Some(downloaded))
            }
            Err(e) => {
                out.reason = Some(FailureReason::from_download(&profile.name, &e));
                (out, None)
            }
        }
    }

    /// Decodes and checks a downloaded rendition; samples it for quality when it is good.
    async fn check(
        &self,
        p: &Planned,
        duration: Duration,
        out: &mut DirectRendition,
        downloaded: Downloaded,
    ) {
        let Downloaded {
            data,
            started_unix_ms: download_started,
            finished_unix_ms: finished,
        } = downloaded;
        let bytes = data.clone();
        let decoded = match tokio::task::spawn_blocking(move || decode_segment(&bytes)).await {
            Ok(decoded) => decoded,
            Err(e) => {
                out.reason = Some(FailureReason::WrongOutput {
                    rendition: out.name.clone(),
                    detail: format!("the decoder failed: {e}"),
                });
                return;
            }
        };
        let pulled = PulledSegment {
            rendition: out.name.clone(),
            seq: p.seq,
            url: out.url.clone(),
            extinf_secs: duration.as_secs_f64(),
            discontinuity: false,
            target_duration_secs: duration.as_secs_f64(),
            first_seen_unix_ms: finished,
            download_started_unix_ms: download_started,
            download_finished_unix_ms: finished,
            http_status: None,
            content_type: None,
            size: data.len() as u64,
            body: Ok(bytes::Bytes::new()),
            init_size: 0,
            byte_range: None,
        };
        let checked = self.checker.check(&pulled, Some(&decoded));
        if let Some(media) = &checked.observation.media {
            out.width = Some(media.decoded.width);
            out.height = Some(media.decoded.height);
            out.frames = Some(media.decoded.frames);
        }
        let failed: Vec<String> = checked
            .checks
            .iter()
            .filter(|c| !c.passed && OUTPUT_CHECKS.contains(&c.check.as_str()))
            .map(|c| format!("{}: {}", c.check, c.reason))
            .collect();
        out.checks = checked.checks;
        if !failed.is_empty() {
            out.reason = Some(FailureReason::WrongOutput {
                rendition: out.name.clone(),
                detail: failed.join("; "),
            });
            return;
        }
        out.ok = true;
        if let Some(sampler) = &self.quality {
            let media = checked.observation.media.as_ref();
            let sample = QualitySample {
                stream_key: self.config.stream_key.clone(),
                rendition: out.name.clone(),
                seq: p.seq,
                first_stamp_frame: media.and_then(|m| m.first_stamp_frame),
                last_stamp_frame: media.and_then(|m| m.last_stamp_frame),
                data,
            };
            let forward: Arc<dyn ProbeObserver> = Arc::new(QualityForward(self.observer.clone()));
            if let Submission::Scheduled(job) = sampler.submit(sample, forward) {
                lock(&self.quality_jobs).push(job);
            }
        }
    }

    /// Ends the session so the orchestrator frees its slot (best effort, bounded).
    async fn end_session(&self) {
        let token = lock(&self.info).auth_token.clone();
        if let (Some(client), Some(token)) = (&self.client, token) {
            let _ = client.end_session(token).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::direct::DirectSegment;

    fn source(durations_ms: &[u64]) -> DirectSource {
        DirectSource::new(
            7,
            durations_ms
                .iter()
                .map(|&ms| DirectSegment {
                    data: bytes::Bytes::from_static(b"ts"),
                    duration: Duration::from_millis(ms),
                })
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn schedule_is_the_running_sum_of_durations_and_loops_the_source() {
        let s = source(&[2000, 1500, 2500]);
        let once: Vec<_> = plan(&s, None)
            .iter()
            .map(|p| (p.seq, p.index, p.offset.as_millis()))
            .collect();
        assert_eq!(once, vec![(0, 0, 0), (1, 1, 2000), (2, 2, 3500)]);
        // 9 s of media: the source (6 s) then two more segments, rounded up to whole segments.
        let long: Vec<_> = plan(&s, Some(Duration::from_secs(9)))
            .iter()
            .map(|p| (p.seq, p.index, p.offset.as_millis()))
            .collect();
        assert_eq!(
            long,
            vec![
                (0, 0, 0),
                (1, 1, 2000),
                (2, 2, 3500),
                (3, 0, 6000),
                (4, 1, 8000)
            ]
        );
    }

    #[test]
    fn fee_estimate_counts_every_output_pixel() {
        let ladder = vec![
            VideoProfile {
                name: "a".into(),
                width: 426,
                height: 240,
                fps: 30,
                fps_den: 1,
                ..Default::default()
            },
            VideoProfile {
                name: "b".into(),
                width: 256,
                height: 144,
                fps: 0,
                ..Default::default()
            },
        ];
        assert_eq!(
            ladder_pixels(&ladder, Duration::from_secs(2)),
            426 * 240 * 60 + 256 * 144 * 60
        );
    }
}
