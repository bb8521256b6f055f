// Package golivepeer checks lpt's wire bytes, signatures and tickets with go-livepeer's own
// packages (`net`, `pm`, `crypto`), pinned in go.mod.
//
// lpt's Rust test `protocol/tests/integration/go_livepeer.rs` writes what our crates produce to
// $LPT_INTEROP_DIR/ours.json, runs `go test` here, and reads back what go-livepeer produced from
// $LPT_INTEROP_DIR/theirs.json to check it with our own decoders and ticket recipient. Run alone
// (without that variable) the test fails with the command to use, never skips.
//
// go-livepeer's `core` and `common` packages link lpms, whose cgo needs Livepeer's FFmpeg fork
// (FFmpeg >= 6 plus fork-only filters); they do not build against Debian 12's FFmpeg 5.1, so the
// segment flatten is pinned by go-livepeer's own vector (core/stream_test.go TestSegmentFlatten)
// in protocol/src/sig.rs, and only its signature is checked here.
package golivepeer

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"os"
	"path/filepath"
	"testing"

	"github.com/ethereum/go-ethereum/accounts"
	ethcommon "github.com/ethereum/go-ethereum/common"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	lpcrypto "github.com/livepeer/go-livepeer/crypto"
	"github.com/livepeer/go-livepeer/net"
	"github.com/livepeer/go-livepeer/pm"
	"google.golang.org/protobuf/proto"
)

type encoded struct {
	Name      string `json:"name"`
	Hex       string `json:"hex"`
	KnownToGo bool   `json:"known_to_go"`
}

type signed struct {
	Signer  string   `json:"signer"`
	Message string   `json:"message"`
	Parts   []string `json:"parts,omitempty"`
	Sig     string   `json:"sig"`
}

type paymentVector struct {
	Hex     string `json:"hex"`
	Winning []bool `json:"winning"`
}

type ticketVectors struct {
	Recipient       string          `json:"recipient"`
	Secret          string          `json:"secret"`
	LastSeenL1Block int64           `json:"last_seen_l1_block"`
	Payments        []paymentVector `json:"payments"`
	GoSenderKey     string          `json:"go_sender_key"`
	GoTickets       int             `json:"go_tickets"`
}

type ours struct {
	Messages            []encoded     `json:"messages"`
	OrchestratorRequest signed        `json:"orchestrator_request"`
	Segment             signed        `json:"segment"`
	TranscodeResult     signed        `json:"transcode_result"`
	Ping                signed        `json:"ping"`
	Tickets             ticketVectors `json:"tickets"`
}

type theirs struct {
	Messages  []encoded `json:"messages"`
	Reencoded []encoded `json:"reencoded"`
	Payment   string    `json:"payment"`
}

var messageTypes = map[string]func() proto.Message{
	"PingPong":                     func() proto.Message { return &net.PingPong{} },
	"EndTranscodingSessionRequest": func() proto.Message { return &net.EndTranscodingSessionRequest{} },
	"OrchestratorRequest":          func() proto.Message { return &net.OrchestratorRequest{} },
	"OrchestratorInfo":             func() proto.Message { return &net.OrchestratorInfo{} },
	"PriceInfo":                    func() proto.Message { return &net.PriceInfo{} },
	"Capabilities":                 func() proto.Message { return &net.Capabilities{} },
	"AuthToken":                    func() proto.Message { return &net.AuthToken{} },
	"SegData":                      func() proto.Message { return &net.SegData{} },
	"VideoProfile":                 func() proto.Message { return &net.VideoProfile{} },
	"TranscodeResult":              func() proto.Message { return &net.TranscodeResult{} },
	"TranscodeData":                func() proto.Message { return &net.TranscodeData{} },
	"RegisterRequest":              func() proto.Message { return &net.RegisterRequest{} },
	"NotifySegment":                func() proto.Message { return &net.NotifySegment{} },
	"TicketParams":                 func() proto.Message { return &net.TicketParams{} },
	"TicketSenderParams":           func() proto.Message { return &net.TicketSenderParams{} },
	"TicketExpirationParams":       func() proto.Message { return &net.TicketExpirationParams{} },
	"Payment":                      func() proto.Message { return &net.Payment{} },
}

func interopDir(t *testing.T) string {
	dir := os.Getenv("LPT_INTEROP_DIR")
	if dir == "" {
		t.Fatal("LPT_INTEROP_DIR is not set: run `cargo test -p protocol --profile ci --test integration go_livepeer`, which writes the vectors and runs this test")
	}
	return dir
}

func load(t *testing.T) ours {
	raw, err := os.ReadFile(filepath.Join(interopDir(t), "ours.json"))
	if err != nil {
		t.Fatalf("reading lpt's vectors: %v", err)
	}
	var v ours
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("parsing lpt's vectors: %v", err)
	}
	return v
}

func unhex(t *testing.T, what, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("%s: bad hex: %v", what, err)
	}
	return b
}

var deterministic = proto.MarshalOptions{Deterministic: true}

// Every message lpt sends decodes with go-livepeer's `net` types into the same message after a
// go-livepeer re-encoding, and that re-encoding goes back to lpt (theirs.json "reencoded"), whose
// Rust half checks that decoding it gives back lpt's original bytes: the round trip lpt → go →
// lpt keeps every byte. The bytes themselves may be ordered differently in between: go-livepeer
// writes oneof fields after the others and a map entry's zero key explicitly, both valid
// protobuf. Fields newer than the pinned go-livepeer are kept as unknown fields, never an error.
func TestOurMessagesDecodeAndReencodeWithGoLivepeerNet(t *testing.T) {
	v := load(t)
	if len(v.Messages) < len(messageTypes) {
		t.Fatalf("lpt sent %d message vectors, want at least %d", len(v.Messages), len(messageTypes))
	}
	seen := map[string]bool{}
	var reencoded []encoded
	for _, m := range v.Messages {
		seen[m.Name] = true
		newMsg, ok := messageTypes[m.Name]
		if !ok {
			t.Errorf("%s: no go-livepeer type of that name", m.Name)
			continue
		}
		in := unhex(t, m.Name, m.Hex)
		msg := newMsg()
		if err := proto.Unmarshal(in, msg); err != nil {
			t.Errorf("%s: go-livepeer cannot decode lpt's bytes: %v", m.Name, err)
			continue
		}
		out, err := deterministic.Marshal(msg)
		if err != nil {
			t.Errorf("%s: re-encode: %v", m.Name, err)
			continue
		}
		again := newMsg()
		if err := proto.Unmarshal(out, again); err != nil || !proto.Equal(msg, again) {
			t.Errorf("%s: go-livepeer's own re-encoding does not decode to the same message (%v)", m.Name, err)
		}
		unknown := msg.ProtoReflect().GetUnknown()
		if m.KnownToGo && len(unknown) != 0 {
			t.Errorf("%s: go-livepeer found unknown fields %x in a message it should know whole", m.Name, unknown)
		}
		if !m.KnownToGo && len(unknown) == 0 {
			t.Errorf("%s: lpt says it carries fields newer than go-livepeer, but none were kept as unknown", m.Name)
		}
		reencoded = append(reencoded, encoded{Name: m.Name, Hex: hex.EncodeToString(out)})
	}
	for name := range messageTypes {
		if !seen[name] {
			t.Errorf("lpt sent no %s", name)
		}
	}
	write(t, func(th *theirs) { th.Reencoded = reencoded })
}

// The messages of TestGoLivepeerMessagesForLpt, decoded and re-encoded by lpt (back.json),
// decode and re-encode here to go-livepeer's original bytes: go → lpt → go keeps every byte.
func TestGoMessagesComeBackWhole(t *testing.T) {
	dir := interopDir(t)
	raw, err := os.ReadFile(filepath.Join(dir, "back.json"))
	if err != nil {
		t.Fatalf("back.json, which lpt writes after the first pass, cannot be read (%v): run `cargo test -p protocol --profile ci --test integration go_livepeer`", err)
	}
	var back []encoded
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	originals := map[string][]byte{}
	for name, m := range goMessages() {
		b, err := deterministic.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		originals[name] = b
	}
	if len(back) != len(originals) {
		t.Fatalf("lpt sent back %d messages, want %d", len(back), len(originals))
	}
	for _, m := range back {
		original, ok := originals[m.Name]
		if !ok {
			t.Errorf("%s: not one of go-livepeer's messages", m.Name)
			continue
		}
		msg := goMessages()[m.Name]
		proto.Reset(msg)
		if err := proto.Unmarshal(unhex(t, m.Name, m.Hex), msg); err != nil {
			t.Errorf("%s: go-livepeer cannot decode lpt's re-encoding: %v", m.Name, err)
			continue
		}
		out, err := deterministic.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, original) {
			t.Errorf("%s: go → lpt → go changed the bytes\n orig: %x\n back: %x", m.Name, original, out)
		}
	}
}

func verify(t *testing.T, what string, s signed) {
	t.Helper()
	addr := ethcommon.HexToAddress(s.Signer)
	msg := unhex(t, what, s.Message)
	sig := unhex(t, what+" sig", s.Sig)
	// go-livepeer's orchestrator.VerifySig: crypto.VerifySig(addr, keccak256(msg), sig).
	if !lpcrypto.VerifySig(addr, ethcrypto.Keccak256(msg), sig) {
		t.Errorf("%s: go-livepeer's VerifySig refuses lpt's signature by %s", what, addr.Hex())
	}
	other := ethcommon.HexToAddress("0x00000000000000000000000000000000000000aa")
	if lpcrypto.VerifySig(other, ethcrypto.Keccak256(msg), sig) {
		t.Errorf("%s: VerifySig accepted the signature for another address", what)
	}
}

func TestOurSignaturesVerifyWithGoLivepeerCrypto(t *testing.T) {
	v := load(t)
	// GetOrchestrator: O checks VerifySig(addr, addr.Hex(), sig) (server/rpc.go).
	req := v.OrchestratorRequest
	if got := ethcommon.HexToAddress(req.Signer).Hex(); string(unhex(t, "request", req.Message)) != got {
		t.Errorf("orchestrator request signs %q, go-livepeer signs the EIP-55 address %q", unhex(t, "request", req.Message), got)
	}
	verify(t, "orchestrator request", req)

	// Segment: O checks VerifySig(broadcaster, md.Flatten(), segData.Sig) with the flatten over
	// the SegData it decoded.
	seg := v.Segment
	var segData net.SegData
	if err := proto.Unmarshal(unhex(t, "segment", seg.Parts[0]), &segData); err != nil {
		t.Fatalf("SegData: %v", err)
	}
	if !bytes.Equal(segData.Sig, unhex(t, "segment sig", seg.Sig)) {
		t.Errorf("SegData.sig differs from the vector's signature")
	}
	flat := unhex(t, "segment flatten", seg.Message)
	if !bytes.HasPrefix(flat, segData.ManifestId) ||
		!bytes.Equal(flat[len(segData.ManifestId):len(segData.ManifestId)+32], ethcommon.LeftPadBytes(big.NewInt(segData.Seq).Bytes(), 32)) ||
		!bytes.Equal(flat[len(segData.ManifestId)+32:len(segData.ManifestId)+64], segData.Hash) {
		t.Errorf("flatten does not start with the decoded manifest ID, seq and hash")
	}
	verify(t, "segment", seg)

	// Transcode result: B checks VerifySig(O, keccak(keccak(r1) ‖ … ‖ keccak(rn)), sig).
	tr := v.TranscodeResult
	var concat []byte
	for _, part := range tr.Parts {
		concat = append(concat, ethcrypto.Keccak256(unhex(t, "rendition", part))...)
	}
	if !bytes.Equal(concat, unhex(t, "transcode result", tr.Message)) {
		t.Errorf("transcode result message is not the concatenated rendition hashes")
	}
	verify(t, "transcode result", tr)

	// Ping: B checks VerifySig(O, string(ping), pong.Value) (server/rpc.go ping check).
	verify(t, "ping", v.Ping)
}

// The pieces of a go-livepeer orchestrator that ReceiveTicket consults besides pm itself.
type senderMonitor struct{ pm.SenderMonitor }

func (senderMonitor) ValidateSender(ethcommon.Address) error { return nil }

type timeManager struct {
	pm.TimeManager
	l1Block int64
}

func (m timeManager) LastSeenL1Block() *big.Int            { return big.NewInt(m.l1Block) }
func (m timeManager) LastInitializedRound() *big.Int       { return big.NewInt(0) }
func (m timeManager) LastInitializedL1BlockHash() [32]byte { return [32]byte{} }

type senderManager struct{ pm.SenderManager }

func (senderManager) GetSenderInfo(ethcommon.Address) (*pm.SenderInfo, error) {
	huge := new(big.Int).Lsh(big.NewInt(1), 120)
	return &pm.SenderInfo{
		Deposit:       huge,
		WithdrawRound: big.NewInt(0),
		Reserve:       &pm.ReserveInfo{FundsRemaining: huge, ClaimedInCurrentRound: big.NewInt(0)},
	}, nil
}

// keySigner signs as go-livepeer's account manager does: personal_sign, v in {27, 28}.
type keySigner struct{ key *ecdsa.PrivateKey }

func (s keySigner) Sign(msg []byte) ([]byte, error) {
	sig, err := ethcrypto.Sign(accounts.TextHash(msg), s.key)
	if err != nil {
		return nil, err
	}
	sig[64] += 27
	return sig, nil
}

func (s keySigner) Account() accounts.Account {
	return accounts.Account{Address: ethcrypto.PubkeyToAddress(s.key.PublicKey)}
}

// pmParams is go-livepeer's pm.TicketParams for wire params at a price (server/rpc.go
// pmTicketParams, with the price the orchestrator quoted).
func pmParams(tp *net.TicketParams, price *net.PriceInfo) *pm.TicketParams {
	return &pm.TicketParams{
		Recipient:         ethcommon.BytesToAddress(tp.Recipient),
		FaceValue:         new(big.Int).SetBytes(tp.FaceValue),
		WinProb:           new(big.Int).SetBytes(tp.WinProb),
		RecipientRandHash: ethcommon.BytesToHash(tp.RecipientRandHash),
		Seed:              new(big.Int).SetBytes(tp.Seed),
		ExpirationBlock:   new(big.Int).SetBytes(tp.ExpirationBlock),
		PricePerPixel:     big.NewRat(price.PricePerUnit, price.PixelsPerUnit),
		ExpirationParams: &pm.TicketExpirationParams{
			CreationRound:          tp.ExpirationParams.GetCreationRound(),
			CreationRoundBlockHash: ethcommon.BytesToHash(tp.ExpirationParams.GetCreationRoundBlockHash()),
		},
	}
}

// ticketParams builds a Payment's params as go-livepeer's orchestrator.ProcessPayment does: the
// payment-level expiration params are the ones the tickets carry.
func ticketParams(p *net.Payment) (*pm.TicketParams, *pm.TicketExpirationParams) {
	return pmParams(p.TicketParams, p.ExpectedPrice), &pm.TicketExpirationParams{
		CreationRound:          p.ExpirationParams.CreationRound,
		CreationRoundBlockHash: ethcommon.BytesToHash(p.ExpirationParams.CreationRoundBlockHash),
	}
}

// Tickets from lpt's sender (the code the broadcaster and the direct probe pay with), against
// params from lpt's recipient: go-livepeer's recipient, holding the same secret, accepts every
// one (recipientRand, signature, nonce, expiry) and agrees on which won; a replayed nonce and an
// expired view are refused. Then go-livepeer's sender pays against the same params, for lpt's
// recipient to check in the Rust half.
func TestTicketsCrossGoLivepeerPm(t *testing.T) {
	v := load(t)
	tv := v.Tickets
	var secret [32]byte
	copy(secret[:], unhex(t, "secret", tv.Secret))
	recipientAddr := ethcommon.HexToAddress(tv.Recipient)
	tm := timeManager{l1Block: tv.LastSeenL1Block}
	validator := pm.NewValidator(&pm.DefaultSigVerifier{}, tm)
	recipient := pm.NewRecipientWithSecret(recipientAddr, nil, validator, nil, senderMonitor{}, tm, secret, pm.TicketParamsConfig{})

	if len(tv.Payments) == 0 {
		t.Fatal("lpt sent no payments")
	}
	var last *net.Payment
	total, winners := 0, 0
	for i, pv := range tv.Payments {
		var p net.Payment
		if err := proto.Unmarshal(unhex(t, "payment", pv.Hex), &p); err != nil {
			t.Fatalf("payment %d: %v", i, err)
		}
		last = &p
		params, expiration := ticketParams(&p)
		if len(p.TicketSenderParams) != len(pv.Winning) || len(p.TicketSenderParams) == 0 {
			t.Fatalf("payment %d: %d tickets, %d expected outcomes", i, len(p.TicketSenderParams), len(pv.Winning))
		}
		for j, tsp := range p.TicketSenderParams {
			ticket := pm.NewTicket(params, expiration, ethcommon.BytesToAddress(p.Sender), tsp.SenderNonce)
			_, won, err := recipient.ReceiveTicket(ticket, tsp.Sig, params.Seed)
			if err != nil {
				t.Errorf("payment %d ticket %d (nonce %d): go-livepeer's recipient refuses it: %v", i, j, tsp.SenderNonce, err)
				continue
			}
			if won != pv.Winning[j] {
				t.Errorf("payment %d ticket %d: go-livepeer says won=%v, lpt says %v", i, j, won, pv.Winning[j])
			}
			total++
			if won {
				winners++
			}
		}
	}
	t.Logf("go-livepeer's recipient accepted %d tickets from lpt's sender, %d winning", total, winners)

	// A replayed ticket and params past their expiry are refused, so the acceptance above means
	// something.
	params, expiration := ticketParams(last)
	first := last.TicketSenderParams[0]
	replay := pm.NewTicket(params, expiration, ethcommon.BytesToAddress(last.Sender), first.SenderNonce)
	if _, _, err := recipient.ReceiveTicket(replay, first.Sig, params.Seed); err == nil {
		t.Errorf("go-livepeer's recipient accepted a replayed nonce")
	}
	late := timeManager{l1Block: params.ExpirationBlock.Int64()}
	lateRecipient := pm.NewRecipientWithSecret(recipientAddr, nil, pm.NewValidator(&pm.DefaultSigVerifier{}, late), nil, senderMonitor{}, late, secret, pm.TicketParamsConfig{})
	if _, _, err := lateRecipient.ReceiveTicket(replay, first.Sig, params.Seed); err != pm.ErrTicketParamsExpired {
		t.Errorf("expired params: got %v, want %v", err, pm.ErrTicketParamsExpired)
	}

	// go-livepeer's sender pays against lpt's params.
	key, err := ethcrypto.HexToECDSA(tv.GoSenderKey)
	if err != nil {
		t.Fatalf("go sender key: %v", err)
	}
	maxEV := new(big.Rat).SetInt(new(big.Int).Lsh(big.NewInt(1), 200))
	sender := pm.NewSender(keySigner{key}, tm, senderManager{}, maxEV, maxEV, 1)
	params.ExpirationParams = expiration
	session := sender.StartSession(*params)
	batch, err := sender.CreateTicketBatch(session, tv.GoTickets)
	if err != nil {
		t.Fatalf("go-livepeer's sender refuses lpt's params: %v", err)
	}
	payment := goPayment(batch, last.ExpectedPrice)
	out, err := deterministic.Marshal(payment)
	if err != nil {
		t.Fatal(err)
	}
	write(t, func(th *theirs) { th.Payment = hex.EncodeToString(out) })
}

// Messages built by go-livepeer's `net` types with every field it knows set, for lpt's decoders.
func TestGoLivepeerMessagesForLpt(t *testing.T) {
	var list []encoded
	for name, m := range goMessages() {
		b, err := deterministic.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		list = append(list, encoded{Name: name, Hex: hex.EncodeToString(b)})
	}
	write(t, func(th *theirs) { th.Messages = list })
}

// goMessages builds, afresh on each call, one message of each kind go-livepeer's nodes send.
func goMessages() map[string]proto.Message {
	profile := &net.VideoProfile{Name: "P360p30fps16x9", Width: 640, Height: 360, Bitrate: 1200000, Fps: 30, FpsDen: 1, Format: net.VideoProfile_MPEGTS, Profile: net.VideoProfile_H264_HIGH, Gop: 2000, Encoder: net.VideoProfile_H264, ColorDepth: 8, ChromaFormat: net.VideoProfile_CHROMA_420, Quality: 0}
	caps := &net.Capabilities{Bitstring: []uint64{0x1fff, 1 << 3}, Mandatories: []uint64{1 << 12}, Capacities: map[uint32]uint32{0: 4, 1: 4, 12: 2}, Version: "0.7.9", Constraints: &net.Capabilities_Constraints{MinVersion: "0.7.0"}}
	auth := &net.AuthToken{Token: bytes.Repeat([]byte{7}, 32), SessionId: "session-1", Expiration: 1_800_000_000}
	params := &net.TicketParams{Recipient: bytes.Repeat([]byte{0x11}, 20), FaceValue: []byte{0x0d, 0xe0, 0xb6, 0xb3}, WinProb: bytes.Repeat([]byte{0xff}, 30), RecipientRandHash: bytes.Repeat([]byte{0x22}, 32), Seed: bytes.Repeat([]byte{0x33}, 32), ExpirationBlock: []byte{0x01, 0x00}, ExpirationParams: &net.TicketExpirationParams{CreationRound: 5, CreationRoundBlockHash: bytes.Repeat([]byte{0x44}, 32)}}
	price := &net.PriceInfo{PricePerUnit: 1000, PixelsPerUnit: 1}
	info := &net.OrchestratorInfo{Transcoder: "https://127.0.0.1:8935", TicketParams: params, PriceInfo: price, Address: bytes.Repeat([]byte{0x11}, 20), Capabilities: caps, AuthToken: auth, Storage: []*net.OSInfo{{StorageType: net.OSInfo_DIRECT}}}
	seg := &net.SegData{ManifestId: []byte("manifest"), Seq: 42, Hash: bytes.Repeat([]byte{0x55}, 32), Profiles: []byte("invalid"), Sig: bytes.Repeat([]byte{0x66}, 65), Duration: 2000, Capabilities: caps, AuthToken: auth, CalcPerceptualHash: true, FullProfiles3: []*net.VideoProfile{profile}, SegmentParameters: &net.SegParameters{From: 100, To: 1900}, ForceSessionReinit: true}
	return map[string]proto.Message{
		"PingPong":                     &net.PingPong{Value: bytes.Repeat([]byte{9}, 32)},
		"EndTranscodingSessionRequest": &net.EndTranscodingSessionRequest{AuthToken: auth},
		"OrchestratorRequest":          &net.OrchestratorRequest{Address: bytes.Repeat([]byte{0x77}, 20), Sig: bytes.Repeat([]byte{0x66}, 65)},
		"OrchestratorInfo":             info,
		"SegData":                      seg,
		"TranscodeResult":              &net.TranscodeResult{Seq: 42, Result: &net.TranscodeResult_Data{Data: &net.TranscodeData{Segments: []*net.TranscodedSegmentData{{Url: "https://o/stream/s/P360p30fps16x9/42.ts", Pixels: 12_000_000, PerceptualHashUrl: "https://o/phash"}}, Sig: bytes.Repeat([]byte{0x66}, 65)}}, Info: info},
		"TranscodeResultError":         &net.TranscodeResult{Seq: 43, Result: &net.TranscodeResult_Error{Error: "OrchestratorBusy"}},
		"RegisterRequest":              &net.RegisterRequest{Secret: "secret", Capacity: 3, Capabilities: caps},
		"NotifySegment":                &net.NotifySegment{Url: "https://o/task/abc.ts", SegData: seg, TaskId: 9, OrchId: "orch", Profiles: []byte("invalid")},
		"Payment":                      &net.Payment{TicketParams: params, Sender: bytes.Repeat([]byte{0x77}, 20), ExpirationParams: params.ExpirationParams, TicketSenderParams: []*net.TicketSenderParams{{SenderNonce: 1, Sig: bytes.Repeat([]byte{0x66}, 65)}, {SenderNonce: 2, Sig: bytes.Repeat([]byte{0x67}, 65)}}, ExpectedPrice: price},
	}
}

// goPayment is the Payment message go-livepeer's broadcaster builds from a ticket batch
// (server/rpc.go genPayment).
func goPayment(batch *pm.TicketBatch, price *net.PriceInfo) *net.Payment {
	payment := &net.Payment{
		TicketParams: &net.TicketParams{
			Recipient:         batch.Recipient.Bytes(),
			FaceValue:         batch.FaceValue.Bytes(),
			WinProb:           batch.WinProb.Bytes(),
			RecipientRandHash: batch.RecipientRandHash.Bytes(),
			Seed:              batch.Seed.Bytes(),
			ExpirationBlock:   batch.ExpirationBlock.Bytes(),
		},
		Sender: batch.Sender.Bytes(),
		ExpirationParams: &net.TicketExpirationParams{
			CreationRound:          batch.CreationRound,
			CreationRoundBlockHash: batch.CreationRoundBlockHash.Bytes(),
		},
		ExpectedPrice: price,
	}
	for _, sp := range batch.SenderParams {
		payment.TicketSenderParams = append(payment.TicketSenderParams, &net.TicketSenderParams{SenderNonce: sp.SenderNonce, Sig: sp.Sig})
	}
	return payment
}

// write merges into theirs.json (tests may run in any order).
func write(t *testing.T, update func(*theirs)) {
	t.Helper()
	path := filepath.Join(interopDir(t), "theirs.json")
	var th theirs
	if raw, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(raw, &th); err != nil {
			t.Fatal(err)
		}
	}
	update(&th)
	raw, err := json.MarshalIndent(th, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}
