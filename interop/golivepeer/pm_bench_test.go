package golivepeer

// The peer of lpt's ticket bench (protocol/benches/tickets.rs): go-livepeer's own `pm` doing the
// same work on one goroutine. A recipient (NewRecipientWithSecret, go's Validator with go's
// DefaultSigVerifier) quotes params at the same EV, redeem gas, gas price and price as the Rust
// bench, so go's own rules yield the same face value and win probability; go's Sender
// (CreateTicketBatch, signing as go-livepeer's account manager does) creates and signs the
// tickets, a batch per params; the recipient's ReceiveTicket validates every one (recipientRand,
// signature recovery, nonce, expiry, win check).
//
// CPU time is getrusage(RUSAGE_SELF) around each loop, so go's garbage collector counts, as it
// does in a go-livepeer node. The test prints one line for the Rust bench to parse:
//
//	lpt-bench-pm tickets=N create_cpu_s=… validate_cpu_s=… face_value=… win_prob=… winners=…
//
// Sizes: LPT_BENCH_TICKETS (default 2000) and LPT_BENCH_PER_PARAMS (default 100, at most go's
// 150 nonces per recipientRand).

import (
	"fmt"
	"math/big"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	ethcommon "github.com/ethereum/go-ethereum/common"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	"github.com/livepeer/go-livepeer/pm"
)

// The Rust bench's chain and policy: block 100, round 5 with block hash 0x0505…, gas price
// 0.1 gwei, EV 8e9 wei, redeem gas 1.2e6, face value = 100 × the redemption's cost.
const (
	benchBlock     = 100
	benchRound     = 5
	benchGasPrice  = 100_000_000
	benchEV        = 8_000_000_000
	benchRedeemGas = 1_200_000
	benchMaxEV     = 3_000_000_000_000
	benchMaxTotal  = 20_000_000_000_000
)

type benchTime struct{ pm.TimeManager }

func (benchTime) LastSeenL1Block() *big.Int      { return big.NewInt(benchBlock) }
func (benchTime) LastInitializedRound() *big.Int { return big.NewInt(benchRound) }
func (benchTime) LastInitializedL1BlockHash() [32]byte {
	var h [32]byte
	for i := range h {
		h[i] = 5
	}
	return h
}

type benchGas struct{}

func (benchGas) GasPrice() *big.Int { return big.NewInt(benchGasPrice) }

type benchSenderMonitor struct{ pm.SenderMonitor }

func (benchSenderMonitor) ValidateSender(ethcommon.Address) error { return nil }
func (benchSenderMonitor) MaxFloat(ethcommon.Address) (*big.Int, error) {
	return new(big.Int).Lsh(big.NewInt(1), 120), nil
}

func envInt(t *testing.T, name string, def int) int {
	text := os.Getenv(name)
	if text == "" {
		return def
	}
	n, err := strconv.Atoi(text)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, text)
	}
	return n
}

func processCPU(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestGoLivepeerPmTicketRates(t *testing.T) {
	tickets := envInt(t, "LPT_BENCH_TICKETS", 2000)
	perParams := envInt(t, "LPT_BENCH_PER_PARAMS", 100)
	if perParams > 150 {
		t.Fatalf("LPT_BENCH_PER_PARAMS=%d: go's recipient takes at most 150 nonces per params", perParams)
	}
	batches := (tickets + perParams - 1) / perParams
	tickets = batches * perParams
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	senderKey, err := ethcrypto.ToECDSA(bytesOf(0xb0))
	if err != nil {
		t.Fatal(err)
	}
	recipientKey, err := ethcrypto.ToECDSA(bytesOf(0xa0))
	if err != nil {
		t.Fatal(err)
	}
	senderAddr := ethcrypto.PubkeyToAddress(senderKey.PublicKey)
	recipientAddr := ethcrypto.PubkeyToAddress(recipientKey.PublicKey)
	var secret [32]byte
	copy(secret[:], bytesOf(0x5e))
	tm := benchTime{}
	recipient := pm.NewRecipientWithSecret(recipientAddr, nil, pm.NewValidator(&pm.DefaultSigVerifier{}, tm), benchGas{}, benchSenderMonitor{}, tm, secret, pm.TicketParamsConfig{
		EV:               big.NewInt(benchEV),
		RedeemGas:        benchRedeemGas,
		TxCostMultiplier: 100,
	})
	price := big.NewRat(1200, 1)
	sender := pm.NewSender(keySigner{senderKey}, tm, senderManager{}, new(big.Rat).SetInt64(benchMaxEV), new(big.Rat).SetInt64(benchMaxTotal), 1)

	params := make([]*pm.TicketParams, batches+1)
	for i := range params {
		if params[i], err = recipient.TicketParams(senderAddr, price); err != nil {
			t.Fatalf("go's recipient quotes no params: %v", err)
		}
	}
	// Warm-up on the last params, as the Rust bench does.
	warm := params[batches]
	params = params[:batches]
	session := sender.StartSession(*warm)
	batch, err := sender.CreateTicketBatch(session, perParams)
	if err != nil {
		t.Fatal(err)
	}
	for _, sp := range batch.SenderParams {
		ticket := pm.NewTicket(warm, warm.ExpirationParams, senderAddr, sp.SenderNonce)
		if _, _, err := recipient.ReceiveTicket(ticket, sp.Sig, warm.Seed); err != nil {
			t.Fatalf("warm-up ticket refused: %v", err)
		}
	}

	start := processCPU(t)
	made := make([]*pm.TicketBatch, batches)
	for i, p := range params {
		if made[i], err = sender.CreateTicketBatch(sender.StartSession(*p), perParams); err != nil {
			t.Fatalf("go's sender refuses its recipient's params: %v", err)
		}
	}
	create := processCPU(t) - start

	// The tickets as go's orchestrator rebuilds them from a payment (ProcessPayment), made
	// outside the timed loop as the Rust bench holds its tickets already built.
	type received struct {
		ticket *pm.Ticket
		sig    []byte
		seed   *big.Int
	}
	all := make([]received, 0, tickets)
	for i, b := range made {
		for _, sp := range b.SenderParams {
			all = append(all, received{pm.NewTicket(params[i], b.TicketExpirationParams, b.Sender, sp.SenderNonce), sp.Sig, params[i].Seed})
		}
	}
	winners := 0
	start = processCPU(t)
	for _, r := range all {
		_, won, err := recipient.ReceiveTicket(r.ticket, r.sig, r.seed)
		if err != nil {
			t.Fatalf("go's recipient refuses go's ticket (nonce %d): %v", r.ticket.SenderNonce, err)
		}
		if won {
			winners++
		}
	}
	validate := processCPU(t) - start

	fmt.Printf("lpt-bench-pm tickets=%d create_cpu_s=%.6f validate_cpu_s=%.6f face_value=%s win_prob=%s winners=%d\n",
		tickets, create.Seconds(), validate.Seconds(), params[0].FaceValue, params[0].WinProb, winners)
}

func bytesOf(b byte) []byte {
	out := make([]byte, 32)
	for i := range out {
		out[i] = b
	}
	return out
}
