package golivepeer

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	ethcommon "github.com/ethereum/go-ethereum/common"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	"github.com/livepeer/go-livepeer/net"
	"github.com/livepeer/go-livepeer/pm"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"
)

// A go-livepeer broadcaster's payment to lpt's orchestrator over the wire: discovery over gRPC
// with go's `net` client, tickets from go's `pm.Sender` against the params lpt's orchestrator
// issued, and `POST /payment` with the two headers as go's broadcaster sends them. lpt's
// orchestrator accepts it and credits the session with the tickets' EV, which its /status shows.
// $LPT_ORCHESTRATOR is an on-chain orchestrator's service URI, $LPT_SENDER_KEY the funded
// broadcaster key (hex), $LPT_STATUS_TOKEN the orchestrator's status_token (balances are shown
// only to its bearer).
func TestGoBroadcasterPaysLptOrchestratorOverTheWire(t *testing.T) {
	uri, keyHex, statusToken := os.Getenv("LPT_ORCHESTRATOR"), os.Getenv("LPT_SENDER_KEY"), os.Getenv("LPT_STATUS_TOKEN")
	if uri == "" || keyHex == "" || statusToken == "" {
		t.Fatal("LPT_ORCHESTRATOR, LPT_SENDER_KEY and LPT_STATUS_TOKEN are not set: run `cargo test -p tester --profile ci --test stack`, which starts an on-chain stack and runs this test against it")
	}
	key, err := ethcrypto.HexToECDSA(strings.TrimPrefix(keyHex, "0x"))
	if err != nil {
		t.Fatal(err)
	}
	signer := keySigner{key}
	sender := signer.Account().Address
	// go's broadcaster signs with Eth.Sign(keccak256(msg)).
	sign := func(msg []byte) []byte {
		sig, err := signer.Sign(ethcrypto.Keccak256(msg))
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}

	target, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	insecure := &tls.Config{InsecureSkipVerify: true}
	conn, err := grpc.Dial(target.Host, grpc.WithTransportCredentials(credentials.NewTLS(insecure)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := net.NewOrchestratorClient(conn).GetOrchestrator(ctx, &net.OrchestratorRequest{
		Address: sender.Bytes(),
		Sig:     sign([]byte(sender.Hex())),
	})
	if err != nil {
		t.Fatalf("GetOrchestrator: %v", err)
	}
	tp := info.TicketParams
	if tp == nil || info.PriceInfo == nil || info.AuthToken == nil {
		t.Fatalf("lpt's orchestrator sent no ticket params, price or auth token: %v", info)
	}

	params := pmParams(tp, info.PriceInfo)
	// Fresh params: a few blocks before their expiry is a block go's sender accepts them at.
	tm := timeManager{l1Block: params.ExpirationBlock.Int64() - 5}
	maxEV := new(big.Rat).SetInt(new(big.Int).Lsh(big.NewInt(1), 200))
	const tickets = 3
	payer := pm.NewSender(signer, tm, senderManager{}, maxEV, maxEV, 1)
	batch, err := payer.CreateTicketBatch(payer.StartSession(*params), tickets)
	if err != nil {
		t.Fatalf("go-livepeer's sender refuses lpt's params: %v", err)
	}
	payment := goPayment(batch, info.PriceInfo)

	// The segment credentials go's broadcaster sends with a payment: an empty segment of the
	// session, signed over go's flatten (core.SegTranscodingMetadata.Flatten, by hand: `core`
	// does not build against Debian's FFmpeg).
	manifest := []byte("go-payment")
	profile := &net.VideoProfile{Name: "P144p30fps16x9", Width: 256, Height: 144, Bitrate: 400000, Fps: 30}
	hash := ethcrypto.Keccak256(nil)
	var flatten []byte
	flatten = append(flatten, manifest...)
	flatten = append(flatten, ethcommon.LeftPadBytes(big.NewInt(0).Bytes(), 32)...)
	flatten = append(flatten, hash...)
	flatten = append(flatten, []byte(hex.EncodeToString(ethcrypto.Keccak256([]byte(profile.Name))[:4]))...)
	segData := &net.SegData{ManifestId: manifest, Seq: 0, Hash: hash, Duration: 2000, AuthToken: info.AuthToken, FullProfiles: []*net.VideoProfile{profile}, Profiles: []byte("invalid")}
	segData.Sig = sign(flatten)

	segBytes, err := proto.Marshal(segData)
	if err != nil {
		t.Fatal(err)
	}
	payBytes, err := proto.Marshal(payment)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: insecure}}
	req, err := http.NewRequest("POST", uri+"/payment", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Livepeer-Segment", base64.StdEncoding.EncodeToString(segBytes))
	req.Header.Set("Livepeer-Payment", base64.StdEncoding.EncodeToString(payBytes))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("lpt's orchestrator refused go's payment: %d %s (params round %d hash %x, tickets round %d hash %x)", resp.StatusCode, body, params.ExpirationParams.CreationRound, params.ExpirationParams.CreationRoundBlockHash, batch.CreationRound, batch.CreationRoundBlockHash)
	}
	// PaymentResult{info = 16}: the same field as TranscodeResult.info in this go-livepeer.
	var result net.TranscodeResult
	if err := proto.Unmarshal(body, &result); err != nil || result.Info == nil || result.Info.TicketParams == nil {
		t.Fatalf("PaymentResult without refreshed info (%v): %x", err, body)
	}

	// The session is credited with the tickets' EV, as lpt's orchestrator reports it.
	statusRequest, err := http.NewRequest(http.MethodGet, uri+"/status", nil)
	if err != nil {
		t.Fatal(err)
	}
	statusRequest.Header.Set("Authorization", "Bearer "+statusToken)
	resp, err = client.Do(statusRequest)
	if err != nil {
		t.Fatal(err)
	}
	var status struct {
		Balances []struct {
			Sender     string `json:"sender"`
			Session    string `json:"session"`
			BalanceWei string `json:"balance_wei"`
		} `json:"balances"`
	}
	err = json.NewDecoder(resp.Body).Decode(&status)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	ev := new(big.Rat).Mul(batch.TicketParams.WinProbRat(), new(big.Rat).SetInt(batch.FaceValue))
	want := new(big.Rat).Mul(ev, big.NewRat(tickets, 1))
	for _, b := range status.Balances {
		if !strings.EqualFold(b.Sender, sender.Hex()) || b.Session != info.AuthToken.SessionId {
			continue
		}
		got, ok := new(big.Rat).SetString(b.BalanceWei)
		if !ok {
			t.Fatalf("balance %q", b.BalanceWei)
		}
		// lpt keeps EV in whole wei: at most one wei per ticket below go's exact value.
		diff := new(big.Rat).Sub(want, got)
		if diff.Sign() < 0 || diff.Cmp(big.NewRat(tickets, 1)) > 0 {
			t.Fatalf("session credited %s wei, go's tickets are worth %s", got.FloatString(0), want.FloatString(3))
		}
		t.Logf("lpt's orchestrator credited %s wei for %d go-livepeer tickets", got.FloatString(0), tickets)
		return
	}
	t.Fatalf("no balance for %s in session %s: %+v", sender.Hex(), info.AuthToken.SessionId, status.Balances)
}
