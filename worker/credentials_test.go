package worker_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dyplsq/dyplsq/dypls"
	"github.com/dyplsq/dyplsq/dyplsim"
	"github.com/dyplsq/dyplsq/worker"
)

// chainEnv sets the environment so that the SDK's default credentials chain
// finds nothing but the credentials URI uri. Tests that use it cannot run
// in parallel.
func chainEnv(t *testing.T, uri string) {
	t.Helper()
	for k, v := range dyplsim.CredentialsURIOnlyEnv(uri, t.TempDir()) {
		t.Setenv(k, v)
	}
}

// useCredentialsURI points the env's worker at the simulator's
// credentials URI through the default chain, with the STS settings given
// (PUT /_sim/sts).
func (e *env) useCredentialsURI(sts string) {
	e.t.Helper()
	e.putSTS(sts)
	chainEnv(e.t, "http://"+e.simAddr+"/_sim/credentials")
	api, err := dypls.New(dypls.Config{Endpoint: "http://" + e.simAddr, Timeout: 2 * time.Second})
	if err != nil {
		e.t.Fatal(err)
	}
	e.api.Close()
	e.api = api
	e.t.Cleanup(api.Close)
}

func outID(i int, v string) string {
	return fmt.Sprintf("%s-%d", v, i)
}

// TestCredentialsRotateWithoutHaltOrCountedAttempt runs the worker for
// several credential lifetimes with credentials from the simulator's
// credentials URI. The URI reports an Expiration an hour later than the
// gateway enforces, so expired-token answers do come; each is met with
// fresh credentials: every job applied at its first attempt, no halt, and
// no secret or token in the logs.
func TestCredentialsRotateWithoutHaltOrCountedAttempt(t *testing.T) {
	e := newEnv(t, dyplsim.Config{Seed: 40, STSLifetime: 800 * time.Millisecond}, nil)
	e.useCredentialsURI(`{"ExpirationSkew":"1h"}`)
	w := e.start()
	var ids []string
	halted := false
	for i := 1; i <= 40; i++ {
		u := seed(i, "updateOutId")
		u.OutId = outID(i, "rot")
		ids = append(ids, e.enqueue(u))
		time.Sleep(90 * time.Millisecond)
		halted = halted || w.Halt().Halted
	}
	for i, id := range ids {
		r := result(t, e.waitState(id, 10*time.Second, asynq.TaskStateCompleted))
		if r.Outcome != worker.OutcomeApplied || r.Attempts != 1 {
			t.Fatalf("job %d: %+v", i+1, r)
		}
		if b, _ := e.sim.Binding(dyplsim.SeedBinding(i + 1).SubsId); b.OutId != outID(i+1, "rot") {
			t.Fatalf("binding %d holds OutId %q", i+1, b.OutId)
		}
	}
	st := e.sim.STS()
	if st.Issued < 4 || st.Expired < 2 {
		t.Errorf("want several rotations met by expired answers: %+v", st)
	}
	logs := e.logs.String()
	if halted || strings.Contains(logs, "halted") {
		t.Errorf("the worker halted on an expired token:\n%s", logs)
	}
	if strings.Contains(logs, "CAIS") || strings.Contains(logs, "STS.") {
		t.Errorf("a token or an STS AccessKeyId is in the logs:\n%s", logs)
	}
}

// TestCredentialsSourceFailsHaltsAndResumes: when the credentials URI
// fails as the credentials expire, the worker halts with
// Credentials.Unavailable and the source's reason, counts no attempt, and
// resumes by itself once the source recovers.
func TestCredentialsSourceFailsHaltsAndResumes(t *testing.T) {
	e := newEnv(t, dyplsim.Config{Seed: 5, STSLifetime: 400 * time.Millisecond}, nil)
	e.useCredentialsURI(`{"ExpirationSkew":"1h"}`)
	w := e.start()
	first := outIDUpdate(1, "before")
	if r := result(t, e.waitState(e.enqueue(first), 10*time.Second, asynq.TaskStateCompleted)); r.Outcome != worker.OutcomeApplied {
		t.Fatalf("first job %+v", r)
	}
	e.putSTS(`{"Fail":"the role session was revoked","FailStatus":503}`)
	time.Sleep(500 * time.Millisecond) // the credentials in use expire
	var ids []string
	for i := 2; i <= 5; i++ {
		u := outIDUpdate(i, "during")
		ids = append(ids, e.enqueue(u))
	}
	eventually(t, 10*time.Second, "the worker to halt", func() bool { return w.Halt().Halted })
	info := w.Halt()
	if info.Code != dypls.CodeCredentials || !strings.Contains(info.Message, "the role session was revoked") ||
		!strings.Contains(info.Hint, "credentials source") {
		t.Fatalf("halt %+v", info)
	}
	if err := w.Ready(context.Background()); err == nil || !strings.Contains(err.Error(), dypls.CodeCredentials) {
		t.Fatalf("Ready = %v", err)
	}
	time.Sleep(time.Second) // a few probes fail
	if !w.Halt().Halted {
		t.Fatal("resumed while the source still fails")
	}
	e.putSTS(`{"Fail":""}`)
	for _, id := range ids {
		r := result(t, e.waitState(id, 15*time.Second, asynq.TaskStateCompleted))
		if r.Outcome != worker.OutcomeApplied || r.Attempts != 1 {
			t.Fatalf("after the source recovered: %+v", r)
		}
	}
	if w.Halt().Halted {
		t.Fatal("still halted")
	}
	logs := e.logs.String()
	for _, want := range []string{`"code":"Credentials.Unavailable"`, "halt ended"} {
		if !strings.Contains(logs, want) {
			t.Errorf("no %q line in the logs", want)
		}
	}
	if strings.Contains(logs, "CAIS") {
		t.Error("a token is in the logs")
	}
}

// putSTS changes the simulator's credentials URI (PUT /_sim/sts).
func (e *env) putSTS(sts string) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPut, "http://"+e.simAddr+"/_sim/sts", strings.NewReader(sts))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("PUT /_sim/sts %s: %d", sts, resp.StatusCode)
	}
}
