package golivepeer

import (
	"bufio"
	"encoding/json"
	"math/big"
	"os"
	"path/filepath"
	"testing"

	ethcommon "github.com/ethereum/go-ethereum/common"
	"github.com/livepeer/go-livepeer/pm"
)

// One line of lpt's orchestrator ticket journal (node/orchestrator/src/journal.rs).
type journalLine struct {
	Recipient              string  `json:"recipient"`
	Sender                 string  `json:"sender"`
	FaceValue              string  `json:"face_value"`
	WinProb                string  `json:"win_prob"`
	SenderNonce            uint32  `json:"sender_nonce"`
	RecipientRandHash      string  `json:"recipient_rand_hash"`
	CreationRound          int64   `json:"creation_round"`
	CreationRoundBlockHash string  `json:"creation_round_block_hash"`
	ParamsExpirationBlock  int64   `json:"params_expiration_block"`
	PricePerUnit           int64   `json:"price_per_unit"`
	PixelsPerUnit          int64   `json:"pixels_per_unit"`
	Sig                    string  `json:"sig"`
	RecipientRand          string  `json:"recipient_rand"`
	Accepted               bool    `json:"accepted"`
	Winning                bool    `json:"winning"`
	Reason                 *string `json:"reason"`
}

func decimal(t *testing.T, what, s string) *big.Int {
	t.Helper()
	v, ok := new(big.Int).SetString(s, 10)
	if !ok {
		t.Fatalf("%s: not a decimal integer: %q", what, s)
	}
	return v
}

// Tickets a live `lpt run` paid lpt's orchestrators with, as their journals recorded them: every
// ticket they accepted passes go-livepeer's pm.Validator (recipient, sender, recipientRand
// commitment, signature over go's ticket hash), and go agrees on which ones won.
// $LPT_TICKET_JOURNALS is the stack directory holding `orchestrator-*/tickets.jsonl`.
func TestLiveTicketsPassGoLivepeerValidator(t *testing.T) {
	dir := os.Getenv("LPT_TICKET_JOURNALS")
	if dir == "" {
		t.Fatal("LPT_TICKET_JOURNALS is not set: run `cargo test -p tester --profile ci --test stack`, which pays a live stack and runs this test on its journals")
	}
	paths, err := filepath.Glob(filepath.Join(dir, "orchestrator-*", "tickets.jsonl"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no orchestrator ticket journals in %s (%v)", dir, err)
	}
	validator := pm.NewValidator(&pm.DefaultSigVerifier{}, timeManager{})
	accepted, winners := 0, 0
	for _, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		scanner := bufio.NewScanner(f)
		for n := 1; scanner.Scan(); n++ {
			var l journalLine
			if err := json.Unmarshal(scanner.Bytes(), &l); err != nil {
				t.Fatalf("%s:%d: %v", path, n, err)
			}
			if !l.Accepted {
				continue
			}
			ticket := &pm.Ticket{
				Recipient:              ethcommon.HexToAddress(l.Recipient),
				Sender:                 ethcommon.HexToAddress(l.Sender),
				FaceValue:              decimal(t, "face_value", l.FaceValue),
				WinProb:                decimal(t, "win_prob", l.WinProb),
				SenderNonce:            l.SenderNonce,
				RecipientRandHash:      ethcommon.HexToHash(l.RecipientRandHash),
				CreationRound:          l.CreationRound,
				CreationRoundBlockHash: ethcommon.HexToHash(l.CreationRoundBlockHash),
				ParamsExpirationBlock:  big.NewInt(l.ParamsExpirationBlock),
				PricePerPixel:          big.NewRat(l.PricePerUnit, l.PixelsPerUnit),
			}
			sig := ethcommon.FromHex(l.Sig)
			rand := new(big.Int).SetBytes(ethcommon.FromHex(l.RecipientRand))
			if err := validator.ValidateTicket(ticket.Recipient, ticket, sig, rand); err != nil {
				t.Errorf("%s:%d: go-livepeer's validator refuses a ticket lpt's orchestrator accepted: %v", path, n, err)
				continue
			}
			if won := validator.IsWinningTicket(ticket, sig, rand); won != l.Winning {
				t.Errorf("%s:%d: go-livepeer says won=%v, lpt's orchestrator says %v", path, n, won, l.Winning)
			}
			// Another recipient's rand or a flipped signature byte must not pass.
			bad := append([]byte(nil), sig...)
			bad[10] ^= 1
			if validator.ValidateTicket(ticket.Recipient, ticket, bad, rand) == nil {
				t.Errorf("%s:%d: a corrupted signature passed", path, n)
			}
			accepted++
			if l.Winning {
				winners++
			}
		}
		if err := scanner.Err(); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	if accepted == 0 {
		t.Fatalf("the journals in %s hold no accepted ticket", dir)
	}
	t.Logf("go-livepeer's validator accepted %d live tickets, %d winning", accepted, winners)
}
