package dypls_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dyplsq/dyplsq/dypls"
	"github.com/dyplsq/dyplsq/dyplsim"
)

// phoneRun finds a phone-number-shaped digit run (10 to 12 digits starting
// with 0 or 1) standing alone: digits on either side would make it part of
// a longer id such as a 16-digit SubsId, which stays whole.
var phoneRun = regexp.MustCompile(`(^|\D)(0|1)\d{9,11}(\D|$)`)

// assertMasked fails the test if s holds an unmasked phone number.
func assertMasked(tb testing.TB, what, s string) {
	tb.Helper()
	if m := phoneRun.FindString(s); m != "" {
		tb.Errorf("%s holds an unmasked phone number %q: %s", what, strings.Trim(m, "^$"), s)
	}
}

// want is the expected shape of a *dypls.Error.
type want struct {
	Code       string
	Class      dypls.Class
	Ambiguous  bool
	HTTPStatus int
	RequestID  bool // a RequestId must be present
}

// asError checks that err is a masked *dypls.Error and returns it.
func asError(tb testing.TB, err error) *dypls.Error {
	tb.Helper()
	if err == nil {
		tb.Fatal("want an error, got nil")
	}
	var e *dypls.Error
	if !errors.As(err, &e) {
		tb.Fatalf("want a *dypls.Error, got %T: %v", err, err)
	}
	// The RequestId is an id, not a number, and stays whole; its last
	// hex group can hold a run such as "0164345425" that only looks like
	// a phone number, so it is left out of the check.
	shown := err.Error()
	if e.RequestID != "" {
		shown = strings.ReplaceAll(shown, e.RequestID, "<RequestId>")
	}
	assertMasked(tb, "Error()", shown)
	assertMasked(tb, "Message", e.Message)
	return e
}

// check asserts err has the wanted code, class, ambiguity, status and
// RequestId, and that everything it shows is masked.
func check(tb testing.TB, err error, w want) *dypls.Error {
	tb.Helper()
	e := asError(tb, err)
	if e.Code != w.Code || e.Class != w.Class || e.Ambiguous != w.Ambiguous || e.HTTPStatus != w.HTTPStatus {
		tb.Errorf("got Code=%q Class=%v Ambiguous=%v HTTPStatus=%d, want Code=%q Class=%v Ambiguous=%v HTTPStatus=%d (%v)",
			e.Code, e.Class, e.Ambiguous, e.HTTPStatus, w.Code, w.Class, w.Ambiguous, w.HTTPStatus, err)
	}
	if w.RequestID && e.RequestID == "" {
		tb.Errorf("no RequestID in %v", err)
	}
	if !w.RequestID && e.RequestID != "" {
		tb.Errorf("unexpected RequestID %q in %v", e.RequestID, err)
	}
	if e.Class != dypls.Classify(e.Code) {
		tb.Errorf("Class %v disagrees with Classify(%q) = %v", e.Class, e.Code, dypls.Classify(e.Code))
	}
	if !errors.Is(err, &dypls.Error{Code: w.Code}) {
		tb.Errorf("errors.Is(err, &Error{Code: %q}) is false", w.Code)
	}
	tb.Logf("observed: %v", err)
	return e
}

// startSim starts a simulator on a free loopback port for the test.
func startSim(tb testing.TB, cfg dyplsim.Config) (*dyplsim.Sim, string) {
	tb.Helper()
	sim, srv, addr, err := dyplsim.Start(cfg, "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		sim.Close() // release hangs
		srv.Close()
	})
	return sim, addr
}

// newClient returns a dypls.Client for the simulator at addr with the
// default credentials; mods adjust the configuration.
func newClient(tb testing.TB, addr string, mods ...func(*dypls.Config)) *dypls.Client {
	tb.Helper()
	cfg := dypls.Config{
		Endpoint:        "http://" + addr,
		AccessKeyID:     dyplsim.DefaultAccessKeyID,
		AccessKeySecret: dyplsim.DefaultAccessKeySecret,
		Timeout:         5 * time.Second,
	}
	for _, m := range mods {
		m(&cfg)
	}
	c, err := dypls.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	return c
}

func withTimeout(d time.Duration) func(*dypls.Config) {
	return func(c *dypls.Config) { c.Timeout = d }
}

// seedUpdate is an UpdateSubscription of sample binding i.
func seedUpdate(i int, op string) dypls.Update {
	b := dyplsim.SeedBinding(i)
	return dypls.Update{PoolKey: b.PoolKey, SubsId: b.SubsId, PhoneNoX: b.PhoneNoX, OperateType: op}
}

// updateNoA sets PhoneNoA of sample binding i: a call whose parameters, and
// so whose string-to-sign, hold full phone numbers.
func updateNoA(i int, a string) dypls.Update {
	u := seedUpdate(i, "updateNoA")
	u.PhoneNoA = a
	return u
}

func updateOutID(i int, outID string) dypls.Update {
	u := seedUpdate(i, "updateOutId")
	u.OutId = outID
	return u
}

// binding returns the simulator's view of sample binding i.
func binding(tb testing.TB, sim *dyplsim.Sim, i int) dyplsim.Binding {
	tb.Helper()
	b, ok := sim.Binding(dyplsim.SeedBinding(i).SubsId)
	if !ok {
		tb.Fatalf("sample binding %d missing", i)
	}
	return b
}

// waitFor polls cond for up to 5 s.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// calls returns how many calls of action the simulator counted with code.
func calls(sim *dyplsim.Sim, action, code string) int {
	return sim.Stats().Calls[action][code]
}

var bg = context.Background()

func TestPhoneRunHelper(t *testing.T) {
	t.Parallel()
	for s, hit := range map[string]bool{
		"13800001111":                       true,
		"PhoneNoA%253D13800001111%26":       true,
		"landline 01012345678.":             true,
		"021123456789":                      true,
		"SubsId 1000000000000001":           false, // 16 digits
		"138****1111":                       false,
		"RequestId 986BCB6D-C9BF-42F9-91CE": false,
		"23800001111":                       false,
		"138000011":                         false, // 9 digits
	} {
		if got := phoneRun.MatchString(s); got != hit {
			t.Errorf("phoneRun.MatchString(%q) = %v, want %v", s, got, hit)
		}
	}
}
